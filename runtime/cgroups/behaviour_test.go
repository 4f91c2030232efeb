package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	lib "github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var (
	denyAll  = specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	allowAll = specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"}
	devNull  = specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rw"}
)

// TestDevicesEnforced checks that the device rules bind a process already in
// the cgroup: /dev/null opens, then not after deny-all, then again after an
// allow rule. It runs on the v1 devices controller and, through the v2 tree,
// on the eBPF device filter.
func TestDevicesEnforced(t *testing.T) {
	needRoot(t)
	layouts := []struct {
		name string
		new  func(t *testing.T, path string) Manager
	}{
		{"v1", func(t *testing.T, path string) Manager {
			needLayout(t, Legacy, Hybrid)
			return newTestManager(t, path, "d", nil)
		}},
		{"v2-ebpf", func(t *testing.T, path string) Manager { return newV2TestManager(t, path) }},
	}
	steps := []struct {
		rules  []specs.LinuxDeviceCgroup
		canUse bool
	}{
		{[]specs.LinuxDeviceCgroup{allowAll}, true},
		{[]specs.LinuxDeviceCgroup{denyAll}, false},
		{[]specs.LinuxDeviceCgroup{denyAll, devNull}, true},
		{[]specs.LinuxDeviceCgroup{denyAll, {Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(5)), Access: "rwm"}}, false},
		{ContainerResources(&specs.Spec{Linux: &specs.Linux{}}).Devices, true},
		// deny list: everything but /dev/null
		{[]specs.LinuxDeviceCgroup{allowAll, {Allow: false, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"}}, false},
		{[]specs.LinuxDeviceCgroup{allowAll, {Allow: false, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(5)), Access: "rwm"}}, true},
		// read-only /dev/null: a write open fails
		{[]specs.LinuxDeviceCgroup{denyAll, {Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "r"}}, false},
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			m := l.new(t, testParent(t)+"/dev")
			p := startProc(t)
			if err := m.Apply(p.pid()); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			for i, s := range steps {
				if err := m.Set(&specs.LinuxResources{Devices: s.rules}); err != nil {
					t.Fatalf("step %d: Set devices: %v", i, err)
				}
				if got := p.run(t, "echo x > /dev/null"); got != s.canUse {
					t.Errorf("step %d (%d rules): open /dev/null from inside = %v, want %v", i, len(s.rules), got, s.canUse)
				}
			}
			// an update without device rules leaves them alone
			if err := m.Set(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{denyAll}}); err != nil {
				t.Fatal(err)
			}
			if err := m.Set(&specs.LinuxResources{}); err != nil {
				t.Fatal(err)
			}
			if p.run(t, "echo x > /dev/null") {
				t.Error("an update without device rules re-allowed /dev/null")
			}
		})
	}
}

