package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ReadCgroups parses the calling thread's /proc/thread-self/cgroup:
// controller list ("cpu,cpuacct", "" for the v2 hierarchy) -> path. The
// init joins its cgroup v1 hierarchies thread by thread, so the thread
// that execve's (the caller, locked) is the one that counts.
func ReadCgroups() (map[string]string, error) {
	data, err := readProcFile("/proc/thread-self/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		out[parts[1]] = parts[2]
	}
	return out, nil
}

// cgroupMount mounts the container's cgroups at m.Destination. On a v2
// host (or with "cgroup2") with a cgroup namespace it mounts cgroup2;
// without one it binds the container's own cgroup directory. On v1 it
// makes a tmpfs and binds, read-only when asked, the container's own
// directory of every hierarchy, with the usual links for co-mounted
// controllers (cpu -> cpu,cpuacct).
func cgroupMount(m *specs.Mount, po parsedOptions, opts Options) error {
	var cgs map[string]string
	if opts.Cgroups != nil {
		var err error
		if cgs, err = opts.Cgroups(); err != nil {
			return err
		}
	}
	t, err := target(opts.Rootfs, m.Destination, false)
	if err != nil {
		return err
	}
	defer t.Close()
	mi := opts.hostMounts
	if mi == nil {
		if mi, err = readMountinfo(); err != nil {
			return err
		}
	}
	var v1 []mountEntry
	var v2 *mountEntry
	for i := range mi {
		switch mi[i].fstype {
		case "cgroup":
			v1 = append(v1, mi[i])
		case "cgroup2":
			if v2 == nil {
				v2 = &mi[i]
			}
		}
	}
	ro := po.flags&unix.MS_RDONLY != 0
	if len(v1) == 0 || m.Type == "cgroup2" {
		if opts.CgroupNS {
			if err := unix.Mount("cgroup2", procPath(t), "cgroup2", po.flags, ""); err != nil {
				return fmt.Errorf("mount cgroup2: %w", err)
			}
			return nil
		}
		if v2 == nil {
			return fmt.Errorf("no cgroup2 hierarchy on the host")
		}
		src := filepath.Join(v2.mountpoint, relTo(cgs[""], v2.root))
		return bindRO(src, procPath(t), ro)
	}
	if err := unix.Mount("tmpfs", procPath(t), "tmpfs", po.flags&^unix.MS_RDONLY, "mode=755"); err != nil {
		return fmt.Errorf("mount tmpfs for cgroups: %w", err)
	}
	dir, err := reopenMount(t, opts, m.Destination)
	if err != nil {
		return err
	}
	defer dir.Close()
	base := procPath(dir)
	for _, e := range v1 {
		name := filepath.Base(e.mountpoint)
		var ctrls []string
		for _, o := range strings.Split(e.superOpts, ",") {
			if o == "rw" || o == "ro" || strings.HasPrefix(o, "release_agent") || o == "clone_children" || o == "noprefix" || o == "xattr" || o == "nsdelegate" || strings.HasPrefix(o, "cpuset_v2") || o == "favordynmods" {
				continue
			}
			ctrls = append(ctrls, o)
		}
		key := strings.Join(ctrls, ",")
		path, ok := cgs[key]
		if !ok {
			// name=systemd and friends.
			for k, v := range cgs {
				if sameSet(k, ctrls) {
					path, ok = v, true
				}
			}
		}
		if !ok {
			continue
		}
		dst := filepath.Join(base, name)
		if err := os.Mkdir(dst, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
		if err := bindRO(filepath.Join(e.mountpoint, relTo(path, e.root)), dst, ro); err != nil {
			return err
		}
		for _, c := range ctrls {
			if c != name && !strings.HasPrefix(c, "name=") && strings.Contains(name, ",") {
				_ = os.Symlink(name, filepath.Join(base, c))
			}
		}
	}
	if ro {
		if err := unix.Mount("", base, "", unix.MS_REMOUNT|unix.MS_RDONLY|po.flags, "mode=755"); err != nil {
			return fmt.Errorf("remount cgroup tmpfs read-only: %w", err)
		}
	}
	return nil
}

func sameSet(list string, ctrls []string) bool {
	a := strings.Split(list, ",")
	if len(a) != len(ctrls) {
		return false
	}
	b := append([]string(nil), ctrls...)
	sort.Strings(a)
	sort.Strings(b)
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func relTo(path, root string) string {
	if root == "/" || root == "" {
		return path
	}
	if r, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

func bindRO(src, dst string, ro bool) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind cgroup %s: %w", src, err)
	}
	if ro {
		if err := remountBind(dst, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, false); err != nil {
			return fmt.Errorf("remount cgroup %s read-only: %w", src, err)
		}
	}
	return nil
}
