package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
)

// TestFileDescriptors: runtime-linux.md: "By default, only the stdin,
// stdout and stderr file descriptors are kept open for the application by
// the runtime." A descriptor the caller leaves inheritable does not reach
// the container unless --preserve-fds asks for it (runc CLI).
func TestFileDescriptors(t *testing.T) {
	r := newRT(t)
	extra, err := os.Open(filepath.Join(testutil.Busybox))
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		// ls itself opens the directory it lists: the last number.
		{"default", nil, "0 1 2 3"},
		{"preserve-fds", []string{"--preserve-fds", "1"}, "0 1 2 3 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testutil.NewBundle(t, "ls", "/proc/self/fd")
			r := r.sub(t)
			r.save(b)
			id := r.newID()
			s := newStdio(t)
			cmd := []string{"run"}
			cmd = append(cmd, tc.flags...)
			cmd = append(cmd, "--bundle", b.Dir, id)
			if _, _, err := r.execFiles(s, []*os.File{extra}, cmd...); err != nil {
				t.Fatalf("run: %v: %s", err, s.stderr())
			}
			if got := strings.Join(strings.Fields(s.stdout()), " "); got != tc.want {
				t.Errorf("descriptors of the container process: %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRunDetached checks `run -d` (runc CLI): it returns with the
// container running.
func TestRunDetached(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "1000")
	r.save(b)
	id := r.newID()
	s := newStdio(t)
	if _, _, err := r.exec(s, "run", "-d", "--bundle", b.Dir, id); err != nil {
		t.Fatalf("run -d: %v: %s", err, s.stderr())
	}
	st := r.waitStatus(id, specs.StateRunning)
	waitExec(t, st.Pid, "sleep")
	r.stop(id)
}

// TestKillDefaultSignal checks that kill without a signal sends SIGTERM
// (runc CLI).
func TestKillDefaultSignal(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "trap 'echo TERM >/got; exit 0' TERM; touch /ready; while :; do sleep 0.1; done")
	id := r.newID()
	r.create(b, id)
	r.ok("start", id)
	waitFile(t, filepath.Join(b.Rootfs(), "ready"))
	r.ok("kill", id)
	r.waitStatus(id, specs.StateStopped)
	if got := strings.TrimSpace(readFile(filepath.Join(b.Rootfs(), "got"))); got != "TERM" {
		t.Errorf("container got %q, want TERM", got)
	}
	r.ok("delete", id)
}

// TestPropagation checks the propagation options of config.md mounts
// ("rslave", "rprivate" MUST be implemented) and config-linux.md
// rootfsPropagation: a mount the host makes under a bind source after the
// container started reaches the container only through a slave mount.
func TestPropagation(t *testing.T) {
	for _, tc := range []struct {
		opt  string
		sees bool
	}{{"rslave", true}, {"rprivate", false}} {
		t.Run(tc.opt, func(t *testing.T) {
			r := newRT(t)
			src := t.TempDir()
			// The source must be a shared mount for events to propagate.
			if err := syscall.Mount(src, src, "", syscall.MS_BIND, ""); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { syscall.Unmount(src, syscall.MNT_DETACH) })
			if err := syscall.Mount("", src, "", syscall.MS_SHARED, ""); err != nil {
				t.Fatal(err)
			}
			os.Mkdir(filepath.Join(src, "later"), 0o755)
			b := testutil.NewBundle(t)
			// With no rootfsPropagation a runtime may make the whole mount
			// tree private first (crun does), which cuts every bind from
			// its source's peer group: ask for a slave tree.
			b.Spec.Linux.RootfsPropagation = "slave"
			b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/mnt/prop", Type: "bind", Source: src, Options: []string{"rbind", tc.opt}})
			s := r.startSleeper(b, false)
			if err := syscall.Mount("tmpfs", filepath.Join(src, "later"), "tmpfs", 0, "size=1m"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { syscall.Unmount(filepath.Join(src, "later"), syscall.MNT_DETACH) })
			var sees bool
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				_, sees = lastMount(parseMountinfo(readFile(fmt.Sprintf("/proc/%d/mountinfo", s.pid))), "/mnt/prop/later")
				if sees {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if sees != tc.sees {
				t.Errorf("%s: the container sees the host's later mount: %v, want %v", tc.opt, sees, tc.sees)
			}
			r.stop(s.id)
		})
	}
}

// TestRootfsPropagation: config-linux.md: "rootfsPropagation (string,
// OPTIONAL) sets the rootfs's mount propagation. Its value is either
// shared, slave, private or unbindable."
func TestRootfsPropagation(t *testing.T) {
	for _, tc := range rootfsPropagationCases {
		t.Run(tc.prop, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t)
			b.Spec.Linux.RootfsPropagation = tc.prop
			s := r.startSleeper(b, false)
			// The optional fields of mountinfo (between the mount options
			// and "-") name the propagation: shared:N, master:N,
			// unbindable, or nothing for private.
			var opt string
			for _, l := range strings.Split(readFile(fmt.Sprintf("/proc/%d/mountinfo", s.pid)), "\n") {
				f := strings.Fields(l)
				if len(f) > 6 && f[4] == "/" {
					var o []string
					for _, x := range f[6:] {
						if x == "-" {
							break
						}
						o = append(o, x)
					}
					opt = strings.Join(o, " ")
				}
			}
			if tc.field == "" && opt != "" {
				t.Errorf("/ has propagation %q, want private", opt)
			}
			if tc.field != "" && !strings.Contains(opt, tc.field) {
				t.Errorf("/ has propagation %q, want %s", opt, tc.field)
			}
			r.stop(s.id)
		})
	}
}

