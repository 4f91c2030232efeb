package container_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/runtime/container"
)

func TestLifecycle(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "100")
	c := r.mustCreate(b)
	st := r.state(c.id)
	if st.Status != container.Created || st.Pid <= 0 || st.Bundle != b.Dir || st.ID != c.id {
		t.Fatalf("after create: %+v", st)
	}
	// Outside: the init exists and waits; inside its pid namespace it is 1.
	if _, err := os.Stat("/proc/" + strconv.Itoa(st.Pid)); err != nil {
		t.Fatalf("init %d not running: %v", st.Pid, err)
	}
	if got := readFile(t, "/proc/"+strconv.Itoa(st.Pid)+"/status"); !strings.Contains(got, "NSpid:\t"+strconv.Itoa(st.Pid)+"\t1\n") {
		t.Errorf("init is not pid 1 of a new pid namespace:\n%s", got)
	}
	r.must("start", c.id)
	if st := r.state(c.id); st.Status != container.Running {
		t.Fatalf("after start: %s", st.Status)
	}
	if cmdline := readFile(t, "/proc/"+strconv.Itoa(st.Pid)+"/cmdline"); !strings.HasPrefix(cmdline, "sleep\x00100") {
		t.Errorf("process is %q, want sleep 100", cmdline)
	}
	out := r.must("list", "--format", "json")
	var list []container.State
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].ID != c.id {
		t.Fatalf("list --format json: %s (%v)", out, err)
	}
	if q := strings.TrimSpace(r.must("list", "-q")); q != c.id {
		t.Fatalf("list -q = %q", q)
	}
	r.must("kill", c.id, "KILL")
	r.waitStopped(c.id)
	if st := r.state(c.id); st.Pid != 0 {
		t.Errorf("stopped container reports pid %d", st.Pid)
	}
	r.must("delete", c.id)
	if _, errs, code := r.cmd("state", c.id); code == 0 || !strings.Contains(errs, "does not exist") {
		t.Fatalf("state after delete: exit %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(r.root, c.id)); !os.IsNotExist(err) {
		t.Fatalf("state dir left behind: %v", err)
	}
}

func TestIllegalTransitions(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "100")
	c := r.mustCreate(b)
	steps := []struct {
		args []string
		want string // in stderr; "" means must succeed
	}{
		{[]string{"pause", c.id}, "cannot go from created to paused"},
		{[]string{"resume", c.id}, "cannot go from created to running"},
		{[]string{"start", c.id}, ""},
		{[]string{"start", c.id}, "cannot go from running to running"},
		{[]string{"resume", c.id}, "cannot go from running to running"},
		{[]string{"delete", c.id}, "cannot go from running to deleted"},
		{[]string{"pause", c.id}, ""},
		{[]string{"pause", c.id}, "cannot go from paused to paused"},
		{[]string{"resume", c.id}, ""},
		{[]string{"kill", c.id, "9"}, ""},
	}
	for _, s := range steps {
		_, errs, code := r.cmd(s.args...)
		if s.want == "" && code != 0 {
			t.Fatalf("%v: exit %d: %s", s.args, code, errs)
		}
		if s.want != "" && (code == 0 || !strings.Contains(errs, s.want)) {
			t.Fatalf("%v: exit %d, stderr %q; want an error with %q", s.args, code, errs, s.want)
		}
	}
	r.waitStopped(c.id)
	for _, args := range [][]string{{"start", c.id}, {"kill", c.id, "TERM"}, {"pause", c.id}} {
		if _, _, code := r.cmd(args...); code == 0 {
			t.Errorf("%v on a stopped container succeeded", args)
		}
	}
	r.must("delete", c.id)
}

func TestRunForeground(t *testing.T) {
	r := newRT(t)
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"true", []string{"true"}, 0},
		{"exit 3", []string{"sh", "-c", "exit 3"}, 3},
		// Not pid 1 (which ignores signals it has no handler for): the
		// container has no pid namespace.
		{"killed", []string{"sh", "-c", "kill -9 $$"}, 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := testutil.NewBundle(t, tt.args...)
			if tt.name == "killed" {
				withoutNS(b, "pid")
			}
			id := r.newID()
			_, errs, code := r.cmd("run", "--bundle", b.Dir, id)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (%s)", code, tt.code, errs)
			}
			if _, err := os.Stat(filepath.Join(r.root, id)); !os.IsNotExist(err) {
				t.Fatalf("run left its state behind")
			}
		})
	}
}

