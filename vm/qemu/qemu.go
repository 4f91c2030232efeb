// Package qemu is the QEMU driver of Hull's vm runtime (vm.Hypervisor).
//
// One QEMU value runs one VM: microvm (ACPI on, virtio-mmio devices) unless
// the config asks for hotplug, then q35 (virtio-pci). Acceleration comes
// from vm/accel (KVM only where a guest really boots on it, else TCG). The
// guest console goes to console.log in the VM's state directory, whose tail
// every error about the guest carries. The agent channel is a
// virtio-serial port named "hull.agent", whose host end is agent.sock. Each
// virtio-fs share gets its own virtiofsd, started before QEMU (QEMU
// connects to it at start), with the guest RAM in a shared memfd. QMP
// (qmp.sock) is used for control and the clean shutdown: system_powerdown,
// then quit after a timeout, then SIGKILL. (hull-agent does not act on the
// ACPI power button yet, so with it system_powerdown costs the timeout; the
// clean path for an agent guest is vm.Sandbox.Shutdown, which asks the
// agent to power off and only then falls back to Stop.) QEMU and virtiofsd run in their
// own process groups, die with the driver's process (PDEATHSIG) and are
// killed when the Start context ends; Stop leaves no process and no socket.
package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/accel"
)

const (
	// DefaultBinary is the QEMU binary.
	DefaultBinary = "qemu-system-x86_64"
	// DefaultVirtiofsd is QEMU's virtiofsd as Debian installs it.
	DefaultVirtiofsd = "/usr/lib/qemu/virtiofsd"
	// agentPortName must equal agent.PortName (checked by a test).
	agentPortName    = "hull.agent"
	consoleTailLines = 20
)

// Options configure the driver. Zero values take the defaults.
type Options struct {
	Binary    string // DefaultBinary
	Virtiofsd string // DefaultVirtiofsd
	// Accel is QEMU's -accel value ("kvm", "tcg", "tcg,tb-size=32"); empty
	// means accel.Detect decides. TBSizeMiB is TCG's translation-cache size
	// when Accel is "" or "tcg": 0 is accel.DefaultTBSizeMiB, negative
	// QEMU's own default.
	Accel     string
	TBSizeMiB int
	// GuestDir holds the guest assets accel.Detect's probe boot uses when
	// Accel is "" (accel.Options.GuestDir; empty: guest.DefaultDir()).
	GuestDir string
	// PowerdownTimeout is how long Stop waits after system_powerdown before
	// quit (1 s); QuitTimeout after quit before SIGKILL (2 s).
	PowerdownTimeout time.Duration
	QuitTimeout      time.Duration
	Logger           *slog.Logger
	// AfterRelease, when set, is called after each pass of
	// ReleaseBootFiles (the first and every background retry), in the
	// goroutine that ran it: for a caller that trims its own memory when
	// idle (the shim), since the pass maps the caller's code and heap
	// back in.
	AfterRelease func()
}

// QEMU is one VM run by QEMU.
type QEMU struct {
	opts Options

	mu       sync.Mutex
	cfg      vm.Config
	paths    paths
	cmd      *exec.Cmd
	fsds     []*virtiofsd
	qmp      *qmpClient
	stderr   syncBuffer
	started  bool
	stopping bool
	done     chan struct{}
	waitErr  error
	cleaned  sync.Once
	// Args is QEMU's command line of the last Start (for logs and tests).
	args []string
}

var (
	_ vm.Hypervisor = (*QEMU)(nil)
	_ vm.Quitter    = (*QEMU)(nil)
)

// New returns a driver for one VM.
func New(o Options) *QEMU {
	if o.Binary == "" {
		o.Binary = DefaultBinary
	}
	if o.Virtiofsd == "" {
		o.Virtiofsd = DefaultVirtiofsd
	}
	if o.PowerdownTimeout <= 0 {
		o.PowerdownTimeout = time.Second
	}
	if o.QuitTimeout <= 0 {
		o.QuitTimeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &QEMU{opts: o, done: make(chan struct{})}
}

// Capabilities implements vm.Hypervisor.
func (q *QEMU) Capabilities() vm.Capabilities {
	return vm.Capabilities{FileSystemSharing: true, BlockDevices: true, Hotplug: true, Network: true, Vsock: HostHasVsock()}
}

// Args returns QEMU's command line of the last Start.
func (q *QEMU) Args() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.args...)
}

