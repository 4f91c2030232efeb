package cgroups

import (
	"encoding/json"
	"maps"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// clone deep-copies resources through JSON (the type is plain data).
func clone(r *specs.LinuxResources) *specs.LinuxResources {
	if r == nil {
		return &specs.LinuxResources{}
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // plain data always marshals
	}
	var out specs.LinuxResources
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return &out
}

func set[T any](dst **T, src *T) {
	if src != nil {
		v := *src
		*dst = &v
	}
}

// Merge returns base updated by upd, as `update` needs: every field upd sets
// replaces the one in base, fields upd leaves out are kept. Lists keyed by
// something (throttles and weights by device, huge pages by size, interface
// priorities by name) merge per key; the device rules are an ordered list
// and are replaced whole when upd has any. Neither argument is modified.
func Merge(base, upd *specs.LinuxResources) *specs.LinuxResources {
	out := clone(base)
	if upd == nil {
		return out
	}
	upd = clone(upd)
	if len(upd.Devices) > 0 {
		out.Devices = upd.Devices
	}
	if m := upd.Memory; m != nil {
		if out.Memory == nil {
			out.Memory = &specs.LinuxMemory{}
		}
		o := out.Memory
		set(&o.Limit, m.Limit)
		set(&o.Reservation, m.Reservation)
		set(&o.Swap, m.Swap)
		set(&o.Kernel, m.Kernel)
		set(&o.KernelTCP, m.KernelTCP)
		set(&o.Swappiness, m.Swappiness)
		set(&o.DisableOOMKiller, m.DisableOOMKiller)
		set(&o.UseHierarchy, m.UseHierarchy)
		set(&o.CheckBeforeUpdate, m.CheckBeforeUpdate)
	}
	if c := upd.CPU; c != nil {
		if out.CPU == nil {
			out.CPU = &specs.LinuxCPU{}
		}
		o := out.CPU
		set(&o.Shares, c.Shares)
		set(&o.Quota, c.Quota)
		set(&o.Burst, c.Burst)
		set(&o.Period, c.Period)
		set(&o.RealtimeRuntime, c.RealtimeRuntime)
		set(&o.RealtimePeriod, c.RealtimePeriod)
		set(&o.Idle, c.Idle)
		if c.Cpus != "" {
			o.Cpus = c.Cpus
		}
		if c.Mems != "" {
			o.Mems = c.Mems
		}
	}
	if p := upd.Pids; p != nil && p.Limit != nil {
		out.Pids = &specs.LinuxPids{Limit: p.Limit}
	}
	if b := upd.BlockIO; b != nil {
		if out.BlockIO == nil {
			out.BlockIO = &specs.LinuxBlockIO{}
		}
		o := out.BlockIO
		set(&o.Weight, b.Weight)
		set(&o.LeafWeight, b.LeafWeight)
		o.WeightDevice = mergeKeyed(o.WeightDevice, b.WeightDevice, func(d specs.LinuxWeightDevice) specs.LinuxBlockIODevice { return d.LinuxBlockIODevice })
		tk := func(d specs.LinuxThrottleDevice) specs.LinuxBlockIODevice { return d.LinuxBlockIODevice }
		o.ThrottleReadBpsDevice = mergeKeyed(o.ThrottleReadBpsDevice, b.ThrottleReadBpsDevice, tk)
		o.ThrottleWriteBpsDevice = mergeKeyed(o.ThrottleWriteBpsDevice, b.ThrottleWriteBpsDevice, tk)
		o.ThrottleReadIOPSDevice = mergeKeyed(o.ThrottleReadIOPSDevice, b.ThrottleReadIOPSDevice, tk)
		o.ThrottleWriteIOPSDevice = mergeKeyed(o.ThrottleWriteIOPSDevice, b.ThrottleWriteIOPSDevice, tk)
	}
	out.HugepageLimits = mergeKeyed(out.HugepageLimits, upd.HugepageLimits, func(h specs.LinuxHugepageLimit) string { return h.Pagesize })
	if n := upd.Network; n != nil {
		if out.Network == nil {
			out.Network = &specs.LinuxNetwork{}
		}
		set(&out.Network.ClassID, n.ClassID)
		out.Network.Priorities = mergeKeyed(out.Network.Priorities, n.Priorities, func(p specs.LinuxInterfacePriority) string { return p.Name })
	}
	if len(upd.Rdma) > 0 {
		if out.Rdma == nil {
			out.Rdma = map[string]specs.LinuxRdma{}
		}
		maps.Copy(out.Rdma, upd.Rdma)
	}
	if len(upd.Unified) > 0 {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		maps.Copy(out.Unified, upd.Unified)
	}
	return out
}

// mergeKeyed replaces the entries of base whose key appears in upd and
// appends the new ones, keeping base's order.
func mergeKeyed[T any, K comparable](base, upd []T, key func(T) K) []T {
	if len(upd) == 0 {
		return base
	}
	idx := map[K]int{}
	for i, b := range base {
		idx[key(b)] = i
	}
	for _, u := range upd {
		if i, ok := idx[key(u)]; ok {
			base[i] = u
			continue
		}
		idx[key(u)] = len(base)
		base = append(base, u)
	}
	return base
}
