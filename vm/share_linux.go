package vm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// StartWithBinds starts cmd (a share's file server, virtiofsd) in a mount
// namespace of its own in which s.Binds are mounted under s.Source, and
// sends cmd.Wait's result to exited. Drivers call it for a Share with
// Binds. The namespace is made on a locked OS thread, which returns to the
// host's namespace once the server started and is never handed back to the
// Go scheduler: it stays parked in cmd.Wait, because the server's PDEATHSIG
// fires when the thread that forked it ends. Only the server (and its
// children) hold the namespace, so every bind goes with it. The host's mount table never holds
// the binds, so nothing is left to unmount however the shim ends.
func StartWithBinds(cmd *exec.Cmd, s Share, exited chan<- error) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread no longer shares its filesystem
		// attributes with the others; Go ends it when this goroutine
		// returns.
		host, err := os.Open("/proc/thread-self/ns/mnt")
		if err != nil {
			started <- fmt.Errorf("open the mount namespace: %w", err)
			return
		}
		err = bindInNewNS(s)
		if err == nil {
			err = cmd.Start()
		}
		// Back to the host's namespace: the new one lives on in the
		// server, and the thread may be the main one, whose namespace is
		// what /proc/self/mountinfo shows the whole process.
		serr := unix.Setns(int(host.Fd()), unix.CLONE_NEWNS)
		host.Close()
		if serr != nil && err == nil {
			err = fmt.Errorf("back to the host mount namespace: %w", serr)
			if cmd.Process != nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		}
		started <- err
		if err != nil {
			return
		}
		exited <- cmd.Wait()
	}()
	return <-started
}

// bindInNewNS moves the calling thread into a new mount namespace, a slave
// of the host's (unmounts on the host reach it), and mounts s.Binds.
func bindInNewNS(s Share) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make / a slave mount: %w", err)
	}
	for _, b := range s.Binds {
		target := filepath.Join(s.Source, b.Target)
		flags := uintptr(unix.MS_BIND)
		if b.Recursive {
			flags |= unix.MS_REC
		}
		if err := unix.Mount(b.Source, target, "", flags, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", b.Source, target, err)
		}
		if b.ReadOnly {
			if err := readOnly(target, b.Recursive); err != nil {
				return fmt.Errorf("make bind %s read-only: %w", target, err)
			}
		}
	}
	return nil
}

// readOnly makes the bind at target read-only (with its submounts when
// recursive) with mount_setattr, which keeps the mount's other flags; on
// kernels before 5.12 a bind remount of the top mount.
func readOnly(target string, recursive bool) error {
	flags := 0
	if recursive {
		flags = unix.AT_RECURSIVE
	}
	err := unix.MountSetattr(-1, target, uint(flags), &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	if err != unix.ENOSYS {
		return err
	}
	return unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
}
