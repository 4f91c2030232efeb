package daemon_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hullproject/hull/internal/hulltest"
)

// waitFor polls cond every 20ms for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func taskStatus(d *hulltest.Daemon, ns, id string) string {
	out, _, _ := d.Hull("-n", ns, "tasks", "ls")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == id {
			return strings.Join(f[2:len(f)-1], " ") // between PID and RUNTIME
		}
	}
	return ""
}

func TestDetachedLifecycle(t *testing.T) {
	d, ref := start(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			d := d.For(t)
			id := "life-" + rt
			if out := d.MustHull("run", "-d", "--runtime", rt, "--label", "app=web", "--env", "GREETING=hi", ref, id,
				"sh", "-c", "echo started $GREETING; trap 'echo got TERM; exit 42' TERM; while true; do sleep 0.1; done"); out != id+"\n" {
				t.Fatalf("run -d printed %q", out)
			}
			waitFor(t, "log line", func() bool { out, _, _ := d.Hull("logs", id); return out == "started hi\n" })
			if st := taskStatus(d, "default", id); !strings.HasPrefix(st, "running") {
				t.Fatalf("status %q", st)
			}
			if out := d.MustHull("c", "ls"); !strings.Contains(out, "app=web") || !strings.Contains(out, rt) {
				t.Fatalf("c ls:\n%s", out)
			}
			if out := d.MustHull("c", "info", id); !strings.Contains(out, `"runtime": "`+rt+`"`) || !strings.Contains(out, `"GREETING=hi"`) || !strings.Contains(out, `"ociVersion"`) {
				t.Fatalf("c info:\n%s", out)
			}

			// exec: output, exit code, environment, stdin.
			if out, _, code := d.Hull("exec", id, "sh", "-c", "echo in $GREETING; exit 5"); code != 5 || out != "in hi\n" {
				t.Fatalf("exec: code %d out %q", code, out)
			}
			for i := 0; i < 5; i++ {
				if out, _, code := d.HullIn([]byte("through stdin\n"), "exec", "-i", id, "cat"); code != 0 || out != "through stdin\n" {
					t.Fatalf("exec -i cat (try %d): code %d out %q", i, code, out)
				}
			}
			if out, _, code := d.Hull("exec", "-t", id, "sh", "-c", "test -t 0 && test -t 1 && echo tty"); code != 0 || strings.TrimSpace(out) != "tty" {
				t.Fatalf("exec -t: code %d out %q", code, out)
			}
			if out := d.MustHull("exec", "--user", "1000:1000", id, "id", "-u"); out != "1000\n" {
				t.Fatalf("exec --user: %q", out)
			}
			// A user name is looked up in the container's /etc/passwd.
			d.MustHull("exec", id, "sh", "-c", "echo 'app:x:4242:4343::/:/bin/sh' >> /etc/passwd")
			if out := d.MustHull("exec", "--user", "app", id, "sh", "-c", "echo $(id -u):$(id -g)"); out != "4242:4343\n" {
				t.Fatalf("exec --user app: %q", out)
			}
			if _, errs, code := d.Hull("exec", "--user", "nobody-here", id, "true"); code == 0 || !strings.Contains(errs, "nobody-here") {
				t.Fatalf("exec --user of an unknown name: code %d %q", code, errs)
			}
			if _, errs, code := d.Hull("exec", id, "/no/such/binary"); code == 0 || errs == "" {
				t.Fatalf("exec of a missing binary: code %d, stderr %q", code, errs)
			}

			// ps, pause/resume, metrics.
			if out := d.MustHull("tasks", "ps", id); len(strings.Fields(out)) < 2 {
				t.Fatalf("ps:\n%s", out)
			}
			d.MustHull("tasks", "pause", id)
			if st := taskStatus(d, "default", id); st != "paused" {
				t.Fatalf("after pause: %q", st)
			}
			d.MustHull("tasks", "resume", id)
			if st := taskStatus(d, "default", id); st != "running" {
				t.Fatalf("after resume: %q", st)
			}
			if out := d.MustHull("tasks", "metrics", id); !strings.Contains(out, "{") {
				t.Fatalf("metrics: %q", out)
			}

			// A running container's task is not deleted without force; the
			// container not removed.
			if _, errs, code := d.Hull("c", "rm", id); code == 0 || !strings.Contains(errs, "has a task") {
				t.Fatalf("c rm of a running container: code %d %s", code, errs)
			}
			// Signals reach the process: TERM runs its trap.
			d.MustHull("tasks", "kill", "-s", "TERM", id)
			waitFor(t, "exit", func() bool { return taskStatus(d, "default", id) == "stopped (exit 42)" })
			if out := d.MustHull("logs", id); out != "started hi\ngot TERM\n" {
				t.Fatalf("logs after exit: %q", out)
			}
			d.MustHull("tasks", "rm", id)
			// The log outlives the task, until the container goes.
			if out := d.MustHull("logs", id); !strings.Contains(out, "got TERM") {
				t.Fatalf("logs after task rm: %q", out)
			}
			d.MustHull("c", "rm", id)
			if _, _, code := d.Hull("logs", id); code == 0 {
				t.Fatal("logs of a removed container succeeded")
			}
		})
	}
}

