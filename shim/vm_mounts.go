package shim

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/vm"
)

// Bind mounts in the vm mode (volumes, the resolv.conf, hosts and hostname
// files hulld writes, --mount type=bind). Kata's way: one more virtio-fs
// share, of a directory in the VM's state dir holding an empty file or
// directory per bind; the QEMU driver bind-mounts each source there in a
// mount namespace private to that share's virtiofsd (see vm.Share.Binds),
// read-only where the mount asks for it. The agent mounts the share at
// vmGuestMounts and the guest spec's mounts take their sources from there.
// Other mounts (proc, sysfs, tmpfs, devpts, ...) are made by the guest, as
// are binds of /dev, /proc and /sys paths, which mean the guest's own.

const (
	vmMountsTag   = "hullmounts"
	vmGuestMounts = "/run/hull-agent/mounts"
)

// ErrBindSource: a bind mount's source cannot be shared into the guest.
var ErrBindSource = fmt.Errorf("bind mount source: %w", errdefs.ErrInvalidArgument)

// isBind says whether m is a bind mount (type bind, or the bind/rbind
// option, as runc reads it).
func isBind(m specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// guestOwnPath says whether a bind source names something the guest has
// of its own at the same path.
func guestOwnPath(p string) bool {
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// vmBinds prepares the share of the spec's bind mounts in dir (created):
// an empty file or directory per shared mount, and returns the share's
// binds and the guest source of each spec mount index shared. No binds:
// nil, nil and no directory.
func vmBinds(s *specs.Spec, dir string) ([]vm.Bind, map[int]string, error) {
	var binds []vm.Bind
	guest := map[int]string{}
	for i, m := range s.Mounts {
		if !isBind(m) || guestOwnPath(filepath.Clean(m.Source)) {
			continue
		}
		if !filepath.IsAbs(m.Source) {
			return nil, nil, fmt.Errorf("%w: %q (for %s) is not absolute", ErrBindSource, m.Source, m.Destination)
		}
		st, err := os.Stat(m.Source)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s (for %s): %w", ErrBindSource, m.Source, m.Destination, err)
		}
		if !st.IsDir() && !st.Mode().IsRegular() {
			return nil, nil, fmt.Errorf("%w: %s (for %s) is a %s; only files and directories reach the guest", ErrBindSource, m.Source, m.Destination, st.Mode().Type())
		}
		if len(binds) == 0 {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, nil, err
			}
		}
		name := "m" + strconv.Itoa(i)
		target := filepath.Join(dir, name)
		if st.IsDir() {
			err = os.Mkdir(target, 0o755)
		} else {
			err = os.WriteFile(target, nil, 0o644)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("bind mount point %s: %w", target, err)
		}
		binds = append(binds, vm.Bind{
			Source: m.Source, Target: name,
			ReadOnly:  slices.Contains(m.Options, "ro"),
			Recursive: slices.Contains(m.Options, "rbind"),
		})
		guest[i] = vmGuestMounts + "/" + name
	}
	if len(binds) == 0 {
		return nil, nil, nil
	}
	return binds, guest, nil
}
