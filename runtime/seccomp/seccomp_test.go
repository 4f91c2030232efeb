//go:build cgo

package seccomp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// The tests load real filters. A filter cannot be removed, so each one is
// loaded in a child: the test binary re-executed with childEnv naming the
// case and childProfile holding the profile as JSON. The child prints one
// line per probe ("name=errno") and exits 0.
const (
	childEnv     = "HULL_SECCOMP_TEST_CHILD"
	childProfile = "HULL_SECCOMP_TEST_PROFILE"
	childArg     = "HULL_SECCOMP_TEST_ARG"
	childProgram = "HULL_SECCOMP_TEST_PROGRAM"
)

func TestMain(m *testing.M) {
	if c := os.Getenv(childEnv); c != "" {
		os.Exit(runChild(c))
	}
	os.Exit(m.Run())
}

// probe makes one syscall and returns its errno (0 on success).
type probe func(dir string) syscall.Errno

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

func getprio(which, who int) syscall.Errno {
	_, _, e := unix.Syscall(unix.SYS_GETPRIORITY, uintptr(which), uintptr(who), 0)
	return e
}

var probes = map[string]probe{
	"mkdir": func(dir string) syscall.Errno { return errnoOf(unix.Mkdir(filepath.Join(dir, "d"), 0o755)) },
	"rmdir": func(dir string) syscall.Errno { return errnoOf(unix.Rmdir(filepath.Join(dir, "d"))) },
	"getpid": func(string) syscall.Errno {
		_, _, e := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
		return e
	},
	"unshare-ns":  func(string) syscall.Errno { return errnoOf(unix.Unshare(unix.CLONE_NEWNS)) },
	"unshare-uts": func(string) syscall.Errno { return errnoOf(unix.Unshare(unix.CLONE_NEWUTS)) },
	"mount": func(dir string) syscall.Errno {
		return errnoOf(unix.Mount("none", dir, "tmpfs", 0, ""))
	},
	"chroot": func(dir string) syscall.Errno { return errnoOf(unix.Chroot(dir)) },
	"nr-500": func(string) syscall.Errno {
		_, _, e := unix.RawSyscall(500, 0, 0, 0)
		return e
	},
	"statmount": func(string) syscall.Errno {
		// statmount is 457 on x86_64 (Linux 6.8), unknown to libseccomp
		// 2.5.4, so newer than anything the default profile can name.
		_, _, e := unix.RawSyscall(457, 0, 0, 0)
		return e
	},
	"fchmodat2": func(dir string) syscall.Errno {
		// fchmodat2 is 452 on x86_64 (Linux 6.6).
		p, _ := unix.BytePtrFromString(dir)
		dirfd := unix.AT_FDCWD
		_, _, e := unix.RawSyscall6(452, uintptr(dirfd), uintptr(unsafe.Pointer(p)), 0o755, 0, 0, 0)
		return e
	},
	"keyctl": func(string) syscall.Errno {
		_, _, e := unix.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, 0, 0)
		return e
	},
	"pipe2": func(string) syscall.Errno {
		var p [2]int
		err := unix.Pipe2(p[:], unix.O_CLOEXEC)
		if err == nil {
			unix.Close(p[0])
			unix.Close(p[1])
		}
		return errnoOf(err)
	},
	"clone3": func(string) syscall.Errno {
		// A NULL clone_args of size 0: EINVAL without a filter, ENOSYS
		// with the default profile.
		_, _, e := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
		return e
	},
	"clone-newns": func(string) syscall.Errno {
		// Fork-like clone with CLONE_NEWNS; the child exits at once.
		pid, _, e := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.CLONE_NEWNS|unix.SIGCHLD), 0, 0, 0, 0, 0)
		if e == 0 && pid == 0 {
			unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
		}
		if e == 0 {
			var ws unix.WaitStatus
			_, _ = unix.Wait4(int(pid), &ws, 0, nil)
		}
		return e
	},
	"prio-user-0":      func(string) syscall.Errno { return getprio(unix.PRIO_USER, 0) },
	"prio-user-4242":   func(string) syscall.Errno { return getprio(unix.PRIO_USER, 4242) },
	"prio-user-4343":   func(string) syscall.Errno { return getprio(unix.PRIO_USER, 4343) },
	"prio-user-4342":   func(string) syscall.Errno { return getprio(unix.PRIO_USER, 0x4342) },
	"prio-user-0x4242": func(string) syscall.Errno { return getprio(unix.PRIO_USER, 0x4242) },
	"prio-proc-0":      func(string) syscall.Errno { return getprio(unix.PRIO_PROCESS, 0) },
	"prio-proc-4242":   func(string) syscall.Errno { return getprio(unix.PRIO_PROCESS, 4242) },
	"prio-user-5":      func(string) syscall.Errno { return getprio(unix.PRIO_USER, 5) },
	"prio-user-10":     func(string) syscall.Errno { return getprio(unix.PRIO_USER, 10) },
	"prio-user-20":     func(string) syscall.Errno { return getprio(unix.PRIO_USER, 20) },
	"tsync": func(string) syscall.Errno {
		// Every thread must be in filter mode (Seccomp: 2).
		tasks, _ := filepath.Glob("/proc/self/task/*/status")
		if len(tasks) < 2 {
			return syscall.ESRCH // the Go runtime always has several threads
		}
		for _, t := range tasks {
			data, err := os.ReadFile(t)
			if err != nil {
				return errnoOf(err)
			}
			if !bytes.Contains(data, []byte("\nSeccomp:\t2\n")) {
				return syscall.EINVAL
			}
		}
		return 0
	},
	"nnp": func(string) syscall.Errno {
		v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
		if err != nil {
			return errnoOf(err)
		}
		if v != 0 {
			return syscall.EEXIST
		}
		return 0
	},
}

