package guest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hullproject/hull/vm/guest"
	"github.com/hullproject/hull/vm/guest/bootcheck"
	"github.com/hullproject/hull/vm/guest/guesttest"
	"github.com/hullproject/hull/vm/initramfs"
)

func TestMain(m *testing.M) {
	code := m.Run()
	guesttest.Cleanup()
	os.Exit(code)
}

// bootTimeout is generous: TCG on 2 shared cores boots the minimal kernel in
// about a second, the cloud kernel in about 2-3 s.
const bootTimeout = 90 * time.Second

func checkPoweredOff(t *testing.T, res *bootcheck.Result, release string, modules int) {
	t.Helper()
	console := string(res.Console)
	want := guest.TestInitMarker + " release=" + release
	if !strings.Contains(console, want) {
		t.Errorf("console lacks %q:\n%s", want, res.ConsoleTail(20))
	}
	if modules >= 0 && !strings.Contains(console, "modules="+strconv.Itoa(modules)) {
		t.Errorf("console does not report %d modules loaded:\n%s", modules, res.ConsoleTail(20))
	}
	for _, bad := range []string{"Kernel panic", "HULL-TESTINIT-FAIL"} {
		if strings.Contains(console, bad) {
			t.Errorf("console shows %q:\n%s", bad, res.ConsoleTail(30))
		}
	}
	// The guest clock comes from the emulated RTC: it must be the host's
	// time, or TLS and build tools in containers go wrong.
	if i := strings.Index(console, " time="); i >= 0 {
		f := strings.Fields(console[i+len(" time="):])
		if sec, err := strconv.ParseInt(f[0], 10, 64); err != nil {
			t.Errorf("bad time on the console: %q", f[0])
		} else if d := time.Since(time.Unix(sec, 0)); d < -time.Minute || d > 3*time.Minute {
			t.Errorf("guest clock is off by %v", d)
		}
	} else {
		t.Errorf("test init printed no time=")
	}
	t.Logf("kernel entered at ~%v, init reached at %v, QEMU exited at %v, QEMU peak RSS %d MiB", res.KernelAt.Round(time.Millisecond), res.MarkerAt.Round(time.Millisecond), res.Total.Round(time.Millisecond), res.MaxRSSKiB/1024)
}

