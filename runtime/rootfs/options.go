package rootfs

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/mount"
)

// PropagationFlags maps mount propagation names (the spec's
// rootfsPropagation values and mount options) to mount(2) flags. It is
// mount.PropagationFlags, the one table of these names.
var PropagationFlags = mount.PropagationFlags

// recursive attributes applied with mount_setattr(AT_RECURSIVE).
var recAttrs = map[string]struct {
	clear bool
	attr  uint64
}{
	"rro":          {false, unix.MOUNT_ATTR_RDONLY},
	"rrw":          {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid":      {false, unix.MOUNT_ATTR_NOSUID},
	"rsuid":        {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev":       {false, unix.MOUNT_ATTR_NODEV},
	"rdev":         {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec":      {false, unix.MOUNT_ATTR_NOEXEC},
	"rexec":        {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":  {false, unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":    {true, unix.MOUNT_ATTR_NODIRATIME},
	"rrelatime":    {false, unix.MOUNT_ATTR_RELATIME},
	"rnorelatime":  {true, unix.MOUNT_ATTR_RELATIME},
	"rnoatime":     {false, unix.MOUNT_ATTR_NOATIME},
	"rstrictatime": {false, unix.MOUNT_ATTR_STRICTATIME},
}

// parsedOptions is a mount's options split by what the kernel does with
// them.
type parsedOptions struct {
	flags       uintptr
	propagation []uintptr
	setAttr     uint64
	clrAttr     uint64
	data        string
}

// parseOptions splits mount options into mount(2) flags, propagation
// changes, recursive attributes and the filesystem's data string.
func parseOptions(opts []string) (parsedOptions, error) {
	var p parsedOptions
	var data []string
	// Flag and propagation names are mount's table; what is left is the
	// runtime's own options and the filesystem data.
	mo := mount.ParseOptions(opts)
	p.flags = mo.Flags
	p.propagation = mo.Propagation
	for _, o := range mo.Rest {
		if a, ok := recAttrs[o]; ok {
			if a.clear {
				p.clrAttr |= a.attr
			} else {
				p.setAttr |= a.attr
			}
			continue
		}
		switch o {
		case "idmap", "ridmap":
			return p, fmt.Errorf("mount option %q: %w", o, errNotSupported)
		case "tmpcopyup":
			return p, fmt.Errorf("mount option %q: %w", o, errNotSupported)
		}
		data = append(data, o)
	}
	p.data = strings.Join(data, ",")
	return p, nil
}

// MountOptions lists every mount option hull-runtime understands.
func MountOptions() []string {
	var out []string
	for k := range mount.FlagOptions {
		out = append(out, k)
	}
	for k := range PropagationFlags {
		out = append(out, k)
	}
	for k := range recAttrs {
		out = append(out, k)
	}
	return out
}
