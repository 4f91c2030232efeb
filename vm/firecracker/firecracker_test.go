package firecracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hullproject/hull/agent/server"
	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/internal/vmm"
	"github.com/hullproject/hull/vm/internal/vmmtest"
)

// The test binary doubles as a fake firecracker (HULL_FAKE_FC=1): it
// serves the API on --api-sock, logs each request to $HULL_FAKE_FC_LOG,
// fails the request named by $HULL_FAKE_FC_FAIL with a fault_message,
// runs the vsock proxy of PUT /vsock, prints the guest's console on its
// standard output at InstanceStart (and a panic, then exits as on the
// guest's reboot, with $HULL_FAKE_FC_PANIC), and exits on SendCtrlAltDel.
func TestMain(m *testing.M) {
	if os.Getenv("HULL_FAKE_FC") == "1" {
		fakeFirecracker()
		return
	}
	os.Exit(m.Run())
}

func fakeFirecracker() {
	var sock, logPath string
	for i, a := range os.Args {
		if i+1 < len(os.Args) {
			switch a {
			case "--api-sock":
				sock = os.Args[i+1]
			case "--log-path":
				logPath = os.Args[i+1]
			}
		}
	}
	if sock == "" {
		fmt.Fprintln(os.Stderr, "fake: no --api-sock")
		os.Exit(2)
	}
	if _, err := os.Stat(logPath); err != nil {
		fmt.Fprintln(os.Stderr, "fake: log path must exist:", err)
		os.Exit(2)
	}
	exit := make(chan int, 1)
	state := "Not started"
	f := &vmm.FakeAPI{}
	f.Respond = func(r vmm.Request) (int, string) {
		vmm.AppendJSONLine(os.Getenv("HULL_FAKE_FC_LOG"), r)
		if r.Key() == os.Getenv("HULL_FAKE_FC_FAIL") {
			return 400, `{"fault_message":"fake was told to fail"}`
		}
		switch {
		case r.Key() == "PUT /vsock":
			var v Vsock
			json.Unmarshal(r.Body, &v)
			vmmtest.ServeHybridProxy(v.UDSPath, guest())
		case r.Key() == "GET /":
			return 200, fmt.Sprintf(`{"id":"anonymous-instance","state":%q,"vmm_version":"1.0-fake","app_name":"Firecracker"}`, state)
		case r.Key() == "PATCH /vm":
			var s VMState
			json.Unmarshal(r.Body, &s)
			state = map[string]string{"Paused": "Paused", "Resumed": "Running"}[s.State]
		case r.Key() == "PUT /actions":
			var a Action
			json.Unmarshal(r.Body, &a)
			switch a.Type {
			case "InstanceStart":
				state = "Running"
				fmt.Println("fake guest booting")
				if os.Getenv("HULL_FAKE_FC_PANIC") != "" {
					fmt.Println("Kernel panic - not syncing: fake")
					go func() { time.Sleep(20 * time.Millisecond); exit <- 0 }()
				}
			case "SendCtrlAltDel":
				if os.Getenv("HULL_FAKE_FC_IGNORE_CAD") == "" {
					go func() { time.Sleep(20 * time.Millisecond); exit <- 0 }()
				}
			}
		}
		return 0, ""
	}
	if err := vmm.ServeFakeAPI(sock, f); err != nil {
		fmt.Fprintln(os.Stderr, "fake:", err)
		os.Exit(2)
	}
	code := <-exit
	os.Remove(sock)
	os.Exit(code)
}

// guest is the fake's guest behind the hybrid vsock, by environment.
func guest() vmmtest.Guest {
	switch {
	case os.Getenv("HULL_FAKE_FC_NOAGENT") != "":
		return vmmtest.Nobody
	case os.Getenv("HULL_FAKE_FC_AGENT") != "":
		return vmmtest.Agent
	}
	return vmmtest.Echo
}

