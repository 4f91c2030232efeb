// Package mount describes filesystem mounts as data (type, source, options)
// and performs them on Linux.
//
// The shape follows containerd's mount package so snapshotters can hand
// mounts to callers (the daemon, the runtime, the VM builder) without those
// callers knowing how a snapshot is stored. It is written here rather than
// imported because containerd's package drags in its whole core module; the
// parts kept are the option parser and the overlay long-lowerdir handling.
//
// The option-name tables (FlagOptions, PropagationFlags) and ParseOptions
// are the one place Hull maps mount(8) option names to mount(2) flags; the
// container runtime (runtime/rootfs) uses them too.
//
// Overlay mounts with many layers can exceed the kernel's limit on mount data
// (one page). Mount then performs the mount from a thread whose working
// directory is the common parent of the layer directories (the thread has
// its own fs_struct via unshare(CLONE_FS), so the rest of the process is
// unaffected) and passes short relative paths. If that is still too long, it
// fails with an error naming the limit.
package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Mount is one filesystem mount: what mount(8) would take as -t Type Source
// -o Options.
type Mount struct {
	// Type is the filesystem type ("overlay", "bind", "ext4", ...). "bind"
	// and "rbind" are accepted as types as well as options.
	Type string
	// Source is the device, directory or pseudo-source ("overlay").
	Source string
	// Options are mount(8) style options; flag options (ro, nosuid, bind,
	// ...) are turned into mount flags, the rest becomes mount data.
	Options []string
}

// ErrOptionsTooLong is returned when the mount data cannot fit the kernel's
// one-page limit even with relative paths.
var ErrOptionsTooLong = fmt.Errorf("mount options exceed the kernel page-size limit: %w", errdefs.ErrInvalidArgument)

// parseOptions splits options into mount flags, the propagation flags
// (all of them, applied in one mount(2) call) and the data options.
func parseOptions(opts []string) (flags, prop uintptr, data []string) {
	o := ParseOptions(opts)
	for _, p := range o.Propagation {
		prop |= p
	}
	return o.Flags, prop, o.Rest
}

// ReadOnly reports whether the options make the mount read-only.
func (m Mount) ReadOnly() bool {
	flags, _, _ := parseOptions(m.Options)
	return flags&unix.MS_RDONLY != 0
}

// IsBind reports whether m is a bind mount (by type or option).
func (m Mount) IsBind() bool {
	if m.Type == "bind" || m.Type == "rbind" {
		return true
	}
	flags, _, _ := parseOptions(m.Options)
	return flags&unix.MS_BIND != 0
}

// Mount mounts m on target, which must exist.
func (m Mount) Mount(target string) error {
	flags, prop, data := parseOptions(m.Options)
	typ := m.Type
	if typ == "bind" || typ == "rbind" {
		flags |= unix.MS_BIND
		if typ == "rbind" {
			flags |= unix.MS_REC
		}
		typ = ""
	}
	if flags&unix.MS_BIND != 0 {
		typ = ""
	}
	if err := m.mountData(typ, target, flags, data); err != nil {
		return err
	}
	// A read-only bind needs a remount: MS_RDONLY is ignored on the first
	// bind mount call.
	if flags&unix.MS_BIND != 0 && flags&unix.MS_RDONLY != 0 {
		rf := flags | unix.MS_REMOUNT
		if err := unix.Mount("", target, "", rf, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return &os.PathError{Op: "mount remount ro", Path: target, Err: err}
		}
	}
	if prop != 0 {
		if err := unix.Mount("", target, "", prop, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return &os.PathError{Op: "mount propagation", Path: target, Err: err}
		}
	}
	return nil
}

func (m Mount) mountData(typ, target string, flags uintptr, data []string) error {
	joined := strings.Join(data, ",")
	pagesize := os.Getpagesize()
	if m.Type == "overlay" && len(joined) >= pagesize {
		dir, rel, err := shortenOverlay(data)
		if err != nil {
			return err
		}
		joined = strings.Join(rel, ",")
		if len(joined) >= pagesize {
			return fmt.Errorf("overlay on %s: %d bytes of options with relative paths (limit %d, too many layers): %w",
				target, len(joined), pagesize-1, ErrOptionsTooLong)
		}
		absTarget, err := filepath.Abs(target)
		if err != nil {
			return err
		}
		return mountInDir(dir, m.Source, absTarget, typ, flags, joined)
	}
	if err := unix.Mount(m.Source, target, typ, flags, joined); err != nil {
		return &os.PathError{Op: fmt.Sprintf("mount %s %s (options %q)", typ, m.Source, joined), Path: target, Err: err}
	}
	return nil
}

