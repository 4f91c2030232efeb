package daemon_test

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hullproject/hull/internal/hulltest"
)

// TestRestart: containers keep running while hulld is stopped or killed;
// the new hulld reconnects to their shims, reports exits that happened
// meanwhile with their codes, and keeps their logs.
func TestRestart(t *testing.T) {
	d, ref := start(t)
	for _, how := range []string{"stop", "kill"} {
		t.Run(how, func(t *testing.T) {
			d := d.For(t)
			for _, rt := range runtimes {
				long := "long-" + how + "-" + rt
				d.MustHull("run", "-d", "--runtime", rt, ref, long, "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done")
				d.MustHull("run", "-d", "--runtime", rt, ref, "short-"+how+"-"+rt, "sh", "-c", "read x < /dev/null; sleep 1; echo bye; exit 23")
				// Exec processes: one that outlives the restart, one that
				// ends while hulld is down.
				d.MustHull("exec", "-d", "--exec-id", "xlong", long, "sleep", "1000")
				d.MustHull("exec", "-d", "--exec-id", "xshort", long, "sh", "-c", "sleep 1; exit 17")
			}
			var shortPids []string
			for _, rt := range runtimes {
				shortPids = append(shortPids, taskPid(d, "short-"+how+"-"+rt))
			}
			if how == "stop" {
				d.Stop()
			} else {
				d.Kill()
			}
			// The short ones exit while hulld is down.
			waitFor(t, "the short containers to exit", func() bool {
				for _, pid := range shortPids {
					if _, err := os.Stat("/proc/" + pid); err == nil {
						return false
					}
				}
				return true
			})
			d.Start()
			for _, rt := range runtimes {
				long, short := "long-"+how+"-"+rt, "short-"+how+"-"+rt
				if st := taskStatus(d, "default", long); st != "running" {
					t.Fatalf("%s after restart: %q", long, st)
				}
				if st := taskStatus(d, "default", short); st != "stopped (exit 23)" {
					t.Fatalf("%s after restart: %q", short, st)
				}
				// Hull's shim keeps the output of an exited process until
				// the task is deleted; containerd's runc shim closes its
				// fifos at exit, so what nobody read is gone (as with
				// containerd).
				if out := d.MustHull("logs", short); out != "bye\n" && rt != "runc" {
					t.Fatalf("%s logs: %q", short, out)
				}
				// Output written while hulld was down reaches the log.
				waitFor(t, long+" ticks after restart", func() bool {
					out, _, _ := d.Hull("logs", long)
					return strings.Count(out, "tick") >= 30
				})
				out, _, _ := d.Hull("logs", long)
				lines := strings.Split(strings.TrimSpace(out), "\n")
				for i, l := range lines {
					if l != "tick "+itoa(i) {
						t.Fatalf("%s log line %d = %q: lost or reordered output", long, i, l)
					}
				}
				if out := d.MustHull("exec", long, "echo", "still here"); out != "still here\n" {
					t.Fatalf("exec after restart: %q", out)
				}
				// The exec that ended while hulld was down has its code; the
				// one still running can be signalled and reaped.
				if out := d.MustHull("--format", "json", "tasks", "wait", "--exec-id", "xshort", long); !strings.Contains(out, `"exitStatus": 17`) {
					t.Fatalf("exec xshort after restart: %s", out)
				}
				d.MustHull("tasks", "kill", "-s", "KILL", "--exec-id", "xlong", long)
				if out := d.MustHull("--format", "json", "tasks", "wait", "--exec-id", "xlong", long); !strings.Contains(out, `"exitStatus": 137`) {
					t.Fatalf("exec xlong after kill: %s", out)
				}
				d.MustHull("tasks", "kill", "-s", "KILL", long)
				waitFor(t, long+" exit", func() bool { return taskStatus(d, "default", long) == "stopped (exit 137)" })
				d.MustHull("c", "rm", "-f", long)
				d.MustHull("c", "rm", "-f", short)
			}
		})
	}
}

// TestExitWhileDownEvent: a subscriber of the new daemon sees the exit of
// a container that ended while hulld was down.
func TestRestartShimGone(t *testing.T) {
	d, ref := start(t)
	d.MustHull("run", "-d", ref, "orphan", "sleep", "1000")
	pids := strings.Fields(d.MustHull("tasks", "ps", "orphan"))
	if len(pids) < 2 {
		t.Fatalf("ps: %v", pids)
	}
	d.Kill()
	// The CLI says the daemon is down (its socket is left behind).
	if _, errs, code := d.Hull("tasks", "ls"); code != 1 || !strings.Contains(errs, "hulld is not running") {
		t.Fatalf("CLI with hulld killed: code %d, %q", code, errs)
	}
	// The shim dies too (as on a host reboot of the state tmpfs... here by
	// hand): hulld must clean up and report the task stopped.
	killShimOf(t, d.Dir)
	d.Start()
	waitFor(t, "orphan stopped", func() bool { return strings.HasPrefix(taskStatus(d, "default", "orphan"), "stopped") })
	for _, args := range [][]string{{"tasks", "start", "orphan"}, {"tasks", "pause", "orphan"}, {"exec", "orphan", "true"}} {
		if _, errs, code := d.Hull(args...); code == 0 || errs == "" {
			t.Fatalf("hull %v on a task whose shim is gone: code %d %q", args, code, errs)
		}
	}
	d.MustHull("c", "rm", "-f", "orphan")
}

// taskPid is the host pid of a task's init, from hull tasks ls.
func taskPid(d *hulltest.Daemon, id string) string {
	out, _, _ := d.Hull("tasks", "ls")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == id {
			return f[1]
		}
	}
	return "0"
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestAttachedClientWhenDaemonStops: a foreground `hull run` whose daemon
// goes away says so; the container keeps running and is found again.
func TestAttachedClientWhenDaemonStops(t *testing.T) {
	d, ref := start(t)
	cmd := d.Command("run", ref, "fg", "sh", "-c", "echo up; sleep 1000")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := out.Read(buf); err != nil || string(buf) != "up\n" {
		t.Fatalf("first output %q %v", buf, err)
	}
	d.Stop()
	err := cmd.Wait()
	if err == nil || !strings.Contains(stderr.String(), "lost the connection to hulld while attached to fg") {
		t.Fatalf("CLI after hulld stopped: %v, stderr %q", err, stderr.String())
	}
	d.Start()
	if st := taskStatus(d, "default", "fg"); st != "running" {
		t.Fatalf("after restart: %q", st)
	}
	// hull attach joins it again and ends with its exit status.
	att := d.Command("attach", "fg")
	var attOut syncBuffer
	att.Stdout = &attOut
	if err := att.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	d.MustHull("exec", "fg", "sh", "-c", "echo via-attach > /proc/1/fd/1")
	waitFor(t, "output through attach", func() bool { return strings.Contains(attOut.String(), "via-attach") })
	d.MustHull("tasks", "kill", "-s", "KILL", "fg")
	if err := att.Wait(); att.ProcessState.ExitCode() != 137 {
		t.Fatalf("attach ended with %v (want exit 137), output %q", err, attOut.String())
	}
	d.MustHull("c", "rm", "-f", "fg")
}

// syncBuffer is a strings.Builder safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
