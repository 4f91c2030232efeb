package cgroups

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	lib "github.com/opencontainers/cgroups"
	_ "github.com/opencontainers/cgroups/devices" // registers the v1 device rules writer and the v2 eBPF filter
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var (
	// ErrSystemd is returned for --systemd-cgroup: Hull drives cgroupfs
	// directly and has no systemd cgroup driver.
	ErrSystemd = errors.New("the systemd cgroup driver (--systemd-cgroup) is not supported by hull-runtime; use the cgroupfs driver (drop the flag)")
	// ErrNotEmpty: the cgroup a new container would use already has processes.
	ErrNotEmpty = errors.New("cgroup is not empty")
	// ErrFrozen: the cgroup a new container would use is frozen.
	ErrFrozen = errors.New("cgroup is frozen")
	// ErrNoCgroup: the controller or the cgroup needed for an operation is missing.
	ErrNoCgroup = errors.New("cgroup not available")
)

// DefaultParent is where containers go when config.json has no cgroupsPath:
// /hull-runtime/<container id> under every hierarchy's root (cgroup namespace
// root, inside a container).
const DefaultParent = "/hull-runtime"

// Manager owns the cgroup(s) of one container.
type Manager interface {
	// Apply creates the cgroup(s) and moves pid in: every v1 hierarchy, or
	// the v2 group (and, on a hybrid host whose v2 tree has controllers,
	// that tree too). It fails with ErrNotEmpty or ErrFrozen when the
	// cgroup already exists and holds processes or is frozen, as the
	// runtime-spec allows. On error the caller kills pid and calls Destroy.
	Apply(pid int) error
	// Join moves pid into the existing cgroup(s), for exec.
	Join(pid int) error
	// Prepare is Apply without moving a process in: it creates the
	// cgroup(s) (with the settings v1 needs before a process joins) and
	// returns the "tasks" files through which a thread moves itself in
	// by writing "0" (see SelfJoinFiles). It returns nil files
	// when this layout offers no such files; the caller then uses Apply.
	// On a hybrid host the caller also calls JoinUnified.
	Prepare() ([]string, error)
	// JoinUnified moves pid into the cgroup v2 group of a hybrid host
	// (after Prepare); a no-op without one.
	JoinUnified(pid int) error
	// Set applies limits. r is merged into what was applied before (see
	// Merge), so `update` passes only what changes.
	Set(r *specs.LinuxResources) error
	// Resources is everything Set has applied so far (merged), for the
	// runtime to save and hand back to LoadWithResources.
	Resources() *specs.LinuxResources
	Freeze() error
	Thaw() error
	// FreezerState is "FROZEN" or "THAWED" as runc reports it, or "" when
	// the host has no freezer.
	FreezerState() (string, error)
	// Pids lists every process in the cgroup tree.
	Pids() ([]int, error)
	// Stats reads the counters, in runc's `events --stats` shape.
	Stats() (*Stats, error)
	// Destroy removes every directory the manager created (after the
	// processes are gone). Removing what is already gone is not an error.
	Destroy() error
	// Paths maps controller to directory; the v2 group is under "".
	Paths() map[string]string
	// Exists reports whether the cgroup directory is there.
	Exists() bool
	// OOMKillCount is how many processes the OOM killer killed in the cgroup.
	OOMKillCount() (uint64, error)
	// NotifyOOM sends on the channel each time the cgroup runs out of
	// memory (runc's "oom" event); the channel is closed when ctx ends or
	// the cgroup is removed.
	NotifyOOM(ctx context.Context) (<-chan struct{}, error)
}

type manager struct {
	mu     sync.Mutex
	layout Layout
	cg     *lib.Cgroup
	// v1 hierarchies (Legacy, Hybrid); nil on Unified.
	v1      *fs.Manager
	v1Paths map[string]string
	// the v2 group: the container's group on Unified; on Hybrid the leaf in
	// the unified tree when that tree has controllers (v2Only lists them).
	v2     *fs2.Manager
	v2Path string
	v2Only map[string]bool
	res    *specs.LinuxResources
}

