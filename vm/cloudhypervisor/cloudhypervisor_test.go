package cloudhypervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/internal/vmm"
	"github.com/hullproject/hull/vm/internal/vmmtest"
)

// The test binary doubles as a fake cloud-hypervisor (HULL_FAKE_CH=1): it
// serves the API on --api-socket, logs each request to $HULL_FAKE_CH_LOG,
// fails the request named by $HULL_FAKE_CH_FAIL with a Cloud Hypervisor
// style error, runs the vsock proxy of vm.create's config (answering the
// CONNECT handshake, then echoing), writes a kernel panic to the serial
// file after vm.boot when $HULL_FAKE_CH_PANIC is set, and exits on
// vmm.shutdown.
func TestMain(m *testing.M) {
	if os.Getenv("HULL_FAKE_CH") == "1" {
		fakeCloudHypervisor()
		return
	}
	os.Exit(m.Run())
}

func fakeCloudHypervisor() {
	var sock string
	for i, a := range os.Args {
		if a == "--api-socket" && i+1 < len(os.Args) {
			sock = os.Args[i+1]
		}
	}
	if sock == "" {
		fmt.Fprintln(os.Stderr, "fake: no --api-socket")
		os.Exit(2)
	}
	exit := make(chan int, 1)
	var cfg VMConfig
	f := &vmm.FakeAPI{}
	f.Respond = func(r vmm.Request) (int, string) {
		vmm.AppendJSONLine(os.Getenv("HULL_FAKE_CH_LOG"), r)
		if r.Key() == os.Getenv("HULL_FAKE_CH_FAIL") {
			return 500, `["Error from the fake","it was told to fail"]`
		}
		switch r.Key() {
		case "PUT /api/v1/vm.create":
			if err := json.Unmarshal(r.Body, &cfg); err != nil {
				return 400, `"bad body"`
			}
			os.WriteFile(cfg.Serial.File, []byte("fake guest booting\n"), 0o644)
			if cfg.Vsock != nil {
				vmmtest.ServeHybridProxy(cfg.Vsock.Socket, guest())
			}
		case "GET /api/v1/vm.info":
			b, _ := json.Marshal(VMInfo{State: "Running", Config: &cfg})
			return 200, string(b)
		case "PUT /api/v1/vm.boot":
			if os.Getenv("HULL_FAKE_CH_PANIC") != "" {
				go func() {
					time.Sleep(50 * time.Millisecond)
					fh, _ := os.OpenFile(cfg.Serial.File, os.O_WRONLY|os.O_APPEND, 0)
					fmt.Fprintln(fh, "Kernel panic - not syncing: fake")
					fh.Close()
				}()
			}
		}
		return 0, ""
	}
	f.OnRequest = func(r vmm.Request) {
		switch r.Key() {
		case "PUT /api/v1/vmm.shutdown":
			exit <- 0
		case "PUT /api/v1/vm.power-button":
			if os.Getenv("HULL_FAKE_CH_ACPI") != "" {
				exit <- 0 // the guest powers off; the VMM exits
			}
		}
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
	case os.Getenv("HULL_FAKE_CH_NOAGENT") != "":
		return vmmtest.Nobody
	case os.Getenv("HULL_FAKE_CH_AGENT") != "":
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
	t.Setenv("HULL_FAKE_CH", "1")
	dir := t.TempDir()
	log := filepath.Join(dir, "requests.log")
	t.Setenv("HULL_FAKE_CH_LOG", log)
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	kernel, initrd, disk := filepath.Join(dir, "vmlinux"), filepath.Join(dir, "agent.cpio"), filepath.Join(dir, "root.img")
	for _, f := range []string{initrd, disk} {
		os.WriteFile(f, []byte("x"), 0o644)
	}
	if err := vmmtest.WriteFakeVmlinux(kernel); err != nil {
		t.Fatal(err)
	}
	return &fixture{log: log, cfg: vm.Config{
		ID: "ch-test", StateDir: state, Kernel: kernel, Initrd: initrd, KernelParams: "quiet",
		VCPUs: 2, MemoryMiB: 192,
		Disks: []vm.Disk{{Path: disk, ReadOnly: true}},
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

func keys(rs []vmm.Request) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Key())
	}
	return out
}

func noStrays(t *testing.T, h *CloudHypervisor, state string) {
	t.Helper()
	if pid := h.Pid(); pid != 0 && syscall.Kill(pid, 0) == nil {
		t.Errorf("cloud-hypervisor %d still running", pid)
	}
	ents, _ := os.ReadDir(state)
	for _, e := range ents {
		if e.Name() != "console.log" {
			t.Errorf("left in the state dir: %s", e.Name())
		}
	}
}

func TestStartStop(t *testing.T) {
	f := setup(t)
	tap, w, err := os.Pipe() // stands in for the open tap
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	defer w.Close()
	f.cfg.NetDevices = []vm.NetDevice{{Tap: tap, TapName: "tap0", MAC: "02:00:00:00:00:01", MTU: 1400}}
	shared := false
	if _, err := os.Stat(vmm.DefaultVirtiofsd); err == nil {
		f.cfg.Shares = []vm.Share{{Tag: "hullrootfs", Source: t.TempDir()}}
		shared = true
	} else {
		t.Logf("virtiofsd not installed (%v): no share in this run", err)
	}
	h := New(Options{PowerdownTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	if err := h.Start(ctx, f.cfg); err != nil {
		t.Fatal(err)
	}
	rs := f.requests(t)
	want := []string{"PUT /api/v1/vm.create", "PUT /api/v1/vm.add-net", "PUT /api/v1/vm.boot"}
	if strings.Join(keys(rs), ",") != strings.Join(want, ",") {
		t.Fatalf("requests %v, want %v", keys(rs), want)
	}
	var got VMConfig
	if err := json.Unmarshal(rs[0].Body, &got); err != nil {
		t.Fatal(err)
	}
	st := f.cfg.StateDir
	wantCfg := VMConfig{
		CPUs:    CPUsConfig{BootVCPUs: 2, MaxVCPUs: 2},
		Memory:  MemoryConfig{Size: 192 << 20, Shared: shared},
		Payload: PayloadConfig{Kernel: f.cfg.Kernel, Initramfs: f.cfg.Initrd, Cmdline: "console=ttyS0 panic=0 quiet"},
		Disks:   []DiskConfig{{Path: f.cfg.Disks[0].Path, Readonly: true, ID: "disk0"}},
		Serial:  ConsoleConfig{Mode: "File", File: filepath.Join(st, "console.log")},
		Console: ConsoleConfig{Mode: "Off"},
		Vsock:   &VsockConfig{CID: 3, Socket: filepath.Join(st, "agent.sock")},
		RNG:     &RNGConfig{Src: "/dev/urandom"},
	}
	if shared {
		wantCfg.FS = []FSConfig{{Tag: "hullrootfs", Socket: filepath.Join(st, "fs0.sock"), NumQueues: 1, QueueSize: 1024, ID: "fs0"}}
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(wantCfg)
	if string(a) != string(b) {
		t.Errorf("vm.create body\n got %s\nwant %s", a, b)
	}
	if rs[1].FDs != 1 || !strings.Contains(string(rs[1].Body), `"mac":"02:00:00:00:00:01"`) || !strings.Contains(string(rs[1].Body), `"mtu":1400`) {
		t.Errorf("vm.add-net: %d fds, body %s", rs[1].FDs, rs[1].Body)
	}

	info, err := h.Info(ctx)
	if err != nil || info.State != "Running" || info.Config.Vsock.CID != 3 {
		t.Fatalf("Info: %+v, %v", info, err)
	}
	if err := h.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Resume(ctx); err != nil {
		t.Fatal(err)
	}

	// The agent channel: hybrid vsock to the agent's port.
	if vm.TransportOf(h) != vm.TransportHybridVsock {
		t.Errorf("transport %s", vm.TransportOf(h))
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
	// This guest ignores the power button: the VM is ended through the API.
	rs = f.requests(t)
	tail := keys(rs[len(rs)-3:])
	if strings.Join(tail, ",") != "PUT /api/v1/vm.power-button,PUT /api/v1/vm.shutdown,PUT /api/v1/vmm.shutdown" {
		t.Errorf("stop requests %v", tail)
	}
	noStrays(t, h, st)
	if err := h.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestAgentOverHybridVsock: the host's agent client reaches the guest's
// agent through the VMM's hybrid vsock, and the agent's power-off ends the
// VM cleanly.
func TestAgentOverHybridVsock(t *testing.T) {
	f := setup(t)
	t.Setenv("HULL_FAKE_CH_AGENT", "1")
	h := New(Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Start(ctx, f.cfg); err != nil {
		t.Fatal(err)
	}
	c, err := vm.DialAgent(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.WaitReady(ctx)
	if err != nil || v.AgentVersion != "fake-agent" {
		t.Fatalf("WaitReady: %v, %v", v, err)
	}
	sb := &vm.Sandbox{Hypervisor: h, Agent: c}
	if err := sb.Shutdown(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	rs := f.requests(t)
	if k := rs[len(rs)-1].Key(); k != "PUT /api/v1/vm.boot" {
		t.Errorf("the VM ended through %s, want the guest's power-off (no stop request)", k)
	}
	noStrays(t, h, f.cfg.StateDir)
}

// TestBoot: vm.Boot through the driver reaches the agent over the hybrid
// vsock; the agent's answer is the sandbox's Version.
func TestBoot(t *testing.T) {
	f := setup(t)
	t.Setenv("HULL_FAKE_CH_AGENT", "1")
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

// TestBootBadGuest: an agent that never answers is ErrAgentTimeout, a
// guest that panics ErrGuestPanic; both with the console's tail, and
// nothing left.
func TestBootBadGuest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		panic bool
		want  error
		tail  string
	}{
		{"agent never answers", false, vm.ErrAgentTimeout, "fake guest booting"},
		{"guest panics", true, vm.ErrGuestPanic, "not syncing: fake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			t.Setenv("HULL_FAKE_CH_NOAGENT", "1")
			if tc.panic {
				t.Setenv("HULL_FAKE_CH_PANIC", "1")
			}
			h := New(Options{ShutdownTimeout: 200 * time.Millisecond})
			timeout := 500 * time.Millisecond
			if tc.panic {
				timeout = 30 * time.Second
			}
			_, err := vm.Boot(context.Background(), h, f.cfg, timeout)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.tail) {
				t.Fatalf("Boot = %v, want %v with %q", err, tc.want, tc.tail)
			}
			<-h.Done()
			noStrays(t, h, f.cfg.StateDir)
		})
	}
}

// TestStopPowerButton: a guest that powers off on the ACPI power button
// ends the VM with no further request.
func TestStopPowerButton(t *testing.T) {
	f := setup(t)
	t.Setenv("HULL_FAKE_CH_ACPI", "1")
	h := New(Options{})
	if err := h.Start(context.Background(), f.cfg); err != nil {
		t.Fatal(err)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
	rs := f.requests(t)
	if k := rs[len(rs)-1].Key(); k != "PUT /api/v1/vm.power-button" {
		t.Errorf("last request %s, want the power button", k)
	}
	noStrays(t, h, f.cfg.StateDir)
}

func TestStartFails(t *testing.T) {
	for _, tc := range []struct {
		name, fail string
		want       []string
	}{
		{"create", "PUT /api/v1/vm.create", []string{"PUT /vm.create: 500 Internal Server Error: Error from the fake: it was told to fail"}},
		{"boot", "PUT /api/v1/vm.boot", []string{"PUT /vm.boot: 500", "it was told to fail"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			t.Setenv("HULL_FAKE_CH_FAIL", tc.fail)
			h := New(Options{ShutdownTimeout: 200 * time.Millisecond})
			err := h.Start(context.Background(), f.cfg)
			if !errors.Is(err, vmm.ErrAPI) {
				t.Fatalf("err = %v, want an API error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q lacks %q", err, w)
				}
			}
			<-h.Done()
			noStrays(t, h, f.cfg.StateDir)
		})
	}
}

func TestGuestPanic(t *testing.T) {
	f := setup(t)
	t.Setenv("HULL_FAKE_CH_PANIC", "1")
	h := New(Options{})
	if err := h.Start(context.Background(), f.cfg); err != nil {
		t.Fatal(err)
	}
	err := h.Wait()
	if !errors.Is(err, vm.ErrGuestPanic) || !strings.Contains(err.Error(), "not syncing: fake") {
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
	if err := h.Wait(); !errors.Is(err, vm.ErrVMExited) || !strings.Contains(err.Error(), "fake guest booting") {
		t.Fatalf("Wait = %v, want ErrVMExited with the console tail", err)
	}
	noStrays(t, h, f.cfg.StateDir)
}

func TestContextEnds(t *testing.T) {
	f := setup(t)
	h := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.Start(ctx, f.cfg); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := h.Wait(); err != nil {
		t.Fatalf("Wait after the context ended: %v", err)
	}
	noStrays(t, h, f.cfg.StateDir)
}

func TestBadInput(t *testing.T) {
	f := setup(t)
	t.Run("missing binary", func(t *testing.T) {
		h := New(Options{Binary: filepath.Join(t.TempDir(), "cloud-hypervisor")})
		err := h.Start(context.Background(), f.cfg)
		if !errors.Is(err, vm.ErrHypervisorMissing) || !strings.Contains(err.Error(), BinaryEnv) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing kernel", func(t *testing.T) {
		cfg := f.cfg
		cfg.Kernel = filepath.Join(t.TempDir(), "none")
		if err := New(Options{}).Start(context.Background(), cfg); !errors.Is(err, vm.ErrKernelMissing) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bzImage kernel", func(t *testing.T) {
		cfg := f.cfg
		cfg.Kernel = filepath.Join(t.TempDir(), "bzImage")
		os.WriteFile(cfg.Kernel, []byte("MZ..."), 0o644)
		err := New(Options{}).Start(context.Background(), cfg)
		if !errors.Is(err, vm.ErrInvalidConfig) || !strings.Contains(err.Error(), "not an ELF vmlinux") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("tap without an fd", func(t *testing.T) {
		cfg := f.cfg
		cfg.NetDevices = []vm.NetDevice{{TapName: "tap0", NetNS: "/run/netns/x", MAC: "02:00:00:00:00:05"}}
		h := New(Options{})
		err := h.Start(context.Background(), cfg)
		if !errors.Is(err, vm.ErrInvalidConfig) || !strings.Contains(err.Error(), "tap's fd") || h.Pid() != 0 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("started twice", func(t *testing.T) {
		h := New(Options{})
		if err := h.Start(context.Background(), f.cfg); err != nil {
			t.Fatal(err)
		}
		defer h.Stop(context.Background())
		if err := h.Start(context.Background(), f.cfg); !errors.Is(err, vm.ErrInvalidConfig) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not started", func(t *testing.T) {
		h := New(Options{})
		if _, err := h.Info(context.Background()); !errors.Is(err, vm.ErrNotStarted) {
			t.Errorf("Info: %v", err)
		}
		if err := h.Wait(); !errors.Is(err, vm.ErrNotStarted) {
			t.Errorf("Wait: %v", err)
		}
		if err := h.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
}

func TestCapabilities(t *testing.T) {
	c := New(Options{}).Capabilities()
	if !c.FileSystemSharing || !c.BlockDevices || !c.Vsock || !c.Network {
		t.Errorf("capabilities %+v", c)
	}
}