// rootfsPropagationCases are the values of rootfsPropagation and the
// mountinfo optional field each gives "/". slave is left out: whether "/"
// keeps a master after pivot_root depends on the propagation of the mounts
// above the bundle.
var rootfsPropagationCases = []struct{ prop, field string }{
	{"private", ""}, {"shared", "shared:"}, {"unbindable", "unbindable"},
}

// nativeArch is the seccomp architecture of this machine, or none (the
// runtime's native one) where the table does not know it.
func nativeArch() []specs.Arch {
	a, ok := map[string]specs.Arch{"amd64": specs.ArchX86_64, "arm64": specs.ArchAARCH64, "386": specs.ArchX86, "ppc64le": specs.ArchPPC64LE, "s390x": specs.ArchS390X, "riscv64": specs.ArchRISCV64}[goruntime.GOARCH]
	if !ok {
		return nil
	}
	return []specs.Arch{a}
}

// TestSeccomp checks config-linux.md seccomp: "defaultAction", syscall
// rules with "action" and "errnoRet", and argument conditions ("args").
func TestSeccomp(t *testing.T) {
	eperm := uint(1)
	cases := []struct {
		name   string
		sc     *specs.LinuxSeccomp
		script string
		want   string
	}{
		{
			name: "errno-rule",
			sc: &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Architectures: nativeArch(),
				Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eperm}},
			},
			script: "mkdir /tmp/d 2>&1 | grep -c 'not permitted'; touch /tmp/f && echo touch-ok",
			want:   "1\ntouch-ok",
		},
		{
			name: "argument-condition",
			sc: &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Architectures: nativeArch(),
				// chmod(path, mode) and fchmodat(dirfd, path, mode): refused
				// only when the mode is 0777.
				Syscalls: []specs.LinuxSyscall{
					{Names: []string{"chmod"}, Action: specs.ActErrno, ErrnoRet: &eperm, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 0o777, Op: specs.OpEqualTo}}},
					{Names: []string{"fchmodat"}, Action: specs.ActErrno, ErrnoRet: &eperm, Args: []specs.LinuxSeccompArg{{Index: 2, Value: 0o777, Op: specs.OpEqualTo}}},
				},
			},
			script: "touch /tmp/f; chmod 755 /tmp/f && echo 755-ok; chmod 777 /tmp/f 2>/dev/null || echo 777-refused",
			want:   "755-ok\n777-refused",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t)
			b.Spec.Linux.Seccomp = tc.sc
			if got := strings.TrimSpace(r.shell(b, tc.script)); got != tc.want {
				t.Errorf("inside: %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("outside", func(t *testing.T) {
		r := newRT(t)
		b := testutil.NewBundle(t)
		b.Spec.Linux.Seccomp = cases[0].sc
		s := r.startSleeper(b, false)
		if st := procStatus(t, s.pid); st["Seccomp"] != "2" {
			t.Errorf("Seccomp mode %q, want 2 (filter)", st["Seccomp"])
		}
		r.stop(s.id)
	})
}

