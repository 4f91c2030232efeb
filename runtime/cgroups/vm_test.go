package cgroups

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hullproject/hull/vm/guest/bootcheck"
	"github.com/hullproject/hull/vm/guest/guesttest"
	"github.com/hullproject/hull/vm/initramfs"
)

// inVMEnv is set for this package's tests when they run inside the test VM.
const inVMEnv = "HULL_CGROUPS_IN_VM"

// TestCgroupV2InVM runs this package's tests on a pure cgroup v2 host: a
// QEMU guest (TCG) booting Debian's cloud kernel with cgroup2 mounted at
// /sys/fs/cgroup and every controller available. The test binary, busybox
// and a shell init are the whole initramfs; the verdict comes back on the
// serial console.
func TestCgroupV2InVM(t *testing.T) {
	if os.Getenv(inVMEnv) != "" {
		t.Skip("this is the run inside the VM")
	}
	if testing.Short() {
		t.Skip("boots a VM (about 30 s under TCG); skipped in -short mode")
	}
	guesttest.RequireQEMU(t)
	kernel := guesttest.CloudKernel(t)
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox-static is not installed (scripts/install-deps.sh installs it)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "cgroups.test")
	build := exec.Command("go", "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test binary: %v\n%s", err, out)
	}
	initScript := filepath.Join(dir, "init")
	script := `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# virtio modules, for the disk the io.max tests throttle
for m in $(cat /lib/modules/load.order 2>/dev/null); do insmod $m; done
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/block/vda ] && break; sleep 0.1; done
echo 64 > /proc/sys/vm/nr_hugepages
cd /tmp
echo "block devices: $(ls /sys/block)"; cat /proc/modules | cut -d" " -f1 | tr "\\n" " "; echo
echo HULL-CG-VM-START
` + inVMEnv + `=1 /cgroups.test -test.v -test.count=1 -test.timeout=8m 2>&1
echo "HULL-CG-VM-EXIT $?"
poweroff -f
`
	if err := os.WriteFile(initScript, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initramfs.cpio.gz")
	if err := initramfs.WriteFile(initrd, initramfs.Spec{
		Init:        initScript,
		Files:       []initramfs.File{{Path: "/bin/busybox", Source: busybox, Mode: 0o755}, {Path: "/cgroups.test", Source: bin, Mode: 0o755}},
		Modules:     guesttest.CloudModules(kernel),
		Compression: initramfs.Gzip,
	}); err != nil {
		t.Fatal(err)
	}
	// a small disk, so io.max has a real device to throttle
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := bootcheck.Boot(ctx, bootcheck.Config{
		Kernel:    kernel.Path(kernel.BzImage.Path),
		Initrd:    initrd,
		MemoryMiB: 1024,
		CPUs:      2,
		Append:    "quiet",
		Marker:    "HULL-CG-VM-START",
		Timeout:   9 * time.Minute,
		ExtraArgs: []string{
			"-global", "virtio-mmio.force-legacy=false",
			"-drive", "file=" + disk + ",if=none,id=d0,format=raw",
			"-device", "virtio-blk-device,drive=d0",
		},
	})
	if err != nil {
		t.Fatalf("VM: %v", err)
	}
	console := string(res.Console)
	exit := regexp.MustCompile(`HULL-CG-VM-EXIT (\d+)`).FindStringSubmatch(console)
	if exit == nil {
		t.Fatalf("the test binary did not finish in the VM:\n%s", res.ConsoleTail(80))
	}
	// every test and subtest verdict, for the log
	var ran, skipped []string
	for _, line := range strings.Split(console, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "--- FAIL"):
			t.Errorf("in the VM: %s", line)
		case strings.HasPrefix(line, "--- PASS"):
			ran = append(ran, strings.Fields(line)[2])
		case strings.HasPrefix(line, "--- SKIP"):
			skipped = append(skipped, strings.Fields(line)[2])
		}
	}
	if i := strings.Index(console, "block devices:"); i >= 0 {
		t.Log(strings.SplitN(console[i:], "\n", 3)[:2])
	}
	t.Logf("passed on cgroup v2: %s", strings.Join(ran, " "))
	t.Logf("skipped on cgroup v2: %s", strings.Join(skipped, " "))
	if exit[1] != "0" || t.Failed() {
		t.Fatalf("the tests failed in the VM (exit %s):\n%s", exit[1], console)
	}
	// the v2 paths must really have been exercised
	for _, must := range []string{"TestLifecycle", "TestLimitsOnDisk/memory_swap", "TestLimitsOnDisk/cpu_shares", "TestDevicesEnforced/v2-ebpf", "TestOOMNotify", "TestV2Tree", "TestApplyRefusesBusyCgroup", "TestUpdateMergesV2", "TestPathResolutionV2", "TestLimitsEnforced/pids.max_1_stops_fork", "TestLimitsEnforced/memory_limit", "TestLimitsEnforced/cpuset_pins", "TestLimitsOnDisk/unified_memory.high", "TestLimitsOnDisk/blkio_read_bps", "TestLimitsOnDisk/blkio_write_iops"} {
		if !strings.Contains(" "+strings.Join(ran, " ")+" ", " "+must+" ") {
			t.Errorf("%s did not pass in the VM", must)
		}
	}
}
