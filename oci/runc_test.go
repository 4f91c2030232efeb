package oci_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/oci"
	"github.com/hullproject/hull/runtime/label"
	"github.com/hullproject/hull/runtime/seccomp"
)

// These tests run the specs oci builds in real containers, under runc, the
// reference runtime (what runc accepts and enforces is what the spec
// means), and under Hull's own hull-runtime (bin/, built by make build, or
// $HULL_RUNTIME), which uses the runtime/seccomp, caps and label packages.

// runtimes runs f once per runtime, as subtests named after it.
func runtimes(t *testing.T, f func(t *testing.T, runtime string)) {
	t.Run("runc", func(t *testing.T) {
		p, err := exec.LookPath("runc")
		if err != nil {
			t.Skip("needs runc (Debian package runc)")
		}
		f(t, p)
	})
	t.Run("hull-runtime", func(t *testing.T) {
		testutil.RequireRoot(t)
		f(t, testutil.RuntimeBinary(t))
	})
}

// runIn runs the spec (with args) on a busybox bundle to completion
// under the runtime runc and returns its combined output. The container,
// its state and its cgroup are removed afterwards.
func runIn(t *testing.T, runc string, s *specs.Spec, args ...string) string {
	t.Helper()
	b := testutil.NewBundle(t, args...)
	id := fmt.Sprintf("hull-oci-%d", time.Now().UnixNano())
	s.Process.Args = args
	s.Process.Terminal = false
	s.Root = &specs.Root{Path: "rootfs"}
	if s.Linux.CgroupsPath != "" {
		s.Linux.CgroupsPath = "/" + id
	}
	b.Spec = s
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, runc, "--root", root, "run", "--bundle", b.Dir, id)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	_ = exec.Command(runc, "--root", root, "delete", "--force", id).Run()
	if _, serr := os.Stat(filepath.Join("/sys/fs/cgroup/pids", id)); serr == nil {
		t.Errorf("cgroup %s left behind", id)
	}
	if err != nil {
		t.Logf("runc run: %v", err)
	}
	return out.String()
}

const probeScript = `unshare -m true; echo unshare=$?; ` +
	`mount -t tmpfs none /tmp; echo mount=$?; ` +
	`grep '^Seccomp:' /proc/self/status | cat; echo done`

func TestDefaultSeccompUnderRunc(t *testing.T) {
	tests := []struct {
		name string
		spec func() *specs.Spec
		want []string
	}{
		{
			name: "default spec denies unshare and mount",
			spec: func() *specs.Spec { return oci.DefaultSpec("test", "x") },
			want: []string{"unshare=1", "mount=1", "Seccomp:\t2", "done"},
		},
		{
			// CAP_SYS_ADMIN alone would allow both: the profile must still
			// deny them.
			name: "default profile denies them even with CAP_SYS_ADMIN",
			spec: func() *specs.Spec {
				s, err := oci.NewSpec("test", "x", oci.WithCapAdd("CAP_SYS_ADMIN"), oci.WithSeccompProfile(seccomp.Default()))
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			want: []string{"unshare=1", "mount=1", "Seccomp:\t2", "done"},
		},
		{
			name: "control: CAP_SYS_ADMIN without seccomp allows them",
			spec: func() *specs.Spec {
				s, err := oci.NewSpec("test", "x", oci.WithCapAdd("CAP_SYS_ADMIN"), oci.WithSeccompUnconfined)
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			want: []string{"unshare=0", "mount=0", "Seccomp:\t0", "done"},
		},
		{
			name: "CAP_SYS_ADMIN regenerates the default profile to allow them",
			spec: func() *specs.Spec {
				s, err := oci.NewSpec("test", "x", oci.WithCapAdd("CAP_SYS_ADMIN"))
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			want: []string{"unshare=0", "mount=0", "Seccomp:\t2", "done"},
		},
	}
	runtimes(t, func(t *testing.T, rt string) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := tt.spec()
				if err := oci.ValidateSecurity(s); err != nil {
					t.Fatal(err)
				}
				out := runIn(t, rt, s, "sh", "-c", probeScript)
				for _, w := range tt.want {
					if !strings.Contains(out, w) {
						t.Errorf("output lacks %q:\n%s", w, out)
					}
				}
				// busybox reports EPERM as "Operation not permitted" for
				// unshare and "permission denied (are you root?)" for mount.
				if strings.Contains(tt.want[0], "=1") && (!strings.Contains(out, "unshare(0x20000): Operation not permitted") ||
					!strings.Contains(out, "mount: permission denied")) {
					t.Errorf("no EPERM messages in:\n%s", out)
				}
			})
		}
	})
}

func TestRootlessSpecUnderRunc(t *testing.T) {
	runtimes(t, testRootless)
}

func testRootless(t *testing.T, rt string) {
	s := oci.Example()
	oci.Rootless(s)
	s.Root.Readonly = false
	out := runIn(t, rt, s, "sh", "-c", "cat /proc/self/uid_map; ls /sys/kernel >/dev/null && echo sys-ok; "+
		"readlink /proc/self/ns/net; echo done")
	hostNet, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	uid := fmt.Sprintf("0 %10d %10d", os.Geteuid(), 1)
	for _, w := range []string{uid, "sys-ok", hostNet, "done"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(w), " ")) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func TestWithDevicesUnderRunc(t *testing.T) {
	runtimes(t, testWithDevices)
}

