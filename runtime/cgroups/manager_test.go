package cgroups

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

// TestLifecycle runs a real process through create, limits, freeze, thaw,
// listing, stats and destroy on the host's hierarchies (v1, or v2 when the
// host is unified, as inside the test VM).
func TestLifecycle(t *testing.T) {
	needRoot(t)
	parent := testParent(t)
	m := newTestManager(t, parent+"/c1", "c1", nil)
	p := startProc(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	paths := m.Paths()
	ctrls := []string{"memory", "cpu", "cpuset", "pids", "devices", "freezer", "blkio"}
	if Mode() == Unified {
		ctrls = []string{""}
	}
	for _, ctrl := range ctrls {
		dir := paths[ctrl]
		if want := filepath.Join(Root, ctrl, parent, "c1"); dir != want {
			t.Errorf("Paths()[%q] = %q, want %q", ctrl, dir, want)
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

	// Freeze stops the process: it does not answer until thawed.
	if err := m.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if st, err := m.FreezerState(); err != nil || st != "FROZEN" {
		t.Fatalf("FreezerState() = %q, %v after Freeze", st, err)
	}
	if Mode() == Unified {
		if got := readFile(t, paths[""], "cgroup.freeze"); got != "1" {
			t.Errorf("cgroup.freeze = %q", got)
		}
	} else {
		if got := readFile(t, paths["freezer"], "freezer.state"); got != "FROZEN" {
			t.Errorf("freezer.state = %q", got)
		}
		// v1 frozen tasks sleep uninterruptibly in the refrigerator
		if st := procState(t, p.pid()); st != "D" {
			t.Errorf("frozen process state = %q, want D", st)
		}
	}
	p.send(t, "true")
	if ans, ok := p.answer(300 * time.Millisecond); ok {
		t.Errorf("a frozen process answered %q", ans)
	}
	if err := m.Thaw(); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	if st, err := m.FreezerState(); err != nil || st != "THAWED" {
		t.Fatalf("FreezerState() = %q, %v after Thaw", st, err)
	}
	if ans, ok := p.answer(10 * time.Second); !ok || ans != "ok" {
		t.Fatalf("thawed process answered %q, %v", ans, ok)
	}
	// what the thawed process does is charged to the cgroup
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
// kernel reads, on the real hierarchy: the v1 file, or the v2 one on a
// unified host (inside the test VM).
func TestLimitsOnDisk(t *testing.T) {
	needRoot(t)
	blk := firstBlockDevice(t)
	mem := func(m specs.LinuxMemory) specs.LinuxResources { return specs.LinuxResources{Memory: &m} }
	cpu := func(c specs.LinuxCPU) specs.LinuxResources { return specs.LinuxResources{CPU: &c} }
	tests := []struct {
		name           string
		res            specs.LinuxResources
		ctrl           string // v1 hierarchy
		file, want     string // v1 file and what it holds
		v2file, v2want string // on cgroup v2; "" for v1-only settings (refused on v2, see TestV2Rejects)
		needsBlock     bool
	}{
		{name: "memory limit", res: mem(specs.LinuxMemory{Limit: ptr(int64(64 << 20))}), ctrl: "memory", file: "memory.limit_in_bytes", want: "67108864", v2file: "memory.max", v2want: "67108864"},
		{name: "memory swap", res: mem(specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Swap: ptr(int64(128 << 20))}), ctrl: "memory", file: "memory.memsw.limit_in_bytes", want: "134217728", v2file: "memory.swap.max", v2want: "67108864"},
		{name: "memory reservation", res: mem(specs.LinuxMemory{Reservation: ptr(int64(32 << 20))}), ctrl: "memory", file: "memory.soft_limit_in_bytes", want: "33554432", v2file: "memory.low", v2want: "33554432"},
		{name: "memory swappiness", res: mem(specs.LinuxMemory{Swappiness: ptr(uint64(17))}), ctrl: "memory", file: "memory.swappiness", want: "17"},
		{name: "oom killer off", res: mem(specs.LinuxMemory{DisableOOMKiller: ptr(true)}), ctrl: "memory", file: "memory.oom_control", want: "oom_kill_disable 1"},
		{name: "kernel tcp", res: mem(specs.LinuxMemory{KernelTCP: ptr(int64(16 << 20))}), ctrl: "memory", file: "memory.kmem.tcp.limit_in_bytes", want: "16777216"},
		{name: "cpu shares", res: cpu(specs.LinuxCPU{Shares: ptr(uint64(512))}), ctrl: "cpu", file: "cpu.shares", want: "512", v2file: "cpu.weight", v2want: "59"},
		{name: "cpu quota", res: cpu(specs.LinuxCPU{Quota: ptr(int64(50000)), Period: ptr(uint64(100000))}), ctrl: "cpu", file: "cpu.cfs_quota_us", want: "50000", v2file: "cpu.max", v2want: "50000 100000"},
		{name: "cpu period", res: cpu(specs.LinuxCPU{Period: ptr(uint64(200000))}), ctrl: "cpu", file: "cpu.cfs_period_us", want: "200000", v2file: "cpu.max", v2want: "max 200000"},
		{name: "cpu burst", res: cpu(specs.LinuxCPU{Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Burst: ptr(uint64(10000))}), ctrl: "cpu", file: "cpu.cfs_burst_us", want: "10000", v2file: "cpu.max.burst", v2want: "10000"},
		{name: "cpu idle", res: cpu(specs.LinuxCPU{Idle: ptr(int64(1))}), ctrl: "cpu", file: "cpu.idle", want: "1", v2file: "cpu.idle", v2want: "1"},
		{name: "cpuset cpus", res: cpu(specs.LinuxCPU{Cpus: "0"}), ctrl: "cpuset", file: "cpuset.cpus", want: "0", v2file: "cpuset.cpus", v2want: "0"},
		{name: "cpuset mems", res: cpu(specs.LinuxCPU{Mems: "0"}), ctrl: "cpuset", file: "cpuset.mems", want: "0", v2file: "cpuset.mems", v2want: "0"},
		{name: "pids limit", res: specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(42))}}, ctrl: "pids", file: "pids.max", want: "42", v2file: "pids.max", v2want: "42"},
		{name: "pids unlimited", res: specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(-1))}}, ctrl: "pids", file: "pids.max", want: "max", v2file: "pids.max", v2want: "max"},
		{name: "pids zero", res: specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(0))}}, ctrl: "pids", file: "pids.max", want: "0", v2file: "pids.max", v2want: "0"},
		{name: "blkio weight", res: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(300))}}, ctrl: "blkio", file: blkioWeightFile(), want: "300"},
		{name: "blkio read bps", res: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: blk, Rate: 1 << 20}}}}, ctrl: "blkio", file: "blkio.throttle.read_bps_device", want: devString(blk) + " 1048576", v2file: "io.max", v2want: devString(blk) + " rbps=1048576", needsBlock: true},
		{name: "blkio write iops", res: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: blk, Rate: 77}}}}, ctrl: "blkio", file: "blkio.throttle.write_iops_device", want: devString(blk) + " 77", v2file: "io.max", v2want: "wiops=77", needsBlock: true},
		{name: "hugetlb 2MB", res: specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}}, ctrl: "hugetlb", file: "hugetlb.2MB.limit_in_bytes", want: "4194304", v2file: "hugetlb.2MB.max", v2want: "4194304"},
		{name: "unified memory.high", res: specs.LinuxResources{Unified: map[string]string{"memory.high": "50003968"}}, ctrl: "memory", v2file: "memory.high", v2want: "50003968"},
		{name: "unified pids.max", res: specs.LinuxResources{Unified: map[string]string{"pids.max": "33"}}, ctrl: "pids", v2file: "pids.max", v2want: "33"},
		{name: "devices deny all", res: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rw"}}}, ctrl: "devices", file: "devices.list", want: "c 1:3 rw"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v2 := Mode() == Unified
			if tc.needsBlock && blk.Major < 0 {
				t.Skip("no block device on this host for throttle rules")
			}
			if v2 && tc.v2file == "" {
				if tc.ctrl == "devices" {
					t.Skip("v2 has no device files: TestDevicesEnforced checks the eBPF filter by its effect")
				}
				t.Skip("v1-only setting: refused on cgroup v2 (TestV2Rejects), or ignored there for lack of a v2 file (swappiness, disableOOMKiller), or v2 weight depends on the I/O scheduler")
			}
			if !hostHas(tc.ctrl) {
				t.Skipf("the %s controller is not on this host", tc.ctrl)
			}
			// v1 with no weight file on this kernel (no BFQ group
			// scheduling): the weight is refused, naming the field.
			noWeightFile := !v2 && tc.file == "" && tc.ctrl == "blkio"
			if !v2 && tc.file == "" && !noWeightFile {
				t.Skip("v2-only setting (linux.resources.unified): refused on v1 (TestConvertRejects)")
			}
			parent := testParent(t)
			m := newTestManager(t, parent+"/c", "c", &tc.res)
			p := startProc(t)
			if err := m.Apply(p.pid()); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			err := m.Set(&tc.res)
			if noWeightFile {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "blockIO.weight") {
					t.Fatalf("Set with no blkio weight file on the host = %v, want ErrInvalid naming blockIO.weight", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Set: %v", err)
			}
			dir, file, want := m.Paths()[tc.ctrl], tc.file, tc.want
			switch {
			case v2:
				dir, file, want = m.Paths()[""], tc.v2file, tc.v2want
			case dir == "" && m.Paths()[""] != "":
				// a hybrid host where the controller is only in the v2 tree
				dir, file, want = m.Paths()[""], tc.v2file, tc.v2want
			}
			if dir == "" {
				t.Skipf("controller %s is not on this host", tc.ctrl)
			}
			if got := readFile(t, dir, file); !strings.Contains(got, want) {
				t.Errorf("%s/%s = %q, want it to hold %q", dir, file, got, want)
			}
		})
	}
}