func TestRunDetachedAndPidFile(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "100")
	id := r.newID()
	pidFile := filepath.Join(t.TempDir(), "pid")
	r.must("run", "-d", "--pid-file", pidFile, "--bundle", b.Dir, id)
	t.Cleanup(func() { r.cmd("delete", "-f", id) })
	st := r.state(id)
	if st.Status != container.Running {
		t.Fatalf("run -d: %s", st.Status)
	}
	if got := readFile(t, pidFile); got != strconv.Itoa(st.Pid) {
		t.Fatalf("pid file %q, state pid %d", got, st.Pid)
	}
	r.must("delete", "--force", id)
	if _, err := os.Stat("/proc/" + strconv.Itoa(st.Pid) + "/cmdline"); err == nil {
		if s := readFile(t, "/proc/"+strconv.Itoa(st.Pid)+"/cmdline"); s != "" {
			t.Fatalf("process %d still there after delete --force: %q", st.Pid, s)
		}
	}
}

func TestDuplicateID(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "100")
	c := r.mustCreate(b)
	_, errs, code := r.cmd("create", "--bundle", b.Dir, c.id)
	if code == 0 || !strings.Contains(errs, "already exists") {
		t.Fatalf("duplicate create: exit %d: %s", code, errs)
	}
	if st := r.state(c.id); st.Status != container.Created {
		t.Fatalf("the first container was disturbed: %s", st.Status)
	}
}

func TestKillSignals(t *testing.T) {
	r := newRT(t)
	for _, sig := range []string{"9", "KILL", "SIGKILL", "kill", "15", "TERM"} {
		t.Run(sig, func(t *testing.T) {
			b := testutil.NewBundle(t, "sh", "-c", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done")
			c := r.mustCreate(b)
			r.must("start", c.id)
			// pid 1 ignores SIGTERM until its trap is set.
			r.waitOutput(c, "ready")
			r.must("kill", c.id, sig)
			r.waitStopped(c.id)
			r.must("delete", c.id)
		})
	}
	b := testutil.NewBundle(t, "sleep", "100")
	c := r.mustCreate(b)
	if _, errs, code := r.cmd("kill", c.id, "NOSUCH"); code == 0 || !strings.Contains(errs, "NOSUCH") {
		t.Fatalf("bad signal: exit %d %s", code, errs)
	}
}

func TestKillAllSharedPidNamespace(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "sleep 100 & sleep 100 & wait")
	// Without a pid namespace, only --all reaches every process.
	withoutNS(b, "pid")
	c := r.mustCreate(b)
	r.must("start", c.id)
	var pids []int
	for i := 0; i < 200 && len(pids) < 3; i++ {
		pids = nil
		json.Unmarshal([]byte(r.must("ps", "--format", "json", c.id)), &pids)
	}
	if len(pids) < 3 {
		t.Fatalf("ps: %v, want sh and two sleeps", pids)
	}
	r.must("kill", "--all", c.id, "KILL")
	r.waitStopped(c.id)
	r.must("delete", c.id)
	for _, p := range pids {
		if s, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat"); err == nil && !strings.Contains(string(s), ") Z") {
			t.Errorf("process %d survived kill --all: %s", p, s)
		}
	}
}

func TestConcurrentCalls(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "100")
	c := r.mustCreate(b)
	var wg sync.WaitGroup
	errs := make(chan string, 40)
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, e, code := r.cmd("state", c.id); code != 0 {
				errs <- e
			}
		}()
		go func() {
			defer wg.Done()
			r.cmd("start", c.id) // exactly one wins
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("state during concurrent starts: %s", e)
	}
	if st := r.state(c.id); st.Status != container.Running {
		t.Fatalf("after concurrent starts: %s", st.Status)
	}
}

// withoutNS removes the namespace of type typ from b's spec and saves it.
func withoutNS(b *testutil.Bundle, typ string) {
	ns := b.Spec.Linux.Namespaces[:0]
	for _, n := range b.Spec.Linux.Namespaces {
		if string(n.Type) != typ {
			ns = append(ns, n)
		}
	}
	b.Spec.Linux.Namespaces = ns
	if err := b.Save(); err != nil {
		panic(err)
	}
}

// start of a process that exits at once must still succeed (the init's
// exit races with start reading the exec fifo).
func TestStartOfShortProcess(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "true")
	for i := 0; i < 15; i++ {
		c := r.mustCreate(b)
		r.must("start", c.id)
		r.waitStopped(c.id)
		r.must("delete", c.id)
	}
}
