// Package bench compares Hull with its real peers in the same run.
//
// runtime_bench_test.go times `<runtime> run` of /bin/true on one busybox
// bundle with hull-runtime, runc and crun, interleaved round by round so
// that the machine's load falls on all three alike, and reports the median
// wall time and the peak RSS (wait4's ru_maxrss of the runtime process and
// the children it reaped) of each, with Hull's ratios to its peers.
//
// crun refuses this host's hybrid cgroup layout (an empty cgroup2 hierarchy
// at /sys/fs/cgroup/unified beside the v1 controllers). So the benchmark
// binary re-executes itself in a private mount namespace and unmounts
// /sys/fs/cgroup/unified there, before any runtime runs: all three see
// the same plain cgroup v1 layout and the host is left untouched. This
// TestMain serves the whole package: every benchmark here runs in that
// namespace (on a cgroup2-only host nothing is unmounted).
//
// Each run goes through testdata/rusage.c, a tiny static launcher built
// with the host's C compiler: a child the Go benchmark starts shares the
// benchmark's memory until execve, and ru_maxrss counts that, so the
// runtimes' figures would all be the benchmark's own size. Without a C
// compiler the benchmark measures directly and says its RSS is inflated.
package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/internal/testutil"
)

// nsEnv marks the re-executed benchmark binary running in its own mount
// namespace.
const nsEnv = "HULL_BENCH_PRIVATE_MNTNS"

// unifiedMount is the empty cgroup2 hierarchy of a hybrid host.
const unifiedMount = "/sys/fs/cgroup/unified"

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		// Not benchmarking (go test ./... runs this package too): no
		// namespace, no launcher.
		os.Exit(m.Run())
	}
	if os.Geteuid() == 0 && os.Getenv(nsEnv) == "" {
		code, err := reexecInMountNS()
		if err == nil {
			os.Exit(code)
		}
		fmt.Fprintf(os.Stderr, "bench: cannot re-execute in a private mount namespace (%v); running in the host's\n", err)
	}
	if os.Getenv(nsEnv) != "" {
		if err := syscall.Unmount(unifiedMount, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			fmt.Fprintf(os.Stderr, "bench: umount %s: %v\n", unifiedMount, err)
		}
	}
	dir, err := os.MkdirTemp("", "hull-bench-")
	if err == nil {
		launcher, launcherErr = buildLauncher(dir)
	}
	code := m.Run()
	printReports()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	// launcher is the built testdata/rusage.c, "" when it could not be built.
	launcher    string
	launcherErr error
)

// buildLauncher compiles testdata/rusage.c into dir: static when the C
// library allows it, so that the runtime inherits no loader pages.
func buildLauncher(dir string) (string, error) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		return "", fmt.Errorf("no C compiler to build testdata/rusage.c: %w", err)
	}
	out := filepath.Join(dir, "rusage")
	var msgs []string
	for _, static := range []bool{true, false} {
		args := []string{"-O2", "-o", out, "testdata/rusage.c"}
		if static {
			args = append([]string{"-static"}, args...)
		}
		msg, err := exec.Command(cc, args...).CombinedOutput()
		if err == nil {
			return out, nil
		}
		msgs = append(msgs, strings.TrimSpace(string(msg)))
	}
	return "", fmt.Errorf("build testdata/rusage.c: %s", strings.Join(msgs, "; "))
}

// reexecInMountNS runs this binary again with the same arguments in a new
// mount namespace (Go makes its mounts private) and returns its exit code.
func reexecInMountNS() (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), nsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// ociRuntime is one runtime under comparison.
type ociRuntime struct {
	name string
	bin  string
	root string
}

// sample is one `run` of the container.
type sample struct {
	wall   time.Duration
	maxRSS int64 // KiB
}

