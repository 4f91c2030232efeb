package shim

import (
	"context"
	"sync"
	"time"
)

// Stdio names the fifos (or other paths) containerd gave for a process.
type Stdio struct {
	Stdin, Stdout, Stderr string
	Terminal              bool
}

// Exit is how a process ended: its pid, its wait status as a shell reports
// it (the exit code, or 128+signal), and when the shim reaped it.
type Exit struct {
	Pid    int
	Status int
	At     time.Time
}

// process is the shim's record of one process of the container: the init
// process (execID "") or an exec'd one. Its status moves through the state
// machine of state.go; done closes when it has stopped.
type process struct {
	execID string
	stdio  Stdio

	mu     sync.Mutex
	status Status
	pid    int
	exit   Exit
	done   chan struct{}
}

func newProcess(execID string, stdio Stdio) *process {
	return &process{execID: execID, stdio: stdio, status: Created, done: make(chan struct{})}
}

// snapshot returns the status, pid and exit under the lock.
func (p *process) snapshot() (Status, int, Exit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, p.pid, p.exit
}

// transition moves the process to status to, or returns a *TransitionError.
func (p *process) transition(to Status) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := checkTransition(p.status, to); err != nil {
		return err
	}
	p.status = to
	return nil
}

// started records a successful start: created -> running with its pid.
// A process that already stopped (it exited before the start call came
// back) keeps its stopped state.
func (p *process) started(pid int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pid = pid
	if p.status == Stopped {
		return nil
	}
	if err := checkTransition(p.status, Running); err != nil {
		return err
	}
	p.status = Running
	return nil
}

// exited records the exit and wakes every waiter. It reports false when the
// process had already stopped (a second exit for the same process).
func (p *process) exited(e Exit) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status == Stopped || p.status == Deleted {
		return false
	}
	p.status = Stopped
	if e.Pid == 0 {
		e.Pid = p.pid
	}
	p.exit = e
	close(p.done)
	return true
}

// wait blocks until the process has stopped or ctx ends.
func (p *process) wait(ctx context.Context) (Exit, error) {
	select {
	case <-p.done:
		_, _, e := p.snapshot()
		return e, nil
	case <-ctx.Done():
		return Exit{}, ctx.Err()
	}
}
