package rootfs

import (
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultDevices are made in every container's /dev (runtime-spec
// config-linux.md, "Default Devices").
var DefaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

var devLinks = [][2]string{
	{"/proc/self/fd", "/dev/fd"},
	{"/proc/self/fd/0", "/dev/stdin"},
	{"/proc/self/fd/1", "/dev/stdout"},
	{"/proc/self/fd/2", "/dev/stderr"},
	{"pts/ptmx", "/dev/ptmx"},
}

// hostDev reports whether /dev is a bind of the host's (then runc makes no
// devices).
func hostDev(spec *specs.Spec) bool {
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		if filepath.Clean(m.Destination) == "/dev" && isBind(m) {
			return true
		}
	}
	return false
}

func setupDevices(spec *specs.Spec, opts Options) error {
	if hostDev(spec) {
		return nil
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	devs := append([]specs.LinuxDevice(nil), DefaultDevices...)
	if spec.Linux != nil {
		devs = append(devs, spec.Linux.Devices...)
	}
	// Most of these share their directory (/dev): it is resolved once.
	parents := parentDirs{rootfs: opts.Rootfs}
	for i := range devs {
		if i >= len(DefaultDevices) {
			if err := checkExisting(&devs[i], &parents); err != nil {
				return fmt.Errorf("linux.devices (%s): %w", devs[i].Path, err)
			}
		}
		if err := makeDevice(&devs[i], opts, &parents); err != nil {
			return fmt.Errorf("linux.devices (%s): %w", devs[i].Path, err)
		}
	}
	for _, l := range devLinks {
		if err := link(&parents, l[0], l[1]); err != nil {
			return err
		}
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		if err := link(&parents, "/proc/kcore", "/dev/core"); err != nil {
			return err
		}
	}
	return nil
}

func link(parents *parentDirs, oldname, newname string) error {
	p, err := parents.join(newname)
	if err != nil {
		return err
	}
	if err := os.Symlink(oldname, p); err != nil && !os.IsExist(err) {
		return fmt.Errorf("symlink %s: %w", newname, err)
	}
	return nil
}

func makeDevice(d *specs.LinuxDevice, opts Options, parents *parentDirs) error {
	mode := uint32(0o666)
	if d.FileMode != nil {
		mode = uint32(*d.FileMode) & 0o7777
	}
	var typ uint32
	switch d.Type {
	case "c", "u":
		typ = unix.S_IFCHR
	case "b":
		typ = unix.S_IFBLK
	case "p":
		typ = unix.S_IFIFO
	default:
		return fmt.Errorf("type %q: want c, b, u or p", d.Type)
	}
	p, err := parents.join(d.Path)
	if err != nil {
		return err
	}
	if opts.UserNS {
		// mknod is not allowed in a user namespace: bind the host's node.
		t, err := target(opts.Rootfs, d.Path, true)
		if err != nil {
			return err
		}
		defer t.Close()
		if err := unix.Mount(d.Path, procPath(t), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind host %s: %w", d.Path, err)
		}
		return nil
	}
	dev := unix.Mkdev(uint32(d.Major), uint32(d.Minor))
	err = unix.Mknod(p, typ|mode, int(dev))
	if err == unix.EEXIST {
		// Replaced (a spec device checked by checkExisting, or a
		// rootfs that has one already).
		os.Remove(p)
		err = unix.Mknod(p, typ|mode, int(dev))
	}
	if err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if err := unix.Lchown(p, uid, gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	return nil
}

// parentDirs resolves the parent directories of paths inside rootfs,
// each once.
type parentDirs struct {
	rootfs string
	real   map[string]string // parent in the container -> host path
}

// join creates the parent directory of name inside the rootfs and returns
// a host path to name whose parent is known to be inside the rootfs. The
// parent's resolution is kept for the next names in it: the init runs
// alone in its mount namespace, and no process of the container exists
// yet to change the tree meanwhile.
func (pd *parentDirs) join(name string) (string, error) {
	dir := filepath.Dir(name)
	real, ok := pd.real[dir]
	if !ok {
		t, err := target(pd.rootfs, dir, false)
		if err != nil {
			return "", err
		}
		real, err = os.Readlink(procPath(t))
		t.Close()
		if err != nil {
			return "", err
		}
		if pd.real == nil {
			pd.real = map[string]string{}
		}
		pd.real[dir] = real
	}
	return filepath.Join(real, filepath.Base(name)), nil
}

// checkExisting refuses a spec device whose path already holds something
// that is not that device (config-linux.md, "Devices").
func checkExisting(d *specs.LinuxDevice, parents *parentDirs) error {
	p, err := parents.join(d.Path)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil
	}
	want := map[string]uint32{"c": unix.S_IFCHR, "u": unix.S_IFCHR, "b": unix.S_IFBLK, "p": unix.S_IFIFO}[d.Type]
	if st.Mode&unix.S_IFMT != want {
		return fmt.Errorf("%s already exists and is not a %q device", d.Path, d.Type)
	}
	if d.Type != "p" && (unix.Major(st.Rdev) != uint32(d.Major) || unix.Minor(st.Rdev) != uint32(d.Minor)) {
		return fmt.Errorf("%s already exists as device %d:%d, not %d:%d", d.Path, unix.Major(st.Rdev), unix.Minor(st.Rdev), d.Major, d.Minor)
	}
	return nil
}
