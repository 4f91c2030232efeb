package cgroups

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Layout is the arrangement of the host's cgroup hierarchies, as reported by
// Mode. (The function takes the name Mode, so the type is called Layout.)
type Layout int

const (
	// Legacy: only cgroup v1 hierarchies, one per controller (or group of controllers).
	Legacy Layout = iota + 1
	// Hybrid: v1 hierarchies for the controllers, plus a cgroup2 hierarchy at
	// /sys/fs/cgroup/unified that holds whatever controllers v1 did not claim
	// (often none, sometimes hugetlb or misc).
	Hybrid
	// Unified: a single cgroup2 hierarchy mounted at /sys/fs/cgroup.
	Unified
)

func (m Layout) String() string {
	switch m {
	case Legacy:
		return "legacy"
	case Hybrid:
		return "hybrid"
	case Unified:
		return "unified"
	}
	return "unknown"
}

const (
	// Root is where every cgroup hierarchy of the host is mounted.
	Root = "/sys/fs/cgroup"
	// hybridUnified is the cgroup2 mount point in hybrid mode.
	hybridUnified = Root + "/unified"
)

// Mode reports the host's cgroup layout. It is looked up on every call (two
// statfs calls), so a process that mounts the cgroup file systems itself,
// such as the guest agent in a VM, sees the layout it made.
func Mode() Layout {
	return detectMode(Root)
}

// detectMode looks at the file systems mounted at root and root/unified.
func detectMode(root string) Layout {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return Unified
	}
	if err := unix.Statfs(filepath.Join(root, "unified"), &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return Hybrid
	}
	return Legacy
}

// v2Controllers reads the controllers a cgroup2 directory offers to its
// children (cgroup.controllers). A missing file yields none.
func v2Controllers(dir string) map[string]bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, c := range strings.Fields(string(b)) {
		out[c] = true
	}
	return out
}
