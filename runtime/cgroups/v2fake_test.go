package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lib "github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestV2SetFiles applies resources through the cgroup v2 manager onto a
// directory standing in for a cgroup2 group (the library's TestMode lets
// writes create plain files), to check the v2 translation of each setting.
// A hybrid host's cgroup2 tree has no cpu, memory, io or pids controllers,
// so the real files cannot be exercised here.
func TestV2SetFiles(t *testing.T) {
	tests := []struct {
		name  string
		res   specs.LinuxResources
		files map[string]string
	}{
		{"cpu shares to weight", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(1024))}}, map[string]string{"cpu.weight": "100"}},
		{"cpu shares min", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(2))}}, map[string]string{"cpu.weight": "1"}},
		{"cpu quota", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(50000)), Period: ptr(uint64(100000))}}, map[string]string{"cpu.max": "50000 100000"}},
		{"cpu unlimited", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(-1))}}, map[string]string{"cpu.max": "max 100000"}},
		{"cpu burst", specs.LinuxResources{CPU: &specs.LinuxCPU{Burst: ptr(uint64(2000)), Quota: ptr(int64(5000))}}, map[string]string{"cpu.max.burst": "2000"}},
		{"cpu idle", specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: ptr(int64(1))}}, map[string]string{"cpu.idle": "1"}},
		{"cpuset", specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0", Mems: "0"}}, map[string]string{"cpuset.cpus": "0", "cpuset.mems": "0"}},
		{"memory and swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Swap: ptr(int64(96 << 20)), Reservation: ptr(int64(32 << 20))}},
			map[string]string{"memory.max": "67108864", "memory.swap.max": "33554432", "memory.low": "33554432"}},
		{"no swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Swap: ptr(int64(64 << 20))}}, map[string]string{"memory.swap.max": "0"}},
		{"memory unlimited", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-1))}}, map[string]string{"memory.max": "max", "memory.swap.max": "max"}},
		{"pids", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(42))}}, map[string]string{"pids.max": "42"}},
		{"pids zero", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(0))}}, map[string]string{"pids.max": "0"}},
		{"io weight", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(1000))}}, map[string]string{"io.weight": "10000"}},
		{"io throttle", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 4096}}}},
			map[string]string{"io.max": "8:0 rbps=4096"}},
		{"hugetlb", specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 2 << 20}}}, map[string]string{"hugetlb.2MB.max": "2097152"}},
		{"unified", specs.LinuxResources{Unified: map[string]string{"memory.high": "5000000", "pids.max": "7"}}, map[string]string{"memory.high": "5000000", "pids.max": "7"}},
	}
	lib.TestMode = true
	t.Cleanup(func() { lib.TestMode = false })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "c")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte("cpuset cpu io memory hugetlb pids rdma misc\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := newManager(Unified, root, "/c", "", &tc.res)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Paths(); len(got) != 1 || got[""] != dir {
				t.Fatalf("Paths() = %v", got)
			}
			if err := m.Set(&tc.res); err != nil {
				t.Fatalf("Set: %v", err)
			}
			for f, want := range tc.files {
				if got := readFile(t, dir, f); !strings.Contains(got, want) {
					t.Errorf("%s = %q, want %q", f, got, want)
				}
			}
		})
	}
}

// TestV2Rejects: settings v2 cannot honour are refused on a v2 host.
func TestV2Rejects(t *testing.T) {
	tests := []struct {
		name, field string
		res         specs.LinuxResources
	}{
		{"realtime", "cpu.realtimeRuntime", specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr(int64(1000))}}},
		{"classid", "network", specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: ptr(uint32(1))}}},
		{"kernel tcp", "memory.kernelTCP", specs.LinuxResources{Memory: &specs.LinuxMemory{KernelTCP: ptr(int64(1 << 20))}}},
	}
	for _, tc := range tests {
		_, err := newManager(Unified, t.TempDir(), "/c", "", &tc.res)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "linux.resources."+tc.field) {
			t.Errorf("%s: error %v, want ErrInvalid naming %s", tc.name, err, tc.field)
		}
	}
}

// TestV2PathResolution: on cgroup v2 an absolute path is under the mount, a
// relative one under the parent of the runtime's own group, an empty one
// under DefaultParent.
func TestV2PathResolution(t *testing.T) {
	own, err := ownV2Cgroup()
	if err != nil {
		t.Skip("no cgroup2 entry for this process:", err)
	}
	root := "/mnt/cg2"
	tests := []struct{ path, id, want string }{
		{"/a/b", "x", root + "/a/b"},
		{"/a/../../b", "x", root + "/b"},
		{"a/b", "x", filepath.Join(root, filepath.Dir(own), "a/b")},
		{"../../a", "x", filepath.Join(root, filepath.Dir(own), "a")},
		{"", "ctr", root + DefaultParent + "/ctr"},
	}
	for _, tc := range tests {
		m, err := newManager(Unified, root, tc.path, tc.id, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.path, err)
		}
		if got := m.Paths()[""]; got != tc.want {
			t.Errorf("cgroupsPath %q: path %q, want %q", tc.path, got, tc.want)
		}
	}
}
