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
// test helpers (plugins' testutils.NewNS); the work is one unshare and one
// bind mount.
//
// The unshare happens on a goroutine locked to its OS thread that returns
// without unlocking: the Go runtime then ends that thread, so no goroutine
// ever runs in the new namespace by accident and nothing has to be restored.
func newNetNS(path string) (err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("netns file: %w", err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread is discarded when this goroutine ends.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
			done <- fmt.Errorf("bind mount %s on %s: %w", src, path, err)
			return
		}
		done <- nil
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
