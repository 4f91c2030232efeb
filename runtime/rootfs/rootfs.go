// Package rootfs builds a container's root filesystem inside its new mount
// namespace: the spec's mounts in order, the default devices and /dev
// links, pivot_root (or MS_MOVE + chroot), masked and read-only paths and
// a read-only root. It runs in `hull-runtime init`, before the user
// process.
//
// Mount destinations are resolved inside the rootfs with
// github.com/cyphar/filepath-securejoin and mounted through an O_PATH
// handle (/proc/self/fd/N), so a symlink in the rootfs, even one swapped
// in while we work, cannot send a mount outside it (CVE-2021-30465). The
// targets of proc and sysfs mounts must be real directories, not symlinks
// (CVE-2019-16884).
package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var errNotSupported = errors.New("not supported")

// Options are the runtime's choices for one container's rootfs.
type Options struct {
	// Rootfs is the absolute host path of the root filesystem.
	Rootfs string
	// Bundle resolves relative bind sources.
	Bundle string
	// UserNS: the container has its own user namespace (devices are
	// bind-mounted, not made with mknod; locked mount flags are kept).
	UserNS bool
	// CgroupNS: the container has its own cgroup namespace.
	CgroupNS bool
	// Cgroups returns the container's /proc/self/cgroup (controller list
	// -> path), read before any cgroup namespace was entered. It is
	// called at the first cgroup mount: it may wait until the runtime
	// has moved the init into its cgroup.
	Cgroups func() (map[string]string, error)

	// hostMounts is /proc/self/mountinfo as Prepare found it, read once
	// (the kernel formats the whole table on every read): what the
	// rootfs's parent and the cgroup mounts are looked up in.
	hostMounts []mountEntry
}

// Prepare makes the mounts of spec under opts.Rootfs, then the devices.
// It must run in the container's (new) mount namespace.
func Prepare(spec *specs.Spec, opts Options) error {
	// Until pivot_root the tree is a slave of the host's (or private):
	// nothing made here leaks out, and pivot_root and the rootfs bind
	// work. rootfsPropagation itself is applied to the new root after
	// pivot_root (Finalize), since pivot_root refuses a shared root and
	// an unbindable tree cannot be bound.
	prop := uintptr(unix.MS_SLAVE | unix.MS_REC)
	if spec.Linux != nil && spec.Linux.RootfsPropagation != "" {
		f, ok := PropagationFlags[spec.Linux.RootfsPropagation]
		if !ok {
			return fmt.Errorf("linux.rootfsPropagation: unknown value %q", spec.Linux.RootfsPropagation)
		}
		if f&unix.MS_PRIVATE != 0 {
			prop = unix.MS_PRIVATE | unix.MS_REC
		}
	}
	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("set propagation of / : %w", err)
	}
	if err := unix.Mount(opts.Rootfs, opts.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("root.path: bind %s: %w", opts.Rootfs, err)
	}
	mi, err := readMountinfo()
	if err != nil {
		return err
	}
	opts.hostMounts = mi
	if err := parentPrivate(opts.Rootfs, mi); err != nil {
		return err
	}
	for i := range spec.Mounts {
		if err := mountOne(&spec.Mounts[i], opts); err != nil {
			return fmt.Errorf("mounts[%d] (%s): %w", i, spec.Mounts[i].Destination, err)
		}
	}
	if err := setupDevices(spec, opts); err != nil {
		return err
	}
	closeResolvers()
	return nil
}