type fixture struct {
	cfg vm.Config
	log string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(BinaryEnv, self)
	t.Setenv("HULL_FAKE_FC", "1")
	dir := t.TempDir()
	log := filepath.Join(dir, "requests.log")
	t.Setenv("HULL_FAKE_FC_LOG", log)
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	kernel, initrd, disk := filepath.Join(dir, "vmlinux"), filepath.Join(dir, "agent.cpio"), filepath.Join(dir, "vol.img")
	for _, f := range []string{initrd, disk} {
		os.WriteFile(f, []byte("x"), 0o644)
	}
	if err := vmmtest.WriteFakeVmlinux(kernel); err != nil {
		t.Fatal(err)
	}
	return &fixture{log: log, cfg: vm.Config{
		ID: "fc-test", StateDir: state, Kernel: kernel, Initrd: initrd, KernelParams: "quiet",
		VCPUs: 2, MemoryMiB: 192,
		Disks: []vm.Disk{{Path: disk}},
	}}
}

func (f *fixture) requests(t *testing.T) []vmm.Request {
	t.Helper()
	r, err := vmm.ReadJSONLines(f.log)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func noStrays(t *testing.T, h *Firecracker, state string) {
	t.Helper()
	if pid := h.Pid(); pid != 0 && syscall.Kill(pid, 0) == nil {
		t.Errorf("firecracker %d still running", pid)
	}
	ents, _ := os.ReadDir(state)
	for _, e := range ents {
		if e.Name() != "console.log" && e.Name() != "firecracker.log" {
			t.Errorf("left in the state dir: %s", e.Name())
		}
	}
}

func needMkfsExt4(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		for _, d := range []string{"/usr/sbin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(d, "mkfs.ext4")); err == nil {
				return
			}
		}
		t.Skipf("mkfs.ext4 not installed (e2fsprogs): %v", err)
	}
}

func TestStartStop(t *testing.T) {
	needMkfsExt4(t)
	f := setup(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "hello"), []byte("from the host\n"), 0o644)
	f.cfg.Shares = []vm.Share{{Tag: "hullrootfs", Source: root}}
	tap, w, _ := os.Pipe()
	defer tap.Close()
	defer w.Close()
	f.cfg.NetDevices = []vm.NetDevice{{Tap: tap, TapName: "tap-fc0", MAC: "02:00:00:00:00:02"}}
	h := New(Options{})
	ctx := context.Background()
	if err := h.Start(ctx, f.cfg); err != nil {
		t.Fatal(err)
	}
	st := f.cfg.StateDir
	img := filepath.Join(st, "share0.ext4")
	want := []string{
		`PUT /machine-config {"vcpu_count":2,"mem_size_mib":192}`,
		fmt.Sprintf(`PUT /boot-source {"kernel_image_path":%q,"initrd_path":%q,"boot_args":"console=ttyS0 reboot=k panic=-1 pci=off hull.poweroff=reboot quiet"}`, f.cfg.Kernel, f.cfg.Initrd),
		fmt.Sprintf(`PUT /drives/disk0 {"drive_id":"disk0","path_on_host":%q,"is_root_device":false,"is_read_only":false}`, f.cfg.Disks[0].Path),
		fmt.Sprintf(`PUT /drives/share0 {"drive_id":"share0","path_on_host":%q,"is_root_device":false,"is_read_only":false}`, img),
		`PUT /network-interfaces/net0 {"iface_id":"net0","host_dev_name":"tap-fc0","guest_mac":"02:00:00:00:00:02"}`,
		fmt.Sprintf(`PUT /vsock {"guest_cid":3,"uds_path":%q}`, filepath.Join(st, "agent.sock")),
		`PUT /actions {"action_type":"InstanceStart"}`,
	}
	var got []string
	for _, r := range f.requests(t) {
		got = append(got, r.Key()+" "+string(r.Body))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The share is an ext4 image on the second drive.
	if dev, fs := vm.ShareStorage(h, "hullrootfs"); dev != "/dev/vdb" || fs != "ext4" {
		t.Errorf("ShareStorage = %s, %s; want /dev/vdb, ext4", dev, fs)
	}
	if out, err := exec.Command("debugfs", "-R", "cat /hello", img).Output(); err == nil && string(out) != "from the host\n" {
		t.Errorf("image holds %q", out)
	}
	if dev, fs := vm.ShareStorage(h, "other"); dev != "other" || fs != "virtiofs" {
		t.Errorf("unknown share: %s, %s", dev, fs)
	}

	info, err := h.Info(ctx)
	if err != nil || info.State != "Running" {
		t.Fatalf("Info: %+v, %v", info, err)
	}
	if err := h.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if info, _ := h.Info(ctx); info.State != "Paused" {
		t.Errorf("state after Pause: %s", info.State)
	}
	if err := h.Resume(ctx); err != nil {
		t.Fatal(err)
	}

	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := h.DialAgent(dctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo over the agent channel: %q, %v", buf, err)
	}
	c.Close()

	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(); err != nil {
		t.Errorf("Wait after Stop: %v", err)
	}
	rs := f.requests(t)
	if last := rs[len(rs)-1]; last.Key() != "PUT /actions" || !strings.Contains(string(last.Body), "SendCtrlAltDel") {
		t.Errorf("last request %s %s", last.Key(), last.Body)
	}
	if con := vm.ConsoleTail(h.ConsolePath(), 5); !strings.Contains(con, "fake guest booting") {
		t.Errorf("console log %q", con)
	}
	noStrays(t, h, st)
}