// peers returns Hull's runtime and the peers whose binaries exist, saying
// which are missing.
func peers(b *testing.B) []*ociRuntime {
	b.Helper()
	hull := filepath.Join(testutil.BinDir(b), "hull-runtime")
	if _, err := os.Stat(hull); err != nil {
		b.Fatalf("%s not built (make build): %v", hull, err)
	}
	rts := []*ociRuntime{{name: "hull", bin: hull}}
	// HULL_BENCH_ALT: another hull-runtime build (with its init and helper
	// beside it), run as "hull-alt" in the same rounds, for A/B.
	if alt := os.Getenv("HULL_BENCH_ALT"); alt != "" {
		rts = append(rts, &ociRuntime{name: "hull-alt", bin: alt})
	}
	for _, p := range []string{"runc", "crun"} {
		bin, err := exec.LookPath(p)
		if err != nil {
			b.Logf("skipping peer %s: binary not found (%v)", p, err)
			continue
		}
		rts = append(rts, &ociRuntime{name: p, bin: bin})
	}
	for _, r := range rts {
		r.root = b.TempDir()
	}
	return rts
}

// runOnce runs the bundle to completion with r and measures it, through
// the launcher when there is one. scratch holds the runtime's stderr and
// the launcher's report.
func runOnce(r *ociRuntime, bundle, id string, scratch *scratchFiles) (sample, error) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return sample{}, err
	}
	defer null.Close()
	if err := scratch.reset(); err != nil {
		return sample{}, err
	}
	args := []string{"--root", r.root, "run", "--bundle", bundle, id}
	var cmd *exec.Cmd
	if launcher != "" {
		cmd = exec.Command(launcher, append([]string{r.bin}, args...)...)
		cmd.ExtraFiles = []*os.File{scratch.report}
	} else {
		cmd = exec.Command(r.bin, args...)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, scratch.stderr
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	fail := func(err error) (sample, error) {
		msg, _ := os.ReadFile(scratch.stderr.Name())
		return sample{}, fmt.Errorf("%s run %s: %w: %s", r.name, id, err, strings.TrimSpace(string(msg)))
	}
	if err != nil {
		return fail(err)
	}
	if launcher == "" {
		s := sample{wall: wall}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			s.maxRSS = ru.Maxrss
		}
		return s, nil
	}
	rep, err := os.ReadFile(scratch.report.Name())
	if err != nil {
		return sample{}, err
	}
	var ns, rss int64
	var status int
	if _, err := fmt.Sscan(string(rep), &ns, &rss, &status); err != nil {
		return sample{}, fmt.Errorf("launcher report %q: %w", rep, err)
	}
	if ws := syscall.WaitStatus(status); !ws.Exited() || ws.ExitStatus() != 0 {
		return fail(fmt.Errorf("wait status %#x", status))
	}
	return sample{wall: time.Duration(ns), maxRSS: rss}, nil
}

// scratchFiles are reused by every run: the runtime's stderr and the
// launcher's report.
type scratchFiles struct {
	stderr, report *os.File
}

func newScratch(b *testing.B) *scratchFiles {
	b.Helper()
	dir := b.TempDir()
	var s scratchFiles
	var err error
	if s.stderr, err = os.Create(filepath.Join(dir, "stderr")); err != nil {
		b.Fatal(err)
	}
	if s.report, err = os.Create(filepath.Join(dir, "report")); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.stderr.Close(); s.report.Close() })
	return &s
}