// New resolves where the container's cgroup lives and returns its manager
// without touching the file system. r is used to validate early and, on v1,
// to prepare the cpuset and realtime settings that must exist before a
// process can join; the limits themselves are written by Set.
//
// cgroupsPath resolution (the runc rules for the cgroupfs driver):
//   - absolute ("/a/b"): that path under every hierarchy's root;
//   - relative ("a/b"): below the runtime's own cgroup, per v1 hierarchy; on
//     cgroup v2 below the parent of the runtime's own cgroup (a v2 cgroup
//     holding processes cannot hold child groups with controllers);
//   - empty: DefaultParent/<containerID>, i.e. /hull-runtime/<id>.
//
// ".." cannot climb out of the hierarchy.
func New(cgroupsPath, containerID string, r *specs.LinuxResources) (Manager, error) {
	layout := Mode()
	v2root := Root
	if layout == Hybrid {
		v2root = hybridUnified
	}
	m, err := newManager(layout, v2root, cgroupsPath, containerID, r)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// newManager is New for a given layout and cgroup2 mount point (tests run
// the v2 code on the v2 tree of a hybrid host).
func newManager(layout Layout, v2root, cgroupsPath, containerID string, r *specs.LinuxResources) (*manager, error) {
	if isSystemdPath(cgroupsPath) {
		return nil, fmt.Errorf("%w: cgroupsPath %q is in the systemd driver's slice:prefix:name form", ErrSystemd, cgroupsPath)
	}
	inner := cleanInner(cgroupsPath)
	if inner == "" {
		if containerID == "" || strings.ContainsAny(containerID, "/\x00") || containerID == "." || containerID == ".." {
			return nil, fmt.Errorf("%w: container id %q cannot name a cgroup", ErrInvalid, containerID)
		}
		inner = DefaultParent + "/" + containerID
	}
	if inner == "." || inner == "/" {
		return nil, fmt.Errorf("%w: cgroupsPath %q names the root cgroup", ErrInvalid, cgroupsPath)
	}
	conv, _, err := Convert(r, layout)
	if err != nil {
		return nil, err
	}
	conv.SkipDevices = false // Apply must join the devices hierarchy; rules come with Set
	cg := &lib.Cgroup{Path: inner, Resources: conv}
	m := &manager{layout: layout, cg: cg, res: &specs.LinuxResources{}}
	if layout == Unified {
		base := v2root
		if !filepath.IsAbs(inner) {
			own, err := ownV2Cgroup()
			if err != nil {
				return nil, fmt.Errorf("resolving relative cgroupsPath %q: %w", cgroupsPath, err)
			}
			base = filepath.Join(v2root, filepath.Dir(own))
		}
		m.v2Path = filepath.Join(base, inner)
		if m.v2, err = fs2.NewManager(cg, m.v2Path); err != nil {
			return nil, err
		}
		return m, nil
	}
	if m.v1Paths, err = v1Paths(inner); err != nil {
		return nil, fmt.Errorf("resolving cgroup %q: %w", inner, err)
	}
	if layout == Hybrid {
		if ctrls := v2Controllers(v2root); len(ctrls) > 0 {
			base := v2root
			if !filepath.IsAbs(inner) {
				own, err := ownV2Cgroup()
				if err != nil {
					return nil, fmt.Errorf("resolving relative cgroupsPath %q: %w", cgroupsPath, err)
				}
				base = filepath.Join(v2root, own)
			}
			m.v2Path = filepath.Join(base, inner)
			m.v2Only = map[string]bool{}
			for c := range ctrls {
				if _, inV1 := m.v1Paths[c]; !inV1 {
					m.v2Only[c] = true
				}
			}
		}
	}
	if err := m.openLibs(); err != nil {
		return nil, err
	}
	return m, nil
}

// Load rebuilds a manager from Paths() saved in the runtime's state.
func Load(paths map[string]string) (Manager, error) {
	return LoadWithResources(paths, nil)
}

// LoadWithResources is Load plus the merged resources (Resources()) saved
// with them, so a later partial Set merges onto the right base.
func LoadWithResources(paths map[string]string, r *specs.LinuxResources) (Manager, error) {
	m, err := loadManager(Mode(), paths, r)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func loadManager(layout Layout, paths map[string]string, r *specs.LinuxResources) (*manager, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: no cgroup paths saved", ErrNoCgroup)
	}
	for k, p := range paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return nil, fmt.Errorf("%w: saved cgroup path %q for %q is not a clean absolute path", ErrInvalid, p, k)
		}
	}
	m := &manager{layout: layout, res: clone(r), cg: &lib.Cgroup{Resources: &lib.Resources{SkipDevices: true}}}
	m.v2Path = paths[""]
	if layout == Unified {
		if len(paths) != 1 || m.v2Path == "" {
			return nil, fmt.Errorf("%w: a cgroup v2 host needs exactly the \"\" path, got %v", ErrInvalid, paths)
		}
		var err error
		if m.v2, err = fs2.NewManager(m.cg, m.v2Path); err != nil {
			return nil, err
		}
		return m, nil
	}
	m.v1Paths = maps.Clone(paths)
	delete(m.v1Paths, "")
	if m.v2Path != "" {
		m.v2Only = map[string]bool{}
		for c := range v2Controllers(filepath.Dir(m.v2Path)) {
			if _, inV1 := m.v1Paths[c]; !inV1 {
				m.v2Only[c] = true
			}
		}
	}
	if err := m.openLibs(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *manager) openLibs() error {
	var err error
	if m.v1, err = fs.NewManager(m.cg, maps.Clone(m.v1Paths)); err != nil {
		return err
	}
	if m.v2Path != "" {
		// the v2 part of a hybrid host only carries v2-only controllers:
		// never devices (v1 has them) nor the freezer (v1 has it).
		m.v2, err = fs2.NewManager(&lib.Cgroup{Path: m.cg.Path, Resources: &lib.Resources{SkipDevices: true}}, m.v2Path)
	}
	return err
}

