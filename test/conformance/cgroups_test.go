package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
)

// procCgroups maps each controller (and "" for the v2 tree) to pid's
// cgroup path, from /proc/<pid>/cgroup.
func procCgroups(t *testing.T, pid int) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(readFile(fmt.Sprintf("/proc/%d/cgroup", pid))), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			m[c] = f[2]
		}
	}
	return m
}

// cgroupV2 reports whether the host runs the unified hierarchy only.
func cgroupV2() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

// cgroupFile is the host path of file for controller in pid's cgroup.
func cgroupFile(t *testing.T, pid int, controller, file string) string {
	t.Helper()
	cg := procCgroups(t, pid)
	if cgroupV2() {
		return filepath.Join("/sys/fs/cgroup", cg[""], file)
	}
	p, ok := cg[controller]
	if !ok {
		t.Fatalf("pid %d has no %s cgroup: %v", pid, controller, cg)
	}
	return filepath.Join("/sys/fs/cgroup", controller, p, file)
}

// TestCgroups checks config-linux.md cgroupsPath and resources from the
// host: the process is in the cgroup the path names, and each limit is in
// the controller's file.
func TestCgroups(t *testing.T) {
	mem := int64(64 << 20)
	pids := int64(77)
	shares := uint64(512)
	quota, period := int64(50000), uint64(100000)
	type check struct{ controller, v1file, v2file, want string }
	cases := []struct {
		name   string
		path   func(id string) string
		edit   func(r *specs.LinuxResources)
		checks []check
	}{
		{
			// config-linux.md cgroupsPath: "In the case of an absolute path
			// (starting with /), the runtime MUST take the path to be
			// relative to the cgroups mount point."
			name: "absolute-path-limits",
			path: func(id string) string { return "/hull-conformance/" + id },
			edit: func(r *specs.LinuxResources) {
				r.Memory = &specs.LinuxMemory{Limit: &mem}
				r.Pids = &specs.LinuxPids{Limit: &pids}
				r.CPU = &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period}
			},
			checks: []check{
				// config-linux.md memory: "limit (int64, OPTIONAL) - sets
				// limit of memory usage in bytes"; pids: "limit (int64,
				// REQUIRED) - specifies the maximum number of tasks in the
				// cgroup"; cpu: shares, quota, period.
				{"memory", "memory.limit_in_bytes", "memory.max", fmt.Sprint(mem)},
				{"pids", "pids.max", "pids.max", fmt.Sprint(pids)},
				{"cpu", "cpu.shares", "", fmt.Sprint(shares)},
				{"cpu", "cpu.cfs_quota_us", "cpu.max", "50000"},
			},
		},
		{
			// "In the case of a relative path (not starting with /), the
			// runtime MAY interpret the path relative to a runtime-determined
			// location in the cgroups hierarchy": it ends with the path.
			name: "relative-path",
			path: func(id string) string { return "hull-conformance-rel/" + id },
			edit: func(r *specs.LinuxResources) { r.Pids = &specs.LinuxPids{Limit: &pids} },
			checks: []check{
				{"pids", "pids.max", "pids.max", fmt.Sprint(pids)},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t)
			id := r.newID()
			path := tc.path(id)
			b.Spec.Linux.CgroupsPath = path
			tc.edit(b.Spec.Linux.Resources)
			b.Spec.Process.Args = []string{"sleep", "1000"}
			r.create(b, id)
			pid := r.mustState(id).Pid
			for c, p := range procCgroups(t, pid) {
				if c == "name=systemd" || (c == "" && !cgroupV2()) {
					continue
				}
				if !strings.HasSuffix(p, strings.TrimPrefix(path, "/")) || (strings.HasPrefix(path, "/") && p != path) {
					t.Errorf("controller %q: pid %d is in %q, want %q", c, pid, p, path)
				}
			}
			for _, c := range tc.checks {
				file := c.v1file
				if cgroupV2() {
					if c.v2file == "" {
						continue
					}
					file = c.v2file
				}
				got := strings.TrimSpace(readFile(cgroupFile(t, pid, c.controller, file)))
				if cgroupV2() && file == "cpu.max" {
					got = strings.Fields(got)[0]
				}
				if got != c.want {
					t.Errorf("%s: %q, want %q", file, got, c.want)
				}
			}
			r.stop(id)
		})
	}
}

// TestCgroupLimitsEnforced checks that limits act on the container's
// processes: the pids limit makes fork fail.
func TestCgroupLimitsEnforced(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t)
	limit := int64(5)
	b.Spec.Linux.CgroupsPath = "/hull-conformance/" + r.newID()
	b.Spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: &limit}
	b.Spec.Process.Args = []string{"sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo done"}
	res, err := r.tryRun(b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.stderr, "fork") && !strings.Contains(res.stderr, "resource") && !strings.Contains(res.stderr, "Resource") {
		t.Errorf("8 background processes under pids.max=5 did not fail to fork: code %d stdout %q stderr %q", res.code, res.stdout, res.stderr)
	}
}

// TestUnifiedResources checks config-linux.md unified: on cgroup v2
// "Configuration unknown to the runtime MUST still be written to the
// relevant file"; where there is no cgroup v2 controller to write it to,
// "The runtime MUST generate an error when the configuration refers to a
// cgroup controller that is not present or that cannot be enabled."
func TestUnifiedResources(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "touch /ran")
	id := r.newID()
	b.Spec.Linux.CgroupsPath = "/hull-conformance/" + id
	b.Spec.Linux.Resources.Unified = map[string]string{"pids.max": "42"}
	if !cgroupV2() {
		expectRefused(t, r, b)
		return
	}
	b.Spec.Process.Args = []string{"sleep", "1000"}
	r.create(b, id)
	pid := r.mustState(id).Pid
	if got := strings.TrimSpace(readFile(cgroupFile(t, pid, "", "pids.max"))); got != "42" {
		t.Errorf("pids.max %q, want 42", got)
	}
	r.stop(id)
}

// TestIntelRdtWithoutResctrl: config-linux.md intelRdt: "If no mounted
// resctrl pseudo-filesystem is available in the runtime mount namespace,
// the runtime MUST generate an error."
func TestIntelRdtWithoutResctrl(t *testing.T) {
	for _, m := range parseMountinfo(readFile("/proc/self/mountinfo")) {
		if m.fsType == "resctrl" {
			t.Skip("this host has resctrl mounted: the error case cannot be shown here")
		}
	}
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "touch /ran")
	b.Spec.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "hull-conformance"}
	expectRefused(t, r, b)
}
