package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
)

// TestCreateState checks the state of a freshly created container.
func TestCreateState(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "touch /ran; sleep 1000")
	b.Spec.Annotations = map[string]string{"org.hull.conformance": "yes"}
	id := r.newID()
	r.create(b, id)
	st := r.mustState(id)

	// runtime.md State: "status ... created: the runtime has finished the
	// create operation"; "id (string, REQUIRED) is the container's ID".
	if st.Status != specs.StateCreated {
		t.Errorf("status %q, want %q", st.Status, specs.StateCreated)
	}
	if st.ID != id {
		t.Errorf("id %q, want %q", st.ID, id)
	}
	// "ociVersion (string, REQUIRED)".
	if st.Version == "" {
		t.Error("ociVersion is empty")
	}
	// "pid (int, REQUIRED when status is created or running on Linux) is
	// the ID of the container process" (as seen by the runtime).
	if st.Pid <= 0 || !pidAlive(st.Pid) {
		t.Errorf("pid %d is not a live process", st.Pid)
	}
	// "bundle (string, REQUIRED) is the absolute path to the container's
	// bundle directory".
	if !filepath.IsAbs(st.Bundle) || filepath.Clean(st.Bundle) != filepath.Clean(b.Dir) {
		t.Errorf("bundle %q, want the absolute path %q", st.Bundle, b.Dir)
	}
	// "annotations (map, OPTIONAL) contains the list of annotations
	// associated with the container."
	if st.Annotations != nil && st.Annotations["org.hull.conformance"] != "yes" {
		t.Errorf("annotations %v lack the configured one", st.Annotations)
	}
	// runtime.md lifecycle 2 / create: "the user-specified program (from
	// process) MUST NOT be run at this time"; "process.args MUST NOT be
	// applied until triggered by the start operation".
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(b.Rootfs(), "ran")); err == nil {
		t.Error("the user program ran before start")
	}
	if c := strings.TrimSpace(readFile(fmt.Sprintf("/proc/%d/comm", st.Pid))); c == "sh" || c == "sleep" {
		t.Errorf("container process already runs %q before start", c)
	}
}

// TestLifecycle walks create, start, kill, delete and checks the state at
// each step.
func TestLifecycle(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "touch /ran; exec sleep 1000")
	id := r.newID()
	r.create(b, id)
	created := r.mustState(id)

	// runtime.md start: "This operation MUST run the user-specified
	// program as specified by process."
	r.ok("start", id)
	waitFile(t, filepath.Join(b.Rootfs(), "ran"))
	// "running: the container process has executed the user-specified
	// program but has not exited".
	running := r.waitStatus(id, specs.StateRunning)
	if running.Pid != created.Pid {
		t.Errorf("pid changed from %d (created) to %d (running)", created.Pid, running.Pid)
	}

	// runtime.md kill: "This operation MUST send the specified signal to
	// the container process."
	r.ok("kill", id, "KILL")
	// "stopped: the container process has exited".
	r.waitStatus(id, specs.StateStopped)
	if pidAlive(created.Pid) {
		t.Errorf("container process %d still alive after SIGKILL", created.Pid)
	}

	// runtime.md delete: "Deleting a container MUST delete the resources
	// that were created during the create step."
	r.ok("delete", id)
	// runtime.md query state: "Attempting to query a container that does
	// not exist MUST generate an error."
	if _, err := r.state(id); err == nil {
		t.Error("state of a deleted container succeeded")
	}
	// "Once a container is deleted its ID MAY be used by a subsequent
	// container": the id is free again.
	r.create(b, id)
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(p); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", p)
}

