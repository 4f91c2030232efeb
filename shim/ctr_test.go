package shim_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestCtrRun: `ctr run --rm` through the shim prints the container's
// output and exits with its code, and leaves nothing behind.
func TestCtrRun(t *testing.T) {
	c := startContainerd(t)
	for name, bin := range runtimes(t) {
		t.Run(name, func(t *testing.T) {
			cfg := c.runtimeConfig(t, bin)
			id := c.newID(t)
			out, err := c.ctr("run", "--rm", "--runtime", runtimeType, "--runtime-config-path", cfg, imageRef, id, "sh", "-c", "echo hi; echo err >&2; exit 3")
			if code := exitCode(err); code != 3 {
				t.Fatalf("exit code %d (%v), want 3; output:\n%s", code, err, out)
			}
			if !strings.Contains(out, "hi\n") || !strings.Contains(out, "err\n") {
				t.Fatalf("output %q, want hi and err", out)
			}
			c.assertNothingLeft(t, id)
		})
	}
}

// TestCtrTaskLifecycle: a detached task is listed, exec'd into, paused,
// resumed, measured, signalled and removed.
func TestCtrTaskLifecycle(t *testing.T) {
	c := startContainerd(t)
	for name, bin := range runtimes(t) {
		t.Run(name, func(t *testing.T) {
			cfg := c.runtimeConfig(t, bin)
			id := c.newID(t)
			must := func(args ...string) string {
				t.Helper()
				out, err := c.ctr(args...)
				if err != nil {
					t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return out
			}
			taskStatus := func() string {
				t.Helper()
				for _, l := range strings.Split(must("task", "ls"), "\n") {
					if f := strings.Fields(l); len(f) == 3 && f[0] == id {
						return f[2]
					}
				}
				return ""
			}
			must("run", "-d", "--runtime", runtimeType, "--runtime-config-path", cfg, imageRef, id,
				"sh", "-c", `trap "exit 7" TERM; while true; do sleep 0.1; done`)
			if s := taskStatus(); s != "RUNNING" {
				t.Fatalf("task status %q, want RUNNING", s)
			}

			out, err := c.ctr("task", "exec", "--exec-id", "e1", id, "sh", "-c", "echo from-exec; exit 5")
			if code := exitCode(err); code != 5 || !strings.Contains(out, "from-exec") {
				t.Fatalf("exec: code %d (%v), output %q; want 5 and from-exec", code, err, out)
			}

			if ps := must("task", "ps", id); len(strings.Fields(ps)) < 3 {
				t.Fatalf("task ps lists no process:\n%s", ps)
			}
			metrics := must("task", "metrics", id)
			if !strings.Contains(metrics, "memory.usage_in_bytes") || !strings.Contains(metrics, "pids.current") {
				t.Fatalf("task metrics:\n%s", metrics)
			}

			must("task", "pause", id)
			if s := taskStatus(); s != "PAUSED" {
				t.Fatalf("after pause: status %q, want PAUSED", s)
			}
			must("task", "resume", id)
			if s := taskStatus(); s != "RUNNING" {
				t.Fatalf("after resume: status %q, want RUNNING", s)
			}

			must("task", "kill", "-s", "SIGTERM", id)
			deadline := time.Now().Add(10 * time.Second)
			for taskStatus() != "STOPPED" {
				if time.Now().After(deadline) {
					t.Fatalf("task did not stop on SIGTERM: %s", taskStatus())
				}
				time.Sleep(50 * time.Millisecond)
			}
			info := must("task", "rm", id)
			_ = info
			must("containers", "rm", id)
			c.assertNothingLeft(t, id)
		})
	}
}

// TestCtrKillExitCode: SIGTERM to a running `ctr run` ends it with the
// code the container's trap chose.
func TestCtrKillExitCode(t *testing.T) {
	c := startContainerd(t)
	for name, bin := range runtimes(t) {
		t.Run(name, func(t *testing.T) {
			cfg := c.runtimeConfig(t, bin)
			id := c.newID(t)
			run := c.ctrCmd("run", "--rm", "--runtime", runtimeType, "--runtime-config-path", cfg, imageRef, id,
				"sh", "-c", `trap "echo got-term; exit 9" TERM; echo ready; while true; do sleep 0.1; done`)
			var out syncBuffer
			run.Stdout, run.Stderr = &out, &out
			if err := run.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "ready", func() bool { return strings.Contains(out.String(), "ready") })
			if o, err := c.ctr("task", "kill", "-s", "SIGTERM", id); err != nil {
				t.Fatalf("kill: %v %s", err, o)
			}
			err := run.Wait()
			if code := exitCode(err); code != 9 || !strings.Contains(out.String(), "got-term") {
				t.Fatalf("exit code %d (%v), output %q; want 9 and got-term", code, err, out.String())
			}
			c.assertNothingLeft(t, id)
		})
	}
}

