package caps

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Capabilities cannot be given back, so each case runs in a child: the
// test binary re-executed with childEnv set. The child applies the sets
// and prints the Cap* lines of /proc/thread-self/status, then, with
// childExec set, execs busybox to print the sets the new program has.
const (
	childEnv  = "HULL_CAPS_TEST_CHILD"
	childCaps = "HULL_CAPS_TEST_CAPS"
	childExec = "HULL_CAPS_TEST_EXEC"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

func runChild(mode string) int {
	runtime.LockOSThread()
	var c specs.LinuxCapabilities
	if err := json.Unmarshal([]byte(os.Getenv(childCaps)), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	switch mode {
	case "apply":
		if err := Apply(&c); err != nil {
			fmt.Fprintln(os.Stderr, "apply:", err)
			return 4
		}
	case "twice":
		first := &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL", "CAP_CHOWN"}, Permitted: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}}
		if err := Apply(first); err != nil {
			fmt.Fprintln(os.Stderr, "first apply:", err)
			return 4
		}
		if err := DropBounding(c.Bounding); !errors.Is(err, ErrNoSetpcap) {
			fmt.Fprintln(os.Stderr, "DropBounding without CAP_SETPCAP:", err)
			return 7
		}
		// Keeping what is already there needs no privilege.
		if err := DropBounding(first.Bounding); err != nil {
			fmt.Fprintln(os.Stderr, "DropBounding of nothing:", err)
			return 8
		}
	case "regrant":
		// A thread that lost CAP_CHOWN cannot get it back: Apply leaves it
		// out instead of failing.
		first := &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL", "CAP_CHOWN", "CAP_SETPCAP"},
			Permitted: []string{"CAP_KILL", "CAP_SETPCAP"}, Effective: []string{"CAP_KILL", "CAP_SETPCAP"}}
		if err := Apply(first); err != nil {
			fmt.Fprintln(os.Stderr, "first apply:", err)
			return 4
		}
		if w := Warnings(&c); len(w) == 0 || !strings.Contains(strings.Join(w, ";"), "CAP_CHOWN is not held by the runtime") {
			fmt.Fprintln(os.Stderr, "warnings:", w)
			return 9
		}
		if err := Apply(&c); err != nil {
			fmt.Fprintln(os.Stderr, "second apply:", err)
			return 4
		}
	case "setuid":
		// The order the package doc prescribes, ending as uid/gid 1000.
		steps := []func() error{
			func() error { return DropBounding(c.Bounding) },
			func() error { return unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0) },
			func() error { return rawID(unix.SYS_SETGROUPS, 0, 0, 0) },
			func() error { return rawID(unix.SYS_SETRESGID, 1000, 1000, 1000) },
			func() error { return rawID(unix.SYS_SETRESUID, 1000, 1000, 1000) },
			func() error { return unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0) },
			func() error { return Apply(&c) },
		}
		for i, s := range steps {
			if err := s(); err != nil {
				fmt.Fprintf(os.Stderr, "step %d: %v\n", i, err)
				return 4
			}
		}
	}
	data, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 5
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "Cap") {
			fmt.Println("pre" + l)
		}
	}
	if os.Getenv(childExec) != "" {
		// busybox sed prefixes the lines of the new program with "post".
		argv := []string{"busybox", "sed", "-n", "s/^Cap/postCap/p", "/proc/self/status"}
		err := syscall.Exec("/bin/busybox", argv, os.Environ())
		fmt.Fprintln(os.Stderr, "exec:", err)
		return 6
	}
	return 0
}

func rawID(nr uintptr, a, b, c uintptr) error {
	if _, _, e := unix.RawSyscall(nr, a, b, c); e != 0 {
		return e
	}
	return nil
}

// mask is the status-file bit mask of names.
func mask(t *testing.T, names []string) uint64 {
	t.Helper()
	var m uint64
	for _, n := range names {
		c, err := Parse(n)
		if err != nil {
			t.Fatal(err)
		}
		m |= 1 << uint(c)
	}
	return m
}

func runCaps(t *testing.T, mode string, c *specs.LinuxCapabilities, execToo bool) map[string]uint64 {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: sets capabilities and changes uid")
	}
	if execToo {
		if _, err := os.Stat("/bin/busybox"); err != nil {
			t.Skip("needs /bin/busybox (Debian busybox-static)")
		}
	}
	data, _ := json.Marshal(c)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childCaps+"="+string(data))
	if execToo {
		cmd.Env = append(cmd.Env, childExec+"=1")
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v: %s", err, errb.String())
	}
	res := map[string]uint64{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			t.Fatalf("parse %q: %v", l, err)
		}
		res[k] = n
	}
	return res
}

