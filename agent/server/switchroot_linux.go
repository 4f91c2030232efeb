package server

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// EnvSwitched marks the agent re-executed by SwitchRoot.
const EnvSwitched = "HULL_AGENT_SWITCHED"

// SwitchRoot moves PID 1 off the initramfs: the kernel's rootfs cannot be
// left by pivot_root (it has no parent mount), which the container runtime
// needs. So, as switch_root does, the agent mounts a tmpfs, empties the
// initramfs of what it no longer needs (the module files), moves the tmpfs
// over / and chroots into it. The agent keeps running from its binary in
// the old root (an open inode; /proc/self/exe still reaches it, which is
// all the runtime needs to re-execute it as a container init), so nothing
// is copied and nothing re-executed. Returns at once when / is not a
// ramfs/tmpfs (booted from a real root filesystem).
func SwitchRoot() error {
	var sfs unix.Statfs_t
	if err := unix.Statfs("/", &sfs); err != nil {
		return err
	}
	if sfs.Type != unix.RAMFS_MAGIC && sfs.Type != unix.TMPFS_MAGIC {
		return nil
	}
	const newRoot = "/newroot"
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", newRoot, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", newRoot, err)
	}
	for _, d := range baseDirs {
		if err := os.MkdirAll(newRoot+"/"+d, 0o755); err != nil {
			return err
		}
	}
	_ = os.RemoveAll("/lib/modules")
	if err := os.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return os.Chdir("/")
}

// baseDirs are the mount points of the new root.
var baseDirs = []string{"dev", "proc", "sys", "run", "tmp", "etc", "root"}
