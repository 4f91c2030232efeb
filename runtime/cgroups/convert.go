package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	lib "github.com/opencontainers/cgroups"
	devcfg "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrInvalid marks a resources configuration the runtime refuses. The
// wrapping message names the offending field with its config.json path
// (for example "linux.resources.memory.swap").
var ErrInvalid = errors.New("invalid cgroup resources")

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: linux.resources.%s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

// Convert validates r and translates it into the library's Resources, for a
// host of the given layout. It never touches the cgroup file system except to
// read which CPUs, memory nodes and huge page sizes exist. A nil r gives
// empty Resources (devices untouched).
//
// Fields the library has no place for are returned in extra: they are
// written by hand (see the package doc).
func Convert(r *specs.LinuxResources, layout Layout) (*lib.Resources, *extraResources, error) {
	out := &lib.Resources{SkipDevices: true}
	extra := &extraResources{}
	if r == nil {
		return out, extra, nil
	}
	if err := convertDevices(r.Devices, out); err != nil {
		return nil, nil, err
	}
	if err := convertMemory(r.Memory, out, extra, layout); err != nil {
		return nil, nil, err
	}
	if err := convertCPU(r.CPU, out); err != nil {
		return nil, nil, err
	}
	if layout == Unified {
		if err := checkV2(r); err != nil {
			return nil, nil, err
		}
		// v2 has cpu.weight (1..10000) where v1 had shares; the library
		// leaves the conversion to its caller.
		out.CpuWeight = lib.ConvertCPUSharesToCgroupV2Value(out.CpuShares)
	}
	if r.Pids != nil && r.Pids.Limit != nil {
		l := *r.Pids.Limit
		if l < -1 {
			return nil, nil, invalid("pids.limit", "%d is not a limit (use -1 for no limit)", l)
		}
		v := l
		out.PidsLimit = &v
		if l == 0 {
			// The runtime-spec says 0 is a real limit; the library turns 0 into 1.
			extra.pidsZero = true
		}
	}
	if err := convertBlockIO(r.BlockIO, out); err != nil {
		return nil, nil, err
	}
	if err := convertHugepages(r.HugepageLimits, out); err != nil {
		return nil, nil, err
	}
	if n := r.Network; n != nil {
		if n.ClassID != nil {
			out.NetClsClassid = *n.ClassID
		}
		for i, p := range n.Priorities {
			if p.Name == "" || strings.ContainsAny(p.Name, " /\n") {
				return nil, nil, invalid(fmt.Sprintf("network.priorities[%d].name", i), "%q is not an interface name", p.Name)
			}
			out.NetPrioIfpriomap = append(out.NetPrioIfpriomap, &lib.IfPrioMap{Interface: p.Name, Priority: int64(p.Priority)})
		}
	}
	if len(r.Rdma) > 0 {
		out.Rdma = map[string]lib.LinuxRdma{}
		for dev, l := range r.Rdma {
			if dev == "" || strings.ContainsAny(dev, " \n") {
				return nil, nil, invalid("rdma", "%q is not an RDMA device name", dev)
			}
			if l.HcaHandles == nil && l.HcaObjects == nil {
				return nil, nil, invalid("rdma."+dev, "neither hcaHandles nor hcaObjects is set")
			}
			out.Rdma[dev] = lib.LinuxRdma{HcaHandles: l.HcaHandles, HcaObjects: l.HcaObjects}
		}
	}
	if len(r.Unified) > 0 {
		if layout != Unified {
			return nil, nil, invalid("unified", "needs a cgroup v2 (unified) host; this host's cgroups are %s", layout)
		}
		out.Unified = map[string]string{}
		for k, v := range r.Unified {
			ctrl, param, ok := strings.Cut(k, ".")
			if !ok || ctrl == "" || param == "" || strings.Contains(k, "/") {
				return nil, nil, invalid("unified", "key %q is not of the form controller.parameter", k)
			}
			out.Unified[k] = v
		}
	}
	return out, extra, nil
}

// checkV2 refuses v1-only settings on a cgroup v2 host rather than
// silently not applying them.
func checkV2(r *specs.LinuxResources) error {
	if c := r.CPU; c != nil {
		if c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
			return invalid("cpu.realtimeRuntime", "cgroup v2 has no realtime CPU budget")
		}
		if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
			return invalid("cpu.realtimePeriod", "cgroup v2 has no realtime CPU budget")
		}
	}
	if n := r.Network; n != nil && (n.ClassID != nil || len(n.Priorities) > 0) {
		return invalid("network", "cgroup v2 has no net_cls or net_prio controller")
	}
	if m := r.Memory; m != nil && m.KernelTCP != nil {
		return invalid("memory.kernelTCP", "cgroup v2 has no TCP memory limit")
	}
	return nil
}

// extraResources are settings the library does not write.
type extraResources struct {
	pidsZero  bool   // pids.max = 0
	kernelTCP *int64 // v1 memory.kmem.tcp.limit_in_bytes
}

