package mount

import "golang.org/x/sys/unix"

// FlagOption is what one mount(8) style option does to the mount(2) flags:
// Flag is set, or cleared when Clear is true (so "ro" then "rw" leaves the
// mount writable).
type FlagOption struct {
	Clear bool
	Flag  uintptr
}

// FlagOptions maps the option names that become mount(2) flags to their
// effect. It is the one table of these names in Hull: Mount uses it for
// snapshot and image mounts, and the container runtime (runtime/rootfs) for
// the spec's mounts. Read it, never modify it.
var FlagOptions = map[string]FlagOption{
	"acl":           {false, unix.MS_POSIXACL},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"iversion":      {false, unix.MS_I_VERSION},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"loud":          {true, unix.MS_SILENT},
	"mand":          {false, unix.MS_MANDLOCK},
	"noacl":         {true, unix.MS_POSIXACL},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"noiversion":    {true, unix.MS_I_VERSION},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"nosymfollow":   {false, unix.MS_NOSYMFOLLOW},
	"symfollow":     {true, unix.MS_NOSYMFOLLOW},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"silent":        {false, unix.MS_SILENT},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

// PropagationFlags maps mount propagation names (mount options, and the
// OCI spec's linux.rootfsPropagation values) to mount(2) flags. Read it,
// never modify it.
var PropagationFlags = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// Options are mount options split by what mount(2) does with them.
type Options struct {
	// Flags are the mount flags from the FlagOptions names, applied in
	// order.
	Flags uintptr
	// Propagation holds one entry per PropagationFlags name, in order;
	// each is a separate mount(2) call after the mount itself.
	Propagation []uintptr
	// Rest are the other options, in order: filesystem data, or options a
	// caller interprets itself.
	Rest []string
}

// ParseOptions splits opts into flags, propagation changes and the rest.
// It never fails: an unknown name goes to Rest.
func ParseOptions(opts []string) Options {
	var o Options
	for _, s := range opts {
		if f, ok := FlagOptions[s]; ok {
			if f.Clear {
				o.Flags &^= f.Flag
			} else {
				o.Flags |= f.Flag
			}
			continue
		}
		if p, ok := PropagationFlags[s]; ok {
			o.Propagation = append(o.Propagation, p)
			continue
		}
		o.Rest = append(o.Rest, s)
	}
	return o
}