func runChild(name string) int {
	runtime.LockOSThread()
	var s specs.LinuxSeccomp
	if err := json.Unmarshal([]byte(os.Getenv(childProfile)), &s); err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return 3
	}
	dir := os.Getenv(childArg)
	switch name {
	case "load":
		if err := Load(&s); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			return 4
		}
	case "program":
		var p Program
		if err := json.Unmarshal([]byte(os.Getenv(childProgram)), &p); err != nil {
			fmt.Fprintln(os.Stderr, "program:", err)
			return 3
		}
		fd, err := p.Load()
		if err != nil {
			fmt.Fprintln(os.Stderr, "load program:", err)
			return 4
		}
		if fd != nil {
			fd.Close()
		}
	case "notify":
		fd, err := LoadNotify(&s)
		if err != nil || fd == nil {
			fmt.Fprintln(os.Stderr, "load notify:", err, fd)
			return 4
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st := specs.ContainerProcessState{Pid: os.Getpid(), Metadata: s.ListenerMetadata,
			State: specs.State{ID: "notify-test", Status: specs.StateCreating, Pid: os.Getpid()}}
		if err := SendListener(ctx, s.ListenerPath, fd, st); err != nil {
			fmt.Fprintln(os.Stderr, "send:", err)
			return 5
		}
		fd.Close()
	}
	if args := os.Getenv("HULL_SECCOMP_TEST_EXEC"); args != "" {
		argv := strings.Fields(args)
		err := syscall.Exec(argv[0], argv, os.Environ())
		fmt.Fprintln(os.Stderr, "exec:", err)
		return 6
	}
	for _, p := range strings.Fields(os.Getenv("HULL_SECCOMP_TEST_PROBES")) {
		fmt.Printf("%s=%d\n", p, int(probes[p](dir)))
	}
	return 0
}

// child runs the test binary as a child that loads s with mode ("load" or
// "notify") and then runs the probes. It returns the probe results, the
// stderr text and the wait status.
func child(t *testing.T, mode string, s *specs.LinuxSeccomp, probeNames ...string) (map[string]syscall.Errno, string, syscall.WaitStatus) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads seccomp filters without no_new_privs and probes mount/unshare")
	}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	var program []byte
	if mode == "program" {
		p, err := Compile(s)
		if err != nil {
			t.Fatalf("Compile: %v", err)
		}
		program, _ = json.Marshal(p)
	}
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childProfile+"="+string(data), childProgram+"="+string(program),
		childArg+"="+t.TempDir(), "HULL_SECCOMP_TEST_PROBES="+strings.Join(probeNames, " "))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("child did not run: %v", errb.String())
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	res := map[string]syscall.Errno{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		var n int
		fmt.Sscan(v, &n)
		res[k] = syscall.Errno(n)
	}
	return res, errb.String(), ws
}

func uintp(v uint) *uint { return &v }

func expect(t *testing.T, got map[string]syscall.Errno, stderr string, want map[string]syscall.Errno) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("probe %s did not run (stderr: %s)", k, stderr)
			continue
		}
		if g != w {
			t.Errorf("probe %s: errno %d (%v), want %d (%v)", k, int(g), g, int(w), w)
		}
	}
}

