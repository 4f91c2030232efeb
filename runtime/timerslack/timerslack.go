// Package timerslack lets hull-runtime run with a coarse timer slack while
// every program it starts (the container's process, hooks, ps) gets the
// slack the runtime itself was started with.
//
// Why: while a Go process is busy, the runtime's sysmon thread sleeps
// 20 µs at a time (usleep) between its checks. A CLI call of a few
// milliseconds, and the container init, each pay a context switch per
// wakeup: about half of all the context switches of a `run`. The timer
// slack (prctl PR_SET_TIMERSLACK) lets the kernel defer those wakeups by
// up to the slack. It is per thread, inherited by new threads and child
// processes and kept across execve, so it has to be set before the Go
// runtime starts its threads: cmd/hull-runtime's C constructor raises it
// and reports the original value through Raised. From then on:
//
//   - the container init gets the original in its environment (ChildEnv)
//     and puts it back on the thread that execve's the container's
//     process (RestoreFromEnv), so the process sees the host's slack;
//   - programs the runtime runs itself are forked from a thread set back
//     to the original (Spawn).
//
// In a process that never called Raised (hull-agent, tests), every
// function here does nothing.
package timerslack

import (
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// EnvOriginal carries the original slack (nanoseconds) to the container
// init.
const EnvOriginal = "_HULL_TIMERSLACK"

// original is the slack the process started with, 0 when it was not
// changed.
var original uint64

// Raised records that this process raised its timer slack from orig
// before the Go runtime started; 0 means it did not.
func Raised(orig uint64) { original = orig }

// Original is the slack the process started with, 0 when unchanged.
func Original() uint64 { return original }

// ChildEnv is the environment entry that tells the container init the
// original slack: nil when the slack is unchanged.
func ChildEnv() []string {
	if original == 0 {
		return nil
	}
	return []string{EnvOriginal + "=" + strconv.FormatUint(original, 10)}
}

// RestoreFromEnv sets the calling thread's slack to $_HULL_TIMERSLACK (and
// unsets it). The container init calls it on its locked main thread, the
// one that execve's the container's process.
func RestoreFromEnv() error {
	v, ok := os.LookupEnv(EnvOriginal)
	if !ok {
		return nil
	}
	os.Unsetenv(EnvOriginal)
	ns, err := strconv.ParseUint(v, 10, 64)
	if err != nil || ns == 0 {
		return &os.SyscallError{Syscall: "prctl PR_SET_TIMERSLACK " + v, Err: unix.EINVAL}
	}
	return os.NewSyscallError("prctl PR_SET_TIMERSLACK", unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(ns), 0, 0, 0))
}

// Spawn calls start, which forks a child (exec.Cmd.Start), on a thread
// whose slack is back to the original, so the child inherits that. The
// thread keeps the original slack afterwards.
func Spawn(start func() error) error {
	if original == 0 {
		return start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(original), 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_TIMERSLACK", err)
	}
	return start()
}

// RaiseAll sets the timer slack of every thread of this process to ns,
// when the calling thread's is lower, and returns what the calling thread
// had (0 when it changed nothing), for Raised. The calling thread's is
// set before it returns, the others' (~0.1 ms of /proc writes) by a
// goroutine meanwhile. It is the pure Go form of
// hull-runtime's C constructor, for a build without cgo: the Go runtime's
// threads that exist already (sysmon first) are changed through
// /proc/<tid>/timerslack_ns (Linux 4.6, CAP_SYS_NICE; where
// that is refused they keep theirs), and threads started later inherit
// the slack from the ones that start them.
func RaiseAll(ns uint64) uint64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cur, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil || cur <= 0 || uint64(cur) >= ns {
		return 0
	}
	if unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(ns), 0, 0, 0) != nil {
		return 0
	}
	// The threads that exist already are changed beside the caller's
	// work, on a thread of their own.
	go raiseOthers(ns)
	return uint64(cur)
}

// raiseOthers sets the timer slack of this thread and, through /proc, of
// every other thread of the process to ns (see RaiseAll).
func raiseOthers(ns uint64) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(ns), 0, 0, 0)
	// The other threads' files are /proc/<tid>/timerslack_ns (there is
	// none under /proc/self/task/<tid>/), used only when this /proc shows
	// this process's pid namespace. Raw syscalls: this runs once, cold,
	// at the start of a short-lived process, where every code path the
	// os package would take costs its page faults.
	var buf [4096]byte
	pid := strconv.Itoa(unix.Getpid())
	if n, err := unix.Readlink("/proc/self", buf[:]); err != nil || string(buf[:n]) != pid {
		return
	}
	dir, err := unix.Open("/proc/self/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(dir)
	self := strconv.Itoa(unix.Gettid())
	val := []byte(strconv.FormatUint(ns, 10))
	for {
		n, err := unix.Getdents(dir, buf[:])
		if err != nil || n <= 0 {
			break
		}
		_, _, names := unix.ParseDirent(buf[:n], -1, nil)
		for _, name := range names {
			if name == self || name == "" || name[0] < '0' || name[0] > '9' {
				continue
			}
			fd, err := unix.Open("/proc/"+name+"/timerslack_ns", unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			_, _ = unix.Write(fd, val)
			unix.Close(fd)
		}
	}
}
