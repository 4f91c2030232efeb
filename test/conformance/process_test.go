package conformance

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
)

// capNumbers maps capability names to their bit numbers (capability.h).
var capNumbers = map[string]uint{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
	"CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
	"CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
	"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
	"CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
	"CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
	"CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
	"CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
	"CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
	"CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
	"CAP_CHECKPOINT_RESTORE": 40,
}

func capMask(t *testing.T, names []string) uint64 {
	t.Helper()
	var m uint64
	for _, n := range names {
		bit, ok := capNumbers[n]
		if !ok {
			t.Fatalf("unknown capability %s", n)
		}
		m |= 1 << bit
	}
	return m
}

// statusCaps reads the five capability sets of a /proc/<pid>/status.
func statusCaps(t *testing.T, st map[string]string) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		v, err := strconv.ParseUint(st[k], 16, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", k, st[k], err)
		}
		m[k] = v
	}
	return m
}

// TestProcess checks the process properties of config.md, each seen from
// inside the container (its output) and, where the host can see it, from
// outside (/proc/<pid> of the running container).
func TestProcess(t *testing.T) {
	cases := []struct {
		name string
		// edit changes the spec.
		edit func(s *specs.Spec)
		// script runs in the container; its output must equal want.
		script, want string
		// outside checks /proc/<pid>/status and friends of the running
		// container process.
		outside func(t *testing.T, pid int)
	}{
		{
			// config.md process: "args (array of strings, REQUIRED) with
			// similar semantics to IEEE Std 1003.1-2008 execvp's argv";
			// "env (array of strings, OPTIONAL) with the same semantics as
			// IEEE Std 1003.1-2008's environ".
			name: "env",
			edit: func(s *specs.Spec) {
				s.Process.Env = []string{"PATH=/bin:/sbin", "HULL_A=one", "HULL_B=two words"}
			},
			script: `echo "$HULL_A|$HULL_B|$PATH"`, want: "one|two words|/bin:/sbin\n",
			outside: func(t *testing.T, pid int) {
				env := readFile(fmt.Sprintf("/proc/%d/environ", pid))
				if !strings.Contains(env, "HULL_A=one\x00") {
					t.Errorf("environ %q lacks HULL_A=one", env)
				}
			},
		},
		{
			// config.md process: "cwd (string, REQUIRED) is the working
			// directory that will be set for the executable."
			name:   "cwd",
			edit:   func(s *specs.Spec) { s.Process.Cwd = "/etc" },
			script: "pwd", want: "/etc\n",
			outside: func(t *testing.T, pid int) {
				if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); !strings.HasSuffix(l, "/rootfs/etc") && l != "/etc" {
					t.Errorf("cwd link %q, want the rootfs' /etc", l)
				}
			},
		},
		{
			// config.md user: "uid (int, REQUIRED) specifies the user ID in
			// the container namespace"; "gid (int, REQUIRED) specifies the
			// group ID"; "additionalGids (array of ints, OPTIONAL)
			// specifies additional group IDs in the container namespace to
			// be added to the process".
			name: "user",
			edit: func(s *specs.Spec) {
				s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1001, 5}}
			},
			script: "id -u; id -g; id -G | tr ' ' '\\n' | sort -n | tr '\\n' ' '",
			want:   "1000\n1000\n5 1000 1001 ",
			outside: func(t *testing.T, pid int) {
				st := procStatus(t, pid)
				if f := strings.Fields(st["Uid"]); len(f) != 4 || f[0] != "1000" || f[1] != "1000" || f[2] != "1000" {
					t.Errorf("Uid %q, want 1000 (real, effective, saved)", st["Uid"])
				}
				if f := strings.Fields(st["Gid"]); len(f) != 4 || f[0] != "1000" || f[1] != "1000" {
					t.Errorf("Gid %q, want 1000", st["Gid"])
				}
				groups := strings.Fields(st["Groups"])
				for _, g := range []string{"1001", "5"} {
					if !contains(groups, g) {
						t.Errorf("Groups %q lack %s", st["Groups"], g)
					}
				}
			},
		},
		{
			// config.md user: "umask (int, OPTIONAL) specifies the umask of
			// the user."
			name: "umask",
			edit: func(s *specs.Spec) {
				u := uint32(0o027)
				s.Process.User.Umask = &u
			},
			script: "umask", want: "0027\n",
			outside: func(t *testing.T, pid int) {
				if st := procStatus(t, pid); st["Umask"] != "0027" {
					t.Errorf("Umask %q, want 0027", st["Umask"])
				}
			},
		},
		{
			// config.md rlimits: "rlim.rlim_cur MUST match the configured
			// value"; "rlim.rlim_max MUST match the configured value".
			name: "rlimits",
			edit: func(s *specs.Spec) {
				s.Process.Rlimits = []specs.POSIXRlimit{
					{Type: "RLIMIT_NOFILE", Soft: 256, Hard: 512},
					{Type: "RLIMIT_NPROC", Soft: 3000, Hard: 4000},
					{Type: "RLIMIT_CORE", Soft: 0, Hard: 0},
				}
			},
			script: "ulimit -Sn; ulimit -Hn; ulimit -Su; ulimit -Hu; ulimit -c",
			want:   "256\n512\n3000\n4000\n0\n",
			outside: func(t *testing.T, pid int) {
				lim := readFile(fmt.Sprintf("/proc/%d/limits", pid))
				for _, want := range [][]string{{"Max open files", "256", "512"}, {"Max processes", "3000", "4000"}, {"Max core file size", "0", "0"}} {
					if !limitIs(lim, want[0], want[1], want[2]) {
						t.Errorf("/proc/pid/limits: %s is not %s/%s:\n%s", want[0], want[1], want[2], lim)
					}
				}
			},
		},
		{
			// config.md Linux process: "noNewPrivileges (bool, OPTIONAL)
			// setting noNewPrivileges to true prevents the process from
			// gaining additional privileges."
			name:   "no-new-privileges-on",
			edit:   func(s *specs.Spec) { s.Process.NoNewPrivileges = true },
			script: "grep NoNewPrivs /proc/self/status | tr -d ' \\t'", want: "NoNewPrivs:1\n",
			outside: func(t *testing.T, pid int) {
				if st := procStatus(t, pid); st["NoNewPrivs"] != "1" {
					t.Errorf("NoNewPrivs %q, want 1", st["NoNewPrivs"])
				}
			},
		},
		{
			name:   "no-new-privileges-off",
			edit:   func(s *specs.Spec) { s.Process.NoNewPrivileges = false },
			script: "grep NoNewPrivs /proc/self/status | tr -d ' \\t'", want: "NoNewPrivs:0\n",
		},
		{
			// config.md: "If oomScoreAdj is set, the runtime MUST set
			// oom_score_adj to the given value."
			name: "oom-score-adj",
			edit: func(s *specs.Spec) {
				v := 423
				s.Process.OOMScoreAdj = &v
			},
			script: "cat /proc/self/oom_score_adj", want: "423\n",
			outside: func(t *testing.T, pid int) {
				if v := strings.TrimSpace(readFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))); v != "423" {
					t.Errorf("oom_score_adj %q, want 423", v)
				}
			},
		},
		{
			// config.md: "If oomScoreAdj is not set, the runtime MUST NOT
			// change the value of oom_score_adj": the container keeps the
			// value the runtime inherited from this test process.
			name:   "oom-score-adj-unset",
			edit:   func(s *specs.Spec) { s.Process.OOMScoreAdj = nil },
			script: "cat /proc/self/oom_score_adj", want: readFile("/proc/self/oom_score_adj"),
		},
		{
			// config.md: the process has the listed capabilities in each of
			// the five sets: "effective", "bounding", "inheritable",
			// "permitted", "ambient" ("... capabilities that are kept for
			// the process"). For uid 0, execve makes the effective set the
			// permitted one (capabilities(7)), so both are the same here.
			name: "capabilities",
			edit: func(s *specs.Spec) {
				s.Process.Capabilities = &specs.LinuxCapabilities{
					Bounding:    []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN"},
					Permitted:   []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"},
					Effective:   []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"},
					Inheritable: []string{"CAP_KILL", "CAP_NET_RAW"},
					Ambient:     []string{"CAP_KILL"},
				}
			},
			script: "grep ^Cap /proc/self/status | tr -d ' \\t'",
			want:   fmt.Sprintf("CapInh:%016x\nCapPrm:%016x\nCapEff:%016x\nCapBnd:%016x\nCapAmb:%016x\n", uint64(1<<5|1<<13), uint64(1<<0|1<<5|1<<13), uint64(1<<0|1<<5|1<<13), uint64(1<<0|1<<5|1<<13|1<<21), uint64(1<<5)),
			outside: func(t *testing.T, pid int) {
				c := statusCaps(t, procStatus(t, pid))
				want := map[string]uint64{
					"CapBnd": capMask(t, []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN"}),
					"CapPrm": capMask(t, []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"}),
					"CapEff": capMask(t, []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"}),
					"CapInh": capMask(t, []string{"CAP_KILL", "CAP_NET_RAW"}),
					"CapAmb": capMask(t, []string{"CAP_KILL"}),
				}
				for k, w := range want {
					if c[k] != w {
						t.Errorf("%s %016x, want %016x", k, c[k], w)
					}
				}
			},
		},
		{
			// The capability sets hold for a non-root user too (ambient
			// capabilities survive the change of uid).
			name: "capabilities-non-root",
			edit: func(s *specs.Spec) {
				s.Process.User = specs.User{UID: 1000, GID: 1000}
				s.Process.Capabilities = &specs.LinuxCapabilities{
					Bounding:    []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"},
					Permitted:   []string{"CAP_NET_BIND_SERVICE"},
					Effective:   []string{"CAP_NET_BIND_SERVICE"},
					Inheritable: []string{"CAP_NET_BIND_SERVICE"},
					Ambient:     []string{"CAP_NET_BIND_SERVICE"},
				}
			},
			script: "grep -E '^Cap(Eff|Amb|Bnd)' /proc/self/status | tr -d ' \\t'",
			want:   fmt.Sprintf("CapEff:%016x\nCapBnd:%016x\nCapAmb:%016x\n", uint64(1<<10), uint64(1<<10|1<<5), uint64(1<<10)),
		},
		{
			// config.md: "hostname (string, OPTIONAL) specifies the
			// container's hostname as seen by processes running inside the
			// container" (config-linux.md: in a new UTS namespace).
			name:   "hostname",
			edit:   func(s *specs.Spec) { s.Hostname = "conformance-host" },
			script: "hostname; cat /proc/sys/kernel/hostname", want: "conformance-host\nconformance-host\n",
		},
		{
			// config.md: "domainname (string, OPTIONAL) specifies the
			// container's domainname as seen by processes running inside
			// the container."
			name:   "domainname",
			edit:   func(s *specs.Spec) { s.Domainname = "conformance.example" },
			script: "cat /proc/sys/kernel/domainname", want: "conformance.example\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t)
			tc.edit(b.Spec)
			if got := r.shell(b, tc.script); got != tc.want {
				t.Errorf("inside: got %q, want %q", got, tc.want)
			}
			if tc.outside == nil {
				return
			}
			b = testutil.NewBundle(t)
			tc.edit(b.Spec)
			s := r.startSleeper(b, false)
			tc.outside(t, s.pid)
			r.stop(s.id)
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// limitIs reports whether the /proc/<pid>/limits line named name has the
// soft and hard values given.
func limitIs(limits, name, soft, hard string) bool {
	for _, l := range strings.Split(limits, "\n") {
		if !strings.HasPrefix(l, name) {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(l, name))
		return len(f) >= 2 && f[0] == soft && f[1] == hard
	}
	return false
}

// TestProcessErrors checks process properties the runtime must refuse.
func TestProcessErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(s *specs.Spec)
	}{
		{
			// config.md rlimits: "If rlimits contains duplicated entries
			// with same type, the runtime MUST generate an error."
			name: "duplicate-rlimit",
			edit: func(s *specs.Spec) {
				s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 200, Hard: 200}, {Type: "RLIMIT_NOFILE", Soft: 100, Hard: 100}}
			},
		},
		{
			// config.md rlimits: "The runtime MUST generate an error for any
			// values which cannot be mapped to a relevant kernel interface."
			name: "unknown-rlimit",
			edit: func(s *specs.Spec) {
				s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NO_SUCH_THING", Soft: 1, Hard: 1}}
			},
		},
		{
			// runtime.md start: "This operation MUST generate an error if
			// process was not set."
			name: "no-process",
			edit: func(s *specs.Spec) { s.Process = nil },
		},
		{
			// config.md process: cwd "This value MUST be an absolute path."
			name: "relative-cwd",
			edit: func(s *specs.Spec) { s.Process.Cwd = "etc" },
		},
		{
			// runtime.md lifecycle 2: "If the runtime is unable to create the
			// environment specified in the config.json, it MUST generate an
			// error": the program does not exist. The error must come at
			// create or start, not as a hang.
			name: "missing-binary",
			edit: func(s *specs.Spec) { s.Process.Args = []string{"/no/such/program"} },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t, "sh", "-c", "touch /ran")
			tc.edit(b.Spec)
			expectRefused(t, r, b)
		})
	}
}

