package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/runtime/cgroups"
	"github.com/hullproject/hull/runtime/hooks"
	"github.com/hullproject/hull/runtime/internal/trace"
)

// cgroup returns the container's cgroup manager (nil when none was saved).
func (h *Handle) cgroup() (cgroups.Manager, error) {
	if len(h.Record.Cgroup) == 0 {
		return nil, nil
	}
	var cs cgState
	if err := json.Unmarshal(h.Record.Cgroup, &cs); err != nil {
		return nil, fmt.Errorf("corrupt cgroup state: %w", err)
	}
	if len(cs.Paths) == 0 {
		return nil, nil
	}
	return cgroups.LoadWithResources(cs.Paths, cs.Resources)
}

// Start runs the user process of a created container: it opens the exec
// fifo, which lets the init run the startContainer hooks and execve, waits
// for the execve, then runs the poststart hooks. A failing startContainer
// or poststart hook fails start and stops the container (runtime.md,
// lifecycle steps 7 and 9).
func Start(ctx context.Context, root, id string) error {
	h, err := Load(root, id)
	if err != nil {
		return err
	}
	defer h.Close()
	if st := h.Status(); st != Created {
		return fmt.Errorf("start %s: %w", id, &TransitionError{From: st, To: Running})
	}
	if err := openFifo(ctx, filepath.Join(h.Dir, fifoFile), h.Record.Pid); err != nil {
		h.killAll(unix.SIGKILL)
		return fmt.Errorf("start %s: %w", id, err)
	}
	return h.poststart(ctx)
}

// Poststart runs the poststart hooks of a container `run` started.
func Poststart(ctx context.Context, root, id string) error {
	h, err := Load(root, id)
	if err != nil {
		return err
	}
	defer h.Close()
	return h.poststart(ctx)
}

func (h *Handle) poststart(ctx context.Context) error {
	if hk := h.Record.Spec.Hooks; hk != nil && len(hk.Poststart) > 0 {
		st := h.SpecState(Running)
		if err := hooks.Run(ctx, "poststart", hk.Poststart, &st); err != nil {
			h.killAll(unix.SIGKILL)
			return err
		}
	}
	return nil
}

// openFifo unblocks the init waiting on the fifo and removes the fifo.
// It gives up when the init dies first.
func openFifo(ctx context.Context, path string, pid int) error {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("container init %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_RDONLY, 0)
		ch <- result{f, err}
	}()
	dead := make(chan struct{})
	go func() {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			if n > 0 || err != nil {
				close(dead)
				return
			}
		}
	}()
	// "0" then EOF when the init execve's; "E<message>" when a
	// startContainer hook failed.
	finish := func(f *os.File) error {
		defer f.Close()
		data, err := io.ReadAll(f)
		if err != nil {
			return fmt.Errorf("read exec fifo: %w", err)
		}
		os.Remove(path)
		switch {
		case len(data) == 0:
			return errors.New("container init died before it could start the process")
		case data[0] == 'E':
			return errors.New(string(data[1:]))
		}
		return nil
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return fmt.Errorf("open exec fifo: %w", r.err)
		}
		return finish(r.f)
	case <-dead:
		// The process may have started and already exited: then our
		// open has completed too, or the fifo still holds the "0".
		select {
		case r := <-ch:
			if r.err != nil {
				return fmt.Errorf("open exec fifo: %w", r.err)
			}
			return finish(r.f)
		default:
		}
		// Unblock our own open so the goroutine ends.
		if f, err := os.OpenFile(path, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		if r := <-ch; r.err == nil {
			if err := finish(r.f); err == nil {
				return nil
			}
		}
		return errors.New("container init exited before start")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill sends sig to the container's init, or with all to every process in
// its cgroup.
func Kill(root, id string, sig unix.Signal, all bool) error {
	h, err := Load(root, id)
	if err != nil {
		return err
	}
	defer h.Close()
	st := h.Status()
	if st == Stopped && !all {
		return fmt.Errorf("kill %s: %w", id, ErrNotRunning)
	}
	if all {
		if err := h.killAll(sig); err != nil {
			return err
		}
		return nil
	}
	if err := unix.Kill(h.Record.Pid, sig); err != nil {
		return fmt.Errorf("kill %s: %w", id, err)
	}
	return nil
}

func (h *Handle) killAll(sig unix.Signal) error {
	mgr, err := h.cgroup()
	if err != nil {
		return err
	}
	if mgr == nil {
		if h.Record.alive() {
			return unix.Kill(h.Record.Pid, sig)
		}
		return nil
	}
	// Freeze so no process forks away while we signal.
	frozen := sig == unix.SIGKILL && mgr.Freeze() == nil
	pids, err := mgr.Pids()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		if frozen {
			mgr.Thaw()
		}
		return fmt.Errorf("list processes: %w", err)
	}
	for _, p := range pids {
		if err := unix.Kill(p, sig); err != nil && err != unix.ESRCH {
			slog.Warn("kill", "pid", p, "err", err)
		}
	}
	if frozen {
		mgr.Thaw()
	}
	return nil
}

