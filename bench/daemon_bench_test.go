package bench

// daemon_bench_test.go times `hull run --rm` of /bin/true through hulld
// (Hull's shim and hull-runtime) against containerd 1.6's `ctr run --rm`
// of the same busybox image, both daemons started here with temporary
// roots and sockets, round by round; then reports the idle resident set
// of hulld and of one shim of each (Hull's, containerd's runc shim) and of
// containerd.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hullproject/hull/internal/hulltest"
	"github.com/hullproject/hull/mount"
)

// startContainerd runs containerd with a private root, state and socket;
// it returns the socket and a stop function.
func startContainerd(b *testing.B) (string, *exec.Cmd, func()) {
	dir, err := os.MkdirTemp("", "ctrd-runbench-")
	if err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n[ttrpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	log, _ := os.Create(filepath.Join(dir, "containerd.log"))
	d := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	d.Stdout, d.Stderr = log, log
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	stop := func() {
		d.Process.Kill()
		d.Wait()
		log.Close()
		mount.UnmountAll(filepath.Join(dir, "root"), 0)
		os.RemoveAll(dir)
	}
	for i := 0; ; i++ {
		if exec.Command("ctr", "-a", sock, "version").Run() == nil {
			break
		}
		if i > 200 {
			logb, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			stop()
			b.Fatalf("containerd did not start: %s", logb)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return sock, d, stop
}

// vmRSS reads a process's resident set in KiB.
func vmRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return -1
}

// shimPid finds the shim serving container id (its cmdline has -id id).
func shimPid(id string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(data), "\x00")
		if len(args) == 0 || !strings.Contains(args[0], "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-id" && args[i+1] == id {
				pid, _ := strconv.Atoi(e.Name())
				return pid
			}
		}
	}
	return 0
}

func medianOf(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func BenchmarkDaemonRunRm(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	if _, err := exec.LookPath("containerd"); err != nil {
		b.Skip("containerd is not installed")
	}
	ref := hulltest.Busybox(b)
	b.Cleanup(hulltest.Cleanup) // registered first: runs after the daemon's cleanup
	hd := hulltest.NewDaemon(b)
	hd.Start()
	hd.MustHull("images", "pull", ref)
	sock, ctrd, stop := startContainerd(b)
	defer stop()
	if out, err := exec.Command("ctr", "-a", sock, "-n", "bench", "images", "pull", "--plain-http", ref).CombinedOutput(); err != nil {
		b.Fatalf("ctr pull: %v\n%s", err, out)
	}
	runHull := func(i int) time.Duration {
		start := time.Now()
		out, errs, code := hd.Hull("run", "--rm", ref, fmt.Sprintf("hb%d", i), "/bin/true")
		el := time.Since(start)
		if code != 0 {
			b.Fatalf("hull run: exit %d: %s%s", code, out, errs)
		}
		return el
	}
	runCtr := func(i int) time.Duration {
		start := time.Now()
		out, err := exec.Command("ctr", "-a", sock, "-n", "bench", "run", "--rm", ref, fmt.Sprintf("cb%d", i), "/bin/true").CombinedOutput()
		el := time.Since(start)
		if err != nil {
			b.Fatalf("ctr run: %v\n%s", err, out)
		}
		return el
	}
	// Warm both (page cache, first shim start).
	runHull(-1)
	runCtr(-1)
	var hull, ctr []time.Duration
	// hulld finishes a --rm (shim exit, rw snapshot removal) in the
	// background after answering: a pause after each run keeps that work
	// out of the other's measurement.
	settle := func() { time.Sleep(150 * time.Millisecond) }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			hull = append(hull, runHull(i))
			settle()
			ctr = append(ctr, runCtr(i))
			settle()
		} else {
			ctr = append(ctr, runCtr(i))
			settle()
			hull = append(hull, runHull(i))
			settle()
		}
	}
	b.StopTimer()
	mh, mc := medianOf(hull), medianOf(ctr)
	ratio := float64(mh) / float64(mc)
	b.ReportMetric(float64(mh.Microseconds())/1000, "hull-ms")
	b.ReportMetric(float64(mc.Microseconds())/1000, "ctr-ms")
	b.ReportMetric(ratio, "ratio")

	// Idle resident sets: a detached sleeping container under each.
	hd.MustHull("run", "-d", ref, "idle", "sleep", "1000")
	defer hd.Hull("c", "rm", "-f", "idle")
	if out, err := exec.Command("ctr", "-a", sock, "-n", "bench", "run", "-d", ref, "idle", "sleep", "1000").CombinedOutput(); err != nil {
		b.Fatalf("ctr run -d: %v\n%s", err, out)
	}
	defer func() {
		exec.Command("ctr", "-a", sock, "-n", "bench", "tasks", "kill", "-s", "KILL", "idle").Run()
		time.Sleep(200 * time.Millisecond)
		exec.Command("ctr", "-a", sock, "-n", "bench", "tasks", "rm", "idle").Run()
		exec.Command("ctr", "-a", sock, "-n", "bench", "c", "rm", "idle").Run()
	}()
	time.Sleep(3 * time.Second) // idle
	hulldRSS, ctrdRSS := vmRSS(hd.Pid()), vmRSS(ctrd.Process.Pid)
	hullShim, runcShim := vmRSS(shimPid("idle")), int64(-1)
	// Both containers are named idle: tell the shims apart by binary.
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		data, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		s := string(data)
		if strings.Contains(s, "-id\x00idle\x00") {
			pid, _ := strconv.Atoi(e.Name())
			if strings.Contains(s, "containerd-shim-hull-v2") {
				hullShim = vmRSS(pid)
			} else if strings.Contains(s, "containerd-shim-runc-v2") {
				runcShim = vmRSS(pid)
			}
		}
	}
	b.ReportMetric(float64(hulldRSS)/1024, "hulld-MiB")
	b.ReportMetric(float64(hullShim)/1024, "shim-MiB")
	fmt.Printf("\n== hull run --rm vs ctr run --rm of /bin/true (busybox, %d rounds) ==\n", b.N)
	fmt.Printf("  hull run --rm  median %6.1f ms\n", float64(mh.Microseconds())/1000)
	fmt.Printf("  ctr run --rm   median %6.1f ms\n", float64(mc.Microseconds())/1000)
	fmt.Printf("  ratio hull/ctr  %.2f  (target <= 0.50: %s)\n", ratio, map[bool]string{true: "met", false: "NOT met"}[ratio <= 0.5])
	fmt.Printf("== idle RSS ==\n")
	fmt.Printf("  hulld                    %6.1f MiB (target <= 30: %s)   containerd %6.1f MiB\n", float64(hulldRSS)/1024, map[bool]string{true: "met", false: "NOT met"}[hulldRSS <= 30*1024], float64(ctrdRSS)/1024)
	fmt.Printf("  containerd-shim-hull-v2  %6.1f MiB (target <= 8: %s)    containerd-shim-runc-v2 %6.1f MiB\n", float64(hullShim)/1024, map[bool]string{true: "met", false: "NOT met"}[hullShim > 0 && hullShim <= 8*1024], float64(runcShim)/1024)
}