func TestLoadActions(t *testing.T) {
	allow := specs.ActAllow
	tests := []struct {
		name string
		s    specs.LinuxSeccomp
		want map[string]syscall.Errno
	}{
		{
			name: "errno with errnoRet and default EPERM",
			s: specs.LinuxSeccomp{DefaultAction: allow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EXDEV))},
				{Names: []string{"rmdir", "unlinkat"}, Action: specs.ActErrno},
			}},
			want: map[string]syscall.Errno{"mkdir": unix.EXDEV, "rmdir": unix.EPERM, "getpid": 0},
		},
		{
			name: "the largest errno and zero (a faked success)",
			s: specs.LinuxSeccomp{DefaultAction: allow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: uintp(4094)},
				{Names: []string{"rmdir", "unlinkat"}, Action: specs.ActErrno, ErrnoRet: uintp(0)},
			}},
			want: map[string]syscall.Errno{"mkdir": 4094, "rmdir": 0, "getpid": 0},
		},
		{
			name: "the first of two conflicting rules wins",
			s: specs.LinuxSeccomp{DefaultAction: allow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EBUSY))},
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EXDEV))},
			}},
			want: map[string]syscall.Errno{"mkdir": unix.EBUSY},
		},
		{
			name: "trace without a tracer gives ENOSYS",
			s: specs.LinuxSeccomp{DefaultAction: allow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActTrace},
			}},
			want: map[string]syscall.Errno{"mkdir": unix.ENOSYS, "getpid": 0},
		},
		{
			name: "log lets the syscall run",
			s: specs.LinuxSeccomp{DefaultAction: allow, Flags: []specs.LinuxSeccompFlag{FlagTsync, FlagLog}, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActLog},
			}},
			want: map[string]syscall.Errno{"mkdir": 0, "rmdir": 0},
		},
		{
			name: "allow rule over a log default",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActLog, Flags: []specs.LinuxSeccompFlag{FlagSpecAllow}, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActAllow},
			}},
			want: map[string]syscall.Errno{"mkdir": 0, "getpid": 0},
		},
		{
			name: "two args on one rule are ANDed",
			s: specs.LinuxSeccomp{DefaultAction: allow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpriority"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EXDEV)), Args: []specs.LinuxSeccompArg{
					{Index: 0, Value: unix.PRIO_USER, Op: specs.OpEqualTo},
					{Index: 1, Value: 4242, Op: specs.OpEqualTo},
				}},
			}},
			want: map[string]syscall.Errno{"prio-user-4242": unix.EXDEV, "prio-user-0": 0, "prio-proc-4242": unix.ESRCH},
		},
		{
			name: "the same arg twice is ORed",
			s: specs.LinuxSeccomp{DefaultAction: allow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpriority"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EXDEV)), Args: []specs.LinuxSeccompArg{
					{Index: 1, Value: 4242, Op: specs.OpEqualTo},
					{Index: 1, Value: 4343, Op: specs.OpEqualTo},
				}},
			}},
			want: map[string]syscall.Errno{"prio-user-4242": unix.EXDEV, "prio-user-4343": unix.EXDEV, "prio-user-0": 0},
		},
		{
			name: "masked equal compares arg&value with valueTwo",
			s: specs.LinuxSeccomp{DefaultAction: allow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpriority"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EXDEV)), Args: []specs.LinuxSeccompArg{
					{Index: 1, Value: 0xff00, ValueTwo: 0x4200, Op: specs.OpMaskedEqual},
				}},
			}},
			want: map[string]syscall.Errno{"prio-user-0x4242": unix.EXDEV, "prio-user-4342": unix.ESRCH, "prio-user-0": 0},
		},
		{
			name: "defaultErrnoRet",
			s: func() specs.LinuxSeccomp {
				s := *Default()
				s.DefaultErrnoRet = uintp(uint(unix.EXDEV))
				return s
			}(),
			want: map[string]syscall.Errno{"unshare-ns": unix.EXDEV, "mount": unix.EXDEV, "mkdir": 0},
		},
	}
	names := []string{"mkdir", "rmdir", "getpid", "prio-user-0", "prio-user-4242", "prio-user-4343",
		"prio-user-4342", "prio-user-0x4242", "prio-proc-4242", "unshare-ns", "mount"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Validate(&tt.s); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got, stderr, ws := child(t, "load", &tt.s, names...)
			if !ws.Exited() || ws.ExitStatus() != 0 {
				t.Fatalf("child: %v, stderr: %s", ws, stderr)
			}
			expect(t, got, stderr, tt.want)
		})
	}
}

func TestLoadOperators(t *testing.T) {
	// getpriority(PRIO_USER, who): a matching rule answers EXDEV; who=5,
	// 10 and 20 otherwise give 0 or ESRCH, never EXDEV.
	whos := []string{"prio-user-5", "prio-user-10", "prio-user-20"}
	tests := []struct {
		op    specs.LinuxSeccompOperator
		match []bool // for who = 5, 10, 20 against value 10
	}{
		{specs.OpEqualTo, []bool{false, true, false}},
		{specs.OpNotEqual, []bool{true, false, true}},
		{specs.OpLessThan, []bool{true, false, false}},
		{specs.OpLessEqual, []bool{true, true, false}},
		{specs.OpGreaterThan, []bool{false, false, true}},
		{specs.OpGreaterEqual, []bool{false, true, true}},
	}
	for _, tt := range tests {
		t.Run(string(tt.op), func(t *testing.T) {
			s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpriority"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EXDEV)), Args: []specs.LinuxSeccompArg{
					{Index: 0, Value: unix.PRIO_USER, Op: specs.OpEqualTo},
					{Index: 1, Value: 10, Op: tt.op},
				}},
			}}
			got, stderr, ws := child(t, "load", s, whos...)
			if !ws.Exited() || ws.ExitStatus() != 0 {
				t.Fatalf("child: %v, stderr: %s", ws, stderr)
			}
			for i, w := range whos {
				if (got[w] == unix.EXDEV) != tt.match[i] {
					t.Errorf("%s: errno %v, want match=%v", w, got[w], tt.match[i])
				}
			}
		})
	}
}