func TestStopAndLogsFollow(t *testing.T) {
	d, ref := start(t)
	id := "follow"
	d.MustHull("run", "-d", ref, id, "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.2; done; sleep 1000")
	cmd := d.Command("logs", "-f", id)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var lines []string
	for len(lines) < 3 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if strings.Join(lines, ",") != "line 1,line 2,line 3" {
		t.Fatalf("logs -f: %q", lines)
	}
	// stop: TERM is ignored by sleep as pid 1's child... the shell is pid
	// 1 and ignores TERM, so stop escalates to KILL after the timeout.
	start := time.Now()
	d.MustHull("stop", "--timeout", "500ms", id)
	if el := time.Since(start); el > 8*time.Second {
		t.Fatalf("stop took %v", el)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("logs -f did not end when the container stopped")
	}
	if st := taskStatus(d, "default", id); st != "" {
		t.Fatalf("stop left the task: %q", st)
	}
	d.MustHull("c", "rm", id)
}

func TestRunTTYAndStdin(t *testing.T) {
	d, ref := start(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			d := d.For(t)
			if out, _, code := d.Hull("run", "--rm", "-t", "--runtime", rt, ref, "tty-"+rt, "sh", "-c", "test -t 1 && echo is-a-tty; exit 4"); code != 4 || strings.TrimSpace(out) != "is-a-tty" {
				t.Fatalf("run -t: code %d out %q", code, out)
			}
			if out, _, code := d.HullIn([]byte("a\nb\n"), "run", "--rm", "-i", "--runtime", rt, ref, "stdin-"+rt, "sh", "-c", "cat; echo done"); code != 0 || out != "a\nb\ndone\n" {
				t.Fatalf("run -i: code %d out %q", code, out)
			}
		})
	}
}

