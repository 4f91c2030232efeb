package vm

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSize(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	for _, tc := range []struct {
		name       string
		d          Defaults
		r          *specs.LinuxResources
		host       int
		vcpus, mem int
	}{
		{"defaults", Defaults{}, nil, 2, 1, 256},
		{"kata-like defaults", Defaults{VCPUs: 1, MemoryMiB: 128}, &specs.LinuxResources{}, 2, 1, 128},
		{"quota rounds up", Defaults{VCPUs: 1, MemoryMiB: 128},
			&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(150000), Period: u64(100000)}}, 8, 3, 128},
		{"capped by host", Defaults{VCPUs: 1}, &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(800000), Period: u64(100000)}}, 2, 2, 256},
		{"memory limit added, rounded up", Defaults{MemoryMiB: 128},
			&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64<<20 + 1)}}, 2, 1, 128 + 65},
		{"unlimited memory", Defaults{MemoryMiB: 128}, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1)}}, 2, 1, 128},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, m := Size(tc.d, tc.r, tc.host)
			if v != tc.vcpus || m != tc.mem {
				t.Fatalf("Size = %d vCPUs, %d MiB; want %d, %d", v, m, tc.vcpus, tc.mem)
			}
		})
	}
}