func TestLoadKills(t *testing.T) {
	rule := func(a specs.LinuxSeccompAction) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getpriority"}, Action: a, Args: []specs.LinuxSeccompArg{
				{Index: 1, Value: 4242, Op: specs.OpEqualTo},
			}},
		}}
	}
	t.Run("kill process on a matching argument", func(t *testing.T) {
		got, stderr, ws := child(t, "load", rule(specs.ActKillProcess), "prio-proc-0", "prio-proc-4242", "getpid")
		if !ws.Signaled() || ws.Signal() != unix.SIGSYS {
			t.Fatalf("child: %v, want killed by SIGSYS (stderr: %s)", ws, stderr)
		}
		if e, ok := got["prio-proc-0"]; !ok || e != 0 {
			t.Errorf("the non-matching call before the kill: %v ran=%v", e, ok)
		}
		if _, ok := got["getpid"]; ok {
			t.Error("the process ran on after the killing syscall")
		}
	})
	t.Run("trap raises SIGSYS", func(t *testing.T) {
		// The Go runtime turns an unexpected SIGSYS into a crash that names it.
		got, stderr, ws := child(t, "load", rule(specs.ActTrap), "prio-proc-0", "prio-proc-4242", "getpid")
		if ws.Exited() && ws.ExitStatus() == 0 {
			t.Fatalf("child exited 0 after a trapped syscall: %v", got)
		}
		if !strings.Contains(stderr, "SIGSYS") {
			t.Errorf("stderr does not name SIGSYS: %s", stderr)
		}
	})
}

// TestKillThreadAfterExec loads SCMP_ACT_KILL (= KILL_THREAD) on chmod
// to mode 0700 and execs busybox, whose only thread dies with SIGSYS,
// while chmod to another mode works: the filter survives execve and the
// argument condition is honoured.
func TestKillThreadAfterExec(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (Debian busybox-static)")
	}
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"fchmodat"}, Action: specs.ActKill, Args: []specs.LinuxSeccompArg{
			{Index: 2, Value: 0o700, Op: specs.OpEqualTo}, // fchmodat(dirfd, path, mode)
		}},
		{Names: []string{"chmod"}, Action: specs.ActKill, Args: []specs.LinuxSeccompArg{
			{Index: 1, Value: 0o700, Op: specs.OpEqualTo}, // chmod(path, mode)
		}},
	}}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mode   string
		want   os.FileMode
		killed bool
	}{{"755", 0o755, false}, {"700", 0o755, true}} {
		t.Setenv("HULL_SECCOMP_TEST_EXEC", "/bin/busybox chmod "+tt.mode+" "+file)
		_, stderr, ws := child(t, "load", s)
		if tt.killed != (ws.Signaled() && ws.Signal() == unix.SIGSYS) {
			t.Errorf("chmod %s: %v, want killed=%v (%s)", tt.mode, ws, tt.killed, stderr)
		}
		if !tt.killed && (!ws.Exited() || ws.ExitStatus() != 0) {
			t.Errorf("chmod %s: %v (%s)", tt.mode, ws, stderr)
		}
		if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != tt.want {
			t.Errorf("after chmod %s the mode is %v, want %v", tt.mode, fi.Mode().Perm(), tt.want)
		}
	}
}

func TestLoadThreadsAndNoNewPrivs(t *testing.T) {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno},
	}}
	got, stderr, ws := child(t, "load", s, "tsync", "nnp", "mkdir")
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("child: %v, stderr: %s", ws, stderr)
	}
	expect(t, got, stderr, map[string]syscall.Errno{"tsync": 0, "nnp": 0, "mkdir": unix.EPERM})
}

func TestDefaultProfile(t *testing.T) {
	probesUsed := []string{"getpid", "mkdir", "pipe2", "unshare-ns", "unshare-uts", "mount", "chroot", "clone3", "clone-newns"}
	tests := []struct {
		name string
		caps []string
		want map[string]syscall.Errno
	}{
		{"no caps", nil, map[string]syscall.Errno{
			"getpid": 0, "mkdir": 0, "pipe2": 0, "unshare-ns": unix.EPERM, "unshare-uts": unix.EPERM,
			"mount": unix.EPERM, "chroot": unix.EPERM, "clone3": unix.ENOSYS, "clone-newns": unix.EPERM,
		}},
		{"CAP_SYS_CHROOT", []string{"CAP_SYS_CHROOT"}, map[string]syscall.Errno{
			"chroot": 0, "unshare-ns": unix.EPERM,
		}},
		{"CAP_SYS_ADMIN", []string{"CAP_SYS_ADMIN", "CAP_SYSLOG", "sys_ptrace"}, map[string]syscall.Errno{
			"unshare-uts": 0, "unshare-ns": 0, "clone-newns": 0, "clone3": unix.EINVAL, "chroot": unix.EPERM,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := DefaultFor(tt.caps)
			if err := Validate(s); err != nil {
				t.Fatalf("Validate(DefaultFor(%v)): %v", tt.caps, err)
			}
			got, stderr, ws := child(t, "load", s, probesUsed...)
			if !ws.Exited() || ws.ExitStatus() != 0 {
				t.Fatalf("child: %v, stderr: %s", ws, stderr)
			}
			expect(t, got, stderr, tt.want)
		})
	}
}

func TestDefaultNoUnknownSyscalls(t *testing.T) {
	// Every name of the default profile must be known to libseccomp for
	// some architecture; names unknown everywhere are typos.
	newer := strings.Fields(newerSyscalls)
	for _, n := range UnknownSyscalls(DefaultFor(capNames())) {
		if !slices.Contains(newer, n) {
			t.Errorf("default profile names %q, which libseccomp %s does not know", n, libVersion())
		}
	}
}

func capNames() []string {
	var out []string
	for c := range capAllowed {
		out = append(out, c)
	}
	return out
}