// v1Subsystems are the hierarchies the library's v1 manager knows, by the
// name it keys them with.
var v1Subsystems = map[string]string{
	"cpuset": "cpuset", "devices": "devices", "memory": "memory", "cpu": "cpu",
	"cpuacct": "cpuacct", "pids": "pids", "blkio": "blkio", "hugetlb": "hugetlb",
	"net_cls": "net_cls", "net_prio": "net_prio", "perf_event": "perf_event",
	"freezer": "freezer", "rdma": "rdma", "misc": "misc", "systemd": "name=systemd",
}

// v1Paths maps each mounted v1 hierarchy to the container's directory in
// it, with the library's placement rules: an absolute inner path under the
// hierarchy's mount point, a relative one under the runtime's own cgroup
// there. It reads mountinfo and /proc/self/cgroup once, where the library's
// own resolver reads mountinfo again for every controller it does not find
// (a sixth of a millisecond per container create here).
func v1Paths(inner string) (map[string]string, error) {
	mounts, err := lib.GetCgroupMounts(false)
	if err != nil {
		return nil, err
	}
	var own map[string]string
	if !filepath.IsAbs(inner) {
		if own, err = lib.ParseCgroupFile("/proc/self/cgroup"); err != nil {
			return nil, err
		}
	}
	paths := map[string]string{}
	for _, mnt := range mounts {
		dir := filepath.Join(mnt.Mountpoint, inner)
		if own != nil {
			cg, ok := own[mnt.Subsystems[0]]
			if !ok {
				cg, ok = own["name="+mnt.Subsystems[0]]
			}
			if !ok {
				continue
			}
			// nested: /proc/self/cgroup shows paths from the host's view
			rel, err := filepath.Rel(mnt.Root, cg)
			if err != nil {
				return nil, err
			}
			dir = filepath.Join(mnt.Mountpoint, rel, inner)
		}
		for _, sub := range mnt.Subsystems {
			if key, known := v1Subsystems[sub]; known {
				paths[key] = dir
			}
		}
	}
	if paths["devices"] == "" {
		// without it the container could open any device node
		return nil, fmt.Errorf("%w: the devices cgroup hierarchy is not mounted", ErrNoCgroup)
	}
	return paths, nil
}

// isSystemdPath recognises "system.slice:docker:abc", the form container
// managers pass when they expect the systemd cgroup driver.
func isSystemdPath(p string) bool {
	parts := strings.Split(p, ":")
	return len(parts) == 3 && !strings.Contains(p, "/") && (parts[0] == "" || strings.HasSuffix(parts[0], ".slice"))
}

// ownV2Cgroup reads the runtime's own cgroup v2 path ("0::" line).
func ownV2Cgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("no cgroup v2 entry in /proc/self/cgroup")
}

func (m *manager) Apply(pid int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkFresh(); err != nil {
		return err
	}
	if m.v1 != nil {
		if err := m.v1.Apply(pid); err != nil {
			if ferr := m.explainV1(m.cg.Resources); ferr != nil {
				return fmt.Errorf("%w (%v)", ferr, err)
			}
			return fmt.Errorf("joining cgroup v1 %s: %w", m.cg.Path, err)
		}
	}
	if m.v2Path != "" {
		if err := createV2(m.v2Path); err != nil {
			return err
		}
		if err := lib.WriteCgroupProc(m.v2Path, pid); err != nil {
			return fmt.Errorf("joining cgroup %s: %w", m.v2Path, err)
		}
	}
	return nil
}

