package vm

import specs "github.com/opencontainers/runtime-spec/specs-go"

// Defaults a guest gets before the container's limits are added, as Kata's
// default_vcpus and default_memory.
type Defaults struct {
	VCPUs     int // 1
	MemoryMiB int // 256
	// MaxVCPUs caps the result (the host's CPU count when 0).
	MaxVCPUs int
}

// Size returns the guest's vCPUs and memory: the defaults plus what the
// container's limits ask for (CPU quota/period rounded up, memory limit in
// MiB rounded up), as Kata sizes its sandboxes.
func Size(d Defaults, r *specs.LinuxResources, hostCPUs int) (vcpus, memMiB int) {
	vcpus, memMiB = d.VCPUs, d.MemoryMiB
	if vcpus <= 0 {
		vcpus = 1
	}
	if memMiB <= 0 {
		memMiB = 256
	}
	if r != nil {
		if c := r.CPU; c != nil && c.Quota != nil && *c.Quota > 0 && c.Period != nil && *c.Period > 0 {
			q, p := uint64(*c.Quota), *c.Period
			vcpus += int((q + p - 1) / p)
		}
		if m := r.Memory; m != nil && m.Limit != nil && *m.Limit > 0 {
			memMiB += int((*m.Limit + (1<<20 - 1)) >> 20)
		}
	}
	max := d.MaxVCPUs
	if max <= 0 {
		max = hostCPUs
	}
	if max > 0 && vcpus > max {
		vcpus = max
	}
	return vcpus, memMiB
}
