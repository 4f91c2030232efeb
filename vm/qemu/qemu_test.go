package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hullproject/hull/agent"
	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/accel"
	"github.com/hullproject/hull/vm/guest"
	"github.com/hullproject/hull/vm/guest/guesttest"
	"github.com/hullproject/hull/vm/initramfs"
	"github.com/hullproject/hull/vm/vmtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	vmtest.Cleanup()
	guesttest.Cleanup()
	os.Exit(code)
}

func TestPortName(t *testing.T) {
	if agentPortName != agent.PortName {
		t.Fatalf("agentPortName %q != agent.PortName %q", agentPortName, agent.PortName)
	}
}

func baseConfig(t *testing.T) vm.Config {
	return vm.Config{
		ID: strings.ReplaceAll(t.Name(), "/", "-"), StateDir: t.TempDir(),
		Kernel: vmtest.Kernel(t), Initrd: vmtest.Initramfs(t),
		VCPUs: 1, MemoryMiB: 256,
	}
}

func newTCG() *QEMU { return New(Options{Accel: "tcg"}) }

// TestBootAgentShutdown boots Hull's kernel with the agent under TCG,
// reaches the agent over virtio-serial, and shuts the guest down through
// the agent; then the same with QMP (system_powerdown, quit).
func TestBootAgentShutdown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hotplug bool
		viaQMP  bool
	}{
		{"microvm/agent", false, false},
		{"microvm/qmp", false, true},
		{"q35/agent", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer vmtest.NoStrays(t)
			cfg := baseConfig(t)
			cfg.Hotplug = tc.hotplug
			// The agent logs only warnings to the console unless asked.
			cfg.KernelParams = "HULL_AGENT_LOG=info"
			q := newTCG()
			start := time.Now()
			sb, err := vm.Boot(context.Background(), q, cfg, 60*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("agent answered after %v (guest %s, agent %s)", sb.Ready.Sub(start), sb.Version.KernelRelease, sb.Version.AgentVersion)
			if !strings.HasSuffix(sb.Version.KernelRelease, "-hull") {
				t.Errorf("kernel release %q, want Hull's kernel", sb.Version.KernelRelease)
			}
			if want := "-M " + map[bool]string{false: "microvm", true: "q35"}[tc.hotplug]; !strings.Contains(strings.Join(q.Args(), " "), want) {
				t.Errorf("args %v lack %q", q.Args(), want)
			}
			if tc.viaQMP {
				sb.Agent.Close()
				if err := q.Stop(context.Background()); err != nil {
					t.Fatal(err)
				}
			} else if err := sb.Shutdown(context.Background(), 10*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := q.Wait(); err != nil {
				t.Fatalf("wait after shutdown: %v", err)
			}
			b, err := os.ReadFile(q.ConsolePath())
			// The agent logs to the console (the kernel may be quiet).
			if err != nil || !strings.Contains(string(b), "component=hull-agent") {
				t.Errorf("console log %s unreadable or without the agent's lines: %v", q.ConsolePath(), err)
			}
			// With the ACPI power button in the kernel, system_powerdown
			// reaches the agent, which powers off at once.
			if kcfg, _ := os.ReadFile(filepath.Join(filepath.Dir(cfg.Kernel), "config")); tc.viaQMP && strings.Contains(string(kcfg), "CONFIG_ACPI_BUTTON=y") {
				if !strings.Contains(string(b), "power button pressed") {
					t.Errorf("the agent did not act on the power button; console:\n%s", vm.ConsoleTail(q.ConsolePath(), 15))
				}
			}
			for _, f := range []string{"qmp.sock", "agent.sock"} {
				if _, err := os.Stat(filepath.Join(cfg.StateDir, f)); err == nil {
					t.Errorf("%s left behind", f)
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	kernel := vmtest.Kernel(t)
	initrd := vmtest.Initramfs(t)
	for _, tc := range []struct {
		name string
		opts Options
		cfg  func(*vm.Config)
		want error
	}{
		{"qemu missing", Options{Binary: "/nonexistent/qemu-system-x86_64", Accel: "tcg"}, nil, vm.ErrHypervisorMissing},
		{"kernel missing", Options{Accel: "tcg"}, func(c *vm.Config) { c.Kernel = "/nonexistent/vmlinux" }, vm.ErrKernelMissing},
		{"initrd missing", Options{Accel: "tcg"}, func(c *vm.Config) { c.Initrd = "/nonexistent/agent.cpio" }, vm.ErrKernelMissing},
		{"no state dir", Options{Accel: "tcg"}, func(c *vm.Config) { c.StateDir = "" }, vm.ErrInvalidConfig},
		{"bad share", Options{Accel: "tcg"}, func(c *vm.Config) { c.Shares = []vm.Share{{Tag: "a,b", Source: "/"}} }, vm.ErrInvalidConfig},
		{"virtiofsd missing", Options{Accel: "tcg", Virtiofsd: "/nonexistent/virtiofsd"}, func(c *vm.Config) { c.Shares = []vm.Share{{Tag: "root", Source: t.TempDir()}} }, vm.ErrHypervisorMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer vmtest.NoStrays(t)
			cfg := vm.Config{StateDir: t.TempDir(), Kernel: kernel, Initrd: initrd}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			err := New(tc.opts).Start(context.Background(), cfg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestAgentNeverAnswers boots a guest whose init never serves the agent
// (the test init, idling): Boot gives up after its timeout with the console
// tail, and nothing is left.
func TestAgentNeverAnswers(t *testing.T) {
	defer vmtest.NoStrays(t)
	cfg := baseConfig(t)
	cfg.Initrd = guesttest.Initramfs(t, nil, initramfs.None)
	cfg.KernelParams = "hull.idle=60s"
	q := newTCG()
	start := time.Now()
	_, err := vm.Boot(context.Background(), q, cfg, 4*time.Second)
	if !errors.Is(err, vm.ErrAgentTimeout) {
		t.Fatalf("err = %v, want ErrAgentTimeout", err)
	}
	t.Logf("after %v: %v", time.Since(start), err)
	if !strings.Contains(err.Error(), guest.TestInitMarker) {
		t.Errorf("error has no console tail with the init's marker: %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Boot took %v with a 4 s agent timeout", d)
	}
}

// TestGuestPanic: a guest whose kernel panics (no init) ends its VM, and
// Boot reports ErrGuestPanic with the panic on the console.
func TestGuestPanic(t *testing.T) {
	defer vmtest.NoStrays(t)
	cfg := baseConfig(t)
	cfg.KernelParams = "rdinit=/nonexistent"
	q := newTCG()
	_, err := vm.Boot(context.Background(), q, cfg, 30*time.Second)
	if !errors.Is(err, vm.ErrGuestPanic) || !errors.Is(err, vm.ErrVMExited) {
		t.Fatalf("err = %v, want ErrGuestPanic", err)
	}
	if !strings.Contains(err.Error(), "Kernel panic") {
		t.Errorf("error lacks the panic line: %v", err)
	}
}

// TestKilledFromOutside: SIGKILL to QEMU is reported by Wait as ErrVMExited.
func TestKilledFromOutside(t *testing.T) {
	defer vmtest.NoStrays(t)
	cfg := baseConfig(t)
	q := newTCG()
	sb, err := vm.Boot(context.Background(), q, cfg, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Agent.Close()
	if err := syscall.Kill(q.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = q.Wait()
	if !errors.Is(err, vm.ErrVMExited) {
		t.Fatalf("Wait = %v, want ErrVMExited", err)
	}
	t.Logf("%v", err)
	if err := q.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestContextCancelKills: ending Start's context kills the VM.
func TestContextCancelKills(t *testing.T) {
	defer vmtest.NoStrays(t)
	cfg := baseConfig(t)
	q := newTCG()
	ctx, cancel := context.WithCancel(context.Background())
	if err := q.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-q.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the VM outlived its context")
	}
}

// TestBootCloudKernel boots Debian's cloud kernel (the fallback) with the
// agent and its modules in the initramfs: the agent loads them (virtio_mmio,
// virtio_console, ...) from load.order and answers.
func TestBootCloudKernel(t *testing.T) {
	defer vmtest.NoStrays(t)
	guesttest.RequireQEMU(t)
	m := guesttest.CloudKernel(t)
	rd := filepath.Join(t.TempDir(), "agent.cpio")
	if err := initramfs.WriteFile(rd, initramfs.Spec{Init: vmtest.Agent(t), Modules: guesttest.CloudModules(m), Compression: initramfs.Gzip}); err != nil {
		t.Fatal(err)
	}
	cfg := vm.Config{ID: "cloud", StateDir: t.TempDir(), Kernel: m.Path(m.BzImage.Path), Initrd: rd, MemoryMiB: 256}
	q := newTCG()
	sb, err := vm.Boot(context.Background(), q, cfg, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("agent answered after %v", sb.Ready.Sub(sb.StartedAt))
	if sb.Version.KernelRelease != m.Release {
		t.Errorf("guest kernel %q, want the cloud kernel %q", sb.Version.KernelRelease, m.Release)
	}
	if err := sb.Shutdown(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestAutoAccel: with no Accel set, the driver uses what vm/accel decided
// for this host (a real probe boot, cached): on a host whose KVM cannot
// boot a guest (PVM here), TCG.
func TestAutoAccel(t *testing.T) {
	defer vmtest.NoStrays(t)
	cfg := baseConfig(t)
	r := accel.Detect(context.Background(), accel.Options{})
	t.Logf("accel %s: %s", r.Accel, r.Reason)
	q := New(Options{TBSizeMiB: 64})
	sb, err := vm.Boot(context.Background(), q, cfg, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Shutdown(context.Background(), 10*time.Second)
	want := "-accel " + r.Accel
	if r.Accel == accel.TCG {
		want += ",tb-size=64"
	}
	if args := strings.Join(q.Args(), " "); !strings.Contains(args, want) {
		t.Errorf("args lack %q: %s", want, args)
	}
}