func TestRunOptions(t *testing.T) {
	d, ref := start(t)
	mnt := t.TempDir()
	os.WriteFile(filepath.Join(mnt, "f"), []byte("from host"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"hostname", []string{"--hostname", "box1", "--", "cat", "/proc/sys/kernel/hostname"}, "box1\n"},
		{"user", []string{"--user", "123:45", "--", "sh", "-c", "echo $(id -u):$(id -g)"}, "123:45\n"},
		{"read-only", []string{"--read-only", "--", "sh", "-c", "touch /x 2>/dev/null && echo writable || echo read-only"}, "read-only\n"},
		{"mount", []string{"--mount", "type=bind,src=" + mnt + ",dst=/m,options=rbind:ro", "--", "cat", "/m/f"}, "from host"},
		{"memory", []string{"--memory", "64m", "--", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"}, "67108864\n"},
		{"cpus", []string{"--cpus", "0.5", "--", "sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max"}, "50000\n"},
		{"pids", []string{"--pids-limit", "20", "--", "sh", "-c", "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"}, "20\n"},
		{"cap-drop", []string{"--cap-drop", "CAP_CHOWN", "--", "sh", "-c", "touch /f; chown 5 /f 2>/dev/null && echo chowned || echo denied"}, "denied\n"},
		{"privileged", []string{"--privileged", "--", "sh", "-c", "grep CapEff /proc/self/status"}, "CapEff:\t000001ffffffffff\n"},
		{"env", []string{"--env", "A=1", "--env", "B=2", "--", "sh", "-c", "echo $A$B"}, "12\n"},
	} {
		for _, rt := range runtimes {
			t.Run(rt+"/"+tc.name, func(t *testing.T) {
				d := d.For(t)
				args := append([]string{"run", "--rm", "--runtime", rt}, tc.args[:len(tc.args)-len(after(tc.args))-1]...)
				args = append(args, ref, "opt-"+rt+"-"+tc.name)
				args = append(args, after(tc.args)...)
				out, errs, code := d.Hull(args...)
				if code != 0 || out != tc.want {
					if tc.name == "privileged" && code == 0 && strings.HasPrefix(out, "CapEff:\t0000") {
						return // the full set depends on the kernel's last cap
					}
					t.Fatalf("hull %v: code %d out %q (want %q) stderr %s", args, code, out, tc.want, errs)
				}
			})
		}
	}
}

// after returns what follows "--" in args.
func after(args []string) []string {
	for i, a := range args {
		if a == "--" {
			return args[i+1:]
		}
	}
	return nil
}

func TestBadInput(t *testing.T) {
	d, ref := start(t)
	d.MustHull("run", "-d", ref, "busy", "sleep", "1000")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown runtime", []string{"run", "--rm", "--runtime", "nosuch", ref, "x1", "true"}, `runtime "nosuch" is not configured (have crun, native, runc, vm)`},
		{"image not present", []string{"run", "--rm", "example.com/not/here:1", "x2", "true"}, `image "example.com/not/here:1" is not present in namespace "default"`},
		{"id in use", []string{"run", "--rm", ref, "busy", "true"}, `container "busy" in namespace "default": id already in use`},
		{"bad id", []string{"run", "--rm", ref, "bad/id", "true"}, `container id "bad/id"`},
		{"bad memory", []string{"run", "--rm", "--memory", "lots", ref, "x3", "true"}, `--memory "lots"`},
		{"bad mount", []string{"run", "--rm", "--mount", "src=/tmp", ref, "x4", "true"}, `dst must be an absolute path`},
		{"bad flag", []string{"run", "--no-such-flag", ref, "x5"}, `unknown flag: --no-such-flag`},
		{"bad cap", []string{"run", "--rm", "--cap-add", "CAP_NOPE", ref, "x6", "true"}, `CAP_NOPE`},
		{"missing binary", []string{"run", "--rm", ref, "x7", "/no/such/bin"}, `/no/such/bin`},
		{"bad signal", []string{"tasks", "kill", "-s", "SIGNOPE", "busy"}, `signal "SIGNOPE": unknown`},
		{"no such task", []string{"tasks", "kill", "nope"}, `task of container "nope": not found`},
		{"rm and detach", []string{"run", "--rm", "-d", ref, "x8", "true"}, `--rm and --detach`},
		{"bad format", []string{"--format", "yaml", "images", "ls"}, `--format "yaml"`},
		{"bad namespace", []string{"-n", "bad/ns", "images", "ls"}, `namespace "bad/ns"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := d.Hull(tc.args...)
			if code == 0 || !strings.Contains(errs, tc.want) {
				t.Fatalf("hull %v: code %d, stderr %q, want it to contain %q", tc.args, code, errs, tc.want)
			}
		})
	}
	// None of the failed runs left a container.
	out := d.MustHull("c", "ls")
	for _, id := range []string{"x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8"} {
		if strings.Contains(out, id+" ") {
			t.Errorf("failed run left container %s:\n%s", id, out)
		}
	}
	d.MustHull("c", "rm", "-f", "busy")
}

// TestFailedCreateLeavesNothing: a task whose create fails in the runtime
// leaves no record, bundle, mount, cgroup or shim.
func TestFailedCreateLeavesNothing(t *testing.T) {
	hulltest.RequireRoot(t)
	ref := hulltest.Busybox(t)
	d := hulltest.NewDaemon(t)
	// Runtimes whose OCI runtime binary does not exist, under each shim.
	d.Config = "[runtimes.nobin]\ntype = \"io.containerd.hull.v2\"\noptions = { binary_name = \"/no/such-runtime\" }\n" +
		"[runtimes.runc-nobin]\ntype = \"io.containerd.runc.v2\"\noptions = { BinaryName = \"/no/such-runtime\" }\n"
	d.Start()
	d.MustHull("images", "pull", ref)
	for _, tc := range []struct{ rt, cmd, want string }{
		{"native", "/no/such/bin", "/no/such/bin"},
		{"runc", "/no/such/bin", "/no/such/bin"},
		{"nobin", "true", "/no/such-runtime"},
		{"runc-nobin", "true", "/no/such-runtime"},
	} {
		rt := tc.rt
		t.Run(rt, func(t *testing.T) {
			d := d.For(t)
			id := "fail-" + rt
			shimsBefore := countShims(t)
			_, errs, code := d.Hull("run", "--rm", "--runtime", rt, ref, id, tc.cmd)
			if code == 0 || !strings.Contains(errs, tc.want) {
				t.Fatalf("code %d stderr %q", code, errs)
			}
			if out := d.MustHull("c", "ls"); strings.Contains(out, id) {
				t.Fatalf("record left:\n%s", out)
			}
			if _, err := os.Stat(filepath.Join(d.State, "tasks", "default", id)); !os.IsNotExist(err) {
				t.Fatalf("bundle left: %v", err)
			}
			mi, _ := os.ReadFile("/proc/self/mountinfo")
			if strings.Contains(string(mi), d.Dir) {
				t.Fatalf("mount left:\n%s", grepLines(string(mi), d.Dir))
			}
			for _, cg := range []string{"/sys/fs/cgroup/memory/default/" + id, "/sys/fs/cgroup/pids/default/" + id, "/sys/fs/cgroup/unified/default/" + id} {
				if _, err := os.Stat(cg); err == nil {
					t.Fatalf("cgroup left: %s", cg)
				}
			}
			for _, st := range []string{"/run/hull/runtime/default/" + id, "/run/hull/runc/default/" + id} {
				if _, err := os.Stat(st); err == nil {
					t.Fatalf("runtime state left: %s", st)
				}
			}
			waitFor(t, "shims to exit", func() bool { return countShims(t) <= shimsBefore })
			waitFor(t, "shim sockets to go", func() bool {
				socks, _ := os.ReadDir(filepath.Join(d.State, "s"))
				return len(socks) == 0
			})
		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// countShims counts shim processes whose -address is a test daemon's.
func countShims(t *testing.T) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(data), "containerd-shim-") && strings.Contains(string(data), "/hulld.sock") {
			n++
		}
	}
	return n
}

func TestNamespaceIsolation(t *testing.T) {
	d, ref := start(t)
	d.MustHull("-n", "ns2", "images", "pull", ref)
	d.MustHull("run", "-d", ref, "same", "sh", "-c", "echo one; sleep 1000")
	d.MustHull("-n", "ns2", "run", "-d", ref, "same", "sh", "-c", "echo two; sleep 1000")
	waitFor(t, "logs", func() bool {
		a, _, _ := d.Hull("logs", "same")
		b, _, _ := d.Hull("-n", "ns2", "logs", "same")
		return a == "one\n" && b == "two\n"
	})
	if _, errs, code := d.Hull("ns", "rm", "ns2"); code == 0 || !strings.Contains(errs, `namespace "ns2" has 1 containers`) {
		t.Fatalf("ns rm with a container: code %d %q", code, errs)
	}
	// Shell completion offers the namespace's containers.
	d.MustHull("run", "-d", ref, "only-default", "sleep", "1000")
	if out := d.MustHull("__complete", "c", "rm", ""); !strings.Contains(out, "same\n") || !strings.Contains(out, "only-default\n") {
		t.Fatalf("completion in default:\n%s", out)
	}
	if out := d.MustHull("-n", "ns2", "__complete", "tasks", "kill", ""); !strings.Contains(out, "same\n") || strings.Contains(out, "only-default") {
		t.Fatalf("completion in ns2:\n%s", out)
	}
	d.MustHull("c", "rm", "-f", "only-default")
	d.MustHull("-n", "ns2", "c", "rm", "-f", "same")
	if st := taskStatus(d, "default", "same"); st != "running" {
		t.Fatalf("removing ns2/same touched default/same: %q", st)
	}
	if _, errs, code := d.Hull("-n", "ns3", "tasks", "kill", "same"); code == 0 || !strings.Contains(errs, "not found") {
		t.Fatalf("kill from another namespace: code %d %s", code, errs)
	}
	d.MustHull("c", "rm", "-f", "same")
}

func TestParallelRuns(t *testing.T) {
	d, ref := start(t)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rt := runtimes[i%len(runtimes)]
			id := fmt.Sprintf("par-%d", i)
			out, serr, code := d.Hull("run", "--rm", "--runtime", rt, ref, id, "sh", "-c", fmt.Sprintf("echo %d; exit %d", i, i%5))
			if code != i%5 || out != fmt.Sprintf("%d\n", i) {
				errs <- fmt.Sprintf("run %d (%s): code %d out %q stderr %s", i, rt, code, out, serr)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if out := d.MustHull("c", "ls"); strings.Contains(out, "par-") {
		t.Fatalf("left containers:\n%s", out)
	}
	// The containers' rw snapshots go too (in the background): only the
	// image's one layer stays.
	waitFor(t, "container snapshots to be removed", func() bool {
		ents, err := os.ReadDir(filepath.Join(d.Root, "snapshots", "snapshots"))
		return err == nil && len(ents) == 1
	})
}

func TestEvents(t *testing.T) {
	d, ref := start(t)
	cmd := d.Command("events")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	// Publish a probe until the subscriber shows it: then it is subscribed.
	probe, _ := anypb.New(&eventstypes.TaskOOM{ContainerID: "probe"})
	probeData, _ := proto.Marshal(probe)
	lines := make(chan string, 100)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	subscribed := false
	for i := 0; i < 50 && !subscribed; i++ {
		d.HullIn(probeData, "publish", "--topic", "/tasks/oom")
		select {
		case l := <-lines:
			subscribed = strings.Contains(l, "probe")
		case <-time.After(200 * time.Millisecond):
		}
	}
	if !subscribed {
		t.Fatal("hull events never showed the probe event")
	}
	if _, errs, code := d.Hull("run", "--rm", ref, "ev", "sh", "-c", "exit 9"); code != 9 {
		t.Fatalf("run: code %d %s", code, errs)
	}
	var seen []string
	want := []string{"/containers/create ev", "/tasks/create ev", "/tasks/start ev", "/tasks/exit ev", "/tasks/delete ev", "/containers/delete ev"}
	deadline := time.AfterFunc(10*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for text := range lines {
		if strings.Contains(text, "probe") {
			continue
		}
		f := strings.Fields(text)
		if len(f) >= 3 {
			seen = append(seen, f[1]+" "+f[2])
			if f[1] == "/tasks/exit" && !strings.Contains(text, "status=9") {
				t.Errorf("exit event without the code: %s", text)
			}
		}
		if len(seen) >= len(want) && seen[len(seen)-1] == want[len(want)-1] {
			break
		}
	}
	j := 0
	for _, s := range seen {
		if j < len(want) && s == want[j] {
			j++
		}
	}
	if j != len(want) {
		t.Fatalf("events %q, want in order %q", seen, want)
	}
}

// killShimOf SIGKILLs the shims serving the daemon whose directory is dir.
func killShimOf(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(data), "containerd-shim-") && strings.Contains(string(data), dir+"/hulld.sock") {
			var pid int
			fmt.Sscan(e.Name(), &pid)
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		}
	}
}

// TestRunForwardsSignals: SIGINT and SIGTERM sent to `hull run` reach the
// container's process; the CLI exits with the container's code.
func TestRunForwardsSignals(t *testing.T) {
	d, ref := start(t)
	for _, rt := range runtimes {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			t.Run(rt+"-"+sig.String(), func(t *testing.T) {
				cmd := d.Command("run", "--rm", "--runtime", rt, ref, fmt.Sprintf("sig-%s-%d", rt, sig),
					"sh", "-c", fmt.Sprintf("trap 'echo caught; exit %d' %s; echo ready; while :; do sleep 0.1; done", 40+int(sig), strings.TrimPrefix(unix.SignalName(sig), "SIG")))
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				sc := bufio.NewScanner(out)
				if !sc.Scan() || sc.Text() != "ready" {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("first line %q", sc.Text())
				}
				cmd.Process.Signal(sig)
				rest := ""
				for sc.Scan() {
					rest += sc.Text() + "\n"
				}
				err = cmd.Wait()
				if cmd.ProcessState.ExitCode() != 40+int(sig) || rest != "caught\n" {
					t.Fatalf("exit %v (want %d), output after ready %q", err, 40+int(sig), rest)
				}
			})
		}
	}
}