func TestNotify(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	sock := filepath.Join(t.TempDir(), "listener.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type got struct {
		state specs.ContainerProcessState
		err   error
	}
	done := make(chan got, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			done <- got{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		oob := make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			done <- got{err: err}
			return
		}
		var st specs.ContainerProcessState
		if err := json.Unmarshal(buf[:n], &st); err != nil {
			done <- got{err: err}
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			done <- got{err: fmt.Errorf("control messages: %v %d", err, len(msgs))}
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			done <- got{err: fmt.Errorf("rights: %v", err)}
			return
		}
		fd := libseccomp.ScmpFd(fds[0])
		defer unix.Close(fds[0])
		// Answer the child's mkdir with EBUSY.
		req, err := libseccomp.NotifReceive(fd)
		if err != nil {
			done <- got{err: err}
			return
		}
		name, _ := req.Data.Syscall.GetName()
		if name != "mkdirat" && name != "mkdir" {
			done <- got{err: fmt.Errorf("notified of %s, want mkdirat", name)}
			return
		}
		err = libseccomp.NotifRespond(fd, &libseccomp.ScmpNotifResp{ID: req.ID, Error: int32(unix.EBUSY)})
		done <- got{state: st, err: err}
	}()
	s := &specs.LinuxSeccomp{
		DefaultAction:    specs.ActAllow,
		ListenerPath:     sock,
		ListenerMetadata: "hello-agent",
		Flags:            []specs.LinuxSeccompFlag{FlagWaitKillableRecv},
		Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
	}
	if err := Validate(s); err != nil {
		t.Fatal(err)
	}
	if err := Load(s); !errors.Is(err, ErrNotifyNeedsListener) {
		t.Fatalf("Load of a NOTIFY profile: %v, want ErrNotifyNeedsListener", err)
	}
	res, stderr, ws := child(t, "notify", s, "mkdir", "getpid")
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("child: %v, stderr: %s", ws, stderr)
	}
	g := <-done
	if g.err != nil {
		t.Fatalf("listener: %v", g.err)
	}
	expect(t, res, stderr, map[string]syscall.Errno{"mkdir": unix.EBUSY, "getpid": 0})
	if g.state.Metadata != "hello-agent" || len(g.state.Fds) != 1 || g.state.Fds[0] != ListenerFdName || g.state.State.ID != "notify-test" {
		t.Errorf("state sent to the listener: %+v", g.state)
	}
}

func TestValidate(t *testing.T) {
	ok := func(mod func(s *specs.LinuxSeccomp)) *specs.LinuxSeccomp {
		s := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}}}
		if mod != nil {
			mod(s)
		}
		return s
	}
	tests := []struct {
		name  string
		s     *specs.LinuxSeccomp
		isErr error  // nil: valid
		want  string // substring of the error
	}{
		{"nil", nil, nil, ""},
		{"minimal", ok(nil), nil, ""},
		{"default profile", Default(), nil, ""},
		{"unknown syscall is ignored", ok(func(s *specs.LinuxSeccomp) {
			s.Syscalls[0].Names = append(s.Syscalls[0].Names, "no_such_syscall")
		}), nil, ""},
		{"tsync flag", ok(func(s *specs.LinuxSeccomp) { s.Flags = []specs.LinuxSeccompFlag{FlagTsync} }), nil, ""},
		{"empty default action", ok(func(s *specs.LinuxSeccomp) { s.DefaultAction = "" }), ErrInvalid, "defaultAction is empty"},
		{"bad default action", ok(func(s *specs.LinuxSeccomp) { s.DefaultAction = "SCMP_ACT_MAYBE" }), ErrInvalid, `defaultAction "SCMP_ACT_MAYBE"`},
		{"notify default", ok(func(s *specs.LinuxSeccomp) { s.DefaultAction = specs.ActNotify; s.ListenerPath = "/x" }), ErrInvalid, "defaultAction SCMP_ACT_NOTIFY"},
		{"defaultErrnoRet with allow", ok(func(s *specs.LinuxSeccomp) {
			s.DefaultAction = specs.ActAllow
			s.DefaultErrnoRet = uintp(1)
		}), ErrInvalid, "defaultErrnoRet is set but defaultAction SCMP_ACT_ALLOW"},
		{"bad arch", ok(func(s *specs.LinuxSeccomp) { s.Architectures = []specs.Arch{"SCMP_ARCH_Z80"} }), ErrInvalid, `architectures[0]: unknown architecture "SCMP_ARCH_Z80"`},
		{"bad flag", ok(func(s *specs.LinuxSeccomp) { s.Flags = []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_FAST"} }), ErrInvalid, `flags[0]: unknown flag "SECCOMP_FILTER_FLAG_FAST"`},
		{"empty names", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[0].Names = nil }), ErrInvalid, "syscalls[0]: names is empty"},
		{"empty name", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[0].Names = []string{"read", ""} }), ErrInvalid, "syscalls[0].names[1] is empty"},
		{"bad action", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[0].Action = "SCMP_ACT_IGNORE" }), ErrInvalid, `syscalls[0] (read): action "SCMP_ACT_IGNORE"`},
		{"errnoRet with kill", ok(func(s *specs.LinuxSeccomp) {
			s.Syscalls[0].Action = specs.ActKillProcess
			s.Syscalls[0].ErrnoRet = uintp(1)
		}), ErrInvalid, "syscalls[0] (read): errnoRet is set but action SCMP_ACT_KILL_PROCESS"},
		{"errnoRet too large", ok(func(s *specs.LinuxSeccomp) {
			s.Syscalls[0].Action = specs.ActErrno
			s.Syscalls[0].ErrnoRet = uintp(4095)
		}), ErrInvalid, "syscalls[0] (read): errnoRet 4095 is out of range (0-4094)"},
		{"defaultErrnoRet too large", ok(func(s *specs.LinuxSeccomp) { s.DefaultErrnoRet = uintp(70000) }), ErrInvalid, "defaultErrnoRet 70000 is out of range"},
		{"arg index", ok(func(s *specs.LinuxSeccomp) {
			s.Syscalls[0].Args = []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}
		}), ErrInvalid, "args[0].index 6 is out of range"},
		{"arg op", ok(func(s *specs.LinuxSeccomp) {
			s.Syscalls[0].Args = []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_ABOUT"}}
		}), ErrInvalid, `args[0].op "SCMP_CMP_ABOUT"`},
		{"arg op empty", ok(func(s *specs.LinuxSeccomp) {
			s.Syscalls[0].Args = []specs.LinuxSeccompArg{{Index: 0}}
		}), ErrInvalid, "args[0].op is empty"},
		{"notify without listener", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[0].Action = specs.ActNotify }), ErrInvalid, "listenerPath is not set"},
		{"listener without notify is ignored", ok(func(s *specs.LinuxSeccomp) { s.ListenerPath = "/run/agent.sock" }), nil, ""},
		{"metadata without listener", ok(func(s *specs.LinuxSeccomp) { s.ListenerMetadata = "x" }), ErrInvalid, "listenerMetadata is set but listenerPath is not"},
		{"notify on write", ok(func(s *specs.LinuxSeccomp) {
			s.ListenerPath = "/run/agent.sock"
			s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{"write"}, Action: specs.ActNotify})
		}), ErrInvalid, "SCMP_ACT_NOTIFY cannot be used for write"},
	}
	if err := FlagSupported(FlagWaitKillableRecv); err != nil {
		tests = append(tests, struct {
			name  string
			s     *specs.LinuxSeccomp
			isErr error
			want  string
		}{"wait killable unsupported", ok(func(s *specs.LinuxSeccomp) {
			s.Flags = []specs.LinuxSeccompFlag{FlagWaitKillableRecv}
		}), ErrUnsupported, "flags[0]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.s)
			if tt.isErr == nil {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.isErr) {
				t.Fatalf("Validate: %v, want %v", err, tt.isErr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate: %q does not name %q", err, tt.want)
			}
		})
	}
}