// blkioWeightFile is the v1 weight file this kernel has, or "" for none
// (no BFQ group scheduling): then TestLimitsOnDisk expects the weight refused.
func blkioWeightFile() string {
	for _, f := range []string{"blkio.weight", "blkio.bfq.weight"} {
		if _, err := os.Stat(filepath.Join(Root, "blkio", f)); err == nil {
			return f
		}
	}
	return ""
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
	return specs.LinuxBlockIODevice{Major: -1, Minor: -1}
}

// TestPrepareSelfJoin: on v1, Prepare makes the directories without moving
// anyone in and names the "tasks" files through which a single-threaded
// process (here a shell) moves itself in by writing "0". The manager is
// made for the v1 hierarchies alone (a hybrid host whose cgroup2 tree has
// controllers gets no files: Apply is used there).
func TestPrepareSelfJoin(t *testing.T) {
	needRoot(t)
	needLayout(t, Legacy, Hybrid)
	m, files := prepared(t, Legacy, "", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0"}})
	if len(files) == 0 {
		t.Fatalf("Prepare named no files on v1 (paths %v)", m.Paths())
	}
	for ctrl, dir := range m.Paths() {
		if got := readFile(t, dir, "cgroup.procs"); got != "" {
			t.Errorf("%s: cgroup.procs = %q after Prepare, want empty", ctrl, got)
		}
		if !slices.Contains(files, filepath.Join(dir, "tasks")) {
			t.Errorf("files %v lack %s/tasks", files, dir)
		}
	}
	// cpuset got its cpus before anyone joins (else joining fails)
	if got := readFile(t, m.Paths()["cpuset"], "cpuset.cpus"); got == "" {
		t.Error("cpuset.cpus empty after Prepare")
	}
	p := joinShell(t, files)
	for _, dir := range m.Paths() {
		if procs := readFile(t, dir, "cgroup.procs"); !slices.Contains(strings.Fields(procs), itoa(p.Pid)) {
			t.Errorf("%s/cgroup.procs = %q, want pid %d", dir, procs, p.Pid)
		}
	}
	// a second Prepare on a cgroup holding processes is refused, as Apply is
	if _, err := m.Prepare(); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Prepare on a busy cgroup: %v, want ErrNotEmpty", err)
	}
}