func TestApply(t *testing.T) {
	basic := []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETPCAP"}
	tests := []struct {
		name string
		mode string
		caps specs.LinuxCapabilities
		want map[string][]string // status line -> capability names
	}{
		{
			name: "root with five sets",
			mode: "apply",
			caps: specs.LinuxCapabilities{
				Bounding: basic, Effective: []string{"CAP_KILL"}, Permitted: basic,
				Inheritable: []string{"CAP_KILL", "CAP_CHOWN"}, Ambient: []string{"CAP_KILL"},
			},
			want: map[string][]string{
				"preCapBnd": basic, "preCapEff": {"CAP_KILL"}, "preCapPrm": basic,
				"preCapInh": {"CAP_KILL", "CAP_CHOWN"}, "preCapAmb": {"CAP_KILL"},
				// root after execve: permitted and effective are the bounding set.
				"postCapBnd": basic, "postCapEff": basic, "postCapPrm": basic, "postCapAmb": {"CAP_KILL"},
			},
		},
		{
			name: "ambient without inheritable is skipped as runc does",
			mode: "apply",
			caps: specs.LinuxCapabilities{
				Bounding: basic, Effective: basic, Permitted: basic, Ambient: basic,
			},
			want: map[string][]string{"preCapAmb": nil, "preCapInh": nil, "preCapEff": basic},
		},
		{
			name: "unknown names are ignored with a warning, as runc does",
			mode: "apply",
			caps: specs.LinuxCapabilities{
				Bounding: []string{"CAP_KILL", "CAP_TEST"}, Effective: []string{"CAP_KILL", "CAP_TEST"},
				Permitted: []string{"CAP_KILL", "CAP_TEST"},
			},
			want: map[string][]string{"preCapBnd": {"CAP_KILL"}, "preCapEff": {"CAP_KILL"}, "preCapPrm": {"CAP_KILL"}},
		},
		{
			name: "effective outside permitted is skipped",
			mode: "apply",
			caps: specs.LinuxCapabilities{
				Bounding: basic, Effective: []string{"CAP_KILL", "CAP_CHOWN"}, Permitted: []string{"CAP_KILL"},
			},
			want: map[string][]string{"preCapEff": {"CAP_KILL"}, "preCapPrm": {"CAP_KILL"}, "preCapBnd": basic},
		},
		{
			name: "nothing at all",
			mode: "apply",
			caps: specs.LinuxCapabilities{},
			want: map[string][]string{"preCapBnd": nil, "preCapEff": nil, "preCapPrm": nil, "postCapEff": nil},
		},
		{
			name: "non-root keeps ambient capabilities across execve",
			mode: "setuid",
			caps: specs.LinuxCapabilities{
				Bounding:  []string{"CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN"},
				Effective: []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"}, Permitted: []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"},
				Inheritable: []string{"CAP_NET_BIND_SERVICE"}, Ambient: []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"},
			},
			want: map[string][]string{
				"preCapBnd": {"CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN"},
				"preCapEff": {"CAP_NET_BIND_SERVICE", "CAP_KILL"},
				"preCapAmb": {"CAP_NET_BIND_SERVICE"},
				// uid 1000 after execve: only the ambient set survives.
				"postCapEff": {"CAP_NET_BIND_SERVICE"}, "postCapPrm": {"CAP_NET_BIND_SERVICE"},
				"postCapAmb": {"CAP_NET_BIND_SERVICE"}, "postCapBnd": {"CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runCaps(t, tt.mode, &tt.caps, true)
			for line, names := range tt.want {
				g, ok := got[line]
				if !ok {
					t.Errorf("%s missing from the child's output %v", line, got)
					continue
				}
				if w := mask(t, names); g != w {
					t.Errorf("%s = %016x, want %016x (%v)", line, g, w, names)
				}
			}
		})
	}
}