// TestOperationErrors checks that operations on a container in the wrong
// state generate an error and leave the container as it was.
func TestOperationErrors(t *testing.T) {
	cases := []struct {
		name string
		// setup brings a container to the state the case needs.
		setup func(r *rt, b *testutil.Bundle, id string)
		op    []string // the operation; the id is appended
		want  specs.ContainerState
	}{
		{
			// runtime.md start: "Attempting to start a container that is
			// not created MUST have no effect on the container and MUST
			// generate an error."
			name: "start-running",
			setup: func(r *rt, b *testutil.Bundle, id string) {
				r.create(b, id)
				r.ok("start", id)
				r.waitStatus(id, specs.StateRunning)
			},
			op: []string{"start"}, want: specs.StateRunning,
		},
		{
			name: "start-stopped",
			setup: func(r *rt, b *testutil.Bundle, id string) {
				r.create(b, id)
				r.ok("kill", id, "KILL")
				r.waitStatus(id, specs.StateStopped)
			},
			op: []string{"start"}, want: specs.StateStopped,
		},
		{
			// runtime.md delete: "Attempting to delete a container that is
			// not stopped MUST have no effect on the container and MUST
			// generate an error."
			name: "delete-running",
			setup: func(r *rt, b *testutil.Bundle, id string) {
				r.create(b, id)
				r.ok("start", id)
				r.waitStatus(id, specs.StateRunning)
			},
			op: []string{"delete"}, want: specs.StateRunning,
		},
		{
			// runtime.md kill: "Attempting to send a signal to a container
			// that is neither created nor running MUST have no effect on
			// the container and MUST generate an error."
			name: "kill-stopped",
			setup: func(r *rt, b *testutil.Bundle, id string) {
				r.create(b, id)
				r.ok("kill", id, "KILL")
				r.waitStatus(id, specs.StateStopped)
			},
			op: []string{"kill"}, want: specs.StateStopped,
		},
		{
			// runtime.md create: "If the ID provided is not unique ... the
			// implementation MUST generate an error and a new container
			// MUST NOT be created."
			name: "create-duplicate-id",
			setup: func(r *rt, b *testutil.Bundle, id string) {
				r.create(b, id)
			},
			op: []string{"create", "--bundle", "BUNDLE"}, want: specs.StateCreated,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t, "sleep", "1000")
			id := r.newID()
			tc.setup(r, b, id)
			before := r.mustState(id)
			args := append([]string(nil), tc.op...)
			for i := range args {
				if args[i] == "BUNDLE" {
					args[i] = b.Dir
				}
			}
			r.fails(append(args, id)...)
			after := r.mustState(id)
			if after.Status != tc.want || after.Pid != before.Pid {
				t.Errorf("after the refused %s: status %q pid %d, want %q pid %d", tc.op[0], after.Status, after.Pid, tc.want, before.Pid)
			}
			if tc.want != specs.StateStopped && !pidAlive(before.Pid) {
				t.Errorf("container process %d died after the refused %s", before.Pid, tc.op[0])
			}
		})
	}
}

// TestMissingID checks the operations given no container id or an id no
// container has.
func TestMissingID(t *testing.T) {
	r := newRT(t)
	for _, op := range [][]string{
		// "This operation MUST generate an error if it is not provided the
		// ID of a container" (state, start, kill, delete).
		{"state"}, {"start"}, {"kill"}, {"delete"},
		// "Attempting to query a container that does not exist MUST
		// generate an error."; the other operations likewise need one.
		{"state", "no-such-container"}, {"start", "no-such-container"},
		{"kill", "no-such-container", "KILL"}, {"delete", "no-such-container"},
	} {
		t.Run(strings.Join(op, "_"), func(t *testing.T) {
			r.sub(t).fails(op...)
		})
	}
}

// TestKillSignals checks that kill sends the signal it is given, by name
// or number, to the container process.
func TestKillSignals(t *testing.T) {
	for _, sig := range []string{"TERM", "SIGTERM", "15", "USR1", "10"} {
		t.Run(sig, func(t *testing.T) {
			r := newRT(t)
			// A shell as pid 1 of a pid namespace only receives signals it
			// has a handler for: the trap records which one came.
			b := testutil.NewBundle(t, "sh", "-c", "trap 'echo TERM >/got; exit 0' TERM; trap 'echo USR1 >/got; exit 0' USR1; touch /ready; while :; do sleep 0.1; done")
			id := r.newID()
			r.create(b, id)
			r.ok("start", id)
			waitFile(t, filepath.Join(b.Rootfs(), "ready"))
			// runtime.md kill: "This operation MUST send the specified
			// signal to the container process."
			r.ok("kill", id, sig)
			r.waitStatus(id, specs.StateStopped)
			want := map[string]string{"TERM": "TERM", "SIGTERM": "TERM", "15": "TERM", "USR1": "USR1", "10": "USR1"}[sig]
			if got := strings.TrimSpace(readFile(filepath.Join(b.Rootfs(), "got"))); got != want {
				t.Errorf("container got %q, want %q", got, want)
			}
			r.ok("delete", id)
		})
	}
}

// TestKillCreated checks that a created container can be signalled.
func TestKillCreated(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "1000")
	id := r.newID()
	r.create(b, id)
	pid := r.mustState(id).Pid
	// runtime.md kill applies to containers that are "created" or
	// "running"; SIGKILL ends the container process.
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	if pidAlive(pid) {
		t.Errorf("pid %d alive after kill", pid)
	}
	r.ok("delete", id)
}

// TestForceDelete checks `delete --force` of a running container (runc CLI).
func TestForceDelete(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t)
	s := r.startSleeper(b, false)
	r.ok("delete", "--force", s.id)
	if _, err := r.state(s.id); err == nil {
		t.Error("state of a force-deleted container succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for pidAlive(s.pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if pidAlive(s.pid) {
		t.Errorf("pid %d alive after delete --force", s.pid)
	}
}

// TestConfigChangeAfterCreate: runtime.md lifecycle 2: "Any updates to
// config.json after this step MUST NOT affect the container."
func TestConfigChangeAfterCreate(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "echo $MARK $(hostname)")
	b.Spec.Process.Env = append(b.Spec.Process.Env, "MARK=first")
	id := r.newID()
	s := r.create(b, id)
	b.Spec.Process.Env[len(b.Spec.Process.Env)-1] = "MARK=second"
	b.Spec.Process.Args = []string{"sh", "-c", "echo changed"}
	b.Spec.Hostname = "changed"
	r.save(b)
	r.ok("start", id)
	r.waitStatus(id, specs.StateStopped)
	if got := strings.TrimSpace(s.stdout()); got != "first hull" {
		t.Errorf("container printed %q, want %q", got, "first hull")
	}
	r.ok("delete", id)
}