// Prepare: see Manager. On cgroup v1, a thread that writes "0" to a
// hierarchy's "tasks" file moves only itself and the kernel skips the
// global cgroup_threadgroup_rwsem that a cgroup.procs write takes: taking
// that lock for writing waits for an RCU grace period, several
// milliseconds per create on a busy host. The container init moves the
// thread that will execve the container's process that way (the Go
// runtime's other threads end at execve), and threads made from it
// afterwards inherit the cgroup. cgroup v2 has no such file (its
// cgroup.threads needs threaded mode): on a v2-only host Prepare returns no
// files; on a hybrid host it makes the v2 group too, which the caller
// joins the process to with JoinUnified, one cgroup.procs write instead of
// one per hierarchy.
func (m *manager) Prepare() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.v1 == nil {
		return nil, nil
	}
	if err := m.checkFresh(); err != nil {
		return nil, err
	}
	if err := m.v1.Apply(-1); err != nil {
		if ferr := m.explainV1(m.cg.Resources); ferr != nil {
			return nil, fmt.Errorf("%w (%v)", ferr, err)
		}
		return nil, fmt.Errorf("creating cgroup v1 %s: %w", m.cg.Path, err)
	}
	if m.v2Path != "" {
		if err := createV2(m.v2Path); err != nil {
			return nil, err
		}
	}
	return SelfJoinFiles(m.v1Paths), nil
}

// PrepareUnified makes the cgroup of a container on a cgroup v2-only host
// (the group New would give cgroupsPath and containerID) before the
// container's first process exists, and returns its directory, for a
// start with clone3(CLONE_INTO_CGROUP): the process is born in its group,
// without the cgroup.procs write that moves a process, which takes the
// global cgroup_threadgroup_rwsem for writing and so waits for an RCU
// grace period. On other layouts it does nothing and returns "". A manager
// made afterwards with New for the same group finds it with the process
// in it: its Apply is then not needed (and would refuse the group as
// busy).
func PrepareUnified(cgroupsPath, containerID string) (string, error) {
	if Mode() != Unified {
		return "", nil
	}
	m, err := newManager(Unified, Root, cgroupsPath, containerID, nil)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkFresh(); err != nil {
		return "", err
	}
	if err := createV2(m.v2Path); err != nil {
		return "", err
	}
	return m.v2Path, nil
}

// JoinUnified: see Manager.
func (m *manager) JoinUnified(pid int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.v2Path == "" {
		return nil
	}
	if err := lib.WriteCgroupProc(m.v2Path, pid); err != nil {
		return fmt.Errorf("joining cgroup %s: %w", m.v2Path, err)
	}
	return nil
}

// SelfJoinFiles lists the "tasks" file of every distinct v1 directory in
// paths (controller -> directory), sorted.
func SelfJoinFiles(paths map[string]string) []string {
	seen := map[string]bool{}
	var files []string
	for _, dir := range paths {
		if dir == "" || seen[dir] {
			continue
		}
		seen[dir] = true
		files = append(files, filepath.Join(dir, "tasks"))
	}
	slices.Sort(files)
	return files
}

// checkFresh refuses a cgroup that already holds processes or is frozen.
func (m *manager) checkFresh() error {
	if !m.existsLocked() {
		return nil
	}
	pids, err := m.pidsLocked()
	if err == nil && len(pids) > 0 {
		return fmt.Errorf("%w: %s holds %d process(es)", ErrNotEmpty, m.mainPath(), len(pids))
	}
	if st, err := m.freezerStateLocked(); err == nil && st == string(lib.Frozen) {
		return fmt.Errorf("%w: %s", ErrFrozen, m.mainPath())
	}
	return nil
}

func (m *manager) Join(pid int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.v1 != nil {
		for _, p := range m.v1Paths {
			if err := lib.WriteCgroupProc(p, pid); err != nil {
				return fmt.Errorf("joining cgroup %s: %w", p, err)
			}
		}
	}
	if m.v2Path != "" {
		if err := lib.WriteCgroupProc(m.v2Path, pid); err != nil {
			return fmt.Errorf("joining cgroup %s: %w", m.v2Path, err)
		}
	}
	return nil
}