// TestCtrTTY: `ctr run -t` gets a terminal inside the container, and the
// window size ctr sets after start (ResizePty) reaches it.
func TestCtrTTY(t *testing.T) {
	c := startContainerd(t)
	for name, bin := range runtimes(t) {
		t.Run(name, func(t *testing.T) {
			cfg := c.runtimeConfig(t, bin)
			id := c.newID(t)
			cmd := c.ctrCmd("run", "-t", "--rm", "--runtime", runtimeType, "--runtime-config-path", cfg, imageRef, id,
				"sh", "-c", `tty; i=0; while [ $i -lt 100 ]; do s=$(stty size 2>/dev/null); case "$s" in [1-9]*" "[1-9]*) break;; esac; sleep 0.05; i=$((i+1)); done; echo "size=$s"; exit 4`)
			ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 33, Cols: 99})
			if err != nil {
				t.Fatal(err)
			}
			defer ptmx.Close()
			var out syncBuffer
			go func() { _, _ = out.ReadFrom(ptmx) }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err = <-done:
			case <-ctx.Done():
				_ = cmd.Process.Kill()
				t.Fatalf("ctr run -t hung; output %q", out.String())
			}
			waitFor(t, "tty output", func() bool { return strings.Contains(out.String(), "/dev/") })
			if code := exitCode(err); code != 4 {
				t.Fatalf("exit code %d (%v), want 4; output %q", code, err, out.String())
			}
			if !strings.Contains(out.String(), "/dev/pts/") {
				t.Fatalf("tty output %q, want a /dev/pts/ terminal", out.String())
			}
			if !strings.Contains(out.String(), "size=33 99") {
				t.Fatalf("stty size output %q, want 33 99 (the resize reached the container)", out.String())
			}
			c.assertNothingLeft(t, id)
		})
	}
}

