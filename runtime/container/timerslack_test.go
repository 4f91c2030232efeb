package container_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/internal/testutil"
)

// TestTimerSlack: hull-runtime runs with a coarser timer slack of its own
// (runtime/timerslack), but the container's process and every hook, run
// by the runtime or by the init, get the slack the runtime was started
// with. The runtime is started here from a thread with an unusual slack.
func TestTimerSlack(t *testing.T) {
	r := newRT(t)
	const slack = "70001"
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	hook := func(name, logPath string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c",
			`cat > /dev/null; echo "` + name + ` $(cat /proc/self/timerslack_ns)" >> ` + logPath}}
	}
	b := testutil.NewBundle(t, "cat", "/proc/self/timerslack_ns")
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/hooklog", Type: "bind", Source: dir, Options: []string{"bind"}})
	b.Spec.Hooks = &specs.Hooks{
		Prestart:        []specs.Hook{hook("prestart", log)},
		CreateContainer: []specs.Hook{hook("createContainer", log)},
		StartContainer:  []specs.Hook{hook("startContainer", "/hooklog/log")},
		Poststart:       []specs.Hook{hook("poststart", log)},
		Poststop:        []specs.Hook{hook("poststop", log)},
	}
	b.Save()

	// The runtime inherits the slack of the thread that forks it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Skipf("prctl PR_GET_TIMERSLACK: %v", err)
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, 70001, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)

	out, errs, code := r.cmd("run", "--bundle", b.Dir, r.newID())
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, errs)
	}
	if got := strings.TrimSpace(out); got != slack {
		t.Errorf("container process: timerslack_ns %q, want %s (the runtime's caller's)", got, slack)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "prestart " + slack + "\ncreateContainer " + slack + "\nstartContainer " + slack + "\npoststart " + slack + "\npoststop " + slack + "\n"
	if string(data) != want {
		t.Errorf("hooks' timerslack_ns:\n%s\nwant:\n%s", data, want)
	}

	// exec: the init joins the container's namespaces (nsenter) and
	// execve's the process.
	lb := testutil.NewBundle(t, "sleep", "100")
	c := r.mustCreate(lb)
	defer r.cmd("delete", "-f", c.id)
	r.must("start", c.id)
	if got := strings.TrimSpace(r.must("exec", c.id, "cat", "/proc/self/timerslack_ns")); got != slack {
		t.Errorf("exec'd process: timerslack_ns %q, want %s", got, slack)
	}
	if got := strings.TrimSpace(readFile(t, "/proc/"+strconv.Itoa(c.pid)+"/timerslack_ns")); got != slack {
		t.Errorf("container process (create, start): timerslack_ns %q, want %s", got, slack)
	}
}