// Delete removes a stopped (or, with force, any) container: its
// processes are killed, its cgroup removed, poststop hooks run and its
// state removed.
func Delete(ctx context.Context, root, id string, force bool) error {
	h, err := Load(root, id)
	if err != nil {
		if errors.Is(err, ErrNotExist) && ValidateID(id) == nil {
			// A create that died before saving any state leaves an
			// empty directory: remove it (under the lock), as runc does.
			removeHusk(filepath.Join(root, id))
		}
		return err
	}
	defer h.Close()
	switch st := h.Status(); st {
	case Stopped:
	case Creating:
		// A create that died half way: nothing runs the user process.
		h.killAll(unix.SIGKILL)
		unix.Kill(h.Record.Pid, unix.SIGKILL)
	default:
		// runtime.md, delete: "Attempting to delete a container that is
		// not stopped MUST have no effect on the container and MUST
		// generate an error." That includes a created container, which
		// runc and crun delete anyway; Hull's shim passes --force.
		if !force {
			return fmt.Errorf("delete %s: %w", id, &TransitionError{From: st, To: Deleted})
		}
		if st == Paused {
			if mgr, _ := h.cgroup(); mgr != nil {
				mgr.Thaw()
			}
		}
		if err := h.killAll(unix.SIGKILL); err != nil {
			return err
		}
		unix.Kill(h.Record.Pid, unix.SIGKILL)
	}
	if h.Record.Pid > 0 && !waitGone(h.Record.Pid, h.Record.PidStart, 10*time.Second) {
		return fmt.Errorf("delete %s: init %d did not exit", id, h.Record.Pid)
	}
	return h.destroy(ctx)
}

// DeleteExited deletes the container of p, made by Create in this process,
// once its init has exited and this process has reaped it (`run`): what
// Delete does, without reading back the state this process wrote (the
// record, the cgroup manager). When the state directory is gone or is
// another container's by now, the container was deleted meanwhile and
// there is nothing to do.
func (p *Process) DeleteExited(ctx context.Context, root, id string) error {
	c := p.created
	if c == nil {
		return Delete(ctx, root, id, true)
	}
	l, err := lockDir(c.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	trace.Mark("delete: locked")
	h := &Handle{Dir: c.dir, lock: l, Record: c.rec}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(l.Fd()), &st); err != nil {
		return err
	}
	if st.Nlink == 0 || st.Dev != c.dirDev || st.Ino != c.dirIno {
		return nil
	}
	// In its own pid namespace, every process of the container died
	// with its init, before the init could be reaped.
	return h.destroyWith(ctx, c.mgr, !c.ownPidNS)
}

func (h *Handle) destroy(ctx context.Context) error {
	mgr, err := h.cgroup()
	if err != nil {
		slog.Warn("load cgroup", "id", h.Record.ID, "err", err)
		mgr = nil
	}
	return h.destroyWith(ctx, mgr, true)
}

