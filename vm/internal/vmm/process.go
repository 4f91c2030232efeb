package vmm

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"

	"github.com/hullproject/hull/vm"
)

// Spec is a process to start.
type Spec struct {
	Path string
	Args []string
	// Stdout receives the process's standard output (nil: /dev/null);
	// Firecracker writes the guest's serial console there.
	Stdout *os.File
	// ExtraFiles become fds 3, 4, ... of the process.
	ExtraFiles []*os.File
	// NetNS is a network namespace path the process starts in ("" is
	// this process's).
	NetNS string
	// BindsOf, when it has Binds, starts the process (a share's
	// virtiofsd) through vm.StartWithBinds: in a mount namespace of its
	// own holding the binds.
	BindsOf *vm.Share
}

// Process is a started process in its own process group, which is
// SIGKILLed when the driver's thread that started it dies (PDEATHSIG).
type Process struct {
	cmd    *exec.Cmd
	stderr syncBuffer
	done   chan struct{}
	err    error
}

// Start starts s.
func Start(s Spec) (*Process, error) {
	p := &Process{done: make(chan struct{})}
	cmd := exec.Command(s.Path, s.Args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = &p.stderr
	if s.Stdout != nil {
		cmd.Stdout = s.Stdout
	}
	cmd.ExtraFiles = s.ExtraFiles
	p.cmd = cmd
	if s.BindsOf != nil && len(s.BindsOf.Binds) > 0 {
		exited := make(chan error, 1)
		if err := vm.StartWithBinds(cmd, *s.BindsOf, exited); err != nil {
			return nil, fmt.Errorf("start %s: %w", s.Path, err)
		}
		go func() {
			p.err = <-exited
			close(p.done)
		}()
		return p, nil
	}
	start := cmd.Start
	if s.NetNS != "" {
		start = func() error { return inNetNS(s.NetNS, cmd.Start) }
	}
	if err := start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// inNetNS runs fn on a thread switched into the network namespace at
// path; a child started by fn is born there.
func inNetNS(path string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: %w", path, err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", path, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: it ends with this goroutine rather
		// than serve others in the wrong namespace.
		return fmt.Errorf("leave netns %s: %w", path, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// Pid is the process's pid.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (valid after Done).
func (p *Process) Err() error { return p.err }

// Kill SIGKILLs the process's group.
func (p *Process) Kill() { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Stderr returns the tail of what the process wrote to stderr.
func (p *Process) Stderr() string {
	s := strings.TrimSpace(p.stderr.String())
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

// waitGroupGone waits (up to 1 s) until no process of p's group is left
// (virtiofsd forks a sandboxed child into its group).
func (p *Process) waitGroupGone() {
	<-p.done
	for i := 0; i < 500 && syscall.Kill(-p.cmd.Process.Pid, 0) == nil; i++ {
		time.Sleep(2 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 64<<10 {
		// Keep the tail only.
		rest := append([]byte(nil), s.b.Bytes()[s.b.Len()-32<<10:]...)
		s.b.Reset()
		s.b.Write(rest)
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitForSocket polls until the unix socket path exists, p exits, or ctx
// ends.
func WaitForSocket(ctx context.Context, p *Process, path, what string) error {
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited before its socket %s appeared: %v: %s", what, path, p.Err(), p.Stderr())
		case <-ctx.Done():
			return fmt.Errorf("%s: no socket %s: %w", what, path, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// WaitForAPI polls until a connection to the unix socket path succeeds
// (the file exists a moment before its server listens), p exits, or ctx
// ends. Not for vhost-user sockets, whose server takes one connection.
func WaitForAPI(ctx context.Context, p *Process, path, what string) error {
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited before its API socket %s answered: %v: %s", what, path, p.Err(), p.Stderr())
		case <-ctx.Done():
			return fmt.Errorf("%s: API socket %s: %w (last: %v)", what, path, ctx.Err(), err)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// LookPath finds a VMM binary: bin if set, else $env, else def, through
// PATH. A miss wraps vm.ErrHypervisorMissing and tells where to put the
// binary (product names it: Debian 12 packages neither Cloud Hypervisor
// nor Firecracker).
func LookPath(bin, env, def, product string) (string, error) {
	if bin == "" {
		bin = os.Getenv(env)
	}
	if bin == "" {
		bin = def
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s: %w (Debian 12 does not package %s: install its release binary and put it in PATH or $%s)", bin, vm.ErrHypervisorMissing, product, env)
	}
	return p, nil
}