// createV2 makes a cgroup v2 directory and its parents, enabling in each
// ancestor's cgroup.subtree_control every controller it offers, so the new
// group gets them all. The library's own helper assumes the v2 tree is
// mounted at /sys/fs/cgroup, which is not so on hybrid hosts.
func createV2(path string) error {
	var parents []string
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		parents = append(parents, p)
		if p == "/" {
			return fmt.Errorf("%w: no cgroup2 hierarchy above %s", ErrNoCgroup, path)
		}
	}
	// enable controllers from the first existing ancestor down
	for i := len(parents) - 1; i >= 0; i-- {
		dir := parents[i]
		parent := filepath.Dir(dir)
		var want []string
		for c := range v2Controllers(parent) {
			want = append(want, "+"+c)
		}
		if len(want) > 0 {
			if err := lib.WriteFile(parent, "cgroup.subtree_control", strings.Join(want, " ")); err != nil {
				// one at a time: a controller may be refused (threaded mode,
				// processes in the parent) without the others being so
				for _, c := range want {
					_ = lib.WriteFile(parent, "cgroup.subtree_control", c)
				}
			}
		}
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
	}
	return nil
}

func (m *manager) Set(r *specs.LinuxResources) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	merged := Merge(m.res, m.swapFollowsMemory(r))
	conv, extra, err := Convert(merged, m.layout)
	if err != nil {
		return err
	}
	conv.SkipDevices = r == nil || len(r.Devices) == 0
	if err := m.checkMemory(conv); err != nil {
		return err
	}
	switch m.layout {
	case Unified:
		// the library skips device weights silently when BFQ is not there
		if err := weightDeviceNotBFQ(conv); err != nil {
			return err
		}
		if err := m.v2.Set(conv); err != nil {
			return fmt.Errorf("setting cgroup %s: %w", m.v2Path, err)
		}
		if extra.pidsZero {
			if err := lib.WriteFile(m.v2Path, "pids.max", "0"); err != nil {
				return fmt.Errorf("setting pids.max: %w", err)
			}
		}
	default:
		v1res, v2res, err := m.split(conv)
		if err != nil {
			return err
		}
		if err := m.v1.Set(v1res); err != nil {
			if ferr := m.explainV1(v1res); ferr != nil {
				return fmt.Errorf("%w (%v)", ferr, err)
			}
			return fmt.Errorf("setting cgroup %s: %w", m.cg.Path, err)
		}
		if v2res != nil {
			if err := m.v2.Set(v2res); err != nil {
				return fmt.Errorf("setting cgroup %s: %w", m.v2Path, err)
			}
		}
		if extra.pidsZero {
			if err := lib.WriteFile(m.v1Paths["pids"], "pids.max", "0"); err != nil {
				return fmt.Errorf("setting pids.max: %w", err)
			}
		}
		if extra.kernelTCP != nil {
			if err := lib.WriteFile(m.v1Paths["memory"], "memory.kmem.tcp.limit_in_bytes", strconv.FormatInt(*extra.kernelTCP, 10)); err != nil {
				return fmt.Errorf("linux.resources.memory.kernelTCP: %w", err)
			}
		}
	}
	m.res = merged
	return nil
}

