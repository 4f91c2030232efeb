package guestsuite

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/guest"
	"github.com/hullproject/hull/vm/guest/bootcheck"
	"github.com/hullproject/hull/vm/guest/guesttest"
	"github.com/hullproject/hull/vm/initramfs"
)

// inVMEnv is set for this package's tests when they run inside the VM.
const inVMEnv = "HULL_GUEST_SUITE_IN_VM"

// cgroupsInVMEnv makes runtime/cgroups' tests run their cgroup v2 variants
// (see runtime/cgroups/vm_test.go).
const cgroupsInVMEnv = "HULL_CGROUPS_IN_VM"

func TestMain(m *testing.M) {
	code := m.Run()
	guesttest.Cleanup()
	os.Exit(code)
}

// moduleRoot is the source tree's root (where go.mod is).
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// build runs `go` with args in the module root.
func build(t *testing.T, root string, cgo bool, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if cgo {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// ext4Image makes an ext4 image holding rootfs/ (busybox and the commands
// the in-guest containers run) with mkfs.ext4 -d.
func ext4Image(t *testing.T, dir, busybox string) string {
	t.Helper()
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 is not installed (e2fsprogs): the ext4 disk cannot be made")
	}
	tree := filepath.Join(dir, "ext4tree")
	bin := filepath.Join(tree, "rootfs", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"sh", "cat", "echo", "grep", "hostname", "readlink", "sleep", "test", "ls", "id", "head"} {
		if err := os.Symlink("busybox", filepath.Join(bin, c)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(tree, "rootfs", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tree, "rootfs", "etc", "lower-file"), []byte("from the ext4 lower layer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.ext4")
	if out, err := exec.Command(mkfs, "-q", "-F", "-d", tree, img, "32M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	return img
}

// TestGuestSuite boots Hull's guest kernel with this package's and
// runtime/cgroups' tests and a static hull-runtime in the initramfs and an
// ext4 disk, runs them inside (as root, on the guest's pure cgroup v2), and
// fails for every test that failed there or did not run.
func TestGuestSuite(t *testing.T) {
	if os.Getenv(inVMEnv) != "" {
		t.Skip("this is the run inside the VM")
	}
	if testing.Short() {
		t.Skip("boots a VM and runs two test binaries in it (minutes under TCG); skipped in -short mode")
	}
	guesttest.RequireQEMU(t)
	m := guesttest.MinimalKernel(t)
	kernel := vm.DefaultAssets(m.Dir(), false).Kernel // the vm runtime's default: vmlinux through PVH
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox-static is not installed (scripts/install-deps.sh installs it)")
	}
	root := moduleRoot(t)
	dir := t.TempDir()
	cgTest, suiteTest, runtimeBin := filepath.Join(dir, "cgroups.test"), filepath.Join(dir, "guestsuite.test"), filepath.Join(dir, "hull-runtime")
	build(t, root, false, "test", "-c", "-o", cgTest, "./runtime/cgroups")
	build(t, root, false, "test", "-c", "-o", suiteTest, "./vm/guest/guestsuite")
	// Static, as make build links it (cgo: libseccomp, the nsenter constructor).
	build(t, root, true, "build", "-trimpath", "-tags", "netgo,osusergo", "-ldflags", "-linkmode external -extldflags -static", "-o", runtimeBin, "./cmd/hull-runtime")
	disk := ext4Image(t, dir, busybox)

	// As hull-agent does, leave the initramfs for a tmpfs root first:
	// pivot_root (which the native runtime uses) refuses the initramfs.
	script := `#!/bin/busybox sh
export PATH=/bin
if [ "$1" != stage2 ]; then
	/bin/busybox mkdir -p /newroot
	/bin/busybox mount -t tmpfs -o mode=0755 tmpfs /newroot
	/bin/busybox mkdir -p /newroot/bin /newroot/proc /newroot/sys /newroot/dev
	/bin/busybox cp -a /init /cgroups.test /guestsuite.test /newroot/
	/bin/busybox cp -a /bin/busybox /bin/hull-runtime /newroot/bin/
	exec /bin/busybox switch_root /newroot /init stage2
fi
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp /run /mnt/ext4
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /dev/vda ] && break; sleep 0.1; done
mount -t ext4 /dev/vda /mnt/ext4
echo 64 > /proc/sys/vm/nr_hugepages
echo "guest: $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers), block: $(ls /sys/block)"
cd /tmp
echo HULL-GUEST-SUITE-START
` + cgroupsInVMEnv + `=1 /cgroups.test -test.v -test.count=1 -test.timeout=8m 2>&1
echo "HULL-GUEST-SUITE-EXIT cgroups $?"
` + inVMEnv + `=1 /guestsuite.test -test.v -test.count=1 -test.timeout=5m 2>&1
echo "HULL-GUEST-SUITE-EXIT guestsuite $?"
umount /mnt/ext4
poweroff -f
`
	initScript := filepath.Join(dir, "init")
	if err := os.WriteFile(initScript, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initramfs.cpio")
	if err := initramfs.WriteFile(initrd, initramfs.Spec{
		Init: initScript,
		Files: []initramfs.File{
			{Path: "/bin/busybox", Source: busybox, Mode: 0o755},
			{Path: "/bin/hull-runtime", Source: runtimeBin, Mode: 0o755},
			{Path: "/cgroups.test", Source: cgTest, Mode: 0o755},
			{Path: "/guestsuite.test", Source: suiteTest, Mode: 0o755},
		},
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	res, err := bootcheck.Boot(ctx, bootcheck.Config{
		Kernel:    kernel,
		Initrd:    initrd,
		MemoryMiB: 1024,
		CPUs:      2,
		Append:    "quiet",
		Marker:    "HULL-GUEST-SUITE-START",
		Timeout:   14 * time.Minute,
		ExtraArgs: []string{
			"-global", "virtio-mmio.force-legacy=false",
			"-drive", "file=" + disk + ",if=none,id=d0,format=raw",
			"-device", "virtio-blk-device,drive=d0",
		},
	})
	if err != nil {
		t.Fatalf("guest suite VM (%s): %v", kernel, err)
	}
	console := string(res.Console)
	if i := strings.Index(console, "guest: "); i >= 0 {
		t.Log(strings.SplitN(console[i:], "\n", 2)[0])
	}
	exits := map[string]string{}
	for _, mm := range regexp.MustCompile(`HULL-GUEST-SUITE-EXIT (\w+) (\d+)`).FindAllStringSubmatch(console, -1) {
		exits[mm[1]] = mm[2]
	}
	passed := map[string]bool{}
	var ran, skipped []string
	for _, line := range strings.Split(console, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "--- FAIL"):
			t.Errorf("in the guest: %s", line)
		case strings.HasPrefix(line, "--- PASS"):
			name := strings.Fields(line)[2]
			passed[name] = true
			ran = append(ran, name)
		case strings.HasPrefix(line, "--- SKIP"):
			skipped = append(skipped, strings.Fields(line)[2])
		}
	}
	t.Logf("passed in the guest: %s", strings.Join(ran, " "))
	t.Logf("skipped in the guest: %s", strings.Join(skipped, " "))
	for _, bin := range []string{"cgroups", "guestsuite"} {
		if exits[bin] != "0" {
			t.Errorf("%s.test in the guest: exit %q (console tail:\n%s)", bin, exits[bin], res.ConsoleTail(60))
		}
	}
	// What the suite must have exercised on Hull's kernel.
	for _, must := range []string{
		// runtime/cgroups on cgroup v2: cpu, cpuset, memory, pids, io, devices (eBPF)
		"TestLifecycle", "TestV2Tree", "TestUpdateMergesV2", "TestPathResolutionV2", "TestOOMNotify",
		"TestLimitsOnDisk/cpu_shares", "TestLimitsOnDisk/memory_swap", "TestLimitsOnDisk/unified_memory.high",
		"TestLimitsOnDisk/blkio_read_bps", "TestLimitsOnDisk/blkio_write_iops", "TestDevicesEnforced/v2-ebpf",
		"TestLimitsEnforced/pids.max_1_stops_fork", "TestLimitsEnforced/memory_limit", "TestLimitsEnforced/cpuset_pins",
		"TestV2SetFiles/io_weight", "TestV2SetFiles/hugetlb", "TestLimitsOnDisk/hugetlb_2MB",
		// this package: the native runtime and the kernel features
		"TestInGuestControllers", "TestInGuestNativeContainer", "TestInGuestFreezer", "TestInGuestNamespaces",
		"TestInGuestOverlayOnExt4", "TestInGuestDevpts", "TestInGuestSockets",
	} {
		if !passed[must] {
			t.Errorf("%s did not pass in the guest", must)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s", console)
	}
}

// qmpCommand connects to QEMU's QMP socket and runs one command.
func qmpCommand(ctx context.Context, sock, cmd string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	dec := json.NewDecoder(c)
	var greeting map[string]any
	if err := dec.Decode(&greeting); err != nil {
		return fmt.Errorf("qmp greeting: %w", err)
	}
	for _, x := range []string{"qmp_capabilities", cmd} {
		if _, err := fmt.Fprintf(c, `{"execute":%q}`+"\n", x); err != nil {
			return err
		}
		for {
			var msg map[string]any
			if err := dec.Decode(&msg); err != nil {
				return fmt.Errorf("qmp %s: %w", x, err)
			}
			if _, ok := msg["return"]; ok {
				break
			}
			if e, ok := msg["error"]; ok {
				return fmt.Errorf("qmp %s: %v", x, e)
			}
			// an event: read on
		}
	}
	return nil
}

// TestGuestPowerdown: QMP system_powerdown presses the ACPI power button of
// Hull's kernel (CONFIG_ACPI_BUTTON); the test init sees KEY_POWER and
// powers off, so QEMU exits cleanly, long before the idle time is over.
func TestGuestPowerdown(t *testing.T) {
	if os.Getenv(inVMEnv) != "" {
		t.Skip("this is the run inside the VM")
	}
	guesttest.RequireQEMU(t)
	m := guesttest.MinimalKernel(t)
	kernel := vm.DefaultAssets(m.Dir(), false).Kernel
	initrd := guesttest.Initramfs(t, nil, initramfs.None)
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	type result struct {
		res *bootcheck.Result
		err error
	}
	done := make(chan result, 1)
	const idle = 10 * time.Minute
	bootCtx, stopVM := context.WithCancel(context.Background())
	defer stopVM() // a failed test leaves no VM behind
	go func() {
		res, err := bootcheck.Boot(bootCtx, bootcheck.Config{
			Kernel: kernel, Initrd: initrd, Marker: guest.TestInitMarker,
			Append:    "hull.idle=" + idle.String(),
			Timeout:   idle + time.Minute,
			ExtraArgs: []string{"-qmp", "unix:" + sock + ",server=on,wait=off"},
		})
		done <- result{res, err}
	}()
	// Press the button once the guest's init runs (its marker is on the
	// console; bootcheck reports it only at the end, so watch QMP until the
	// guest answers, then give init time to be idle).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pressed := false
	for !pressed {
		select {
		case r := <-done:
			t.Fatalf("the VM ended before the power button was pressed: %v\n%s", r.err, r.res.ConsoleTail(20))
		case <-ctx.Done():
			t.Fatal("the guest did not power off on system_powerdown within 2 minutes (a kernel without CONFIG_ACPI_BUTTON and CONFIG_INPUT_EVDEV ignores the button)")
		case <-time.After(3 * time.Second):
		}
		// The button only works once the guest's init watches it; press
		// again until the VM ends.
		if err := qmpCommand(ctx, sock, "system_powerdown"); err != nil {
			t.Logf("system_powerdown: %v (retrying)", err)
			continue
		}
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("VM after system_powerdown: %v", r.err)
			}
			if !strings.Contains(string(r.res.Console), guest.TestInitPowerButtonMarker) {
				t.Fatalf("the VM ended but the init did not see the power button:\n%s", r.res.ConsoleTail(20))
			}
			if r.res.Total >= idle {
				t.Fatalf("the VM ran its whole idle time (%v): the power button did nothing", r.res.Total)
			}
			t.Logf("powered off by the ACPI power button after %v", r.res.Total.Round(time.Millisecond))
			pressed = true
		case <-time.After(20 * time.Second):
			t.Log("no power-off within 20 s of system_powerdown; pressing again")
		}
	}
}