// TestCtrEvents: the shim's task events reach containerd's event stream.
func TestCtrEvents(t *testing.T) {
	c := startContainerd(t)
	rts := runtimes(t)
	bin := rts["runc"]
	if bin == "" {
		for _, b := range rts {
			bin = b
		}
	}
	cfg := c.runtimeConfig(t, bin)
	ev := exec.Command("ctr", "-a", c.sock, "events")
	var out syncBuffer
	ev.Stdout, ev.Stderr = &out, &out
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ev.Process.Kill(); _ = ev.Wait() }()
	time.Sleep(200 * time.Millisecond)
	id := c.newID(t)
	if o, err := c.ctr("run", "--rm", "--runtime", runtimeType, "--runtime-config-path", cfg, imageRef, id, "true"); err != nil {
		t.Fatalf("run: %v %s", err, o)
	}
	for _, topic := range []string{"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"} {
		waitFor(t, topic, func() bool {
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.Contains(l, topic) && strings.Contains(l, id) {
					return true
				}
			}
			return false
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// ReadFrom copies r into the buffer until r fails.
func (b *syncBuffer) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(writerOnly{b}, r)
}

type writerOnly struct{ io.Writer }

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCtrOOM: a container over its memory limit is OOM-killed, the shim
// publishes /tasks/oom, and the exit code is 137.
func TestCtrOOM(t *testing.T) {
	c := startContainerd(t)
	if !fileExists("/sys/fs/cgroup/memory/memory.oom_control") {
		t.Skip("OOM events are watched on cgroup v1 memory.oom_control, which this host lacks")
	}
	for name, bin := range runtimes(t) {
		t.Run(name, func(t *testing.T) {
			cfg := c.runtimeConfig(t, bin)
			ev := exec.Command("ctr", "-a", c.sock, "events")
			var evOut syncBuffer
			ev.Stdout, ev.Stderr = &evOut, &evOut
			if err := ev.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = ev.Process.Kill(); _ = ev.Wait() }()
			time.Sleep(200 * time.Millisecond)
			id := c.newID(t)
			// busybox tail keeps the last lines of /dev/zero: one endless line.
			out, err := c.ctr("run", "--rm", "--memory-limit", "33554432", "--runtime", runtimeType, "--runtime-config-path", cfg, imageRef, id, "tail", "/dev/zero")
			if code := exitCode(err); code != 137 {
				t.Fatalf("exit code %d (%v), want 137; output %s", code, err, out)
			}
			waitFor(t, "/tasks/oom event", func() bool {
				return strings.Contains(evOut.String(), `/tasks/oom {"container_id":"`+id+`"}`)
			})
			c.assertNothingLeft(t, id)
		})
	}
}

// TestCtrExecTTY: `ctr task exec -t` gets its own terminal.
func TestCtrExecTTY(t *testing.T) {
	c := startContainerd(t)
	for name, bin := range runtimes(t) {
		t.Run(name, func(t *testing.T) {
			cfg := c.runtimeConfig(t, bin)
			id := c.newID(t)
			if out, err := c.ctr("run", "-d", "--runtime", runtimeType, "--runtime-config-path", cfg, imageRef, id, "sleep", "1000"); err != nil {
				t.Fatalf("run: %v %s", err, out)
			}
			cmd := c.ctrCmd("task", "exec", "-t", "--exec-id", "tty1", id, "sh", "-c", "tty; exit 2")
			ptmx, err := pty.Start(cmd)
			if err != nil {
				t.Fatal(err)
			}
			defer ptmx.Close()
			var out syncBuffer
			go func() { _, _ = out.ReadFrom(ptmx) }()
			err = cmd.Wait()
			waitFor(t, "exec tty output", func() bool { return strings.Contains(out.String(), "/dev/pts/") })
			if code := exitCode(err); code != 2 {
				t.Fatalf("exec -t exit %d (%v), want 2; output %q", code, err, out.String())
			}
			// --all: every process of the container (runtime kill --all).
			if o, err := c.ctr("task", "kill", "--all", "-s", "SIGKILL", id); err != nil {
				t.Fatalf("kill --all: %v %s", err, o)
			}
			waitFor(t, "stop", func() bool { o, _ := c.ctr("task", "ls"); return strings.Contains(o, "STOPPED") })
			if o, err := c.ctr("task", "rm", id); err != nil {
				t.Fatalf("task rm: %v %s", err, o)
			}
			if o, err := c.ctr("containers", "rm", id); err != nil {
				t.Fatalf("c rm: %v %s", err, o)
			}
			c.assertNothingLeft(t, id)
		})
	}
}

