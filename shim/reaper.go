package shim

import (
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// The shim is a child subreaper: container processes that the runtime CLI
// leaves behind are re-parented to it, and it must reap every child itself
// (wait4(-1)). os/exec's own Wait would race with that loop, so the runtime
// CLI commands run through reaperMonitor, which takes their exits from the
// same loop (go-runc's ProcessMonitor seam).

// reaper fans every reaped exit out to its subscribers.
type reaper struct {
	mu   sync.Mutex
	subs map[*subscription]struct{}
}

// subscription is an unbounded queue of exits: the reap loop never blocks
// on a slow reader.
type subscription struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []Exit
	closed bool
}

func (s *subscription) push(e Exit) {
	s.mu.Lock()
	s.queue = append(s.queue, e)
	s.mu.Unlock()
	s.cond.Signal()
}

// next blocks for the next exit; ok is false once the subscription closed.
func (s *subscription) next() (e Exit, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) == 0 && !s.closed {
		s.cond.Wait()
	}
	if len(s.queue) == 0 {
		return Exit{}, false
	}
	e = s.queue[0]
	s.queue = s.queue[1:]
	return e, true
}

var defaultReaper = &reaper{subs: map[*subscription]struct{}{}}

func (r *reaper) subscribe() *subscription {
	s := &subscription{}
	s.cond = sync.NewCond(&s.mu)
	r.mu.Lock()
	r.subs[s] = struct{}{}
	r.mu.Unlock()
	return s
}

func (r *reaper) unsubscribe(s *subscription) {
	r.mu.Lock()
	delete(r.subs, s)
	r.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cond.Broadcast()
}

// reap collects every exited child and hands the exits to the subscribers.
func (r *reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		e := Exit{Pid: pid, Status: exitStatus(ws), At: time.Now()}
		r.mu.Lock()
		for s := range r.subs {
			s.push(e)
		}
		r.mu.Unlock()
	}
}

// exitStatus is the status a shell would report: the exit code, or
// 128+signal for a killed process.
func exitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// StartReaper makes the calling process a child subreaper and reaps its
// children on every SIGCHLD for the rest of its life.
func StartReaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return err
	}
	ch := make(chan os.Signal, 32)
	signal.Notify(ch, unix.SIGCHLD)
	runc.Monitor = reaperMonitor{defaultReaper}
	go func() {
		for range ch {
			defaultReaper.reap()
		}
	}()
	return nil
}

// reaperMonitor is go-runc's ProcessMonitor over the reaper.
type reaperMonitor struct{ r *reaper }

func (m reaperMonitor) Start(c *exec.Cmd) (chan runc.Exit, error) {
	s := m.r.subscribe()
	if err := c.Start(); err != nil {
		m.r.unsubscribe(s)
		return nil, err
	}
	ec := make(chan runc.Exit, 1)
	go func() {
		defer m.r.unsubscribe(s)
		for {
			e, ok := s.next()
			if !ok {
				return
			}
			if e.Pid == c.Process.Pid {
				ec <- runc.Exit{Timestamp: e.At, Pid: e.Pid, Status: e.Status}
				return
			}
		}
	}()
	return ec, nil
}

func (m reaperMonitor) StartLocked(c *exec.Cmd) (chan runc.Exit, error) { return m.Start(c) }

func (m reaperMonitor) Wait(c *exec.Cmd, ec chan runc.Exit) (int, error) {
	e := <-ec
	// The process is already reaped; Wait only finishes os/exec's copying
	// goroutines and closes its pipes. Its "no child" error is expected.
	_ = c.Wait()
	return e.Status, nil
}
