package shim

import (
	"github.com/containerd/cgroups/v3/cgroup1/stats"
	runc "github.com/containerd/go-runc"
)

// metricsV1 converts the runtime's `events --stats` data into containerd's
// cgroups v1 Metrics, the type `ctr task metrics` and hulld decode.
func metricsV1(s *runc.Stats) *stats.Metrics {
	m := &stats.Metrics{
		Pids: &stats.PidsStat{Current: s.Pids.Current, Limit: s.Pids.Limit},
		CPU: &stats.CPUStat{
			Usage: &stats.CPUUsage{
				Total:  s.Cpu.Usage.Total,
				Kernel: s.Cpu.Usage.Kernel,
				User:   s.Cpu.Usage.User,
				PerCPU: s.Cpu.Usage.Percpu,
			},
			Throttling: &stats.Throttle{
				Periods:          s.Cpu.Throttling.Periods,
				ThrottledPeriods: s.Cpu.Throttling.ThrottledPeriods,
				ThrottledTime:    s.Cpu.Throttling.ThrottledTime,
			},
		},
		Memory: &stats.MemoryStat{
			Cache:     s.Memory.Cache,
			Usage:     memoryEntry(s.Memory.Usage),
			Swap:      memoryEntry(s.Memory.Swap),
			Kernel:    memoryEntry(s.Memory.Kernel),
			KernelTCP: memoryEntry(s.Memory.KernelTCP),
		},
		Blkio: &stats.BlkIOStat{
			IoServiceBytesRecursive: blkio(s.Blkio.IoServiceBytesRecursive),
			IoServicedRecursive:     blkio(s.Blkio.IoServicedRecursive),
			IoQueuedRecursive:       blkio(s.Blkio.IoQueuedRecursive),
			IoServiceTimeRecursive:  blkio(s.Blkio.IoServiceTimeRecursive),
			IoWaitTimeRecursive:     blkio(s.Blkio.IoWaitTimeRecursive),
			IoMergedRecursive:       blkio(s.Blkio.IoMergedRecursive),
			IoTimeRecursive:         blkio(s.Blkio.IoTimeRecursive),
			SectorsRecursive:        blkio(s.Blkio.SectorsRecursive),
		},
	}
	raw := s.Memory.Raw
	ms := m.Memory
	for key, dst := range map[string]*uint64{
		"rss": &ms.RSS, "rss_huge": &ms.RSSHuge, "mapped_file": &ms.MappedFile,
		"dirty": &ms.Dirty, "writeback": &ms.Writeback, "pgpgin": &ms.PgPgIn,
		"pgpgout": &ms.PgPgOut, "pgfault": &ms.PgFault, "pgmajfault": &ms.PgMajFault,
		"inactive_anon": &ms.InactiveAnon, "active_anon": &ms.ActiveAnon,
		"inactive_file": &ms.InactiveFile, "active_file": &ms.ActiveFile,
		"unevictable": &ms.Unevictable, "hierarchical_memory_limit": &ms.HierarchicalMemoryLimit,
		"hierarchical_memsw_limit": &ms.HierarchicalSwapLimit, "total_cache": &ms.TotalCache,
		"total_rss": &ms.TotalRSS, "total_rss_huge": &ms.TotalRSSHuge,
		"total_mapped_file": &ms.TotalMappedFile, "total_dirty": &ms.TotalDirty,
		"total_writeback": &ms.TotalWriteback, "total_pgpgin": &ms.TotalPgPgIn,
		"total_pgpgout": &ms.TotalPgPgOut, "total_pgfault": &ms.TotalPgFault,
		"total_pgmajfault": &ms.TotalPgMajFault, "total_inactive_anon": &ms.TotalInactiveAnon,
		"total_active_anon": &ms.TotalActiveAnon, "total_inactive_file": &ms.TotalInactiveFile,
		"total_active_file": &ms.TotalActiveFile, "total_unevictable": &ms.TotalUnevictable,
	} {
		*dst = raw[key]
	}
	for size, h := range s.Hugetlb {
		m.Hugetlb = append(m.Hugetlb, &stats.HugetlbStat{Usage: h.Usage, Max: h.Max, Failcnt: h.Failcnt, Pagesize: size})
	}
	return m
}

func memoryEntry(e runc.MemoryEntry) *stats.MemoryEntry {
	return &stats.MemoryEntry{Limit: e.Limit, Usage: e.Usage, Max: e.Max, Failcnt: e.Failcnt}
}

func blkio(in []runc.BlkioEntry) []*stats.BlkIOEntry {
	out := make([]*stats.BlkIOEntry, 0, len(in))
	for _, e := range in {
		out = append(out, &stats.BlkIOEntry{Op: e.Op, Major: e.Major, Minor: e.Minor, Value: e.Value})
	}
	return out
}
