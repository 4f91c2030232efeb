package conformance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
)

// hookLine is one record a logging hook appended: its name and the state
// it read on stdin.
type hookLine struct {
	name  string
	env   string
	state specs.State
	raw   string
}

// logHook is a hook that appends "<name> <$HOOK_ENV> <stdin>" to log.
// Runtime-namespace hooks use the host's /bin/sh with a host path; a
// container-namespace hook (startContainer) uses the container's sh and a
// path inside the rootfs.
func logHook(name, log string, exit int) specs.Hook {
	script := `printf '%s %s %s\n' "$0" "$HOOK_ENV" "$(cat | tr -d '\n')" >>` + log
	if exit != 0 {
		script += "; exit 3"
	}
	return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", script, name}, Env: []string{"HOOK_ENV=env-" + name}}
}

func readHookLog(t *testing.T, p string) []hookLine {
	t.Helper()
	var hs []hookLine
	for _, l := range strings.Split(strings.TrimSpace(readFile(p)), "\n") {
		if l == "" {
			continue
		}
		f := strings.SplitN(l, " ", 3)
		if len(f) < 3 {
			t.Fatalf("bad hook log line %q", l)
		}
		h := hookLine{name: f[0], env: f[1], raw: f[2]}
		if err := json.Unmarshal([]byte(f[2]), &h.state); err != nil {
			t.Errorf("hook %s got a state that is not JSON: %q: %v", f[0], f[2], err)
		}
		hs = append(hs, h)
	}
	return hs
}

func hookNames(hs []hookLine) string {
	var n []string
	for _, h := range hs {
		n = append(n, h.name)
	}
	return strings.Join(n, ",")
}

// TestHookFailures checks runtime.md lifecycle 3-5: "If any prestart hook
// fails, the runtime MUST generate an error, stop the container, and
// continue the lifecycle at step 12" (likewise createRuntime and
// createContainer): create fails and leaves no container.
func TestHookFailures(t *testing.T) {
	for _, which := range []string{"prestart", "createRuntime", "createContainer"} {
		t.Run(which, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t, "sh", "-c", "touch /ran")
			log := filepath.Join(b.Rootfs(), "hooks.log")
			b.Spec.Hooks = &specs.Hooks{}
			h := []specs.Hook{logHook(which, log, 1)}
			switch which {
			case "prestart":
				b.Spec.Hooks.Prestart = h //nolint:staticcheck
			case "createRuntime":
				b.Spec.Hooks.CreateRuntime = h
			case "createContainer":
				b.Spec.Hooks.CreateContainer = h
			}
			expectRefused(t, r, b)
			if got := hookNames(readHookLog(t, log)); got != which {
				t.Errorf("hooks run: %q, want %q", got, which)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		// config.md hooks: "timeout (int, OPTIONAL) is the number of
		// seconds before aborting the hook."
		r := newRT(t)
		b := testutil.NewBundle(t, "sh", "-c", "touch /ran")
		one := 1
		b.Spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "30"}, Timeout: &one}}}
		start := time.Now()
		expectRefused(t, r, b)
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("a hook with a 1s timeout held create for %s", d)
		}
	})
}

// TestHookNamespaces checks where each create-time hook runs. config.md:
// "The prestart hooks MUST be executed in the runtime namespace", likewise
// createRuntime; "The createContainer hooks MUST be executed in the
// container namespace".
func TestHookNamespaces(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "1000")
	log := filepath.Join(b.Rootfs(), "ns.log")
	nsHook := func(name string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", `echo "$0 $(readlink /proc/self/ns/net) $(readlink /proc/self/ns/uts)" >>` + log, name}}
	}
	b.Spec.Hooks = &specs.Hooks{
		Prestart:        []specs.Hook{nsHook("prestart")}, //nolint:staticcheck // still specified
		CreateRuntime:   []specs.Hook{nsHook("createRuntime")},
		CreateContainer: []specs.Hook{nsHook("createContainer")},
	}
	id := r.newID()
	r.create(b, id)
	pid := r.mustState(id).Pid
	self := os.Getpid()
	want := map[string]string{
		"prestart":        nsInode(t, self, "net") + " " + nsInode(t, self, "uts"),
		"createRuntime":   nsInode(t, self, "net") + " " + nsInode(t, self, "uts"),
		"createContainer": nsInode(t, pid, "net") + " " + nsInode(t, pid, "uts"),
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(readFile(log)), "\n") {
		name, ns, _ := strings.Cut(l, " ")
		got[name] = ns
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s hook ran in namespaces %q, want %q", name, got[name], w)
		}
	}
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
}