func (q *QEMU) accelArg(ctx context.Context) string {
	a := q.opts.Accel
	if a == "" {
		r := accel.Detect(ctx, accel.Options{Logger: q.opts.Logger, GuestDir: q.opts.GuestDir})
		a = r.Accel
		q.opts.Logger.Debug("acceleration", "accel", r.Accel, "reason", r.Reason)
	}
	// Plain TCG gets a translation cache of TBSizeMiB (0: Hull's default,
	// negative: QEMU's); explicit values ("tcg,tb-size=8", "kvm") pass.
	return accel.QEMUArg(a, q.opts.TBSizeMiB)
}

func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// Start implements vm.Hypervisor.
func (q *QEMU) Start(ctx context.Context, cfg vm.Config) (retErr error) {
	q.mu.Lock()
	if q.started {
		q.mu.Unlock()
		return fmt.Errorf("%w: already started", vm.ErrInvalidConfig)
	}
	q.started = true
	q.mu.Unlock()
	bin, err := exec.LookPath(q.opts.Binary)
	if err != nil {
		return fmt.Errorf("%s: %w (install qemu-system-x86)", q.opts.Binary, vm.ErrHypervisorMissing)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if len(cfg.Shares) > 0 {
		if _, err := os.Stat(q.opts.Virtiofsd); err != nil {
			return fmt.Errorf("virtiofsd %s: %w", q.opts.Virtiofsd, vm.ErrHypervisorMissing)
		}
	}
	p := pathsFor(&cfg)
	q.cfg, q.paths = cfg, p
	defer func() {
		if retErr != nil {
			q.kill()
			q.cleanup()
		}
	}()
	// Stale files from an earlier run would make QEMU fail or mislead.
	for _, f := range append([]string{p.qmp, p.agent, p.console}, mapValues(p.fs)...) {
		_ = os.Remove(f)
	}
	for _, s := range cfg.Shares {
		if err := q.startVirtiofsd(s, p.fs[s.Tag]); err != nil {
			return err
		}
	}
	args := buildArgs(&cfg, q.accelArg(ctx), p)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = procAttr()
	cmd.Stderr = &q.stderr
	for i, n := range cfg.NetDevices {
		if n.Tap == nil {
			return fmt.Errorf("%w: net device %d: QEMU needs the tap's fd", vm.ErrInvalidConfig, i)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, n.Tap)
	}
	q.mu.Lock()
	q.args = args
	q.mu.Unlock()
	// After the taps: the vsock device's fd follows the ExtraFiles so far.
	if err := q.attachVsock(cmd, &cfg); err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	q.mu.Lock()
	q.cmd = cmd
	q.mu.Unlock()
	go q.wait()
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	type res struct {
		c   *qmpClient
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := dialQMP(qctx, p.qmp); ch <- res{c, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			return fmt.Errorf("qemu %s%s: %w", q.stderrTail(), q.fsdFailures(), r.err)
		}
		q.mu.Lock()
		q.qmp = r.c
		q.mu.Unlock()
	case <-q.done:
		cancel()
		if r := <-ch; r.c != nil {
			r.c.close()
		}
		if err := q.Wait(); err != nil {
			return fmt.Errorf("%w%s", err, q.fsdFailures())
		}
		return nil
	}
	go func() {
		select {
		case <-ctx.Done():
			q.opts.Logger.Debug("context ended: killing the vm", "id", cfg.ID)
			q.kill()
			<-q.done
		case <-q.done:
		}
	}()
	return nil
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// startVirtiofsd starts the virtiofsd of share s on a unix socket the
// driver listens on itself and hands over (--fd): QEMU can connect at
// once (the connection waits in the backlog until virtiofsd accepts), so
// QEMU starts beside virtiofsd instead of after its socket appeared.
func (q *QEMU) startVirtiofsd(s vm.Share, sock string) error {
	cache := s.Cache
	if cache == "" {
		cache = "always"
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fmt.Errorf("virtiofsd socket for %q: %w", s.Tag, err)
	}
	// The path stays for QEMU; cleanup removes it.
	l.SetUnlinkOnClose(false)
	lf, err := l.File()
	l.Close()
	if err != nil {
		return fmt.Errorf("virtiofsd socket for %q: %w", s.Tag, err)
	}
	defer lf.Close()
	cmd := exec.Command(q.opts.Virtiofsd, "--fd=3",
		"-o", "source="+s.Source, "-o", "cache="+cache, "-o", "log_level=warn")
	cmd.ExtraFiles = []*os.File{lf}
	cmd.SysProcAttr = procAttr()
	fsd := &virtiofsd{cmd: cmd, tag: s.Tag, source: s.Source, exited: make(chan struct{})}
	cmd.Stderr = &fsd.stderr
	exited := make(chan error, 1)
	if len(s.Binds) > 0 {
		if err := vm.StartWithBinds(cmd, s, exited); err != nil {
			return fmt.Errorf("start virtiofsd for %q: %w", s.Tag, err)
		}
	} else {
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start virtiofsd for %q: %w", s.Tag, err)
		}
		go func() { exited <- cmd.Wait() }()
	}
	go func() {
		fsd.err = <-exited
		close(fsd.exited)
	}()
	q.mu.Lock()
	q.fsds = append(q.fsds, fsd)
	q.mu.Unlock()
	return nil
}

// virtiofsd is one running virtiofsd.
type virtiofsd struct {
	cmd         *exec.Cmd
	tag, source string
	stderr      syncBuffer
	exited      chan struct{} // closed when it has exited (err set)
	err         error
}

// fsdFailures describes the virtiofsd processes that exited already (a
// QEMU that could not start its vhost-user-fs devices names them).
func (q *QEMU) fsdFailures() string {
	q.mu.Lock()
	fsds := q.fsds
	q.mu.Unlock()
	var out []string
	for _, f := range fsds {
		select {
		case <-f.exited:
			out = append(out, fmt.Sprintf("virtiofsd for %q (%s) exited: %v: %s", f.tag, f.source, f.err, strings.TrimSpace(f.stderr.String())))
		default:
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "; " + strings.Join(out, "; ")
}

// syncBuffer is QEMU's stderr, written by exec's copier and read by
// error paths.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (q *QEMU) stderrTail() string {
	s := strings.TrimSpace(q.stderr.String())
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	if s == "" {
		return ""
	}
	return "(stderr: " + s + ")"
}

// wait reaps QEMU, classifies its end, then reaps virtiofsd and cleans up.
func (q *QEMU) wait() {
	err := q.cmd.Wait()
	q.mu.Lock()
	stopping := q.stopping
	q.mu.Unlock()
	var werr error
	tail := vm.ConsoleTail(q.paths.console, consoleTailLines)
	switch {
	case stopping:
	case strings.Contains(tail, "Kernel panic"):
		werr = fmt.Errorf("%w; console tail:\n%s", vm.ErrGuestPanic, tail)
	case errors.Is(err, syscall.ECHILD) && strings.Contains(tail, "reboot: Power down"):
		// A subreaper of ours (the shim reaps every child with
		// wait4(-1)) took QEMU's status first; the guest powered off.
	case err != nil:
		werr = fmt.Errorf("%w: qemu: %v %s; console tail:\n%s", vm.ErrVMExited, err, q.stderrTail(), tail)
	}
	q.killHelpers()
	q.cleanup()
	q.mu.Lock()
	q.waitErr = werr
	q.mu.Unlock()
	close(q.done)
}

// killHelpers ends the virtiofsd processes (each exits by itself when QEMU
// disconnects; this is for the ones that do not) and reaps them.
func (q *QEMU) killHelpers() {
	q.mu.Lock()
	fsds := q.fsds
	q.mu.Unlock()
	for _, f := range fsds {
		if f.cmd.Process != nil {
			_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	// cmd.Wait runs in startVirtiofsd's goroutine; wait until the group is
	// gone.
	for _, f := range fsds {
		if f.cmd.Process == nil {
			continue
		}
		for i := 0; i < 500 && syscall.Kill(-f.cmd.Process.Pid, 0) == nil; i++ {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// kill SIGKILLs QEMU and the helpers.
func (q *QEMU) kill() {
	q.mu.Lock()
	q.stopping = true
	cmd := q.cmd
	q.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if cmd == nil || cmd.Process == nil {
		q.killHelpers()
	}
}

func (q *QEMU) cleanup() {
	q.cleaned.Do(func() {
		q.detachVsock()
		q.mu.Lock()
		if q.qmp != nil {
			q.qmp.close()
		}
		q.mu.Unlock()
		for _, f := range append([]string{q.paths.qmp, q.paths.agent}, mapValues(q.paths.fs)...) {
			if f != "" {
				_ = os.Remove(f)
			}
		}
	})
}

// Stop implements vm.Hypervisor: system_powerdown, quit after
// PowerdownTimeout, SIGKILL after QuitTimeout.
func (q *QEMU) Stop(ctx context.Context) error {
	qmp, running := q.beginStop()
	if !running {
		return nil
	}
	if qmp != nil {
		if _, err := qmp.execute(ctx, "system_powerdown", nil); err == nil {
			if q.waitDone(ctx, q.opts.PowerdownTimeout) {
				return nil
			}
		}
		_, _ = qmp.execute(ctx, "quit", nil)
		if q.waitDone(ctx, q.opts.QuitTimeout) {
			return nil
		}
	}
	q.kill()
	<-q.done
	return nil
}

// Quit implements vm.Quitter: QMP quit (QEMU exits at once, without a
// guest power-off), SIGKILL after QuitTimeout.
func (q *QEMU) Quit(ctx context.Context) error {
	qmp, running := q.beginStop()
	if !running {
		return nil
	}
	if qmp != nil {
		if _, err := qmp.execute(ctx, "quit", nil); err == nil || errors.Is(err, io.EOF) {
			if q.waitDone(ctx, q.opts.QuitTimeout) {
				return nil
			}
		}
	}
	q.kill()
	<-q.done
	return nil
}

// beginStop marks q as stopping (its exit is then no ErrVMExited) and
// returns its QMP client; running is false when QEMU never started or has
// already exited.
func (q *QEMU) beginStop() (qmp *qmpClient, running bool) {
	q.mu.Lock()
	cmd := q.cmd
	qmp = q.qmp
	if cmd == nil {
		q.mu.Unlock()
		return nil, false
	}
	q.stopping = true
	q.mu.Unlock()
	select {
	case <-q.done:
		return nil, false
	default:
	}
	return qmp, true
}

func (q *QEMU) waitDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-q.done:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// Wait implements vm.Hypervisor.
func (q *QEMU) Wait() error {
	q.mu.Lock()
	started := q.cmd != nil
	q.mu.Unlock()
	if !started {
		return vm.ErrNotStarted
	}
	<-q.done
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waitErr
}

// Done implements vm.Hypervisor.
func (q *QEMU) Done() <-chan struct{} { return q.done }

// Pid implements vm.Hypervisor.
func (q *QEMU) Pid() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cmd == nil || q.cmd.Process == nil {
		return 0
	}
	return q.cmd.Process.Pid
}

// ConsolePath implements vm.Hypervisor.
func (q *QEMU) ConsolePath() string { return q.paths.console }

// AgentSocket implements vm.Hypervisor.
func (q *QEMU) AgentSocket() string { return q.paths.agent }