// TestMoreCgroups checks cpuset and memory reservation and swap.
func TestMoreCgroups(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t)
	id := r.newID()
	b.Spec.Linux.CgroupsPath = "/hull-conformance/" + id
	res := b.Spec.Linux.Resources
	limit, reservation := int64(96<<20), int64(32<<20)
	swap := int64(128 << 20)
	res.Memory = &specs.LinuxMemory{Limit: &limit, Reservation: &reservation}
	memsw := !cgroupV2() && fileExists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	if memsw || cgroupV2() {
		res.Memory.Swap = &swap
	}
	res.CPU = &specs.LinuxCPU{Cpus: "0", Mems: "0"}
	b.Spec.Process.Args = []string{"sleep", "1000"}
	r.create(b, id)
	pid := r.mustState(id).Pid
	type check struct{ controller, file, want string }
	var checks []check
	if cgroupV2() {
		checks = []check{
			{"", "cpuset.cpus", "0"}, {"", "memory.max", fmt.Sprint(limit)}, {"", "memory.low", fmt.Sprint(reservation)},
			{"", "memory.swap.max", fmt.Sprint(swap - limit)},
		}
	} else {
		checks = []check{
			{"cpuset", "cpuset.cpus", "0"}, {"cpuset", "cpuset.mems", "0"},
			{"memory", "memory.limit_in_bytes", fmt.Sprint(limit)}, {"memory", "memory.soft_limit_in_bytes", fmt.Sprint(reservation)},
		}
		if memsw {
			checks = append(checks, check{"memory", "memory.memsw.limit_in_bytes", fmt.Sprint(swap)})
		}
	}
	for _, c := range checks {
		if got := strings.TrimSpace(readFile(cgroupFile(t, pid, c.controller, c.file))); got != c.want {
			t.Errorf("%s: %q, want %q", c.file, got, c.want)
		}
	}
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestEvents checks `events --stats` (runc CLI): one JSON stats record.
func TestEvents(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t)
	b.Spec.Linux.CgroupsPath = "/hull-conformance/" + fmt.Sprint("ev-", os.Getpid())
	s := r.startSleeper(b, false)
	out := r.ok("events", "--stats", s.id)
	if !strings.Contains(out, `"type":"stats"`) || !strings.Contains(out, `"id":"`+s.id+`"`) {
		t.Errorf("events --stats: %q", out)
	}
	r.stop(s.id)
}

// TestDeviceConflict checks a device path already taken by a file.
func TestDeviceConflict(t *testing.T) {
	// config-linux.md devices: "If a file already exists at path that does
	// not match the requested device, the runtime MUST generate an error."
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "touch /ran")
	if err := os.WriteFile(filepath.Join(b.Rootfs(), "etc/notadevice"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mode := os.FileMode(0o666)
	b.Spec.Linux.Devices = []specs.LinuxDevice{{Path: "/etc/notadevice", Type: "c", Major: 1, Minor: 3, FileMode: &mode}}
	expectRefused(t, r, b)
}