func TestUnknownSyscalls(t *testing.T) {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"read", "no_such_call", "write", "no_such_call"}, Action: specs.ActAllow},
	}}
	got := UnknownSyscalls(s)
	if len(got) != 1 || got[0] != "no_such_call" {
		t.Errorf("UnknownSyscalls = %v", got)
	}
}

func TestFeatures(t *testing.T) {
	f := Features()
	has := func(list []string, v string) bool {
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	}
	if f.Enabled == nil || !*f.Enabled {
		t.Error("seccomp not reported enabled")
	}
	for _, a := range []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_NOTIFY", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"} {
		if !has(f.Actions, a) {
			t.Errorf("actions %v lack %s", f.Actions, a)
		}
	}
	if len(f.Operators) != 7 || !has(f.Operators, "SCMP_CMP_MASKED_EQ") {
		t.Errorf("operators: %v", f.Operators)
	}
	if !has(f.Archs, "SCMP_ARCH_X86_64") || !has(f.Archs, "SCMP_ARCH_X86") {
		t.Errorf("archs: %v", f.Archs)
	}
	if len(f.KnownFlags) != 4 || !has(f.SupportedFlags, "SECCOMP_FILTER_FLAG_LOG") || !has(f.SupportedFlags, "SECCOMP_FILTER_FLAG_TSYNC") ||
		!has(f.SupportedFlags, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") { // kernel 5.19+
		t.Errorf("flags: known %v supported %v", f.KnownFlags, f.SupportedFlags)
	}
	// Every little-endian arch reported validates on this little-endian
	// host; a big-endian one is refused with a clear reason.
	for _, a := range f.Archs {
		err := Validate(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.Arch(a)}})
		bigEndian := slices.Contains([]string{"SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_PPC",
			"SCMP_ARCH_PPC64", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_M68K", "SCMP_ARCH_SHEB"}, a)
		switch {
		case runtime.GOARCH != "amd64":
		case !bigEndian && err != nil:
			t.Errorf("reported arch %s does not validate: %v", a, err)
		case bigEndian && (!errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "another byte order")):
			t.Errorf("big-endian arch %s: %v", a, err)
		}
	}
}

// TestProgramCompiledInParent is the flow the runtime uses: the profile is
// compiled in the runtime process and the child only loads the Program.
func TestProgramCompiledInParent(t *testing.T) {
	s := Default()
	got, stderr, ws := child(t, "program", s, "getpid", "mkdir", "pipe2", "unshare-ns", "mount", "clone3", "tsync", "nnp")
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("child: %v, stderr: %s", ws, stderr)
	}
	expect(t, got, stderr, map[string]syscall.Errno{
		"getpid": 0, "mkdir": 0, "pipe2": 0, "unshare-ns": unix.EPERM, "mount": unix.EPERM,
		"clone3": unix.ENOSYS, "tsync": 0, "nnp": 0,
	})
}

