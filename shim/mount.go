package shim

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/containerd/api/types"
	"golang.org/x/sys/unix"
)

// Mounting the rootfs is written here rather than taken from containerd's
// mount package: that package brings the whole containerd module (and its
// memory) into the shim, and the shim needs only mount(2) with the flag
// options parsed out.

var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"mand":          {false, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

// parseMountOptions splits mount options into mount(2) flags and the data
// string passed to the filesystem.
func parseMountOptions(opts []string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range opts {
		f, ok := mountFlags[o]
		switch {
		case !ok:
			data = append(data, o)
		case f.clear:
			flags &^= f.flag
		default:
			flags |= f.flag
		}
	}
	return flags, strings.Join(data, ",")
}

// mountAll mounts the rootfs mounts containerd sent, in order, on target.
// On error the mounts already made are undone.
func mountAll(mounts []*types.Mount, target string) error {
	if err := os.MkdirAll(target, 0o711); err != nil {
		return err
	}
	for i, m := range mounts {
		flags, data := parseMountOptions(m.Options)
		typ := m.Type
		if flags&unix.MS_BIND != 0 {
			typ = ""
		}
		if err := unix.Mount(m.Source, target, typ, flags&^unix.MS_RDONLY|bindRO(flags), data); err != nil {
			if i > 0 {
				_ = unmountAll(target)
			}
			return fmt.Errorf("mount %s (%s) on %s: %w", m.Source, m.Type, target, err)
		}
		if flags&unix.MS_BIND != 0 && flags&unix.MS_RDONLY != 0 {
			// A bind mount ignores MS_RDONLY until remounted.
			if err := unix.Mount("", target, "", flags|unix.MS_REMOUNT, ""); err != nil {
				_ = unmountAll(target)
				return fmt.Errorf("remount %s read-only: %w", target, err)
			}
		}
	}
	return nil
}

// bindRO keeps MS_RDONLY for non-bind mounts (bind mounts get it by a
// remount).
func bindRO(flags uintptr) uintptr {
	if flags&unix.MS_BIND != 0 {
		return 0
	}
	return flags & unix.MS_RDONLY
}

// unmountAll unmounts everything stacked on target (lazily, so a process
// still holding it does not keep the shim from finishing).
func unmountAll(target string) error {
	for i := 0; i < 64; i++ {
		err := unix.Unmount(target, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return nil
}
