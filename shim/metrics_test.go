package shim

import (
	"encoding/json"
	"testing"

	runc "github.com/containerd/go-runc"
)

// A trimmed `runc events --stats` document (cgroup v1 host).
const runcStats = `{"cpu":{"usage":{"total":1500,"percpu":[1000,500],"kernel":300,"user":1200},"throttling":{"periods":4,"throttledPeriods":1,"throttledTime":99}},
"memory":{"cache":4096,"usage":{"limit":67108864,"usage":1048576,"max":2097152,"failcnt":2},"swap":{"limit":1,"usage":2},"raw":{"rss":8192,"total_rss":8192,"pgfault":11,"hierarchical_memory_limit":67108864}},
"pids":{"current":3,"limit":100},
"blkio":{"ioServiceBytesRecursive":[{"major":8,"minor":0,"op":"Read","value":512}]},
"hugetlb":{"2MB":{"usage":0,"max":0,"failcnt":0}}}`

func TestMetricsV1(t *testing.T) {
	var s runc.Stats
	if err := json.Unmarshal([]byte(runcStats), &s); err != nil {
		t.Fatal(err)
	}
	m := metricsV1(&s)
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"cpu total", m.CPU.Usage.Total, 1500},
		{"cpu kernel", m.CPU.Usage.Kernel, 300},
		{"cpu percpu[1]", m.CPU.Usage.PerCPU[1], 500},
		{"throttled periods", m.CPU.Throttling.ThrottledPeriods, 1},
		{"memory usage", m.Memory.Usage.Usage, 1048576},
		{"memory limit", m.Memory.Usage.Limit, 67108864},
		{"memory max", m.Memory.Usage.Max, 2097152},
		{"memory failcnt", m.Memory.Usage.Failcnt, 2},
		{"memory cache", m.Memory.Cache, 4096},
		{"memory rss (raw)", m.Memory.RSS, 8192},
		{"memory pgfault (raw)", m.Memory.PgFault, 11},
		{"hierarchical limit (raw)", m.Memory.HierarchicalMemoryLimit, 67108864},
		{"swap usage", m.Memory.Swap.Usage, 2},
		{"pids current", m.Pids.Current, 3},
		{"pids limit", m.Pids.Limit, 100},
		{"blkio bytes", m.Blkio.IoServiceBytesRecursive[0].Value, 512},
		{"blkio major", m.Blkio.IoServiceBytesRecursive[0].Major, 8},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	if len(m.Hugetlb) != 1 || m.Hugetlb[0].Pagesize != "2MB" {
		t.Errorf("hugetlb %v", m.Hugetlb)
	}
	if a, err := marshalAny(m); err != nil || a.TypeUrl != "io.containerd.cgroups.v1.Metrics" {
		t.Errorf("any %v %v, want type io.containerd.cgroups.v1.Metrics", a, err)
	}
}