// TestCtrDaemonCrash: tasks outlive a containerd crash; the restarted
// containerd reconnects to their shims, sees an exit that happened while
// it was down, and still runs exec, kill and rm.
func TestCtrDaemonCrash(t *testing.T) {
	c := startContainerd(t)
	rts := runtimes(t)
	bin := rts["runc"]
	if bin == "" {
		for _, b := range rts {
			bin = b
		}
	}
	cfg := c.runtimeConfig(t, bin)
	live, dying := c.newID(t), c.newID(t)
	for _, id := range []string{live, dying} {
		if out, err := c.ctr("run", "-d", "--runtime", runtimeType, "--runtime-config-path", cfg, imageRef, id, "sh", "-c", `trap "exit 5" TERM; while true; do sleep 0.1; done`); err != nil {
			t.Fatalf("run %s: %v %s", id, err, out)
		}
	}
	pidOf := func(id string) int {
		out, _ := c.ctr("task", "ls")
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == id {
				pid, _ := strconv.Atoi(f[1])
				return pid
			}
		}
		return 0
	}
	dyingPid := pidOf(dying)
	shims := shimPids(live)
	c.crash()
	t.Cleanup(func() {
		// Whatever happens here, the next tests need containerd.
		select {
		case <-c.waited:
			_ = c.start()
		default:
		}
	})
	if len(shims) != 1 || !processAlive(shims[0]) {
		t.Fatalf("shim of %s did not outlive containerd: %v", live, shims)
	}
	// An exit while the daemon is down. The signal is repeated: sh, pid 1
	// of its namespace, ignores SIGTERM until its trap is installed.
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; processAlive(dyingPid); i++ {
		if i%10 == 0 {
			_ = syscall.Kill(dyingPid, syscall.SIGTERM)
		}
		if time.Now().After(deadline) {
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", dyingPid))
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", dyingPid))
			t.Fatalf("container init %d did not end on SIGTERM while containerd was down:\n%s\n%s", dyingPid, stat, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	out, err := c.ctr("task", "ls")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{live: "RUNNING", dying: "STOPPED"}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 && want[f[0]] != "" {
			if f[2] != want[f[0]] {
				t.Errorf("after restart %s is %s, want %s", f[0], f[2], want[f[0]])
			}
			delete(want, f[0])
		}
	}
	if len(want) > 0 {
		t.Fatalf("after restart, tasks missing: %v\n%s", want, out)
	}
	if o, err := c.ctr("task", "exec", "--exec-id", "after", live, "true"); err != nil {
		t.Fatalf("exec after restart: %v %s", err, o)
	}
	if o, err := c.ctr("task", "kill", "-s", "SIGTERM", live); err != nil {
		t.Fatalf("kill after restart: %v %s", err, o)
	}
	waitFor(t, "stop after restart", func() bool { o, _ := c.ctr("task", "ls"); return !strings.Contains(o, "RUNNING") })
	for _, id := range []string{live, dying} {
		o, err := c.ctr("task", "rm", id)
		if err != nil {
			t.Fatalf("task rm %s: %v %s", id, err, o)
		}
		// ctr reports a non-zero exit status on rm: the exit that happened
		// while containerd was down kept its code.
		if !strings.Contains(o, "exit code 5") {
			t.Errorf("task rm %s: %q, want exit code 5", id, o)
		}
		if o, err := c.ctr("containers", "rm", id); err != nil {
			t.Fatalf("c rm %s: %v %s", id, err, o)
		}
		c.assertNothingLeft(t, id)
	}
}

// TestCtrParallel: ten `ctr run --rm` at once, each through its own shim,
// each with its own output and exit code, and nothing left after.
func TestCtrParallel(t *testing.T) {
	c := startContainerd(t)
	rts := runtimes(t)
	bin := rts["runc"]
	if bin == "" {
		for _, b := range rts {
			bin = b
		}
	}
	cfg := c.runtimeConfig(t, bin)
	const n = 10
	ids := make([]string, n)
	for i := range ids {
		ids[i] = c.newID(t)
	}
	errs := make(chan error, n)
	for i, id := range ids {
		go func(i int, id string) {
			out, err := c.ctr("run", "--rm", "--runtime", runtimeType, "--runtime-config-path", cfg, imageRef, id, "sh", "-c", fmt.Sprintf("echo hello-%s; exit %d", id, i+10))
			if code := exitCode(err); code != i+10 || !strings.Contains(out, "hello-"+id) {
				errs <- fmt.Errorf("%s: exit %d (%v), output %q; want %d and hello-%s", id, code, err, out, i+10, id)
				return
			}
			errs <- nil
		}(i, id)
	}
	for range ids {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, id := range ids {
		c.assertNothingLeft(t, id)
	}
}

// TestCtrLogURI: `ctr run --log-uri file://...` sends the container's
// output to that file.
func TestCtrLogURI(t *testing.T) {
	c := startContainerd(t)
	for name, bin := range runtimes(t) {
		t.Run(name, func(t *testing.T) {
			cfg := c.runtimeConfig(t, bin)
			id := c.newID(t)
			log := filepath.Join(t.TempDir(), "out.log")
			if out, err := c.ctr("run", "--rm", "--log-uri", "file://"+log, "--runtime", runtimeType, "--runtime-config-path", cfg, imageRef, id, "sh", "-c", "echo logged; echo err >&2"); err != nil {
				t.Fatalf("run: %v %s", err, out)
			}
			data, _ := os.ReadFile(log)
			if !strings.Contains(string(data), "logged\n") || !strings.Contains(string(data), "err\n") {
				t.Fatalf("log file %q, want both lines", data)
			}
			c.assertNothingLeft(t, id)
		})
	}
}

// TestCtrBadInput: what ctr users get wrong fails with the cause named,
// and leaves no shim, mount or cgroup behind.
func TestCtrBadInput(t *testing.T) {
	c := startContainerd(t)
	rts := runtimes(t)
	for name, bin := range rts {
		t.Run(name+"/missing command", func(t *testing.T) {
			cfg := c.runtimeConfig(t, bin)
			id := c.newID(t)
			out, err := c.ctr("run", "--rm", "--runtime", runtimeType, "--runtime-config-path", cfg, imageRef, id, "/no/such/cmd")
			if err == nil || !strings.Contains(out, "/no/such/cmd") {
				t.Fatalf("run of a missing command: %v %q, want an error naming it", err, out)
			}
			_, _ = c.ctr("task", "rm", "-f", id)
			_, _ = c.ctr("containers", "rm", id)
			c.assertNothingLeft(t, id)
		})
	}
	t.Run("missing runtime binary", func(t *testing.T) {
		cfg := c.runtimeConfig(t, "/no/such/runtime")
		id := c.newID(t)
		out, err := c.ctr("run", "--rm", "--runtime", runtimeType, "--runtime-config-path", cfg, imageRef, id, "true")
		if err == nil || !strings.Contains(out, "/no/such/runtime") {
			t.Fatalf("run with a missing runtime binary: %v %q, want an error naming it", err, out)
		}
		_, _ = c.ctr("containers", "rm", id)
		c.assertNothingLeft(t, id)
	})
}

// TestCtrStdin: `ctr run` (its stdin always attached) feeds the container its stdin to the last
// byte, then EOF (ctr closes its end and calls CloseIO).
func TestCtrStdin(t *testing.T) {
	c := startContainerd(t)
	for name, bin := range runtimes(t) {
		t.Run(name, func(t *testing.T) {
			cfg := c.runtimeConfig(t, bin)
			id := c.newID(t)
			cmd := c.ctrCmd("run", "--rm", "--runtime", runtimeType, "--runtime-config-path", cfg, imageRef, id, "sh", "-c", "sleep 0.3; wc -c")
			const size = 200 << 10
			cmd.Stdin = strings.NewReader(strings.Repeat("y", size))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("run -i: %v %s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != strconv.Itoa(size) {
				t.Fatalf("wc -c read %q bytes, want %d", got, size)
			}
			c.assertNothingLeft(t, id)
		})
	}
}
