package cgroups

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

// TestLifecycleV1 runs a real process through create, limits, freeze, thaw,
// listing, stats and destroy on the host's v1 hierarchies.
func TestLifecycleV1(t *testing.T) {
	needRoot(t)
	needLayout(t, Legacy, Hybrid)
	parent := testParent(t)
	m := newTestManager(t, parent+"/c1", "c1", nil)
	p := startProc(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	paths := m.Paths()
	for _, ctrl := range []string{"memory", "cpu", "cpuset", "pids", "devices", "freezer", "blkio"} {
		dir := paths[ctrl]
		if dir != filepath.Join(Root, ctrl, parent, "c1") {
			t.Errorf("Paths()[%s] = %q", ctrl, dir)
		}
		if procs := readFile(t, dir, "cgroup.procs"); !slices.Contains(strings.Fields(procs), itoa(p.pid())) {
			t.Errorf("%s/cgroup.procs = %q, want pid %d", dir, procs, p.pid())
		}
	}
	if !m.Exists() {
		t.Fatal("Exists() = false after Apply")
	}

	pids, err := m.Pids()
	if err != nil || !slices.Contains(pids, p.pid()) {
		t.Fatalf("Pids() = %v, %v; want %d in it", pids, err, p.pid())
	}

	// Freeze stops the process: the v1 freezer shows FROZEN and the task
	// sleeps uninterruptibly in the refrigerator.
	if err := m.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if st, err := m.FreezerState(); err != nil || st != "FROZEN" {
		t.Fatalf("FreezerState() = %q, %v after Freeze", st, err)
	}
	if got := readFile(t, paths["freezer"], "freezer.state"); got != "FROZEN" {
		t.Errorf("freezer.state = %q", got)
	}
	if st := procState(t, p.pid()); st != "D" {
		t.Errorf("frozen process state = %q, want D", st)
	}
	if err := m.Thaw(); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	if st, err := m.FreezerState(); err != nil || st != "THAWED" {
		t.Fatalf("FreezerState() = %q, %v after Thaw", st, err)
	}
	// the thawed process answers again, and what it does is charged to the cgroup
	if !p.run(t, "x=$(head -c 4000000 /dev/zero | tr '\\0' a); echo ${#x} > /dev/null") {
		t.Fatal("thawed process does not run")
	}

	st, err := m.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.Memory.Usage.Usage == 0 {
		t.Errorf("Stats memory usage = 0, want > 0")
	}
	if st.Pids.Current == 0 {
		t.Errorf("Stats pids.current = 0")
	}
	if st.CPU.Usage.Total == 0 {
		t.Errorf("Stats cpu usage = 0")
	}
	if paths[""] != "" && v2Controllers(paths[""])["hugetlb"] {
		if _, ok := st.Hugetlb["2MB"]; !ok {
			t.Errorf("Stats hugetlb = %v, want a 2MB entry from the v2 tree", st.Hugetlb)
		}
	}

	p.kill()
	if err := m.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	for ctrl, dir := range paths {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: %s still exists after Destroy (%v)", ctrl, dir, err)
		}
	}
	if m.Exists() {
		t.Error("Exists() = true after Destroy")
	}
	if err := m.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestLimitsOnDisk checks that each kind of resource lands in the file the
// kernel reads, on the real hierarchy.
func TestLimitsOnDisk(t *testing.T) {
	needRoot(t)
	needLayout(t, Legacy, Hybrid)
	blk := firstBlockDevice(t)
	tests := []struct {
		name  string
		res   specs.LinuxResources
		ctrl  string // "" for the v2 tree of a hybrid host
		file  string
		want  string
		needs func(t *testing.T, m Manager)
	}{
		{name: "memory limit", res: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20))}}, ctrl: "memory", file: "memory.limit_in_bytes", want: "67108864"},
		{name: "memory swap", res: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Swap: ptr(int64(128 << 20))}}, ctrl: "memory", file: "memory.memsw.limit_in_bytes", want: "134217728"},
		{name: "memory reservation", res: specs.LinuxResources{Memory: &specs.LinuxMemory{Reservation: ptr(int64(32 << 20))}}, ctrl: "memory", file: "memory.soft_limit_in_bytes", want: "33554432"},
		{name: "memory swappiness", res: specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: ptr(uint64(17))}}, ctrl: "memory", file: "memory.swappiness", want: "17"},
		{name: "oom killer off", res: specs.LinuxResources{Memory: &specs.LinuxMemory{DisableOOMKiller: ptr(true)}}, ctrl: "memory", file: "memory.oom_control", want: "oom_kill_disable 1"},
		{name: "kernel tcp", res: specs.LinuxResources{Memory: &specs.LinuxMemory{KernelTCP: ptr(int64(16 << 20))}}, ctrl: "memory", file: "memory.kmem.tcp.limit_in_bytes", want: "16777216"},
		{name: "cpu shares", res: specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(512))}}, ctrl: "cpu", file: "cpu.shares", want: "512"},
		{name: "cpu quota", res: specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(50000)), Period: ptr(uint64(100000))}}, ctrl: "cpu", file: "cpu.cfs_quota_us", want: "50000"},
		{name: "cpu period", res: specs.LinuxResources{CPU: &specs.LinuxCPU{Period: ptr(uint64(200000))}}, ctrl: "cpu", file: "cpu.cfs_period_us", want: "200000"},
		{name: "cpu burst", res: specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Burst: ptr(uint64(10000))}}, ctrl: "cpu", file: "cpu.cfs_burst_us", want: "10000"},
		{name: "cpu idle", res: specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: ptr(int64(1))}}, ctrl: "cpu", file: "cpu.idle", want: "1"},
		{name: "cpuset cpus", res: specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0"}}, ctrl: "cpuset", file: "cpuset.cpus", want: "0"},
		{name: "cpuset mems", res: specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "0"}}, ctrl: "cpuset", file: "cpuset.mems", want: "0"},
		{name: "pids limit", res: specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(42))}}, ctrl: "pids", file: "pids.max", want: "42"},
		{name: "pids unlimited", res: specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(-1))}}, ctrl: "pids", file: "pids.max", want: "max"},
		{name: "pids zero", res: specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(0))}}, ctrl: "pids", file: "pids.max", want: "0"},
		{name: "blkio weight", res: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(300))}}, ctrl: "blkio", file: blkioWeightFile(), want: "300"},
		{name: "blkio read bps", res: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: blk, Rate: 1 << 20}}}}, ctrl: "blkio", file: "blkio.throttle.read_bps_device", want: devString(blk) + " 1048576"},
		{name: "blkio write iops", res: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: blk, Rate: 77}}}}, ctrl: "blkio", file: "blkio.throttle.write_iops_device", want: devString(blk) + " 77"},
		{name: "hugetlb 2MB", res: specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}}, ctrl: "hugetlb", file: "hugetlb.2MB.limit_in_bytes", want: "4194304"},
		{name: "devices deny all", res: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rw"}}}, ctrl: "devices", file: "devices.list", want: "c 1:3 rw"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := testParent(t)
			m := newTestManager(t, parent+"/c", "c", &tc.res)
			p := startProc(t)
			if err := m.Apply(p.pid()); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if err := m.Set(&tc.res); err != nil {
				t.Fatalf("Set: %v", err)
			}
			dir, file := m.Paths()[tc.ctrl], tc.file
			if dir == "" && tc.ctrl == "hugetlb" && m.Paths()[""] != "" {
				// hybrid host with hugetlb only in the v2 tree
				dir, file = m.Paths()[""], strings.Replace(file, ".limit_in_bytes", ".max", 1)
			}
			if dir == "" {
				t.Skipf("controller %s is not on this host", tc.ctrl)
			}
			if got := readFile(t, dir, file); !strings.Contains(got, tc.want) {
				t.Errorf("%s/%s = %q, want it to hold %q", dir, file, got, tc.want)
			}
		})
	}
}

func blkioWeightFile() string {
	if _, err := os.Stat(filepath.Join(Root, "blkio", "blkio.weight")); err == nil {
		return "blkio.weight"
	}
	return "blkio.bfq.weight"
}

func devString(d specs.LinuxBlockIODevice) string {
	return strconv.FormatInt(d.Major, 10) + ":" + strconv.FormatInt(d.Minor, 10)
}

// firstBlockDevice finds a real, whole block device (not loop/zram) for
// throttle rules, which the kernel only accepts for existing devices.
func firstBlockDevice(t *testing.T) specs.LinuxBlockIODevice {
	entries, _ := os.ReadDir("/sys/block")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "loop") || strings.HasPrefix(e.Name(), "ram") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "dev"))
		if err != nil {
			continue
		}
		maj, min, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
		a, err1 := strconv.ParseInt(maj, 10, 64)
		b2, err2 := strconv.ParseInt(min, 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		return specs.LinuxBlockIODevice{Major: a, Minor: b2}
	}
	t.Skip("no block device for throttle rules")
	return specs.LinuxBlockIODevice{}
}