// TestHooks checks the order of the six hooks, when each runs relative to
// the operations, their environment and the state they get on stdin.
func TestHooks(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "1000")
	hostLog := filepath.Join(b.Rootfs(), "hooks.log")
	b.Spec.Hooks = &specs.Hooks{
		Prestart:        []specs.Hook{logHook("prestart", hostLog, 0)}, //nolint:staticcheck // prestart is deprecated but still specified.
		CreateRuntime:   []specs.Hook{logHook("createRuntime", hostLog, 0), logHook("createRuntime2", hostLog, 0)},
		CreateContainer: []specs.Hook{logHook("createContainer", hostLog, 0)},
		// config.md: startContainer "path MUST resolve in the container
		// namespace": the container's /bin/sh and /hooks.log.
		StartContainer: []specs.Hook{logHook("startContainer", "/hooks.log", 0)},
		Poststart:      []specs.Hook{logHook("poststart", hostLog, 0)},
		Poststop:       []specs.Hook{logHook("poststop", hostLog, 0), logHook("poststop2", hostLog, 0)},
	}
	id := r.newID()
	r.create(b, id)
	st := r.mustState(id)

	// config.md: prestart, createRuntime and createContainer "MUST be
	// called as part of the create operation"; "Hooks MUST be called in the
	// listed order"; prestart "MUST be called before the createRuntime
	// hooks"; createContainer "MUST be called after the createRuntime hooks".
	hs := readHookLog(t, hostLog)
	if got, want := hookNames(hs), "prestart,createRuntime,createRuntime2,createContainer"; got != want {
		t.Errorf("hooks after create: %s, want %s", got, want)
	}
	for _, h := range hs {
		// config.md: "The state of the container MUST be passed to hooks
		// over stdin"; hooks get their configured env.
		if h.state.ID != id || filepath.Clean(h.state.Bundle) != filepath.Clean(b.Dir) {
			t.Errorf("hook %s: state %s, want id %s and bundle %s", h.name, h.raw, id, b.Dir)
		}
		if h.env != "env-"+h.name {
			t.Errorf("hook %s: HOOK_ENV=%q, want env-%s", h.name, h.env, h.name)
		}
		// runtime.md state pid: "For hooks executed in the runtime
		// namespace, it is the pid as seen by the runtime."
		if h.name != "createContainer" && h.state.Pid != st.Pid {
			t.Errorf("hook %s: state pid %d, want %d", h.name, h.state.Pid, st.Pid)
		}
	}

	// config.md: startContainer "MUST be called before the user-specified
	// process is executed as part of the start operation"; poststart "MUST
	// be called after the user-specified process is executed but before the
	// start operation returns".
	r.ok("start", id)
	hs = readHookLog(t, hostLog)
	if got, want := hookNames(hs), "prestart,createRuntime,createRuntime2,createContainer,startContainer,poststart"; got != want {
		t.Errorf("hooks after start: %s, want %s", got, want)
	}
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	if got := hookNames(readHookLog(t, hostLog)); strings.Contains(got, "poststop") {
		t.Errorf("poststop ran before delete: %s", got)
	}
	// config.md: poststop "MUST be called after the container is deleted
	// but before the delete operation returns".
	r.ok("delete", id)
	hs = readHookLog(t, hostLog)
	if got, want := hookNames(hs), "prestart,createRuntime,createRuntime2,createContainer,startContainer,poststart,poststop,poststop2"; got != want {
		t.Errorf("hooks after delete: %s, want %s", got, want)
	}
	for _, h := range hs[len(hs)-2:] {
		if h.state.ID != id {
			t.Errorf("hook %s: state %s lacks id %s", h.name, h.raw, id)
		}
	}
}

// TestHookFailuresAtStart: runtime.md lifecycle 7 and 9: "If any
// startContainer hook fails, the runtime MUST generate an error, stop the
// container, and continue the lifecycle at step 12", and likewise for
// poststart.
func TestHookFailuresAtStart(t *testing.T) {
	for _, which := range []string{"startContainer", "poststart"} {
		t.Run(which, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t, "sh", "-c", "touch /ran; exec sleep 1000")
			log := filepath.Join(b.Rootfs(), "hooks.log")
			b.Spec.Hooks = &specs.Hooks{}
			if which == "startContainer" {
				b.Spec.Hooks.StartContainer = []specs.Hook{logHook(which, "/hooks.log", 1)}
			} else {
				b.Spec.Hooks.Poststart = []specs.Hook{logHook(which, log, 1)}
			}
			id := r.newID()
			r.create(b, id)
			pid := r.mustState(id).Pid
			r.fails("start", id)
			// "... stop the container": the container process is gone.
			deadline := time.Now().Add(10 * time.Second)
			for pidAlive(pid) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if pidAlive(pid) {
				t.Errorf("container process %d still runs after the failed %s hook", pid, which)
			}
			if which == "startContainer" {
				if _, err := os.Stat(filepath.Join(b.Rootfs(), "ran")); err == nil {
					t.Error("the user program ran although a startContainer hook failed")
				}
			}
		})
	}
}

// TestPoststopFailure: runtime.md lifecycle 13: "If any poststop hook
// fails, the runtime MUST log a warning, but the remaining hooks and
// lifecycle continue as if the hook had succeeded."
func TestPoststopFailure(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "true")
	log := filepath.Join(b.Rootfs(), "hooks.log")
	b.Spec.Hooks = &specs.Hooks{Poststop: []specs.Hook{logHook("poststop1", log, 1), logHook("poststop2", log, 0)}}
	id := r.newID()
	r.create(b, id)
	r.ok("start", id)
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
	if got := hookNames(readHookLog(t, log)); got != "poststop1,poststop2" {
		t.Errorf("poststop hooks run: %q, want both", got)
	}
	if _, err := r.state(id); err == nil {
		t.Error("container still exists after delete")
	}
}