func (s *scratchFiles) reset() error {
	for _, f := range []*os.File{s.stderr, s.report} {
		if err := f.Truncate(0); err != nil {
			return err
		}
		if _, err := f.Seek(0, 0); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkRunTrue: `run` of /bin/true on the same busybox bundle, one run
// of each runtime per round, the order rotating every round. ns/op is the
// time of one round (all runtimes); the per-runtime figures are the
// reported metrics and the table printed at the end.
func BenchmarkRunTrue(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireBusybox(b)
	rts := peers(b)
	bundle, err := testutil.MakeBundle(b.TempDir(), "/bin/true")
	if err != nil {
		b.Fatal(err)
	}
	// crun 1.8 refuses runtime-spec 1.2 and later as an unknown version;
	// every runtime gets the same 1.0.2 document.
	bundle.Spec.Version = "1.0.2"
	if err := bundle.Save(); err != nil {
		b.Fatal(err)
	}
	scratch := newScratch(b)
	if launcher == "" {
		b.Logf("peak RSS is measured without the launcher (%v): every figure includes the benchmark's own size", launcherErr)
	}

	// Every runtime's binaries start from the page cache state of an
	// installed binary (see settleBinaries); then one untimed run each
	// warms the rest and checks the runtime works at all.
	settleBinaries(b, rts)
	for _, r := range rts {
		if _, err := runOnce(r, bundle.Dir, fmt.Sprintf("warm-%s-%d", r.name, os.Getpid()), scratch); err != nil {
			b.Fatal(err)
		}
	}
	// Every runtime removes its container's cgroups on exit; what one
	// leaves after a failure is removed here, and so are the "cgroup"
	// files crun writes to /sys/fs/cgroup/unified when no cgroup2 is
	// mounted there: plain files on the tmpfs below the mount point we
	// took away (hidden on the host, but kept).
	b.Cleanup(func() {
		for _, r := range rts {
			removeCgroupLeftovers(fmt.Sprintf("-%s-%d", r.name, os.Getpid()))
		}
	})
	samples := make(map[string][]sample, len(rts))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range rts {
			r := rts[(i+j)%len(rts)]
			s, err := runOnce(r, bundle.Dir, fmt.Sprintf("bench-%s-%d-%d", r.name, os.Getpid(), i), scratch)
			if err != nil {
				b.Fatal(err)
			}
			samples[r.name] = append(samples[r.name], s)
		}
	}
	b.StopTimer()

	rep := report{rounds: b.N}
	for _, r := range rts {
		st := summarize(samples[r.name])
		st.name, st.bin = r.name, r.bin
		rep.stats = append(rep.stats, st)
		b.ReportMetric(float64(st.medianWall.Microseconds())/1000, r.name+"-ms")
		b.ReportMetric(float64(st.medianRSS), r.name+"-maxrss-KiB")
	}
	if hull := rep.find("hull"); hull != nil {
		for _, peer := range []string{"runc", "crun"} {
			if p := rep.find(peer); p != nil && p.medianWall > 0 {
				b.ReportMetric(float64(hull.medianWall)/float64(p.medianWall), "hull/"+peer+"-wall")
			}
		}
	}
	setReport("RunTrue", rep)
}

// removeCgroupLeftovers removes what the runs of a benchmark named
// *<infix>* left in the cgroup hierarchies: the empty cgroups of its
// containers (each runtime's default cgroupsPath: /<id>, or hull-runtime's
// /hull-runtime/<id>), and the directories crun made under
// /sys/fs/cgroup/unified when that is a plain tmpfs directory (the
// unified hierarchy unmounted in this namespace).
func removeCgroupLeftovers(infix string) {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if err := syscall.Statfs(unifiedMount, &st); err == nil && st.Type == tmpfsMagic {
		ents, _ := os.ReadDir(unifiedMount)
		for _, e := range ents {
			if e.IsDir() && strings.Contains(e.Name(), infix) {
				os.RemoveAll(filepath.Join(unifiedMount, e.Name()))
			}
		}
	}
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range append(hierarchies, filepath.Join("/sys/fs/cgroup", "*", "hull-runtime")) {
		dirs, _ := filepath.Glob(filepath.Join(h, "*"+infix+"*"))
		for _, d := range dirs {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() && d != unifiedMount {
				syscall.Rmdir(d) // an empty cgroup; never its files
			}
		}
	}
}

// settleBinaries gives each runtime's binaries (hull-runtime with the
// hull-runtime-init and hull-runtime-helper beside it) the page cache
// state of an installed program: written back, dropped, then read once
// with read(2), as after dpkg or cp, or a read from disk after a reboot.
// A binary the Go linker has just written (make build) sits in the page
// cache as it wrote it, through a shared mapping, in 4 KiB pages, and
// every exec of it takes measurably longer (0.2-0.4 ms for hull-runtime
// here) than of a copy of the same file; the peers, installed by dpkg,
// never pay that. All runtimes get the same treatment.
func settleBinaries(b *testing.B, rts []*ociRuntime) {
	b.Helper()
	for _, r := range rts {
		files := []string{r.bin}
		if r.name == "hull" {
			for _, c := range []string{"hull-runtime-init", "hull-runtime-helper"} {
				files = append(files, filepath.Join(filepath.Dir(r.bin), c))
			}
		}
		for _, name := range files {
			if err := settle(name); err != nil && !errors.Is(err, os.ErrNotExist) {
				b.Logf("page cache of %s left as it is: %v", name, err)
			}
		}
	}
}

func settle(name string) error {
	if real, err := filepath.EvalSymlinks(name); err == nil {
		name = real
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return err
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, f)
	return err
}

// stats summarizes one runtime's samples.
type stats struct {
	name, bin            string
	medianWall, minWall  time.Duration
	medianRSS, maxRSS    int64
	n                    int
	p90Wall, maxWallSeen time.Duration
}

func summarize(ss []sample) stats {
	st := stats{n: len(ss)}
	if len(ss) == 0 {
		return st
	}
	walls := make([]time.Duration, len(ss))
	rss := make([]int64, len(ss))
	for i, s := range ss {
		walls[i], rss[i] = s.wall, s.maxRSS
	}
	sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
	sort.Slice(rss, func(i, j int) bool { return rss[i] < rss[j] })
	st.medianWall = medianDur(walls)
	st.minWall, st.maxWallSeen = walls[0], walls[len(walls)-1]
	st.p90Wall = walls[(len(walls)*9+9)/10-1]
	st.medianRSS = medianInt(rss)
	st.maxRSS = rss[len(rss)-1]
	return st
}

func medianDur(d []time.Duration) time.Duration {
	n := len(d)
	if n%2 == 1 {
		return d[n/2]
	}
	return (d[n/2-1] + d[n/2]) / 2
}

func medianInt(v []int64) int64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// report is the outcome of a benchmark's last (largest) invocation.
type report struct {
	rounds int
	stats  []stats
}

func (r report) find(name string) *stats {
	for i := range r.stats {
		if r.stats[i].name == name {
			return &r.stats[i]
		}
	}
	return nil
}

var (
	reportsMu sync.Mutex
	reports   = map[string]report{}
	order     []string
)

func setReport(name string, r report) {
	reportsMu.Lock()
	defer reportsMu.Unlock()
	if _, ok := reports[name]; !ok {
		order = append(order, name)
	}
	reports[name] = r
}

// printReports prints each benchmark's table: medians per runtime, then
// Hull's ratios to each peer against the targets.
func printReports() {
	reportsMu.Lock()
	defer reportsMu.Unlock()
	for _, name := range order {
		r := reports[name]
		fmt.Printf("\n%s: `<runtime> run` of /bin/true, %d interleaved rounds (private mount ns, cgroup v1)\n", name, r.rounds)
		fmt.Printf("  %-6s %12s %10s %10s %10s %16s %14s\n", "", "median wall", "min", "p90", "max", "median maxRSS", "peak maxRSS")
		var hull *stats
		for i := range r.stats {
			s := &r.stats[i]
			if s.name == "hull" {
				hull = s
			}
			fmt.Printf("  %-6s %12s %10s %10s %10s %12d KiB %10d KiB\n", s.name, ms(s.medianWall), ms(s.minWall), ms(s.p90Wall), ms(s.maxWallSeen), s.medianRSS, s.maxRSS)
		}
		if hull == nil {
			continue
		}
		for _, s := range r.stats {
			if s.name == "hull" || s.medianWall == 0 {
				continue
			}
			wall := float64(hull.medianWall) / float64(s.medianWall)
			rss := float64(hull.medianRSS) / float64(max(s.medianRSS, 1))
			target := map[string]string{
				"crun": fmt.Sprintf("target wall <= 1.00: %s", verdict(wall <= 1.0)),
				"runc": fmt.Sprintf("target wall <= 0.50: %s; target RSS <= 1.00: %s", verdict(wall <= 0.5), verdict(hull.medianRSS <= s.medianRSS)),
			}[s.name]
			fmt.Printf("  hull/%-4s median wall %.2fx, median maxRSS %.2fx   (%s)\n", s.name, wall, rss, target)
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