func convertDevices(rules []specs.LinuxDeviceCgroup, out *lib.Resources) error {
	if len(rules) == 0 {
		return nil // leave the device rules as they are
	}
	out.SkipDevices = false
	for i, d := range rules {
		field := fmt.Sprintf("devices[%d]", i)
		rule := &devcfg.Rule{Allow: d.Allow, Major: devcfg.Wildcard, Minor: devcfg.Wildcard}
		switch d.Type {
		case "", "a":
			rule.Type = devcfg.WildcardDevice
		case "b":
			rule.Type = devcfg.BlockDevice
		case "c":
			rule.Type = devcfg.CharDevice
		default:
			return invalid(field+".type", "unknown device type %q (want a, b or c)", d.Type)
		}
		if d.Major != nil {
			if *d.Major < -1 {
				return invalid(field+".major", "%d is not a device number", *d.Major)
			}
			rule.Major = *d.Major
		}
		if d.Minor != nil {
			if *d.Minor < -1 {
				return invalid(field+".minor", "%d is not a device number", *d.Minor)
			}
			rule.Minor = *d.Minor
		}
		access := d.Access
		if access == "" {
			access = "rwm"
		}
		for _, c := range access {
			if c != 'r' && c != 'w' && c != 'm' {
				return invalid(field+".access", "%q has %q; only r, w and m are allowed", d.Access, c)
			}
		}
		rule.Permissions = devcfg.Permissions(access)
		out.Devices = append(out.Devices, rule)
	}
	return nil
}

func convertMemory(m *specs.LinuxMemory, out *lib.Resources, extra *extraResources, layout Layout) error {
	if m == nil {
		return nil
	}
	check := func(name string, p *int64) (int64, error) {
		if p == nil {
			return 0, nil
		}
		if *p < -1 {
			return 0, invalid("memory."+name, "%d is not a limit (use -1 for no limit)", *p)
		}
		return *p, nil
	}
	var err error
	if out.Memory, err = check("limit", m.Limit); err != nil {
		return err
	}
	if out.MemoryReservation, err = check("reservation", m.Reservation); err != nil {
		return err
	}
	if out.MemorySwap, err = check("swap", m.Swap); err != nil {
		return err
	}
	if out.Memory > 0 && out.MemorySwap > 0 && out.MemorySwap < out.Memory {
		return invalid("memory.swap", "%d is below memory.limit %d (swap is the memory+swap total)", out.MemorySwap, out.Memory)
	}
	if out.Memory > 0 && out.MemoryReservation > out.Memory {
		return invalid("memory.reservation", "%d is above memory.limit %d", out.MemoryReservation, out.Memory)
	}
	if layout == Unified && out.MemorySwap > 0 && out.Memory == 0 {
		return invalid("memory.swap", "cgroup v2 needs memory.limit to derive the swap limit from swap (%d)", out.MemorySwap)
	}
	if m.Swappiness != nil {
		if *m.Swappiness > 100 {
			return invalid("memory.swappiness", "%d is above 100", *m.Swappiness)
		}
		v := *m.Swappiness
		out.MemorySwappiness = &v
	}
	if m.KernelTCP != nil {
		if _, err := check("kernelTCP", m.KernelTCP); err != nil {
			return err
		}
		v := *m.KernelTCP
		extra.kernelTCP = &v
	}
	if m.DisableOOMKiller != nil {
		out.OomKillDisable = *m.DisableOOMKiller
	}
	if m.CheckBeforeUpdate != nil {
		out.MemoryCheckBeforeUpdate = *m.CheckBeforeUpdate
	}
	// m.Kernel: kernel memory limits are gone from the kernel (v5.4 deprecated,
	// later removed); the runtime-spec allows ignoring the field.
	// m.UseHierarchy: hierarchical accounting is always on in current kernels.
	return nil
}

func convertCPU(c *specs.LinuxCPU, out *lib.Resources) error {
	if c == nil {
		return nil
	}
	if c.Shares != nil {
		if s := *c.Shares; s != 0 && (s < 2 || s > 262144) {
			return invalid("cpu.shares", "%d is outside 2..262144", s)
		}
		out.CpuShares = *c.Shares
	}
	if c.Period != nil {
		if p := *c.Period; p != 0 && (p < 1000 || p > 1000000) {
			return invalid("cpu.period", "%d µs is outside 1000..1000000", p)
		}
		out.CpuPeriod = *c.Period
	}
	if c.Quota != nil {
		if q := *c.Quota; q != -1 && q != 0 && q < 1000 {
			return invalid("cpu.quota", "%d µs is below 1000 (use -1 for no limit)", q)
		}
		out.CpuQuota = *c.Quota
	}
	if c.Burst != nil {
		v := *c.Burst
		out.CpuBurst = &v
	}
	if c.RealtimeRuntime != nil {
		out.CpuRtRuntime = *c.RealtimeRuntime
	}
	if c.RealtimePeriod != nil {
		out.CpuRtPeriod = *c.RealtimePeriod
	}
	if c.Idle != nil {
		if i := *c.Idle; i != 0 && i != 1 {
			return invalid("cpu.idle", "%d is neither 0 nor 1", i)
		}
		v := *c.Idle
		out.CPUIdle = &v
	}
	if c.Cpus != "" {
		if err := checkList("cpu.cpus", c.Cpus, "/sys/devices/system/cpu/online"); err != nil {
			return err
		}
		out.CpusetCpus = c.Cpus
	}
	if c.Mems != "" {
		if err := checkList("cpu.mems", c.Mems, "/sys/devices/system/node/online"); err != nil {
			return err
		}
		out.CpusetMems = c.Mems
	}
	return nil
}

