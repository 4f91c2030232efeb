package network

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// newNetNS creates a network namespace and bind-mounts it on path (a new
// file). It is written by hand because the libraries at hand either pin the
// mount directory (vishvananda/netns NewNamed uses /var/run/netns) or are
// test helpers (plugins' testutils.NewNS); the work is one unshare, one bind
// mount and one setns back.
//
// It runs on a goroutine locked to its OS thread. The thread goes back to
// its original namespace before it is unlocked; if that fails the goroutine
// ends still locked and the runtime retires the thread. (Ending locked is
// not a general way out: the main thread is wedged rather than ended, and
// would keep the namespace alive and make /proc/self/net lie.)
func newNetNS(path string) (err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("netns file: %w", err)
	}
	f.Close()
	defer func() {
		if err != nil {
			removeNetNS(path)
		}
	}()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		tid := unix.Gettid()
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", tid)
		orig, err := os.Open(self)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		mountErr := unix.Mount(self, path, "", unix.MS_BIND, "")
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread is in the wrong namespace and must not be reused.
			done <- fmt.Errorf("return to the original network namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		if mountErr != nil {
			mountErr = fmt.Errorf("bind mount %s on %s: %w", self, path, mountErr)
		}
		done <- mountErr
	}()
	return <-done
}

// removeNetNS unmounts and removes a netns file made by newNetNS. A missing
// file or a file that is not mounted is fine.
func removeNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}