// split divides resources between the v1 hierarchies and, on a hybrid host,
// the v2 tree for controllers only v2 has. A limit whose controller exists
// nowhere is an error naming the field.
func (m *manager) split(r *lib.Resources) (*lib.Resources, *lib.Resources, error) {
	v1 := *r
	var v2 *lib.Resources
	need := func(ctrl, field string, set bool) (toV2 bool, err error) {
		if !set {
			return false, nil
		}
		if _, ok := m.v1Paths[ctrl]; ok {
			return false, nil
		}
		v2name := ctrl
		if ctrl == "blkio" {
			v2name = "io"
		}
		if m.v2Only[v2name] {
			return true, nil
		}
		return false, invalid(field, "the %s cgroup controller is not available on this host", ctrl)
	}
	toV2, err := need("hugetlb", "hugepageLimits", len(r.HugetlbLimit) > 0)
	if err != nil {
		return nil, nil, err
	}
	if toV2 {
		v2 = &lib.Resources{SkipDevices: true, HugetlbLimit: r.HugetlbLimit}
		v1.HugetlbLimit = nil
	}
	if toV2, err = need("pids", "pids.limit", r.PidsLimit != nil); err != nil || toV2 {
		if err != nil {
			return nil, nil, err
		}
		if v2 == nil {
			v2 = &lib.Resources{SkipDevices: true}
		}
		v2.PidsLimit, v1.PidsLimit = r.PidsLimit, nil
	}
	if toV2, err = need("rdma", "rdma", len(r.Rdma) > 0); err != nil || toV2 {
		if err != nil {
			return nil, nil, err
		}
		if v2 == nil {
			v2 = &lib.Resources{SkipDevices: true}
		}
		v2.Rdma, v1.Rdma = r.Rdma, nil
	}
	checks := []struct {
		ctrl, field string
		set         bool
	}{
		{"memory", "memory", r.Memory != 0 || r.MemorySwap != 0 || r.MemoryReservation != 0 || r.MemorySwappiness != nil || r.OomKillDisable},
		{"cpu", "cpu", r.CpuShares != 0 || r.CpuQuota != 0 || r.CpuPeriod != 0 || r.CpuRtRuntime != 0 || r.CpuRtPeriod != 0 || r.CpuBurst != nil || r.CPUIdle != nil},
		{"cpuset", "cpu.cpus", r.CpusetCpus != "" || r.CpusetMems != ""},
		{"blkio", "blockIO", r.BlkioWeight != 0 || r.BlkioLeafWeight != 0 || len(r.BlkioWeightDevice) > 0 || len(r.BlkioThrottleReadBpsDevice) > 0 || len(r.BlkioThrottleWriteBpsDevice) > 0 || len(r.BlkioThrottleReadIOPSDevice) > 0 || len(r.BlkioThrottleWriteIOPSDevice) > 0},
		{"net_cls", "network.classID", r.NetClsClassid != 0},
		{"net_prio", "network.priorities", len(r.NetPrioIfpriomap) > 0},
	}
	for _, c := range checks {
		if c.set {
			if _, ok := m.v1Paths[c.ctrl]; !ok {
				return nil, nil, invalid(c.field, "the %s cgroup controller is not available on this host (v1)", c.ctrl)
			}
		}
	}
	return &v1, v2, nil
}

// checkMemory implements memory.checkBeforeUpdate, and checks a new limit
// against the memory+swap limit already on disk when the update gives no
// swap (v1 refuses memory above memsw with a bare EINVAL).
func (m *manager) checkMemory(r *lib.Resources) error {
	dir, usageFile := m.v1Paths["memory"], "memory.usage_in_bytes"
	if m.layout == Unified {
		dir, usageFile = m.v2Path, "memory.current"
	}
	if dir == "" || !lib.PathExists(dir) {
		return nil
	}
	if r.MemoryCheckBeforeUpdate && (r.Memory > 0 || r.MemorySwap > 0) {
		if usage, err := readUint(dir, usageFile); err == nil {
			if r.Memory > 0 && uint64(r.Memory) <= usage {
				return invalid("memory.limit", "%d is not above the current usage %d (checkBeforeUpdate)", r.Memory, usage)
			}
			if r.MemorySwap > 0 && uint64(r.MemorySwap) <= usage {
				return invalid("memory.swap", "%d is not above the current usage %d (checkBeforeUpdate)", r.MemorySwap, usage)
			}
		}
	}
	if m.layout != Unified && r.Memory > 0 && r.MemorySwap == 0 {
		if memsw, err := readUint(dir, "memory.memsw.limit_in_bytes"); err == nil && uint64(r.Memory) > memsw {
			return invalid("memory.limit", "%d is above the memory+swap limit %d already set; give memory.swap too", r.Memory, memsw)
		}
	}
	return nil
}

// swapFollowsMemory: when an update changes memory.limit without giving
// memory.swap, and the container so far had no swap (memory+swap equal to
// memory, or v2 memory.swap.max 0), the swap total moves with the limit so
// the container stays without swap, as Docker's update does. The base is
// the merged resources when known, else what is on disk.
func (m *manager) swapFollowsMemory(r *specs.LinuxResources) *specs.LinuxResources {
	if r == nil || r.Memory == nil || r.Memory.Limit == nil || r.Memory.Swap != nil || *r.Memory.Limit <= 0 {
		return r
	}
	noSwap := false
	if b := m.res.Memory; b != nil && b.Limit != nil {
		noSwap = b.Swap != nil && *b.Swap == *b.Limit && *b.Limit > 0
	} else if m.layout == Unified {
		v, err := readUint(m.v2Path, "memory.swap.max")
		noSwap = err == nil && v == 0
	} else if dir := m.v1Paths["memory"]; dir != "" {
		lim, err1 := readUint(dir, "memory.limit_in_bytes")
		sw, err2 := readUint(dir, "memory.memsw.limit_in_bytes")
		noSwap = err1 == nil && err2 == nil && lim == sw && lim < 1<<62
	}
	if !noSwap {
		return r
	}
	out := clone(r)
	out.Memory.Swap = ptr64(*r.Memory.Limit)
	return out
}

