package container

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/runtime/initproc"
)

// initCmd starts the container init with syscall.ForkExec and waits for it
// with wait4, rather than through os/exec: os checks once per process
// that pidfds work before its first process start, and that check forks
// and reaps a throwaway child, a cost a short-lived runtime would pay on
// every call. Stdio that is not an *os.File (a pipe to copy through) goes
// through os/exec as before.
type initCmd struct {
	// exe is the open binary to start. It is passed to the child as its
	// last fd (after files), and the child execs it by that number,
	// /proc/self/fd/exeFD: syscall.ForkExec's child shuffles fds (its
	// error pipe, fds to move up) onto numbers just above the highest
	// fd it is given, so an fd it is not given is not safe from being
	// replaced before the execve. In a long-lived caller with holes in
	// its fd table (hull-agent) the binary, opened last, often had
	// exactly that number, and the child exec'd its error pipe instead:
	// EACCES. The init closes it first thing (initproc.EnvExeFD).
	exe  *os.File
	args []string
	Env  []string
	// stdio are the init's 0, 1, 2: nil for the runtime's own, an
	// *os.File (a nil one: closed), or any io.Reader/io.Writer.
	stdio [3]any
	// files are the init's fds from 3 on.
	files       []*os.File
	SysProcAttr *syscall.SysProcAttr

	// path is what the child execs, set by Start.
	path    string
	pid     int
	viaExec *exec.Cmd
	waited  bool
	werr    error
}

// exeFD is the number of the binary's fd in the child: the last of its fds.
func (c *initCmd) exeFD() int { return 3 + len(c.files) }

// Start starts the init; pid is then set.
func (c *initCmd) Start() error {
	n := c.exeFD()
	c.path = "/proc/self/fd/" + strconv.Itoa(n)
	env := append(c.Env[:len(c.Env):len(c.Env)], initproc.EnvExeFD+"="+strconv.Itoa(n))
	fds := make([]uintptr, 0, n+1)
	for i, v := range c.stdio {
		fd, ok := stdioFD(i, v)
		if !ok {
			return c.startExec(env)
		}
		fds = append(fds, fd)
	}
	for _, f := range c.files {
		fds = append(fds, f.Fd())
	}
	fds = append(fds, c.exe.Fd())
	pid, err := syscall.ForkExec(c.path, c.args, &syscall.ProcAttr{Env: env, Files: fds, Sys: c.SysProcAttr})
	runtime.KeepAlive(c.files)
	runtime.KeepAlive(c.exe)
	if err != nil {
		return &os.PathError{Op: "fork/exec", Path: c.path, Err: err}
	}
	c.pid = pid
	return nil
}

// stdioFD is the fd for the init's stdio i: the runtime's own for nil, -1
// (closed) for a nil *os.File; ok is false for anything else.
func stdioFD(i int, v any) (uintptr, bool) {
	switch f := v.(type) {
	case nil:
		return uintptr(i), true
	case *os.File:
		if f == nil {
			return ^uintptr(0), true
		}
		return f.Fd(), true
	}
	return 0, false
}

// startExec starts the init through os/exec, whose child has the same fds
// (stdio, files, then exe).
func (c *initCmd) startExec(env []string) error {
	extra := append(c.files[:len(c.files):len(c.files)], c.exe)
	cmd := &exec.Cmd{Path: c.path, Args: c.args, Env: env, ExtraFiles: extra, SysProcAttr: c.SysProcAttr}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if v := c.stdio[0]; v != nil {
		cmd.Stdin = v.(io.Reader)
	}
	if v := c.stdio[1]; v != nil {
		cmd.Stdout = v.(io.Writer)
	}
	if v := c.stdio[2]; v != nil {
		cmd.Stderr = v.(io.Writer)
	}
	err := cmd.Start()
	runtime.KeepAlive(c.exe)
	if err != nil {
		return err
	}
	c.pid, c.viaExec = cmd.Process.Pid, cmd
	return nil
}

// Wait reaps the init (once) and returns an error when it did not exit 0.
func (c *initCmd) Wait() error {
	if c.waited || c.pid == 0 {
		return c.werr
	}
	c.waited = true
	if c.viaExec != nil {
		c.werr = c.viaExec.Wait()
		return c.werr
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(c.pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			c.werr = fmt.Errorf("wait for init %d: %w", c.pid, err)
			return c.werr
		}
		break
	}
	switch {
	case ws.Signaled():
		c.werr = fmt.Errorf("signal: %v", ws.Signal())
	case ws.ExitStatus() != 0:
		c.werr = fmt.Errorf("exit status %d", ws.ExitStatus())
	}
	return c.werr
}

// startInCgroup starts cmd from an OS thread of its own that first moved
// itself into the cgroup v1 directories of tasks (their "tasks" files): a
// child inherits the cgroups of the thread that forks it, so the process
// is born in the container's cgroup, as CLONE_INTO_CGROUP does on v2, and
// nothing moves it afterwards. A thread writing "0" to "tasks" moves only
// itself, which spares the kernel the global cgroup_threadgroup_rwsem that
// moving another process (a cgroup.procs write) takes for writing, an RCU
// grace period each time: measured here ~10 ms of an exec's ~20 ms. The
// thread is never unlocked, so it ends with its goroutine, and the
// runtime's other threads stay where they were.
//
// The main thread cannot end (Go keeps it, wedged, when its goroutine ends
// locked) and would stay in the container's cgroup: if the goroutine lands
// there, it does not join. The caller's goroutine is locked to its thread
// meanwhile, so that the new goroutine cannot take that one.
//
// joined is false when the thread did not join (true with no tasks); the
// caller then moves the process (Manager.Join).
func startInCgroup(cmd *initCmd, tasks []string) (joined bool, err error) {
	if len(tasks) == 0 {
		return true, cmd.Start()
	}
	type result struct {
		joined bool
		err    error
	}
	done := make(chan result, 1)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	go func() {
		if unix.Gettid() == unix.Getpid() {
			done <- result{false, cmd.Start()}
			return
		}
		runtime.LockOSThread() // never unlocked: see above
		joined := true
		for _, f := range tasks {
			if err := writeSelfTask(f); err != nil {
				joined = false
				break
			}
		}
		done <- result{joined, cmd.Start()}
	}()
	r := <-done
	return r.joined, r.err
}

// writeSelfTask writes "0" (the calling thread) to a v1 "tasks" file.
func writeSelfTask(file string) error {
	fd, err := unix.Open(file, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte("0"))
	return err
}