// TestUpdateMerges checks that Set merges partial updates: what an update
// leaves out keeps its value, and memory/swap stay consistent.
func TestUpdateMerges(t *testing.T) {
	needRoot(t)
	needLayout(t, Legacy, Hybrid)
	m := newTestManager(t, testParent(t)+"/u", "u", nil)
	p := startProc(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatal(err)
	}
	mem, cpu, pids := m.Paths()["memory"], m.Paths()["cpu"], m.Paths()["pids"]
	create := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(100 << 20)), Swap: ptr(int64(200 << 20))},
		CPU:    &specs.LinuxCPU{Shares: ptr(uint64(256))},
		Pids:   &specs.LinuxPids{Limit: ptr(int64(50))},
	}
	if err := m.Set(create); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		upd     specs.LinuxResources
		wantErr string
		files   map[string]string // dir/file -> value
	}{
		{"cpu only", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(2048))}}, "", map[string]string{
			cpu + "/cpu.shares": "2048", mem + "/memory.limit_in_bytes": "104857600", mem + "/memory.memsw.limit_in_bytes": "209715200", pids + "/pids.max": "50"}},
		{"memory below swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(150 << 20))}}, "", map[string]string{
			mem + "/memory.limit_in_bytes": "157286400", mem + "/memory.memsw.limit_in_bytes": "209715200", cpu + "/cpu.shares": "2048"}},
		{"memory above swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(300 << 20))}}, "linux.resources.memory.swap", map[string]string{
			mem + "/memory.limit_in_bytes": "157286400"}},
		{"memory and swap up", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(300 << 20)), Swap: ptr(int64(400 << 20))}}, "", map[string]string{
			mem + "/memory.limit_in_bytes": "314572800", mem + "/memory.memsw.limit_in_bytes": "419430400", pids + "/pids.max": "50"}},
		{"pids only", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(-1))}}, "", map[string]string{
			pids + "/pids.max": "max", mem + "/memory.limit_in_bytes": "314572800"}},
		{"below usage", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(4096)), Swap: ptr(int64(400 << 20))}}, "linux.resources.memory.limit", map[string]string{
			mem + "/memory.limit_in_bytes": "314572800"}},
		{"below usage with check", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(4096)), CheckBeforeUpdate: ptr(true)}}, "linux.resources.memory.limit", map[string]string{
			mem + "/memory.limit_in_bytes": "314572800"}},
	}
	// make sure the cgroup uses some memory, so "below usage" is below it
	if !p.run(t, "x=$(head -c 2000000 /dev/zero | tr '\\0' a)") {
		t.Fatal("shell in cgroup did not run")
	}
	for _, s := range steps {
		err := m.Set(&s.upd)
		switch {
		case s.wantErr == "" && err != nil:
			t.Fatalf("%s: Set: %v", s.name, err)
		case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr) || !errors.Is(err, ErrInvalid)):
			t.Fatalf("%s: Set error = %v, want ErrInvalid naming %s", s.name, err, s.wantErr)
		case err != nil:
			t.Logf("%s: %v", s.name, err)
		}
		for path, want := range s.files {
			if got := readFile(t, filepath.Dir(path), filepath.Base(path)); got != want {
				t.Errorf("%s: %s = %q, want %q", s.name, path, got, want)
			}
		}
	}
	// a container without swap (swap == memory) stays without swap when only
	// the memory limit is updated, from merged state and from disk alike
	for i, load := range []bool{false, true} {
		mm := m
		if load {
			var err error
			if mm, err = Load(m.Paths()); err != nil {
				t.Fatal(err)
			}
		}
		lim := int64(120+10*i) << 20
		if err := mm.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(lim), Swap: ptr(lim)}}); err != nil {
			t.Fatal(err)
		}
		if err := mm.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(2 * lim)}}); err != nil {
			t.Fatalf("no-swap update (loaded=%v): %v", load, err)
		}
		if got, want := readFile(t, mem, "memory.memsw.limit_in_bytes"), itoa(int(2*lim)); got != want {
			t.Errorf("no-swap update (loaded=%v): memsw = %s, want %s", load, got, want)
		}
	}
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(300 << 20)), Swap: ptr(int64(400 << 20))}}); err != nil {
		t.Fatal(err)
	}
	// the merged view is what a later process needs to continue updating
	got := m.Resources()
	if *got.Memory.Limit != 300<<20 || *got.Memory.Swap != 400<<20 || *got.CPU.Shares != 2048 || *got.Pids.Limit != -1 {
		t.Errorf("Resources() = mem %d swap %d shares %d pids %d", *got.Memory.Limit, *got.Memory.Swap, *got.CPU.Shares, *got.Pids.Limit)
	}
	// a manager loaded from saved state continues from there
	l, err := LoadWithResources(m.Paths(), got)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(350 << 20))}}); err != nil {
		t.Fatalf("Set after LoadWithResources: %v", err)
	}
	if got := readFile(t, mem, "memory.limit_in_bytes"); got != "367001600" {
		t.Errorf("after loaded update memory.limit_in_bytes = %s", got)
	}
	// without the saved base the on-disk memory+swap limit still guards
	l2, err := Load(m.Paths())
	if err != nil {
		t.Fatal(err)
	}
	err = l2.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(500 << 20))}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "memory.limit") {
		t.Errorf("Set above on-disk memsw after Load = %v, want ErrInvalid naming memory.limit", err)
	}
}

