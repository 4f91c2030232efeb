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
