package runspec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Rootless turns s into a spec an unprivileged user can run, as
// `runc spec --rootless` does:
//
//   - a new user namespace mapping the caller's effective uid and gid to
//     root (size 1), and no network namespace (an unprivileged user
//     cannot configure one, so the host's is kept);
//   - /sys as a read-only recursive bind of the host's /sys, because a
//     sysfs cannot be mounted without owning the network namespace;
//   - no uid= or gid= mount options (those ids are not mapped);
//   - no cgroup mount and no linux.resources, since an unprivileged user
//     can neither mount a cgroup v1 hierarchy nor write to cgroups it was
//     not delegated. (runc 1.1 keeps its cgroup mount; Hull removes it, as
//     that mount fails for a rootless user on cgroup v1 hosts.)
func Rootless(s *specs.Spec) {
	l := ensureLinux(s)
	l.Namespaces = slices.DeleteFunc(l.Namespaces, func(n specs.LinuxNamespace) bool {
		return n.Type == specs.NetworkNamespace || n.Type == specs.UserNamespace
	})
	l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	l.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Geteuid()), Size: 1}}
	l.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Getegid()), Size: 1}}
	l.Resources = nil

	var mounts []specs.Mount
	for _, m := range s.Mounts {
		dst := filepath.Clean(m.Destination)
		switch {
		case dst == "/sys":
			mounts = append(mounts, specs.Mount{
				Destination: "/sys", Type: "none", Source: "/sys",
				Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"},
			})
			continue
		case m.Type == "cgroup" || m.Type == "cgroup2":
			continue
		}
		m.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool {
			return strings.HasPrefix(o, "uid=") || strings.HasPrefix(o, "gid=")
		})
		mounts = append(mounts, m)
	}
	s.Mounts = mounts
}

func ensureLinux(s *specs.Spec) *specs.Linux {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	return s.Linux
}