// TestBoot: vm.Boot through the driver reaches the agent over the hybrid
// vsock; the agent's power-off ends the VM.
func TestBoot(t *testing.T) {
	f := setup(t)
	t.Setenv("HULL_FAKE_FC_AGENT", "1")
	h := New(Options{})
	sb, err := vm.Boot(context.Background(), h, f.cfg, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if sb.Version.GetAgentVersion() != "fake-agent" {
		t.Errorf("version %v", sb.Version)
	}
	if err := sb.Shutdown(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	noStrays(t, h, f.cfg.StateDir)
}

// TestBootShare: vm.Boot lets a share through to Firecracker, which
// attaches it as an ext4 drive; vm.ShareStorage names it.
func TestBootShare(t *testing.T) {
	needMkfsExt4(t)
	f := setup(t)
	f.cfg.Shares = []vm.Share{{Tag: "hullrootfs", Source: t.TempDir()}}
	t.Setenv("HULL_FAKE_FC_AGENT", "1")
	h := New(Options{})
	sb, err := vm.Boot(context.Background(), h, f.cfg, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if dev, fs := vm.ShareStorage(sb.Hypervisor, "hullrootfs"); dev != "/dev/vdb" || fs != "ext4" {
		t.Errorf("ShareStorage = %s, %s", dev, fs)
	}
	if err := sb.Shutdown(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	noStrays(t, h, f.cfg.StateDir)
}

// TestBootAgentTimeout: an agent that never answers is ErrAgentTimeout
// with the console's tail, and nothing is left.
func TestBootAgentTimeout(t *testing.T) {
	f := setup(t)
	t.Setenv("HULL_FAKE_FC_NOAGENT", "1")
	h := New(Options{ShutdownTimeout: 100 * time.Millisecond})
	_, err := vm.Boot(context.Background(), h, f.cfg, 500*time.Millisecond)
	if !errors.Is(err, vm.ErrAgentTimeout) || !strings.Contains(err.Error(), "fake guest booting") {
		t.Fatalf("Boot = %v, want ErrAgentTimeout with the console tail", err)
	}
	<-h.Done()
	noStrays(t, h, f.cfg.StateDir)
}

func TestStopKillsAfterTimeout(t *testing.T) {
	f := setup(t)
	t.Setenv("HULL_FAKE_FC_IGNORE_CAD", "1")
	h := New(Options{ShutdownTimeout: 100 * time.Millisecond})
	if err := h.Start(context.Background(), f.cfg); err != nil {
		t.Fatal(err)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
	noStrays(t, h, f.cfg.StateDir)
}

func TestStartFails(t *testing.T) {
	for _, ep := range []string{"PUT /machine-config", "PUT /drives/disk0", "PUT /vsock", "PUT /actions"} {
		t.Run(ep, func(t *testing.T) {
			f := setup(t)
			t.Setenv("HULL_FAKE_FC_FAIL", ep)
			h := New(Options{})
			err := h.Start(context.Background(), f.cfg)
			want := ep + ": 400 Bad Request: fake was told to fail"
			if !errors.Is(err, vmm.ErrAPI) || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want %q", err, want)
			}
			<-h.Done()
			noStrays(t, h, f.cfg.StateDir)
		})
	}
}

func TestGuestPanic(t *testing.T) {
	f := setup(t)
	t.Setenv("HULL_FAKE_FC_PANIC", "1")
	h := New(Options{})
	if err := h.Start(context.Background(), f.cfg); err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(); !errors.Is(err, vm.ErrGuestPanic) || !strings.Contains(err.Error(), "not syncing: fake") {
		t.Fatalf("Wait = %v, want ErrGuestPanic with the console tail", err)
	}
	noStrays(t, h, f.cfg.StateDir)
}

func TestKilledFromOutside(t *testing.T) {
	f := setup(t)
	h := New(Options{})
	if err := h.Start(context.Background(), f.cfg); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(h.Pid(), syscall.SIGKILL)
	if err := h.Wait(); !errors.Is(err, vm.ErrVMExited) {
		t.Fatalf("Wait = %v, want ErrVMExited", err)
	}
	noStrays(t, h, f.cfg.StateDir)
}

func TestBadInput(t *testing.T) {
	f := setup(t)
	tap, w, _ := os.Pipe()
	defer tap.Close()
	defer w.Close()
	for _, tc := range []struct {
		name   string
		mod    func(c *vm.Config, o *Options)
		target error
		want   string
	}{
		{"missing binary", func(c *vm.Config, o *Options) { o.Binary = "/nonexistent/firecracker" }, vm.ErrHypervisorMissing, BinaryEnv},
		{"missing kernel", func(c *vm.Config, o *Options) { c.Kernel = "/nonexistent/vmlinux" }, vm.ErrKernelMissing, "/nonexistent/vmlinux"},
		{"bzImage kernel", func(c *vm.Config, o *Options) {
			c.Kernel = filepath.Join(t.TempDir(), "bzImage")
			os.WriteFile(c.Kernel, []byte("MZ..."), 0o644)
		}, vm.ErrInvalidConfig, "not an ELF vmlinux"},
		{"tap without a name", func(c *vm.Config, o *Options) {
			c.NetDevices = []vm.NetDevice{{Tap: tap, MAC: "02:00:00:00:00:03"}}
		}, vm.ErrInvalidConfig, "by name"},
		{"taps in two namespaces", func(c *vm.Config, o *Options) {
			c.NetDevices = []vm.NetDevice{{Tap: tap, TapName: "a", NetNS: "/run/netns/x", MAC: "02:00:00:00:00:03"}, {Tap: tap, TapName: "b", NetNS: "/run/netns/y", MAC: "02:00:00:00:00:04"}}
		}, vm.ErrInvalidConfig, "different network namespaces"},
		{"binds", func(c *vm.Config, o *Options) {
			src := t.TempDir()
			os.Mkdir(filepath.Join(src, "d"), 0o755)
			c.Shares = []vm.Share{{Tag: "t", Source: src, Binds: []vm.Bind{{Source: t.TempDir(), Target: "d"}}}}
		}, vm.ErrInvalidConfig, "virtio-fs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, o := f.cfg, Options{}
			tc.mod(&cfg, &o)
			h := New(o)
			err := h.Start(context.Background(), cfg)
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %v naming %q", err, tc.target, tc.want)
			}
			if h.Pid() != 0 {
				t.Error("a VMM was started")
			}
		})
	}
}

func TestPowerOffParam(t *testing.T) {
	if PowerOffParam != server.PowerOffParam {
		t.Fatalf("PowerOffParam %q, hull-agent looks for %q", PowerOffParam, server.PowerOffParam)
	}
}

func TestGuestDevice(t *testing.T) {
	for n, want := range map[int]string{0: "/dev/vda", 1: "/dev/vdb", 25: "/dev/vdz", 26: "/dev/vdaa", 27: "/dev/vdab"} {
		if got := guestDevice(n); got != want {
			t.Errorf("guestDevice(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestCapabilities(t *testing.T) {
	c := New(Options{}).Capabilities()
	if c.FileSystemSharing || c.Hotplug || !c.BlockDevices || !c.Vsock || !c.Network {
		t.Errorf("capabilities %+v", c)
	}
}