// TestBootMinimalKernel boots Hull's kernel on microvm under TCG, as bzImage
// with a plain and a gzip initramfs, as vmlinux through the PVH entry, and
// on q35 (the machine used when hotplug is needed).
func TestBootMinimalKernel(t *testing.T) {
	guesttest.RequireQEMU(t)
	m := guesttest.MinimalKernel(t)
	if !strings.HasSuffix(m.Release, "-hull") {
		t.Errorf("release %q does not end in -hull", m.Release)
	}
	plain := guesttest.Initramfs(t, nil, initramfs.None)
	gz := guesttest.Initramfs(t, nil, initramfs.Gzip)
	for _, tc := range []struct {
		name, kernel, initrd, machine string
	}{
		{"bzImage/plain-initramfs", m.Path(m.BzImage.Path), plain, ""},
		{"bzImage/gzip-initramfs", m.Path(m.BzImage.Path), gz, ""},
		{"vmlinux-PVH", m.Path(m.Vmlinux.Path), plain, ""},
		{"q35", m.Path(m.BzImage.Path), gz, "q35"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := bootcheck.Boot(context.Background(), bootcheck.Config{
				Kernel: tc.kernel, Initrd: tc.initrd, Machine: tc.machine, Marker: guest.TestInitMarker, Timeout: bootTimeout,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkPoweredOff(t, res, m.Release, 0)
		})
	}
}

// TestBootCloudKernel boots Debian's cloud kernel on the same machine, with
// the agent's modules in the initramfs, loaded by the test init in order.
func TestBootCloudKernel(t *testing.T) {
	guesttest.RequireQEMU(t)
	m := guesttest.CloudKernel(t)
	mods := guesttest.CloudModules(m)
	if len(mods) < len(guest.AgentModules) {
		t.Fatalf("cloud kernel manifest lists %d modules, want at least %d", len(mods), len(guest.AgentModules))
	}
	initrd := guesttest.Initramfs(t, mods, initramfs.Gzip)
	res, err := bootcheck.Boot(context.Background(), bootcheck.Config{
		Kernel: m.Path(m.BzImage.Path), Initrd: initrd, Marker: guest.TestInitMarker, Timeout: bootTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkPoweredOff(t, res, m.Release, len(mods))
}

// TestBootFailures: each failure names its cause and carries the console.
func TestBootFailures(t *testing.T) {
	guesttest.RequireQEMU(t)
	m := guesttest.MinimalKernel(t)
	dir := t.TempDir()

	// An initramfs whose /init cannot run: the kernel panics, QEMU ends.
	bogus := filepath.Join(dir, "bogus-init")
	if err := os.WriteFile(bogus, []byte("not an executable\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	noInit := filepath.Join(dir, "noinit.cpio")
	if err := initramfs.WriteFile(noInit, initramfs.Spec{Init: bogus}); err != nil {
		t.Fatal(err)
	}
	good := guesttest.Initramfs(t, nil, initramfs.None)

	for _, tc := range []struct {
		name    string
		cfg     bootcheck.Config
		want    error
		console string
	}{
		{"init cannot run", bootcheck.Config{Kernel: m.Path(m.BzImage.Path), Initrd: noInit, Timeout: bootTimeout},
			bootcheck.ErrNoMarker, "Kernel panic"},
		{"timeout", bootcheck.Config{Kernel: m.Path(m.BzImage.Path), Initrd: good, Timeout: 50 * time.Millisecond},
			bootcheck.ErrTimeout, ""},
		{"missing kernel", bootcheck.Config{Kernel: filepath.Join(dir, "no-bzImage"), Initrd: good},
			bootcheck.ErrKernelMissing, ""},
		{"missing qemu", bootcheck.Config{QEMU: "qemu-system-nonexistent", Kernel: m.Path(m.BzImage.Path)},
			bootcheck.ErrQEMUMissing, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.Marker == "" {
				tc.cfg.Marker = guest.TestInitMarker
			}
			_, err := bootcheck.Boot(context.Background(), tc.cfg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.console != "" && !strings.Contains(err.Error(), tc.console) {
				t.Errorf("error does not carry the console tail with %q:\n%v", tc.console, err)
			}
		})
	}
}

// probeFields parses the test init's HULL-PROBE line into sets.
func probeFields(t *testing.T, res *bootcheck.Result) map[string]map[string]bool {
	t.Helper()
	for _, l := range strings.Split(string(res.Console), "\n") {
		i := strings.Index(l, "HULL-PROBE ")
		if i < 0 {
			continue
		}
		out := map[string]map[string]bool{}
		for _, f := range strings.Fields(l[i+len("HULL-PROBE "):]) {
			k, v, _ := strings.Cut(f, "=")
			out[k] = map[string]bool{}
			for _, x := range strings.Split(v, ",") {
				out[k][x] = true
			}
		}
		return out
	}
	t.Fatalf("no HULL-PROBE line on the console:\n%s", res.ConsoleTail(20))
	return nil
}

// TestGuestKernelFeatures boots with virtio devices attached and checks,
// from inside the guest, what the kernel offers: virtio devices bound over
// mmio (announced through ACPI on microvm) and over pci (q35), the cgroup v2
// controllers, filesystems, namespaces and syscalls the agent and
// containers use. The cloud kernel is checked for its virtio devices, bound
// through the modules the initramfs loads.
func TestGuestKernelFeatures(t *testing.T) {
	guesttest.RequireQEMU(t)
	m := guesttest.MinimalKernel(t)
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	devices := func(bus string) []string {
		return []string{
			"-drive", "id=d0,file=" + disk + ",format=raw,if=none",
			"-device", "virtio-blk-" + bus + ",drive=d0",
			"-device", "virtio-serial-" + bus,
			"-device", "virtio-balloon-" + bus,
		}
	}
	// virtio device ids: 2 block, 3 console, 5 balloon.
	full := map[string][]string{
		"virtio":   {"0x0002", "0x0003", "0x0005"},
		"cgroup2":  {"cpu", "cpuset", "io", "memory", "pids", "freeze"},
		"fs":       {"ext4", "overlay", "erofs", "fuse", "virtiofs", "9p", "tmpfs", "devpts", "mqueue", "cgroup2", "proc", "sysfs"},
		"ns":       {"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"},
		"features": {"seccomp", "bpf", "devpts", "unix", "inet", "inet6", "vsock", "packet", "powerbutton"},
	}
	type probeCase struct {
		name, kernel, initrd, machine, bus string
		want                               map[string][]string
	}
	cases := []probeCase{
		{"minimal/microvm-mmio", m.Path(m.BzImage.Path), "", "", "device", full},
		{"minimal/q35-pci", m.Path(m.BzImage.Path), "", "q35", "pci", full},
	}
	if cm, err := guest.ReadManifest(guest.CloudDir(guest.DefaultDir())); err == nil {
		cases = append(cases, probeCase{"cloud+modules/microvm-mmio", cm.Path(cm.BzImage.Path), guesttest.Initramfs(t, guesttest.CloudModules(cm), initramfs.Gzip), "", "device",
			map[string][]string{"virtio": {"0x0002", "0x0003"}, "cgroup2": {"cpu", "memory", "pids", "io"}}})
	} else {
		t.Logf("cloud kernel not fetched (run `make guest-cloud-kernel`): checking the minimal kernel only")
	}
	plain := guesttest.Initramfs(t, nil, initramfs.None)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			initrd := tc.initrd
			if initrd == "" {
				initrd = plain
			}
			res, err := bootcheck.Boot(context.Background(), bootcheck.Config{
				Kernel: tc.kernel, Initrd: initrd, Machine: tc.machine, Append: "hull.probe",
				Marker: guest.TestInitMarker, Timeout: bootTimeout, ExtraArgs: devices(tc.bus),
			})
			if err != nil {
				t.Fatal(err)
			}
			got := probeFields(t, res)
			for k, want := range tc.want {
				for _, w := range want {
					if !got[k][w] {
						t.Errorf("%s lacks %s (got %v)", k, w, keys(got[k]))
					}
				}
			}
		})
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestBootLog boots Hull's kernel with initcall_debug and the test init's
// hull.dmesg: the kernel's log reaches the console and ParseBootLog finds
// the initcalls and the boot's phases in it (the profile
// BenchmarkVMBootInitcalls prints).
func TestBootLog(t *testing.T) {
	guesttest.RequireQEMU(t)
	m := guesttest.MinimalKernel(t)
	res, err := bootcheck.Boot(context.Background(), bootcheck.Config{
		Kernel: m.Path(m.Vmlinux.Path), Initrd: guesttest.Initramfs(t, nil, initramfs.None),
		Append: "initcall_debug hull.dmesg", Marker: guest.TestInitMarker, Timeout: bootTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkPoweredOff(t, res, m.Release, 0)
	bl, err := guest.ParseBootLog(res.Console)
	if err != nil {
		t.Fatalf("%v\n%s", err, res.ConsoleTail(20))
	}
	if len(bl.Initcalls) < 100 {
		t.Errorf("%d initcalls in the kernel log, want at least 100 (initcall_debug lost?)", len(bl.Initcalls))
	}
	names := map[string]bool{}
	for _, c := range bl.Initcalls {
		names[c.Name] = true
	}
	for _, want := range []string{"acpi_init", "populate_rootfs", "virtio_mmio_init"} {
		if !names[want] {
			t.Errorf("no initcall %s in the kernel log", want)
		}
	}
	for _, k := range []string{"Unpacking initramfs", "Run /init as init process"} {
		if _, ok := bl.Marks[k]; !ok {
			t.Errorf("kernel log lacks %q", k)
		}
	}
	t.Logf("/init at %v (printk clock); slowest initcalls: %v", bl.Marks["Run /init as init process"], bl.Slowest(5))
}