func ptr64(v int64) *int64 { return &v }

// explainV1 turns a failed v1 write into an error naming the field, when
// the cause can be read from the hierarchy; nil when it cannot.
func (m *manager) explainV1(r *lib.Resources) error {
	for _, explain := range []func(*lib.Resources) error{m.limitBelowUsage, m.rtNotGranted, m.cpusetNotAllowed, m.weightNoFile, weightDeviceNotBFQ} {
		if err := explain(r); err != nil {
			return err
		}
	}
	return nil
}

// weightNoFile: a blkio weight needs blkio.weight (CFQ, before 5.0) or
// blkio.bfq.weight (the BFQ scheduler with CONFIG_BFQ_GROUP_IOSCHED); a
// kernel with neither has no v1 weight at all.
func (m *manager) weightNoFile(r *lib.Resources) error {
	dir := m.v1Paths["blkio"]
	if dir == "" || (r.BlkioWeight == 0 && r.BlkioLeafWeight == 0) {
		return nil
	}
	for _, f := range []string{"blkio.weight", "blkio.bfq.weight"} {
		if lib.PathExists(filepath.Join(dir, f)) {
			return nil
		}
	}
	field := "blockIO.weight"
	if r.BlkioWeight == 0 {
		field = "blockIO.leafWeight"
	}
	return invalid(field, "this host's blkio controller has no weight file (blkio.weight or blkio.bfq.weight): weights need the BFQ I/O scheduler built with CONFIG_BFQ_GROUP_IOSCHED")
}

// weightDeviceNotBFQ: per-device weights exist only for devices whose I/O
// scheduler is BFQ.
func weightDeviceNotBFQ(r *lib.Resources) error {
	for i, wd := range r.BlkioWeightDevice {
		dev := strconv.FormatInt(wd.Major, 10) + ":" + strconv.FormatInt(wd.Minor, 10)
		b, err := os.ReadFile("/sys/dev/block/" + dev + "/queue/scheduler")
		if err != nil {
			return invalid(fmt.Sprintf("blockIO.weightDevice[%d]", i), "%s is not a block device with an I/O queue on this host", dev)
		}
		if !strings.Contains(string(b), "[bfq]") {
			return invalid(fmt.Sprintf("blockIO.weightDevice[%d]", i), "device %s uses the I/O scheduler %s; per-device weights need bfq", dev, strings.TrimSpace(string(b)))
		}
	}
	return nil
}

// cpusetNotAllowed: a cpuset can only hold CPUs and memory nodes its parent
// has.
func (m *manager) cpusetNotAllowed(r *lib.Resources) error {
	dir := m.v1Paths["cpuset"]
	if dir == "" || (r.CpusetCpus == "" && r.CpusetMems == "") {
		return nil
	}
	parent := filepath.Dir(dir)
	for parent != "/" && !lib.PathExists(filepath.Join(parent, "cpuset.cpus")) {
		parent = filepath.Dir(parent)
	}
	for _, c := range []struct{ field, want, file string }{
		{"cpu.cpus", r.CpusetCpus, "cpuset.effective_cpus"},
		{"cpu.mems", r.CpusetMems, "cpuset.effective_mems"},
	} {
		if c.want == "" {
			continue
		}
		haveS, err := lib.ReadFile(parent, c.file)
		if err != nil {
			continue
		}
		want, err1 := parseList(c.want)
		have, err2 := parseList(haveS)
		if err1 != nil || err2 != nil {
			continue
		}
		for _, w := range want {
			if !slices.Contains(have, w) {
				return invalid(c.field, "%q names %d, which the parent cgroup %s does not have (%s)", c.want, w, parent, strings.TrimSpace(haveS))
			}
		}
	}
	return nil
}

