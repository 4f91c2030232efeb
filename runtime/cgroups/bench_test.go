package cgroups

import (
	"os"
	"strconv"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// BenchmarkContainerCgroup is the cgroup work of one `run`: resolve, create
// (no process: pid -1), apply the default container resources (device
// allow list, a memory and a pids limit), read the freezer state, destroy.
func BenchmarkContainerCgroup(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	parent := "/hull-cgbench-" + strconv.Itoa(os.Getpid())
	spec := &specs.Spec{Linux: &specs.Linux{Resources: &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(256 << 20))},
		Pids:   &specs.LinuxPids{Limit: ptr(int64(100))},
	}}}
	res := ContainerResources(spec)
	b.Cleanup(func() {
		m, err := New(parent, "", nil)
		if err == nil {
			_ = m.Destroy()
		}
	})
	for i := 0; b.Loop(); i++ {
		m, err := New(parent+"/c"+strconv.Itoa(i), "", res)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Apply(-1); err != nil {
			b.Fatal(err)
		}
		if err := m.Set(res); err != nil {
			b.Fatal(err)
		}
		if _, err := m.FreezerState(); err != nil {
			b.Fatal(err)
		}
		if err := m.Destroy(); err != nil {
			b.Fatal(err)
		}
	}
}