// prepared makes a manager for a cgroup c1 below the test's parent (torn
// down at the end) and runs its Prepare.
func prepared(t *testing.T, layout Layout, unified string, res *specs.LinuxResources) (*manager, []string) {
	t.Helper()
	m, err := newManager(layout, unified, testParent(t)+"/c1", "c1", res)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupManager(t, m) })
	files, err := m.Prepare()
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return m, files
}

// joinShell starts a shell that writes 0 (itself) into each of files
// (cgroup.procs or tasks files from Prepare) and then sleeps: a shell is
// single-threaded, so it moves itself whole, then stays.
func joinShell(t *testing.T, files []string) *os.Process {
	t.Helper()
	sh := exec.Command("sh", "-c", `for f; do echo 0 > "$f" || exit 1; done; echo joined; exec sleep 60`, "sh")
	sh.Args = append(sh.Args, files...)
	out, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Process.Kill(); sh.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "joined\n" {
		t.Fatalf("the shell could not join itself (said %q)", line)
	}
	return sh.Process
}

// TestPrepareHybrid: on a hybrid host Prepare also makes the cgroup2 group;
// a process that joined the v1 hierarchies itself is moved into it with
// JoinUnified (one cgroup.procs write), and is then in every hierarchy.
func TestPrepareHybrid(t *testing.T) {
	needRoot(t)
	needLayout(t, Hybrid)
	m, files := prepared(t, Hybrid, hybridUnified, &specs.LinuxResources{})
	v2 := m.Paths()[""]
	if len(files) == 0 || v2 == "" {
		t.Fatalf("Prepare on hybrid: files %v, paths %v", files, m.Paths())
	}
	if _, err := os.Stat(v2); err != nil {
		t.Fatalf("the cgroup2 group was not made: %v", err)
	}
	sh := joinShell(t, files)
	if err := m.JoinUnified(sh.Pid); err != nil {
		t.Fatal(err)
	}
	for ctrl, dir := range m.Paths() {
		if procs := readFile(t, dir, "cgroup.procs"); !slices.Contains(strings.Fields(procs), itoa(sh.Pid)) {
			t.Errorf("%q %s/cgroup.procs = %q, want pid %d", ctrl, dir, procs, sh.Pid)
		}
	}
}
