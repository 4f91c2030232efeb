package rootfs

import (
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// PivotRoot makes rootfs the root of the mount namespace and detaches the
// old root. With noPivot it moves rootfs over / and chroots instead (for
// roots pivot_root cannot use, such as a ramfs).
func PivotRoot(rootfs string, noPivot bool) error {
	if noPivot {
		if err := unix.Chdir(rootfs); err != nil {
			return err
		}
		if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move rootfs to /: %w", err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
		return unix.Chdir("/")
	}
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on top of the new one;
	// unmounting "." then removes it without needing a directory for it.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", rootfs, err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return err
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// Finalize runs after pivot_root: rootfsPropagation on the new root,
// read-only and masked paths, and a read-only root.
func Finalize(spec *specs.Spec) error {
	if l := spec.Linux; l != nil {
		if l.RootfsPropagation != "" {
			if err := unix.Mount("", "/", "", PropagationFlags[l.RootfsPropagation], ""); err != nil {
				return fmt.Errorf("linux.rootfsPropagation %s: %w", l.RootfsPropagation, err)
			}
		}
		for _, p := range l.ReadonlyPaths {
			if err := readonlyPath(p); err != nil {
				return fmt.Errorf("linux.readonlyPaths (%s): %w", p, err)
			}
		}
		for _, p := range l.MaskedPaths {
			if err := maskPath(p); err != nil {
				return fmt.Errorf("linux.maskedPaths (%s): %w", p, err)
			}
		}
	}
	if spec.Root != nil && spec.Root.Readonly {
		if err := remountBind("/", unix.MS_RDONLY, true); err != nil {
			return fmt.Errorf("root.readonly: %w", err)
		}
	}
	return nil
}

func readonlyPath(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	return remountBind(p, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_REC, true)
}

func maskPath(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if fi.IsDir() {
		return unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0k")
	}
	if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// Console binds the terminal's slave (slavePath, in the container's devpts)
// over /dev/console.
func Console(slavePath string) error {
	f, err := os.OpenFile("/dev/console", os.O_CREATE|os.O_RDONLY, 0o600)
	if err == nil {
		f.Close()
	}
	if err := unix.Mount(slavePath, "/dev/console", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s to /dev/console: %w", slavePath, err)
	}
	return nil
}