// shortenOverlay rewrites the lowerdir/upperdir/workdir options relative to
// their longest common parent directory.
func shortenOverlay(data []string) (string, []string, error) {
	var paths []string
	for _, o := range data {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			continue
		}
		switch k {
		case "lowerdir":
			paths = append(paths, strings.Split(v, ":")...)
		case "upperdir", "workdir":
			paths = append(paths, v)
		}
	}
	if len(paths) == 0 {
		return "", nil, fmt.Errorf("overlay without layer directories: %w", errdefs.ErrInvalidArgument)
	}
	common := filepath.Dir(paths[0])
	for _, p := range paths[1:] {
		for common != "/" && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	if !filepath.IsAbs(common) {
		return "", nil, fmt.Errorf("overlay layer paths must be absolute to be shortened: %w", errdefs.ErrInvalidArgument)
	}
	rel := func(p string) string {
		r, err := filepath.Rel(common, p)
		if err != nil {
			return p
		}
		return r
	}
	out := make([]string, 0, len(data))
	for _, o := range data {
		k, v, ok := strings.Cut(o, "=")
		switch {
		case ok && k == "lowerdir":
			parts := strings.Split(v, ":")
			for i := range parts {
				parts[i] = rel(parts[i])
			}
			out = append(out, "lowerdir="+strings.Join(parts, ":"))
		case ok && (k == "upperdir" || k == "workdir"):
			out = append(out, k+"="+rel(v))
		default:
			out = append(out, o)
		}
	}
	return common, out, nil
}

// mountInDir performs one mount(2) from a dedicated OS thread whose working
// directory is dir. The thread unshares its fs_struct first, so changing its
// directory does not move the rest of the process; it is never handed back
// to the Go scheduler (the goroutine exits while still locked, which ends the
// thread).
func mountInDir(dir, source, target, typ string, flags uintptr, data string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs for relative overlay mount: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- &os.PathError{Op: "chdir", Path: dir, Err: err}
			return
		}
		if err := unix.Mount(source, target, typ, flags, data); err != nil {
			errc <- &os.PathError{Op: fmt.Sprintf("mount %s (in %s, options %q)", typ, dir, data), Path: target, Err: err}
			return
		}
		errc <- nil
	}()
	return <-errc
}

// All mounts ms on target in order; on failure the mounts already made are
// undone.
func All(ms []Mount, target string) error {
	for i, m := range ms {
		if err := m.Mount(target); err != nil {
			for j := 0; j < i; j++ {
				_ = Unmount(target, unix.MNT_DETACH)
			}
			return err
		}
	}
	return nil
}

// Unmount unmounts target once, retrying while the kernel reports EBUSY for
// a short while. EINVAL (not a mount point) is returned as is.
func Unmount(target string, flags int) error {
	var err error
	for i := 0; i < 50; i++ {
		err = unix.Unmount(target, flags)
		if err != unix.EBUSY {
			break
		}
		sleepBrief(i)
	}
	if err != nil {
		return &os.PathError{Op: "unmount", Path: target, Err: err}
	}
	return nil
}

// UnmountAll unmounts every mount stacked on target and every mount below
// it, deepest first. A target that is not mounted (or does not exist) is not
// an error.
func UnmountAll(target string, flags int) error {
	if target == "" {
		return nil
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	} else if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(abs))
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	// Deepest first; for equal paths, the last mounted (highest ID) first.
	sort.Slice(infos, func(i, j int) bool {
		if len(infos[i].Mountpoint) != len(infos[j].Mountpoint) {
			return len(infos[i].Mountpoint) > len(infos[j].Mountpoint)
		}
		return infos[i].ID > infos[j].ID
	})
	for _, mi := range infos {
		if err := Unmount(mi.Mountpoint, flags); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

// WithTempMount mounts ms on a fresh temporary directory, runs fn with it,
// then unmounts and removes the directory.
func WithTempMount(ms []Mount, fn func(root string) error) (err error) {
	dir, err := os.MkdirTemp("", "hull-mount-")
	if err != nil {
		return err
	}
	defer func() {
		if uerr := UnmountAll(dir, 0); uerr != nil && err == nil {
			err = uerr
		}
		if rerr := os.Remove(dir); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err := All(ms, dir); err != nil {
		return err
	}
	return fn(dir)
}

func sleepBrief(i int) { time.Sleep(time.Duration(i+1) * 2 * time.Millisecond) }