func TestProgramRejectsGarbage(t *testing.T) {
	for _, p := range []*Program{{}, {Filter: make([]byte, 12)}} {
		if _, err := p.Load(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Load of %d bytes: %v, want ErrInvalid", len(p.Filter), err)
		}
	}
}

func TestFlags(t *testing.T) {
	if err := FlagSupported("SECCOMP_FILTER_FLAG_BOGUS"); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown flag: %v", err)
	}
	for _, fl := range []specs.LinuxSeccompFlag{FlagTsync, FlagLog, FlagSpecAllow} {
		if err := FlagSupported(fl); err != nil {
			t.Errorf("%s: %v (every kernel since 4.17 has it)", fl, err)
		}
	}
	p, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Flags:    []specs.LinuxSeccompFlag{FlagTsync, FlagLog, FlagSpecAllow},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActErrno}}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Flags != unix.SECCOMP_FILTER_FLAG_TSYNC|unix.SECCOMP_FILTER_FLAG_LOG|unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW || p.Notify {
		t.Errorf("program flags %#x notify %v", p.Flags, p.Notify)
	}
}

// TestEnosysStub: with a denying default, syscalls newer than anything the
// profile names get ENOSYS (as from an older kernel), older unlisted ones
// the default action. A profile that allows by default gets no stub.
func TestEnosysStub(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("syscall numbers below are x86_64's")
	}
	got, stderr, ws := child(t, "program", Default(), "nr-500", "statmount", "fchmodat2", "keyctl", "getpid", "clone3")
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("child: %v, stderr: %s", ws, stderr)
	}
	want := map[string]syscall.Errno{
		"nr-500": unix.ENOSYS, "statmount": unix.ENOSYS, "fchmodat2": 0, "keyctl": unix.EPERM, "getpid": 0, "clone3": unix.ENOSYS,
	}
	if _, err := libseccomp.GetSyscallFromName("statmount"); err == nil {
		delete(want, "statmount") // a newer libseccomp knows it and the profile allows it
	}
	expect(t, got, stderr, want)

	kill := &specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess, Syscalls: Default().Syscalls}
	got, stderr, ws = child(t, "program", kill, "nr-500", "getpid")
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("kill default: child %v, stderr: %s", ws, stderr)
	}
	expect(t, got, stderr, map[string]syscall.Errno{"nr-500": unix.ENOSYS, "getpid": 0})

	allow := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"mkdirat"}, Action: specs.ActErrno},
	}}
	p, err := Compile(allow)
	if err != nil {
		t.Fatal(err)
	}
	f, _, _ := build(allow)
	plain, _ := exportBPF(f)
	f.Release()
	if !bytes.Equal(p.Filter, plain) {
		t.Error("a profile that allows by default got a stub")
	}
	d, _ := Compile(Default())
	if len(d.Filter) <= len(plain) || len(d.Filter)/sockFilterSize > bpfMaxInsns {
		t.Errorf("default program: %d instructions", len(d.Filter)/sockFilterSize)
	}
}

// TestFeaturesLikeRunc compares Features with what the installed runc
// reports: the same actions and operators, and every arch runc knows.
func TestFeaturesLikeRunc(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("needs runc (Debian package runc)")
	}
	out, err := exec.Command(runc, "features").Output()
	if err != nil {
		t.Fatalf("runc features: %v", err)
	}
	var doc struct {
		Linux struct {
			Seccomp struct {
				Actions, Operators, Archs []string
			}
		}
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	f := Features()
	if !reflect.DeepEqual(f.Actions, doc.Linux.Seccomp.Actions) {
		t.Errorf("actions %v, runc %v", f.Actions, doc.Linux.Seccomp.Actions)
	}
	if !reflect.DeepEqual(f.Operators, doc.Linux.Seccomp.Operators) {
		t.Errorf("operators %v, runc %v", f.Operators, doc.Linux.Seccomp.Operators)
	}
	for _, a := range doc.Linux.Seccomp.Archs {
		if !slices.Contains(f.Archs, a) {
			t.Errorf("runc knows arch %s, Features does not list it", a)
		}
	}
}