// parseList parses a kernel list ("0-3,5") into its members.
func parseList(s string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(strings.TrimSpace(s), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("%q is not a number or range", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("%q is not a valid range", part)
			}
		}
		if b-a > 1<<16 {
			return nil, fmt.Errorf("range %q is too large", part)
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

// checkList validates a cpuset list and, when the host says which members
// exist (onlineFile), that every member does.
func checkList(field, s, onlineFile string) error {
	want, err := parseList(s)
	if err != nil {
		return invalid(field, "%q: %v", s, err)
	}
	b, err := os.ReadFile(onlineFile)
	if err != nil {
		return nil // host does not say (no NUMA information): the kernel will judge
	}
	have, err := parseList(string(b))
	if err != nil {
		return nil
	}
	for _, w := range want {
		if !slices.Contains(have, w) {
			return invalid(field, "%q names %d, which this host does not have (online: %s)", s, w, strings.TrimSpace(string(b)))
		}
	}
	return nil
}

func convertBlockIO(b *specs.LinuxBlockIO, out *lib.Resources) error {
	if b == nil {
		return nil
	}
	weight := func(field string, w *uint16) (uint16, error) {
		if w == nil {
			return 0, nil
		}
		if *w != 0 && (*w < 10 || *w > 1000) {
			return 0, invalid(field, "%d is outside 10..1000", *w)
		}
		return *w, nil
	}
	var err error
	if out.BlkioWeight, err = weight("blockIO.weight", b.Weight); err != nil {
		return err
	}
	if out.BlkioLeafWeight, err = weight("blockIO.leafWeight", b.LeafWeight); err != nil {
		return err
	}
	dev := func(field string, d specs.LinuxBlockIODevice) error {
		if d.Major < 0 || d.Minor < 0 {
			return invalid(field, "%d:%d is not a block device number", d.Major, d.Minor)
		}
		return nil
	}
	for i, wd := range b.WeightDevice {
		f := fmt.Sprintf("blockIO.weightDevice[%d]", i)
		if err := dev(f, wd.LinuxBlockIODevice); err != nil {
			return err
		}
		w, err := weight(f+".weight", wd.Weight)
		if err != nil {
			return err
		}
		lw, err := weight(f+".leafWeight", wd.LeafWeight)
		if err != nil {
			return err
		}
		out.BlkioWeightDevice = append(out.BlkioWeightDevice, lib.NewWeightDevice(wd.Major, wd.Minor, w, lw))
	}
	throttle := func(name string, in []specs.LinuxThrottleDevice) ([]*lib.ThrottleDevice, error) {
		var res []*lib.ThrottleDevice
		for i, td := range in {
			if err := dev(fmt.Sprintf("blockIO.%s[%d]", name, i), td.LinuxBlockIODevice); err != nil {
				return nil, err
			}
			res = append(res, lib.NewThrottleDevice(td.Major, td.Minor, td.Rate))
		}
		return res, nil
	}
	if out.BlkioThrottleReadBpsDevice, err = throttle("throttleReadBpsDevice", b.ThrottleReadBpsDevice); err != nil {
		return err
	}
	if out.BlkioThrottleWriteBpsDevice, err = throttle("throttleWriteBpsDevice", b.ThrottleWriteBpsDevice); err != nil {
		return err
	}
	if out.BlkioThrottleReadIOPSDevice, err = throttle("throttleReadIOPSDevice", b.ThrottleReadIOPSDevice); err != nil {
		return err
	}
	if out.BlkioThrottleWriteIOPSDevice, err = throttle("throttleWriteIOPSDevice", b.ThrottleWriteIOPSDevice); err != nil {
		return err
	}
	return nil
}

func convertHugepages(h []specs.LinuxHugepageLimit, out *lib.Resources) error {
	if len(h) == 0 {
		return nil
	}
	sizes := lib.HugePageSizes()
	for i, l := range h {
		if !slices.Contains(sizes, l.Pagesize) {
			return invalid(fmt.Sprintf("hugepageLimits[%d].pageSize", i), "%q is not a huge page size of this host (have %s)", l.Pagesize, strings.Join(sizes, ", "))
		}
		out.HugetlbLimit = append(out.HugetlbLimit, &lib.HugepageLimit{Pagesize: l.Pagesize, Limit: l.Limit})
	}
	return nil
}

// cleanInner makes a cgroupsPath safe to join under a mount point: absolute
// paths are cleaned, relative ones cannot climb out with "..".
func cleanInner(p string) string {
	if p == "" {
		return ""
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	rel, _ := filepath.Rel("/", filepath.Clean("/"+p))
	return rel
}
