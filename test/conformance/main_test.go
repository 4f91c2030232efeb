package conformance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cgroupParents are the parent cgroups the tests' cgroupsPath values
// name; a runtime creates them and removes only the container's own.
var cgroupParents = []string{"hull-conformance", "hull-conformance-rel"}

func TestMain(m *testing.M) {
	code := m.Run()
	removeCgroupParents()
	os.Exit(code)
}

// removeCgroupParents removes the parents once empty, both at the root of
// each hierarchy (absolute paths) and under this process's own cgroups
// (where runtimes put relative paths).
func removeCgroupParents() {
	var bases []string
	for _, m := range parseMountinfo(readFile("/proc/self/mountinfo")) {
		if m.fsType == "cgroup" || m.fsType == "cgroup2" {
			bases = append(bases, m.mountPoint)
		}
	}
	var own []string
	for _, l := range strings.Split(strings.TrimSpace(readFile("/proc/self/cgroup")), "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 {
			own = append(own, f[2])
		}
	}
	for _, base := range bases {
		for _, parent := range cgroupParents {
			os.Remove(filepath.Join(base, parent))
			for _, o := range own {
				os.Remove(filepath.Join(base, o, parent))
			}
		}
	}
}