// TestRunExitCode checks that `run` waits for the container and exits with
// its exit code (runc CLI), and that process.args is run as given.
func TestRunExitCode(t *testing.T) {
	for _, code := range []int{0, 1, 42} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t, "sh", "-c", fmt.Sprintf("echo out; echo err >&2; exit %d", code))
			res := r.runToEnd(b)
			if res.code != code || res.stdout != "out\n" || res.stderr != "err\n" {
				t.Errorf("run: code %d stdout %q stderr %q, want %d %q %q", res.code, res.stdout, res.stderr, code, "out\n", "err\n")
			}
		})
	}
}

// TestPidFile checks create --pid-file (runc CLI): it holds the pid that
// state reports.
func TestPidFile(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "1000")
	id := r.newID()
	pf := filepath.Join(t.TempDir(), "pid")
	r.create(b, id, "--pid-file", pf)
	st := r.mustState(id)
	if got := strings.TrimSpace(readFile(pf)); got != fmt.Sprint(st.Pid) {
		t.Errorf("pid file holds %q, state says %d", got, st.Pid)
	}
	r.stop(id)
}

// TestKillAll checks kill --all (runc CLI): the signal reaches every
// process of the container, not only its init. Without a pid namespace the
// children do not die with init, so only --all can have killed them.
func TestKillAll(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "sleep 1000 & echo $! >/child; wait")
	withoutNS(b.Spec, specs.PIDNamespace)
	id := r.newID()
	r.create(b, id)
	r.ok("start", id)
	// The file appears before the shell has written the pid into it.
	var child int
	deadline := time.Now().Add(10 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		if _, err := fmt.Sscan(readFile(filepath.Join(b.Rootfs(), "child")), &child); err != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if child == 0 {
		t.Fatal("the container never wrote its child's pid")
	}
	r.ok("kill", "--all", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	deadline = time.Now().Add(5 * time.Second)
	for pidAlive(child) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if pidAlive(child) {
		syscall.Kill(child, syscall.SIGKILL)
		t.Errorf("child %d survived kill --all", child)
	}
	r.ok("delete", id)
}

// TestStateSchema: runtime.md state: "When serialized in JSON, the format
// MUST adhere to the JSON Schema schema/state-schema.json": required
// ociVersion, id, status and bundle strings, status one of the schema's
// values, pid an integer >= 0, annotations a map of strings.
func TestStateSchema(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "1000")
	b.Spec.Annotations = map[string]string{"org.hull.k": "v"}
	id := r.newID()
	r.create(b, id)
	check := func(when string) {
		t.Helper()
		var doc map[string]any
		if err := json.Unmarshal([]byte(r.ok("state", id)), &doc); err != nil {
			t.Fatalf("%s: state is not a JSON object: %v", when, err)
		}
		for _, k := range []string{"ociVersion", "id", "status", "bundle"} {
			if _, ok := doc[k].(string); !ok {
				t.Errorf("%s: %q is %T (%v), want a string", when, k, doc[k], doc[k])
			}
		}
		if s, _ := doc["status"].(string); !contains([]string{"creating", "created", "running", "stopped"}, s) {
			t.Errorf("%s: status %q is not one of the schema's", when, s)
		}
		if p, ok := doc["pid"]; ok {
			if f, isNum := p.(float64); !isNum || f < 0 || f != float64(int64(f)) {
				t.Errorf("%s: pid %v is not an integer >= 0", when, p)
			}
		}
		if a, ok := doc["annotations"]; ok && a != nil {
			m, isMap := a.(map[string]any)
			if !isMap {
				t.Errorf("%s: annotations %T, want an object", when, a)
			}
			for k, v := range m {
				if _, isStr := v.(string); !isStr || k == "" {
					t.Errorf("%s: annotation %q=%v is not a non-empty key with a string value", when, k, v)
				}
			}
		}
		if v, _ := doc["ociVersion"].(string); !semver.MatchString(v) {
			t.Errorf("%s: ociVersion %q is not SemVer", when, v)
		}
	}
	check("created")
	r.ok("start", id)
	r.waitStatus(id, specs.StateRunning)
	check("running")
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	check("stopped")
	r.ok("delete", id)
}

// semver matches SemVer 2.0.0 versions, which the spec's own versions are.
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// TestDeleteCreated: runtime.md delete: "Attempting to delete a container
// that is not stopped MUST have no effect on the container and MUST
// generate an error" — a created container is not stopped. (runc 1.1 and
// crun 1.8 delete it anyway.)
func TestDeleteCreated(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "1000")
	id := r.newID()
	r.create(b, id)
	pid := r.mustState(id).Pid
	r.fails("delete", id)
	if st := r.mustState(id); st.Status != specs.StateCreated || !pidAlive(pid) {
		t.Errorf("after the refused delete: status %q, pid %d alive %v", st.Status, pid, pidAlive(pid))
	}
}