// parentPrivate makes the mount holding rootfs private: pivot_root
// refuses a new root whose parent mount is shared.
func parentPrivate(rootfs string, mi []mountEntry) error {
	dir := filepath.Dir(rootfs)
	best := "/"
	for _, m := range mi {
		mp := m.mountpoint
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if err := unix.Mount("", best, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", best, err)
	}
	return nil
}

type mountEntry struct {
	root, mountpoint, fstype, source, superOpts string
}

func readMountinfo() ([]mountEntry, error) {
	data, err := readProcFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []mountEntry
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		sep := -1
		for i, fl := range fields {
			if fl == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(fields) < 5 || sep+3 > len(fields) {
			continue
		}
		out = append(out, mountEntry{
			root:       unescape(fields[3]),
			mountpoint: unescape(fields[4]),
			fstype:     fields[sep+1],
			source:     fields[sep+2],
			superOpts:  fields[sep+3],
		})
	}
	return out, nil
}

// readProcFile reads a /proc file with plain read(2)s. os.Open would
// register it with the Go runtime's poller (procfs files can be polled),
// and the init's first such file sets the poller up: an epoll instance
// and an eventfd, then more threads and wakeups for the scheduler.
func readProcFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 8192)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isBind(m *specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

func procPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// checkRealDir refuses a proc or sysfs destination that is (or passes
// through) a symlink, or is not a directory.
func checkRealDir(rootfs, dest string) error {
	p := rootfs
	for _, part := range strings.Split(filepath.Clean("/"+dest), "/") {
		if part == "" {
			continue
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("destination %s is a symlink (%s): refused", dest, p)
		}
		if !fi.IsDir() {
			return fmt.Errorf("destination %s is not a directory", dest)
		}
	}
	return nil
}

func mountOne(m *specs.Mount, opts Options) error {
	po, err := parseOptions(m.Options)
	if err != nil {
		return err
	}
	switch {
	case isBind(m):
		return bindMount(m, po, opts)
	case m.Type == "cgroup" || m.Type == "cgroup2":
		return cgroupMount(m, po, opts)
	}
	if m.Type == "proc" || m.Type == "sysfs" {
		if err := checkRealDir(opts.Rootfs, m.Destination); err != nil {
			return err
		}
	}
	t, err := target(opts.Rootfs, m.Destination, false)
	if err != nil {
		return err
	}
	defer t.Close()
	src := m.Source
	if src == "" {
		src = m.Type
	}
	flags := po.flags
	if err := unix.Mount(src, procPath(t), m.Type, flags, po.data); err != nil {
		if m.Type == "sysfs" && errors.Is(err, unix.EPERM) && opts.UserNS {
			// Without its own network namespace a user-namespaced
			// container cannot mount sysfs: bind the host's instead.
			err = unix.Mount("/sys", procPath(t), "", unix.MS_BIND|unix.MS_REC, "")
		}
		if err != nil {
			return fmt.Errorf("mount %s (type %s): %w", m.Destination, m.Type, err)
		}
	}
	return finishMount(t, m.Destination, po, opts)
}

// finishMount applies propagation and recursive attributes.
func finishMount(t *os.File, dest string, po parsedOptions, opts Options) error {
	for _, p := range po.propagation {
		if err := unix.Mount("", procPath(t), "", p, ""); err != nil {
			return fmt.Errorf("set propagation of %s: %w", dest, err)
		}
	}
	if po.setAttr != 0 || po.clrAttr != 0 {
		t2, err := reopenMount(t, opts, dest)
		if err != nil {
			return err
		}
		defer t2.Close()
		attr := &unix.MountAttr{Attr_set: po.setAttr, Attr_clr: po.clrAttr}
		if err := unix.MountSetattr(int(t2.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
			return fmt.Errorf("set recursive attributes of %s: %w", dest, err)
		}
	}
	return nil
}

func bindMount(m *specs.Mount, po parsedOptions, opts Options) error {
	src := m.Source
	if !filepath.IsAbs(src) {
		src = filepath.Join(opts.Bundle, src)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("bind source: %w", err)
	}
	t, err := target(opts.Rootfs, m.Destination, !fi.IsDir())
	if err != nil {
		return err
	}
	defer t.Close()
	flags := uintptr(unix.MS_BIND) | po.flags&unix.MS_REC
	if err := unix.Mount(src, procPath(t), "", flags, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	t2, err := reopenMount(t, opts, m.Destination)
	if err != nil {
		return err
	}
	defer t2.Close()
	if rest := po.flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT); rest != 0 {
		if err := remountBind(procPath(t2), rest, opts.UserNS); err != nil {
			return fmt.Errorf("remount %s: %w", m.Destination, err)
		}
	}
	return finishMount(t2, m.Destination, po, opts)
}

// remountBind applies flags to a bind mount. When the kernel refuses
// (EPERM: a user namespace may not clear the flags it "locked" on the
// source), it retries keeping the source's nosuid/nodev/noexec/atime flags.
func remountBind(path string, flags uintptr, userns bool) error {
	err := unix.Mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|flags, "")
	if err == nil || !errors.Is(err, unix.EPERM) {
		return err
	}
	var st unix.Statfs_t
	if serr := unix.Statfs(path, &st); serr != nil {
		return err
	}
	locked := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
		unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	return unix.Mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|flags|locked, "")
}
