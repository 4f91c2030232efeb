package vmm

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hullproject/hull/vm"
)

// consoleTailLines is how much of the console errors carry.
const consoleTailLines = 20

// PanicMarker is what a guest kernel prints when it panics.
const PanicMarker = "Kernel panic"

// Machine supervises one VM of an HTTP-API driver: the VMM process, its
// helpers, the files to remove at the end, and the VM's end.
type Machine struct {
	Console string
	Logger  *slog.Logger

	mu       sync.Mutex
	vmm      *Process
	helpers  []*Process
	files    []string
	stopping bool
	panicked bool
	waitErr  error
	done     chan struct{}
	cleaned  sync.Once
}

// NewMachine returns a Machine whose guest console log is console.
func NewMachine(console string, log *slog.Logger) *Machine {
	if log == nil {
		log = slog.Default()
	}
	return &Machine{Console: console, Logger: log, done: make(chan struct{})}
}

// AddHelper records a helper (virtiofsd): killed and reaped when the VM
// ends.
func (m *Machine) AddHelper(p *Process) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.helpers = append(m.helpers, p)
}

// RemoveAtEnd records files (sockets, images) removed when the VM ends or
// Start fails.
func (m *Machine) RemoveAtEnd(paths ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files = append(m.files, paths...)
}

// Run records the VMM process and supervises it: when it ends, the end
// is classified, helpers are killed and files removed, and Done closes.
// The console is watched for a guest panic, which kills the VMM (Cloud
// Hypervisor would reboot the guest rather than exit).
func (m *Machine) Run(p *Process) {
	m.mu.Lock()
	m.vmm = p
	m.mu.Unlock()
	go m.watchPanic()
	go m.wait()
}

func (m *Machine) wait() {
	p := m.vmm
	<-p.Done()
	m.mu.Lock()
	stopping, panicked := m.stopping, m.panicked
	m.mu.Unlock()
	tail := vm.ConsoleTail(m.Console, consoleTailLines)
	var werr error
	switch {
	case panicked || (!stopping && strings.Contains(tail, PanicMarker)):
		werr = fmt.Errorf("%w; console tail:\n%s", vm.ErrGuestPanic, tail)
	case stopping:
	case p.Err() != nil:
		stderr := p.Stderr()
		if stderr != "" {
			stderr = " (stderr: " + stderr + ")"
		}
		werr = fmt.Errorf("%w: %s: %v%s; console tail:\n%s", vm.ErrVMExited, p.cmd.Path, p.Err(), stderr, tail)
	}
	m.Cleanup()
	m.mu.Lock()
	m.waitErr = werr
	m.mu.Unlock()
	close(m.done)
}

// watchPanic polls the console log for PanicMarker while the VMM runs.
func (m *Machine) watchPanic() {
	var off int64
	var carry string
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-m.vmm.Done():
			return
		case <-t.C:
		}
		f, err := os.Open(m.Console)
		if err != nil {
			continue
		}
		buf := make([]byte, 64<<10)
		n, _ := f.ReadAt(buf, off)
		f.Close()
		if n == 0 {
			continue
		}
		off += int64(n)
		chunk := carry + string(buf[:n])
		if strings.Contains(chunk, PanicMarker) {
			m.mu.Lock()
			m.panicked = true
			m.mu.Unlock()
			m.Logger.Warn("guest kernel panic: killing the vm", "console", m.Console)
			// Give the guest a moment to print the panic's reason.
			time.Sleep(200 * time.Millisecond)
			m.vmm.Kill()
			return
		}
		if len(chunk) > len(PanicMarker) {
			carry = chunk[len(chunk)-len(PanicMarker):]
		}
	}
}

// Cleanup kills and reaps the helpers and removes the recorded files,
// once. Start calls it when it fails before Run.
func (m *Machine) Cleanup() {
	m.cleaned.Do(func() {
		m.mu.Lock()
		helpers, files := m.helpers, m.files
		m.mu.Unlock()
		for _, h := range helpers {
			h.Kill()
		}
		for _, h := range helpers {
			h.waitGroupGone()
		}
		for _, f := range files {
			_ = os.Remove(f)
		}
	})
}

// Started reports whether Run was called.
func (m *Machine) Started() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.vmm != nil
}

// SetStopping marks the end that follows as asked for.
func (m *Machine) SetStopping() {
	m.mu.Lock()
	m.stopping = true
	m.mu.Unlock()
}

// Kill SIGKILLs the VMM (the end is an asked-for one) and, before Run,
// cleans up.
func (m *Machine) Kill() {
	m.mu.Lock()
	m.stopping = true
	p := m.vmm
	m.mu.Unlock()
	if p == nil {
		m.Cleanup()
		return
	}
	p.Kill()
}

// KillOnDone kills the VM when ctx ends (vm.Hypervisor.Start's contract).
func (m *Machine) KillOnDone(ctx context.Context) {
	go func() {
		select {
		case <-ctx.Done():
			m.Logger.Debug("context ended: killing the vm", "console", m.Console)
			m.Kill()
		case <-m.done:
		}
	}()
}

// Done is closed when the VM has ended and everything is cleaned up.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Wait blocks until the VM has ended: nil for a power-off or an asked-for
// stop, else an ErrVMExited (or ErrGuestPanic) error with the console's
// tail.
func (m *Machine) Wait() error {
	if !m.Started() {
		return vm.ErrNotStarted
	}
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.waitErr
}

// WaitDone waits up to d (or ctx) for the VM to end.
func (m *Machine) WaitDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-m.done:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// Pid is the VMM's pid (0 before Run).
func (m *Machine) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.vmm == nil {
		return 0
	}
	return m.vmm.Pid()
}

// VMMStderr is the VMM's stderr tail, for errors ("" before Run).
func (m *Machine) VMMStderr() string {
	m.mu.Lock()
	p := m.vmm
	m.mu.Unlock()
	if p == nil {
		return ""
	}
	return p.Stderr()
}