// destroyWith removes the container's cgroup (mgr, nil for none), after
// killing what is left in it when checkPids, runs the poststop hooks and
// removes the state.
func (h *Handle) destroyWith(ctx context.Context, mgr cgroups.Manager, checkPids bool) error {
	if mgr != nil {
		// Processes of a shared pid namespace may still be there.
		killLeft := func() {
			if pids, _ := mgr.Pids(); len(pids) > 0 {
				h.killAll(unix.SIGKILL)
			}
		}
		if checkPids {
			killLeft()
		}
		var derr error
		for i := 0; i < 50; i++ {
			if derr = mgr.Destroy(); derr == nil {
				break
			}
			if i == 0 && !checkPids {
				killLeft()
			}
			time.Sleep(10 * time.Millisecond)
		}
		if derr != nil {
			return fmt.Errorf("remove cgroup: %w", derr)
		}
		trace.Mark("delete: cgroup removed")
	}
	if hk := h.Record.Spec.Hooks; hk != nil && len(hk.Poststop) > 0 {
		st := h.SpecState(Stopped)
		// runtime.md lifecycle 13: a failing poststop hook is logged
		// and the remaining hooks still run.
		for i := range hk.Poststop {
			if err := hooks.Run(ctx, "poststop", hk.Poststop[i:i+1], &st); err != nil {
				slog.Warn("poststop hook failed", "id", h.Record.ID, "index", i, "err", err)
			}
		}
	}
	return h.remove()
}

// Pause freezes the container's processes.
func Pause(root, id string) error {
	return setFrozen(root, id, true)
}

// Resume thaws them.
func Resume(root, id string) error {
	return setFrozen(root, id, false)
}

func setFrozen(root, id string, freeze bool) error {
	h, err := Load(root, id)
	if err != nil {
		return err
	}
	defer h.Close()
	st := h.Status()
	to := Paused
	if !freeze {
		to = Running
		if st != Paused {
			return fmt.Errorf("resume %s: %w", id, &TransitionError{From: st, To: to})
		}
	} else if st != Running {
		return fmt.Errorf("pause %s: %w", id, &TransitionError{From: st, To: to})
	}
	mgr, err := h.cgroup()
	if err != nil {
		return err
	}
	if mgr == nil {
		return fmt.Errorf("pause %s: no cgroup: %w", id, ErrNotSupported)
	}
	if freeze {
		err = mgr.Freeze()
	} else {
		err = mgr.Thaw()
	}
	if err != nil {
		return err
	}
	h.Record.Paused = freeze
	return h.Save()
}

// GetState returns the state document of one container.
func GetState(root, id string) (State, error) {
	h, err := Load(root, id)
	if err != nil {
		return State{}, err
	}
	defer h.Close()
	return h.State(), nil
}

// Pids lists the container's processes (host pids).
func Pids(root, id string) ([]int, error) {
	h, err := Load(root, id)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	mgr, err := h.cgroup()
	if err != nil {
		return nil, err
	}
	if mgr == nil {
		if h.Record.alive() {
			return []int{h.Record.Pid}, nil
		}
		return nil, nil
	}
	return mgr.Pids()
}

// Update changes the resources of a container; r holds only what
// changes (merged with what was applied before).
func Update(root, id string, r *specs.LinuxResources) error {
	h, err := Load(root, id)
	if err != nil {
		return err
	}
	defer h.Close()
	if st := h.Status(); st == Stopped {
		return fmt.Errorf("update %s: %w", id, ErrNotRunning)
	}
	mgr, err := h.cgroup()
	if err != nil {
		return err
	}
	if mgr == nil {
		return fmt.Errorf("update %s: no cgroup: %w", id, ErrNotSupported)
	}
	if err := mgr.Set(r); err != nil {
		return fmt.Errorf("update %s: %w", id, err)
	}
	if h.Record.Cgroup, err = json.Marshal(cgState{Paths: mgr.Paths(), Resources: mgr.Resources()}); err != nil {
		return err
	}
	return h.Save()
}

// Stats reads the container's cgroup counters.
func Stats(root, id string) (*cgroups.Stats, error) {
	h, err := Load(root, id)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if st := h.Status(); st == Stopped {
		return nil, fmt.Errorf("stats %s: %w", id, ErrNotRunning)
	}
	mgr, err := h.cgroup()
	if err != nil {
		return nil, err
	}
	if mgr == nil {
		return nil, fmt.Errorf("stats %s: no cgroup: %w", id, ErrNotSupported)
	}
	return mgr.Stats()
}

// removeHusk removes a container directory that has no state.json.
func removeHusk(dir string) {
	l, err := lockDir(dir)
	if err != nil {
		return
	}
	defer l.Close()
	if _, err := os.Stat(filepath.Join(dir, stateFile)); os.IsNotExist(err) {
		os.RemoveAll(dir)
	}
}