// TestDefaultProfileRunsRealPrograms execs the host's dynamically linked
// programs under the default profile: glibc start-up, threads, fork/exec
// through clone/clone3 fallback, pipes, sockets, mmap and friends must all
// work, while unshare is still denied.
func TestDefaultProfileRunsRealPrograms(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3 on the host")
	}
	script := `
import os, socket, subprocess, threading, tempfile, mmap, ctypes
ok = lambda name, cond: print("%s=%d" % (name, 0 if cond else 5))
res = []
t = threading.Thread(target=lambda: res.append(1)); t.start(); t.join()
ok("thread", res == [1])
ok("subprocess", subprocess.run(["/bin/ls", "/"], capture_output=True).returncode == 0)
a, b = socket.socketpair(); a.send(b"x"); ok("socket", b.recv(1) == b"x")
with tempfile.TemporaryFile() as f:
    f.write(b"y" * 4096); f.flush()
    ok("mmap", mmap.mmap(f.fileno(), 4096)[:1] == b"y")
libc = ctypes.CDLL(None, use_errno=True)
r = libc.unshare(0x20000)
print("unshare=%d" % (ctypes.get_errno() if r != 0 else 0))
`
	t.Setenv("HULL_SECCOMP_TEST_EXEC", py+" -c "+"exec(__import__('base64').b64decode('"+b64(script)+"'))")
	got, stderr, ws := child(t, "program", Default())
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("python3 under the default profile: %v\n%s", ws, stderr)
	}
	expect(t, got, stderr, map[string]syscall.Errno{
		"thread": 0, "subprocess": 0, "socket": 0, "mmap": 0, "unshare": unix.EPERM,
	})
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// auditLogged reports whether the kernel log holds a seccomp audit record
// (type=1326) for pid and syscall nr, waiting up to half a second.
func auditLogged(pid, nr int) bool {
	want := []string{"type=1326", fmt.Sprintf(" pid=%d ", pid), fmt.Sprintf(" syscall=%d ", nr)}
	for i := 0; i < 10; i++ {
		out, _ := exec.Command("dmesg").Output()
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, want[0]) && strings.Contains(l, want[1]) && strings.Contains(l, want[2]) {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// TestLogFlag checks SECCOMP_FILTER_FLAG_LOG through the kernel's audit
// records in the kernel log: with the flag, an ERRNO action is logged
// (type=1326 with the child's pid and the syscall number); without it, it
// is not; and SCMP_ACT_LOG is logged while the syscall runs. The kernel
// rate-limits these lines (10 per 5 s), and the tests before this one
// log kills, so a missing line is retried after the limit's interval.
func TestLogFlag(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (loads filters, reads the kernel log)")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("syscall numbers below are x86_64's")
	}
	data, err := os.ReadFile("/proc/sys/kernel/seccomp/actions_logged")
	if err != nil || !strings.Contains(string(data), "errno") || !strings.Contains(string(data), "log") {
		t.Skipf("the kernel does not log errno and log actions (actions_logged: %q)", data)
	}
	if _, err := exec.Command("dmesg").Output(); err != nil {
		t.Skipf("cannot read the kernel log: %v", err)
	}
	run := func(act specs.LinuxSeccompAction, flags []specs.LinuxSeccompFlag, result string, attempts int) (pid int, logged bool) {
		s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: flags, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getpriority"}, Action: act, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 4242, Op: specs.OpEqualTo}}},
		}}
		prof, _ := json.Marshal(s)
		for i := 0; i < attempts && !logged; i++ {
			if i > 0 {
				time.Sleep(5500 * time.Millisecond) // printk's rate-limit interval
			}
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), childEnv+"=load", childProfile+"="+string(prof), childArg+"="+t.TempDir(),
				"HULL_SECCOMP_TEST_PROBES=prio-user-4242")
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), result) {
				t.Fatalf("child: %v: %s", err, out)
			}
			// getpriority is syscall 140 on x86_64.
			pid = cmd.Process.Pid
			logged = auditLogged(pid, 140)
		}
		return pid, logged
	}
	// EPERM from the filter, or ESRCH from the kernel (no such user's
	// processes) when the syscall runs.
	if pid, logged := run(specs.ActErrno, []specs.LinuxSeccompFlag{FlagLog}, "prio-user-4242=1", 3); !logged {
		t.Errorf("with SECCOMP_FILTER_FLAG_LOG, no audit record for pid %d", pid)
	}
	if pid, logged := run(specs.ActErrno, nil, "prio-user-4242=1", 1); logged {
		t.Errorf("without the flag, an ERRNO action of pid %d was logged", pid)
	}
	if pid, logged := run(specs.ActLog, nil, "prio-user-4242=3", 3); !logged {
		t.Errorf("SCMP_ACT_LOG of pid %d was not logged", pid)
	}
}

// TestKillThreadVersusProcess runs a threaded python3 under each kill
// action: SCMP_ACT_KILL_THREAD ends only the thread that made the call
// (the main thread goes on), SCMP_ACT_KILL_PROCESS the whole process.
func TestKillThreadVersusProcess(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3 on the host")
	}
	script := `
import ctypes, os, sys, threading
libc = ctypes.CDLL(None)
t = threading.Thread(target=lambda: libc.getpriority(2, 4242), daemon=True)
t.start(); t.join(timeout=2)
print("main=0"); sys.stdout.flush()
os._exit(0)
`
	t.Setenv("HULL_SECCOMP_TEST_EXEC", py+" -c "+"exec(__import__('base64').b64decode('"+b64(script)+"'))")
	for _, tt := range []struct {
		act       specs.LinuxSeccompAction
		mainLives bool
	}{{specs.ActKillThread, true}, {specs.ActKillProcess, false}} {
		t.Run(string(tt.act), func(t *testing.T) {
			s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpriority"}, Action: tt.act, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 4242, Op: specs.OpEqualTo}}},
			}}
			got, stderr, ws := child(t, "load", s)
			_, mainRan := got["main"]
			if mainRan != tt.mainLives {
				t.Errorf("main thread went on: %v, want %v (%v, %s)", mainRan, tt.mainLives, ws, stderr)
			}
			if !tt.mainLives && (!ws.Signaled() || ws.Signal() != unix.SIGSYS) {
				t.Errorf("process: %v, want killed by SIGSYS", ws)
			}
		})
	}
}