// TestPathResolution checks where absolute, relative and empty cgroupsPath
// values put the container.
func TestPathResolution(t *testing.T) {
	needRoot(t)
	needLayout(t, Legacy, Hybrid)
	own, err := lib.GetOwnCgroup("memory")
	if err != nil {
		t.Fatal(err)
	}
	parent := testParent(t)
	rel := strings.TrimPrefix(parent, "/")
	tests := []struct {
		name, path, id string
		wantMemory     string
	}{
		{"absolute", parent + "/abs", "x", filepath.Join(Root, "memory", parent, "abs")},
		{"absolute unclean", parent + "//a/../abs2/", "x", filepath.Join(Root, "memory", parent, "abs2")},
		{"relative", rel + "/rel", "x", filepath.Join(Root, "memory", own, rel, "rel")},
		{"relative cannot climb out", "../../../" + rel + "/up", "x", filepath.Join(Root, "memory", own, rel, "up")},
		{"empty", "", "hull-cgtest-empty", filepath.Join(Root, "memory", DefaultParent, "hull-cgtest-empty")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m Manager
			t.Cleanup(func() { // parents outside testParent, after the manager's own cleanup
				if m == nil {
					return
				}
				for ctrl, d := range m.Paths() {
					if tc.path == "" || !filepath.IsAbs(tc.path) {
						os.Remove(filepath.Dir(d)) // only if empty
					}
					if own, err := lib.GetOwnCgroupPath(ctrl); err == nil && ctrl != "" && !filepath.IsAbs(tc.path) {
						os.Remove(filepath.Join(own, rel))
					}
				}
			})
			m = newTestManager(t, tc.path, tc.id, nil)
			if got := m.Paths()["memory"]; got != tc.wantMemory {
				t.Fatalf("memory path = %q, want %q", got, tc.wantMemory)
			}
			// the v2 tree of a hybrid host follows the same placement
			if v2 := m.Paths()[""]; v2 != "" {
				base, v2base := filepath.Join(Root, "memory"), hybridUnified
				if tc.path != "" && !filepath.IsAbs(tc.path) {
					ownV2, _ := ownV2Cgroup()
					base, v2base = filepath.Join(Root, "memory", own), filepath.Join(hybridUnified, ownV2)
				}
				if want := filepath.Join(v2base, strings.TrimPrefix(tc.wantMemory, base)); v2 != want {
					t.Errorf("v2 path = %q, want %q", v2, want)
				}
			}
			p := startProc(t)
			if err := m.Apply(p.pid()); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(tc.wantMemory); err != nil {
				t.Fatalf("cgroup not created: %v", err)
			}
			cg, err := lib.ParseCgroupFile("/proc/" + itoa(p.pid()) + "/cgroup")
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimPrefix(tc.wantMemory, Root+"/memory"); cg["memory"] != want {
				t.Errorf("/proc/pid/cgroup memory = %q, want %q", cg["memory"], want)
			}
		})
	}
	for _, bad := range []struct {
		path, id string
		want     error
	}{
		{"", "", ErrInvalid}, {"", "a/b", ErrInvalid}, {"", "..", ErrInvalid}, {"/", "x", ErrInvalid}, {"..", "x", ErrInvalid},
		{"system.slice:docker:abc", "x", ErrSystemd}, {":runc:abc", "x", ErrSystemd},
		{"/a/b", "x", nil}, {"a:b", "x", nil},
	} {
		_, err := New(bad.path, bad.id, nil)
		if !errors.Is(err, bad.want) || (bad.want == nil && err != nil) {
			t.Errorf("New(%q, %q) error = %v, want %v", bad.path, bad.id, err, bad.want)
		}
	}
}

