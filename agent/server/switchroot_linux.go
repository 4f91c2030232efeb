package server

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// EnvSwitched marks the agent re-executed by SwitchRoot.
const EnvSwitched = "HULL_AGENT_SWITCHED"

// SwitchRoot moves PID 1 off the initramfs: the kernel's rootfs cannot be
// left by pivot_root (it has no parent mount), which the container
// runtime needs, so the agent copies itself onto a tmpfs, empties the
// initramfs (freeing its memory), moves the tmpfs over / and re-executes
// itself there, as switch_root does. It returns only on error, and at once
// when the agent already runs from the new root.
func SwitchRoot() error {
	if os.Getenv(EnvSwitched) != "" {
		return nil
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs("/", &sfs); err != nil {
		return err
	}
	if sfs.Type != unix.RAMFS_MAGIC && sfs.Type != unix.TMPFS_MAGIC {
		return nil // booted from a real root filesystem
	}
	const newRoot = "/newroot"
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", newRoot, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", newRoot, err)
	}
	if err := copyFile("/proc/self/exe", newRoot+"/init", 0o755); err != nil {
		// /proc may not be mounted yet: the kernel started us as /init.
		if err := copyFile("/init", newRoot+"/init", 0o755); err != nil {
			return err
		}
	}
	for _, d := range baseDirs {
		if err := os.MkdirAll(newRoot+"/"+d, 0o755); err != nil {
			return err
		}
	}
	// Free the initramfs: everything but the new root and /dev/console.
	ents, _ := os.ReadDir("/")
	for _, e := range ents {
		switch e.Name() {
		case "newroot", "dev":
			continue
		}
		_ = os.RemoveAll("/" + e.Name())
	}
	if err := os.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	env := append(os.Environ(), EnvSwitched+"=1")
	return syscall.Exec("/init", os.Args, env)
}

// baseDirs are the mount points of the new root.
var baseDirs = []string{"dev", "proc", "sys", "run", "tmp", "etc", "lib", "root"}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