func testWithDevices(t *testing.T, rt string) {
	const tun = "/dev/net/tun"
	if _, err := os.Stat(tun); err != nil {
		t.Skipf("needs %s on the host", tun)
	}
	script := `if exec 3<>` + tun + `; then echo opened; else echo denied; fi`
	without := runIn(t, rt, oci.DefaultSpec("test", "x"), "sh", "-c", script)
	if strings.Contains(without, "opened") {
		t.Errorf("without WithDevices:\n%s", without)
	}
	s, err := oci.NewSpec("test", "x", oci.WithDevices("rwm", tun))
	if err != nil {
		t.Fatal(err)
	}
	with := runIn(t, rt, s, "sh", "-c", script)
	if !strings.Contains(with, "opened") {
		t.Errorf("with WithDevices:\n%s", with)
	}
}

// TestProcessSecurityUnderRuntimes runs a non-root process with a narrow
// capability set, ambient capabilities, no no_new_privs and the default
// seccomp profile, and compares what /proc/self/status says under each
// runtime with what the spec asks. Without no_new_privs the filter must
// be loaded while the init is still privileged, which this checks too.
func TestProcessSecurityUnderRuntimes(t *testing.T) {
	const nbs = "CAP_NET_BIND_SERVICE"
	s, err := oci.NewSpec("test", "x",
		oci.WithCapDrop("ALL"), oci.WithCapAdd(nbs, "CAP_KILL", "CAP_CHOWN"),
		oci.WithUIDGID(1000, 1000), oci.WithNoNewPrivileges(false))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Process.Capabilities
	c.Effective, c.Permitted, c.Inheritable, c.Ambient = []string{nbs}, []string{nbs}, []string{nbs}, []string{nbs}
	// The profile was generated for the three capabilities by WithCapAdd.
	want := map[string]string{
		"CapInh": "0000000000000400", "CapPrm": "0000000000000400", "CapEff": "0000000000000400",
		"CapBnd": "0000000000000421", "CapAmb": "0000000000000400",
		"NoNewPrivs": "0", "Seccomp": "2", "Uid": "1000", "Gid": "1000",
	}
	runtimes(t, func(t *testing.T, rt string) {
		out := runIn(t, rt, s, "sh", "-c", "grep -E '^(Cap|NoNewPrivs|Seccomp:|Uid|Gid)' /proc/self/status; echo done")
		got := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			k, v, ok := strings.Cut(l, ":")
			if ok {
				got[k] = strings.Fields(v)[0]
			}
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s = %q, want %q\n%s", k, got[k], w, out)
			}
		}
	})
}

// TestAppArmorProfileWithoutAppArmor: on a host without AppArmor, a
// container asking for a profile must not start (runc fails in its init,
// hull-runtime at create with a message naming the field).
func TestAppArmorProfileWithoutAppArmor(t *testing.T) {
	if label.AppArmorEnabled() {
		t.Skip("this host has AppArmor: the refusal cannot be tested")
	}
	want := map[string][]string{
		"runc":         {"apparmor"},
		"hull-runtime": {"process.apparmorProfile: apparmor profile", "requested but AppArmor is not enabled on this host"},
	}
	runtimes(t, func(t *testing.T, rt string) {
		s, err := oci.NewSpec("test", "x", oci.WithApparmorProfile("docker-default"))
		if err != nil {
			t.Fatal(err)
		}
		out := runIn(t, rt, s, "sh", "-c", "echo started")
		if strings.Contains(out, "started") {
			t.Fatalf("the container ran without its AppArmor profile:\n%s", out)
		}
		for _, w := range want[filepath.Base(t.Name())] {
			if !strings.Contains(out, w) {
				t.Errorf("error does not say %q:\n%s", w, out)
			}
		}
	})
}

// TestBadSeccompProfileRefused: a profile with a bad action keeps the
// container from starting under both runtimes; hull-runtime's error names
// the rule.
func TestBadSeccompProfileRefused(t *testing.T) {
	want := map[string][]string{
		"runc":         {"SCMP_ACT_NOPE"},
		"hull-runtime": {"syscalls[0] (mkdir,mkdirat): action", "SCMP_ACT_NOPE", "is not a seccomp action"},
	}
	runtimes(t, func(t *testing.T, rt string) {
		s := oci.DefaultSpec("test", "x")
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir", "mkdirat"}, Action: "SCMP_ACT_NOPE"},
		}}
		out := runIn(t, rt, s, "sh", "-c", "echo started")
		if strings.Contains(out, "started") {
			t.Fatalf("the container ran with a bad seccomp profile:\n%s", out)
		}
		for _, w := range want[filepath.Base(t.Name())] {
			if !strings.Contains(out, w) {
				t.Errorf("error does not say %q:\n%s", w, out)
			}
		}
	})
}

// TestPrivilegedUnderRuntimes: WithPrivileged gives every capability the
// caller holds, no seccomp filter, no masked or read-only /proc paths, and
// mount works.
func TestPrivilegedUnderRuntimes(t *testing.T) {
	s, err := oci.NewSpec("test", "x", oci.WithPrivileged)
	if err != nil {
		t.Fatal(err)
	}
	// Every capability this test (the runtime's caller) holds.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var allCaps string
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:\t"); ok {
			allCaps = v
		}
	}
	script := `grep -E '^(CapEff|Seccomp):' /proc/self/status; ` +
		`grep -c ' /proc/sys ' /proc/mounts; ` +
		`mount -t tmpfs none /tmp && echo mounted; echo done`
	runtimes(t, func(t *testing.T, rt string) {
		out := runIn(t, rt, s, "sh", "-c", script)
		for _, w := range []string{"CapEff:\t" + allCaps, "Seccomp:\t0", "\n0\n", "mounted", "done"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	})
}