// limitBelowUsage explains a failed v1 write when the new memory limit is
// below what the cgroup uses and the kernel could not reclaim the rest.
func (m *manager) limitBelowUsage(r *lib.Resources) error {
	dir := m.v1Paths["memory"]
	if dir == "" || r.Memory <= 0 {
		return nil
	}
	usage, err := readUint(dir, "memory.usage_in_bytes")
	if err != nil || uint64(r.Memory) > usage {
		return nil
	}
	return invalid("memory.limit", "%d is below the current usage %d, which the kernel could not reclaim", r.Memory, usage)
}

// rtNotGranted explains a failed realtime budget: v1 gives a group only
// what its parent has, and new parents have none.
func (m *manager) rtNotGranted(r *lib.Resources) error {
	dir := m.v1Paths["cpu"]
	if dir == "" || r.CpuRtRuntime <= 0 {
		return nil
	}
	parent := filepath.Dir(dir)
	have, err := readUint(parent, "cpu.rt_runtime_us")
	if err != nil || int64(have) >= r.CpuRtRuntime {
		return nil
	}
	return invalid("cpu.realtimeRuntime", "%d µs cannot be granted: the parent cgroup %s has cpu.rt_runtime_us %d; give the parent cgroups a realtime budget first", r.CpuRtRuntime, parent, have)
}

func readUint(dir, file string) (uint64, error) {
	s, err := lib.ReadFile(dir, file)
	if err != nil {
		return 0, err
	}
	s = strings.TrimSpace(s)
	if s == "max" {
		return ^uint64(0), nil
	}
	return strconv.ParseUint(s, 10, 64)
}

func (m *manager) Resources() *specs.LinuxResources {
	m.mu.Lock()
	defer m.mu.Unlock()
	return clone(m.res)
}

func (m *manager) Freeze() error { return m.freeze(lib.Frozen) }
func (m *manager) Thaw() error   { return m.freeze(lib.Thawed) }

func (m *manager) freeze(st lib.FreezerState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var err error
	if m.layout == Unified {
		err = m.v2.Freeze(st)
	} else {
		if m.v1Paths["freezer"] == "" {
			return fmt.Errorf("%w: the freezer controller is not mounted", ErrNoCgroup)
		}
		err = m.v1.Freeze(st)
	}
	if err != nil {
		return fmt.Errorf("setting freezer to %s: %w", st, err)
	}
	return nil
}

func (m *manager) FreezerState() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.freezerStateLocked()
}

func (m *manager) freezerStateLocked() (string, error) {
	var st lib.FreezerState
	var err error
	if m.layout == Unified {
		st, err = m.v2.GetFreezerState()
	} else {
		st, err = m.v1.GetFreezerState()
	}
	return string(st), err
}

func (m *manager) Pids() ([]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pidsLocked()
}

func (m *manager) pidsLocked() ([]int, error) {
	dir := m.mainPath()
	if dir == "" {
		return nil, fmt.Errorf("%w: no cgroup to list processes from", ErrNoCgroup)
	}
	return lib.GetAllPids(dir)
}

// mainPath is the directory that lists the container's processes: the v2
// group, or the v1 devices hierarchy (always there: the library insists).
func (m *manager) mainPath() string {
	if m.layout == Unified {
		return m.v2Path
	}
	if p := m.v1Paths["devices"]; p != "" {
		return p
	}
	for _, p := range m.v1Paths {
		return p
	}
	return ""
}

func (m *manager) Stats() (*Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s *lib.Stats
	var err error
	if m.layout == Unified {
		s, err = m.v2.GetStats()
	} else {
		s, err = m.v1.GetStats()
		if err == nil && m.v2 != nil && m.v2Only["hugetlb"] {
			h, herr := m.v2.Stats(&lib.StatsOptions{Controllers: lib.HugeTLB})
			if herr == nil {
				s.HugetlbStats = h.HugetlbStats
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading cgroup stats: %w", err)
	}
	return convertStats(s), nil
}

func (m *manager) Destroy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, p := range m.v1Paths {
		if err := lib.RemovePath(p); err != nil {
			errs = append(errs, err)
		}
	}
	if m.v2Path != "" {
		if err := lib.RemovePath(m.v2Path); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("removing cgroup: %w", err)
	}
	return nil
}

func (m *manager) Paths() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := maps.Clone(m.v1Paths)
	if out == nil {
		out = map[string]string{}
	}
	if m.v2Path != "" {
		out[""] = m.v2Path
	}
	return out
}

func (m *manager) Exists() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.existsLocked()
}

func (m *manager) existsLocked() bool {
	p := m.mainPath()
	return p != "" && lib.PathExists(p)
}
