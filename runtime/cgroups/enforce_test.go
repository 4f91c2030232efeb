package cgroups

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestLimitsEnforced checks limits by their effect on a process inside the
// cgroup, on whatever layout the host has (and on v2 in the VM).
func TestLimitsEnforced(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name        string
		ctrl        string
		res         specs.LinuxResources
		cmd         string
		okBefore    bool // cmd's result before the limit
		okAfter     bool // and after
		needTwoCPUs bool
	}{
		// the shell itself is the one task allowed: it cannot fork
		{name: "pids.max 1 stops fork", ctrl: "pids", res: specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(1))}}, cmd: "true", okBefore: true},
		// a cpuset of CPU 1 is what the process may run on
		{name: "cpuset pins", ctrl: "cpuset", res: specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "1"}}, cmd: "grep -q 'Cpus_allowed_list:[[:space:]]*1$' /proc/self/status", okAfter: true, needTwoCPUs: true},
		// 8 MiB of memory without swap cannot hold a 32 MiB string
		{name: "memory limit", ctrl: "memory", res: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(8 << 20)), Swap: ptr(int64(8 << 20))}}, cmd: "x=$(head -c 33554432 /dev/zero | tr '\\0' a)", okBefore: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !hostHas(tc.ctrl) {
				t.Skipf("the %s controller is not on this host", tc.ctrl)
			}
			if tc.needTwoCPUs {
				if cpus, err := parseList(readFile(t, "/sys/devices/system/cpu", "online")); err != nil || len(cpus) < 2 {
					t.Skip("needs two CPUs")
				}
			}
			m := newTestManager(t, testParent(t)+"/e", "e", nil) // limits come with Set
			p := startProc(t)
			if err := m.Apply(p.pid()); err != nil {
				t.Fatal(err)
			}
			if got := p.run(t, tc.cmd); got != tc.okBefore {
				t.Fatalf("before the limit: %q succeeded = %v, want %v", tc.cmd, got, tc.okBefore)
			}
			if err := m.Set(&tc.res); err != nil {
				t.Fatal(err)
			}
			if got := p.run(t, tc.cmd); got != tc.okAfter {
				t.Errorf("under the limit: %q succeeded = %v, want %v", tc.cmd, got, tc.okAfter)
			}
		})
	}
}