// expectRefused checks that create (or, failing that, start) of b errors,
// that the user program never ran, and that the refusal left no container.
func expectRefused(t *testing.T, r *rt, b *testutil.Bundle) {
	t.Helper()
	id := r.newID()
	// A cgroup path of its own shows whether the refusal left a cgroup.
	cg := ""
	if b.Spec.Linux != nil {
		if b.Spec.Linux.CgroupsPath == "" {
			b.Spec.Linux.CgroupsPath = "/hull-conformance/" + id
		}
		if strings.HasPrefix(b.Spec.Linux.CgroupsPath, "/") {
			cg = b.Spec.Linux.CgroupsPath
		}
	}
	mountsBefore := hostMountsUnder(b.Dir)
	_, err := r.tryCreate(b, id)
	if err == nil {
		// Some errors may only show when the process is set up at start.
		_, errOut, serr := r.exec(nil, "start", id)
		if serr == nil {
			t.Fatalf("create and start of an invalid config both succeeded")
		}
		t.Logf("refused at start: %s", strings.TrimSpace(errOut))
		r.exec(nil, "delete", "--force", id)
	} else {
		t.Logf("refused at create: %v", err)
		// runtime.md errors: "generating an error MUST leave the state of
		// the environment as if the operation were never attempted".
		if _, serr := r.state(id); serr == nil {
			t.Errorf("a refused create left container %s behind", id)
		}
	}
	if m := hostMountsUnder(b.Dir); m != mountsBefore {
		t.Errorf("the refusal left mounts: %s", m)
	}
	if cg != "" {
		if left := cgroupDirs(cg); len(left) > 0 {
			t.Errorf("the refusal left cgroups: %v", left)
		}
	}
	if _, err := os.Stat(b.Rootfs() + "/ran"); err == nil {
		t.Error("the user program ran")
	}
}