// TestApplyRefusesBusyCgroup: create must not reuse a cgroup holding
// processes (runtime-spec: a runtime MAY check, and MUST then fail).
func TestApplyRefusesBusyCgroup(t *testing.T) {
	needRoot(t)
	path := testParent(t) + "/busy"
	m := newTestManager(t, path, "busy", nil)
	p := startProc(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatal(err)
	}
	m2 := newTestManager(t, path, "busy", nil)
	p2 := startProc(t)
	if err := m2.Apply(p2.pid()); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("Apply on a busy cgroup = %v, want ErrNotEmpty", err)
	}
	// exec joins the existing cgroup
	if err := m.Join(p2.pid()); err != nil {
		t.Fatalf("Join: %v", err)
	}
	pids, _ := m.Pids()
	if !slices.Contains(pids, p2.pid()) {
		t.Errorf("Pids() = %v after Join of %d", pids, p2.pid())
	}
}

// TestV2Tree runs the cgroup v2 code (directory creation with
// controller delegation, cgroup.freeze, eBPF devices, hugetlb, stats,
// destroy) on the cgroup2 tree. On a unified host that is the host's tree;
// on a hybrid one, the /sys/fs/cgroup/unified tree.
func TestV2Tree(t *testing.T) {
	needRoot(t)
	parent := testParent(t)
	m := newV2TestManager(t, parent+"/v2")
	p := startProc(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	dir := m.Paths()[""]
	if len(m.Paths()) != 1 || !strings.HasSuffix(dir, parent+"/v2") {
		t.Fatalf("Paths() = %v", m.Paths())
	}
	if got := readFile(t, dir, "cgroup.procs"); got != itoa(p.pid()) {
		t.Fatalf("cgroup.procs = %q", got)
	}
	// every controller the root offers reached the new group
	if want, got := v2Controllers(filepath.Dir(filepath.Dir(dir))), v2Controllers(dir); len(got) < len(want) {
		t.Errorf("controllers %v, parent offers %v", got, want)
	}
	if v2Controllers(dir)["hugetlb"] {
		if err := m.Set(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 8 << 20}}}); err != nil {
			t.Fatalf("Set hugetlb: %v", err)
		}
		if got := readFile(t, dir, "hugetlb.2MB.max"); got != "8388608" {
			t.Errorf("hugetlb.2MB.max = %q", got)
		}
	}
	if err := m.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if st, _ := m.FreezerState(); st != "FROZEN" {
		t.Errorf("FreezerState = %q after Freeze", st)
	}
	if got := readFile(t, dir, "cgroup.freeze"); got != "1" {
		t.Errorf("cgroup.freeze = %q", got)
	}
	if err := m.Thaw(); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	if st, _ := m.FreezerState(); st != "THAWED" {
		t.Errorf("FreezerState = %q after Thaw", st)
	}
	if !p.run(t, "true") {
		t.Error("thawed process does not run")
	}
	pids, err := m.Pids()
	if err != nil || !slices.Contains(pids, p.pid()) {
		t.Errorf("Pids() = %v, %v", pids, err)
	}
	if st, err := m.Stats(); err != nil || st.Pids.Current == 0 {
		t.Errorf("Stats: %v, pids.current %d", err, st.Pids.Current)
	} else if v2Controllers(dir)["hugetlb"] {
		if _, ok := st.Hugetlb["2MB"]; !ok {
			t.Errorf("Stats hugetlb = %v, want a 2MB entry", st.Hugetlb)
		}
	}
	p.kill()
	if err := m.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Destroy", dir)
	}
}

// newV2TestManager is a pure cgroup v2 manager on whatever cgroup2 tree the
// host has.
func newV2TestManager(t *testing.T, path string) Manager {
	t.Helper()
	root := Root
	switch Mode() {
	case Hybrid:
		root = hybridUnified
	case Legacy:
		t.Skip("no cgroup2 tree on this host")
	}
	m, err := newManager(Unified, root, path, "v2", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupManager(t, m) })
	return m
}