func TestCapabilitiesNotHeldAreLeftOut(t *testing.T) {
	got := runCaps(t, "regrant", &specs.LinuxCapabilities{
		Bounding: []string{"CAP_KILL", "CAP_CHOWN"}, Permitted: []string{"CAP_KILL", "CAP_CHOWN"},
		Effective: []string{"CAP_KILL", "CAP_CHOWN"}, Inheritable: []string{"CAP_CHOWN"},
	}, false)
	want := map[string][]string{"preCapPrm": {"CAP_KILL"}, "preCapEff": {"CAP_KILL"}, "preCapBnd": {"CAP_KILL", "CAP_CHOWN"}}
	for line, names := range want {
		if w := mask(t, names); got[line] != w {
			t.Errorf("%s = %016x, want %016x", line, got[line], w)
		}
	}
	// CAP_CHOWN is in the bounding set but not permitted, so it cannot
	// become inheritable either.
	if got["preCapInh"] != 0 {
		t.Errorf("CapInh = %016x, want 0", got["preCapInh"])
	}
}

func TestCurrent(t *testing.T) {
	cur := Current()
	data, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		t.Fatal(err)
	}
	var eff uint64
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:\t"); ok {
			eff, _ = strconv.ParseUint(v, 16, 64)
		}
	}
	if m := mask(t, cur); m != eff {
		t.Errorf("Current() = %016x, CapEff %016x", m, eff)
	}
}

func TestDropBoundingNeedsSetpcap(t *testing.T) {
	// A thread without CAP_SETPCAP cannot shrink its bounding set: the
	// error says so instead of silently doing nothing (the child checks).
	got := runCaps(t, "twice", &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}}, false)
	if w := mask(t, []string{"CAP_KILL", "CAP_CHOWN"}); got["preCapBnd"] != w {
		t.Errorf("bounding after the refused drop: %x, want %x", got["preCapBnd"], w)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		c    *specs.LinuxCapabilities
		want string
	}{
		{"nil", nil, ""},
		{"good", &specs.LinuxCapabilities{Bounding: []string{"CAP_SYS_ADMIN", "cap_kill", "NET_RAW"}}, ""},
		{"newest names", &specs.LinuxCapabilities{Permitted: []string{"CAP_BPF", "CAP_PERFMON", "CAP_CHECKPOINT_RESTORE"}}, ""},
		{"unknown in ambient", &specs.LinuxCapabilities{Ambient: []string{"CAP_KILL", "CAP_FLY"}}, `process.capabilities.ambient[1]: "CAP_FLY"`},
		{"empty name", &specs.LinuxCapabilities{Effective: []string{""}}, "process.capabilities.effective[0]"},
		{"typo in bounding", &specs.LinuxCapabilities{Bounding: []string{"CAP_SYSADMIN"}}, `process.capabilities.bounding[0]: "CAP_SYSADMIN"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.c)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want ErrUnknown naming %q", err, tt.want)
			}
		})
	}
}

func TestUnknown(t *testing.T) {
	got := Unknown(&specs.LinuxCapabilities{Bounding: []string{"CAP_KILL", "CAP_TEST"}, Ambient: []string{"CAP_FLY"}})
	if !reflect.DeepEqual(got, []string{"bounding: CAP_TEST", "ambient: CAP_FLY"}) {
		t.Errorf("Unknown = %q", got)
	}
	if Unknown(nil) != nil || Unknown(&specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}}) != nil {
		t.Error("known capabilities reported unknown")
	}
}

func TestWarnings(t *testing.T) {
	got := Warnings(&specs.LinuxCapabilities{
		Bounding: []string{"CAP_KILL", "CAP_TEST"}, Effective: []string{"CAP_KILL", "CAP_CHOWN"},
		Permitted: []string{"CAP_KILL"}, Ambient: []string{"CAP_KILL"},
	})
	want := []string{
		"ignoring unknown or unavailable capability in bounding: CAP_TEST",
		"effective capability CAP_CHOWN is not permitted: left out",
		"ambient capability CAP_KILL is not both permitted and inheritable: left out",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Warnings = %q", got)
	}
	if w := Warnings(&specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"}}); w != nil {
		t.Errorf("warnings for a consistent set: %q", w)
	}
}

func TestKnown(t *testing.T) {
	known := Known()
	last, err := capability.LastCap()
	if err != nil {
		t.Fatal(err)
	}
	if len(known) != int(last)+1 {
		t.Errorf("Known() has %d names, the kernel %d capabilities", len(known), last+1)
	}
	for _, n := range []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_RAW"} {
		found := false
		for _, k := range known {
			found = found || k == n
		}
		if !found {
			t.Errorf("Known() lacks %s", n)
		}
	}
	if len(All()) < len(known) {
		t.Errorf("All() shorter than Known()")
	}
}
