package conformance

// The runc-compatible command line beyond the operations runtime.md
// names: what containerd's runc shim and scripts written for runc call.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
)

// TestConsoleSocket checks process.terminal with --console-socket: the
// runtime sends the pty master over the socket (SCM_RIGHTS) and the
// process has the pty as its stdio. config-linux.md default devices:
// "/dev/console is set up if terminal is enabled in the config by bind
// mounting the pseudoterminal pty to /dev/console."
func TestConsoleSocket(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; stat -c 'console %F %t' /dev/console; stty size")
	b.Spec.Process.Terminal = true
	// config.md process: "consoleSize (object, OPTIONAL) specifies the
	// console size in characters of the terminal."
	b.Spec.Process.ConsoleSize = &specs.Box{Height: 33, Width: 101}
	sock, master := consoleSocket(t)
	id := r.newID()
	r.create(b, id, "--console-socket", sock)
	var m *os.File
	select {
	case m = <-master:
	case <-time.After(10 * time.Second):
	}
	if m == nil {
		t.Fatal("no pty master received on the console socket")
	}
	defer m.Close()
	r.ok("start", id)
	got := readPty(m)
	if !strings.Contains(got, "is-a-tty\n") || !strings.Contains(got, "console character special file 88") || !strings.Contains(got, "33 101") {
		t.Errorf("terminal output %q, want is-a-tty, /dev/console a pty (major 136) and the size 33 101", got)
	}
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
}

// consoleSocket listens on a unix socket for the pty master a runtime
// sends with --console-socket (one SCM_RIGHTS message).
func consoleSocket(t *testing.T) (string, <-chan *os.File) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	master := make(chan *os.File, 1)
	go func() {
		defer close(master)
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		oob := make([]byte, syscall.CmsgSpace(4))
		_, oobn, _, _, err := c.ReadMsgUnix(make([]byte, 4096), oob)
		if err != nil {
			return
		}
		msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) == 0 {
			return
		}
		fds, err := syscall.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) == 0 {
			return
		}
		master <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	return sock, master
}

// readPty reads a pty master until the other side closes (EIO) or the
// deadline, with CRLF made LF.
func readPty(m *os.File) string {
	var out bytes.Buffer
	buf := make([]byte, 4096)
	m.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, err := m.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return strings.ReplaceAll(out.String(), "\r\n", "\n")
}

// TestExecTerminal checks exec -d -t --console-socket (runc CLI; how a
// shim runs an interactive exec): the exec'd process gets a new pty.
func TestExecTerminal(t *testing.T) {
	r := newRT(t)
	s := r.startSleeper(testutil.NewBundle(t), false)
	sock, master := consoleSocket(t)
	done := make(chan error, 1)
	io := newStdio(t)
	go func() {
		_, _, err := r.exec(io, "exec", "-d", "-t", "--console-socket", sock, s.id, "sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo exec-tty; tty")
		done <- err
	}()
	var m *os.File
	select {
	case m = <-master:
	case <-time.After(10 * time.Second):
	}
	if m == nil {
		t.Fatalf("no pty master received on the console socket (exec: %v, stderr %s)", <-done, io.stderr())
	}
	defer m.Close()
	got := readPty(m)
	if err := <-done; err != nil {
		t.Fatalf("exec -d -t: %v", err)
	}
	if !strings.Contains(got, "exec-tty\n") || !strings.Contains(got, "/dev/pts/") {
		t.Errorf("exec -d -t output %q, want exec-tty and a /dev/pts tty", got)
	}
	r.stop(s.id)
}

// TestExec checks exec into a running container: it joins the
// container's namespaces and honours its flags.
func TestExec(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t)
	b.Spec.Hostname = "exec-host"
	s := r.startSleeper(b, false)
	procFile := filepath.Join(t.TempDir(), "process.json")
	p := *b.Spec.Process
	p.Args = []string{"sh", "-c", "echo from-process-file $PWD $(id -u)"}
	p.Cwd = "/tmp"
	p.User = specs.User{UID: 1000, GID: 1000}
	data, _ := json.Marshal(p)
	if err := os.WriteFile(procFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"args", []string{"hostname"}, "exec-host\n", 0},
		{"namespaces", []string{"sh", "-c", "for n in net pid mnt; do readlink /proc/self/ns/$n; done"},
			fmt.Sprintf("%s\n%s\n%s\n", nsInode(t, s.pid, "net"), nsInode(t, s.pid, "pid"), nsInode(t, s.pid, "mnt")), 0},
		{"exit-code", []string{"sh", "-c", "exit 7"}, "", 7},
		{"env", []string{"--env", "HULL_X=42", "sh", "-c", "echo $HULL_X"}, "42\n", 0},
		{"cwd", []string{"--cwd", "/etc", "pwd"}, "/etc\n", 0},
		{"user", []string{"--user", "1000:1000", "id", "-u"}, "1000\n", 0},
		{"process-file", []string{"--process", procFile}, "from-process-file /tmp 1000\n", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"exec"}
			rest := tc.args
			// Flags come before the id, the command after it.
			for len(rest) > 0 && strings.HasPrefix(rest[0], "--") {
				args = append(args, rest[0], rest[1])
				rest = rest[2:]
			}
			args = append(append(args, s.id), rest...)
			out, errOut, err := r.exec(nil, args...)
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if out != tc.want || code != tc.code {
				t.Errorf("exec %v: %q exit %d, want %q exit %d (stderr %s)", tc.args, out, code, tc.want, tc.code, errOut)
			}
		})
	}
	t.Run("detached-pid-file", func(t *testing.T) {
		pf := filepath.Join(t.TempDir(), "pid")
		// The detached process keeps the stdio it was given: files, not
		// pipes the runtime's exit would leave open.
		if _, _, err := r.exec(newStdio(t), "exec", "-d", "--pid-file", pf, s.id, "sleep", "999"); err != nil {
			t.Fatalf("exec -d: %v", err)
		}
		var pid int
		fmt.Sscan(readFile(pf), &pid)
		waitExec(t, pid, "sleep")
		if nsInode(t, pid, "pid") != nsInode(t, s.pid, "pid") {
			t.Error("the exec'd process is not in the container's pid namespace")
		}
	})
	r.stop(s.id)
	t.Run("stopped", func(t *testing.T) {
		r := r.sub(t)
		id := r.newID()
		r.create(testutil.NewBundle(t, "true"), id)
		r.ok("start", id)
		r.waitStatus(id, specs.StateStopped)
		r.fails("exec", id, "true")
	})
}

// TestListPsPause checks list, ps, pause and resume.
func TestListPsPause(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t)
	b.Spec.Linux.CgroupsPath = "/hull-conformance/lps-" + fmt.Sprint(os.Getpid())
	s := r.startSleeper(b, false)

	var list []struct {
		ID     string `json:"id"`
		Pid    int    `json:"pid"`
		Status string `json:"status"`
		Bundle string `json:"bundle"`
	}
	if err := json.Unmarshal([]byte(r.ok("list", "--format", "json")), &list); err != nil {
		t.Fatalf("list --format json: %v", err)
	}
	if len(list) != 1 || list[0].ID != s.id || list[0].Pid != s.pid || list[0].Status != "running" || list[0].Bundle != b.Dir {
		t.Errorf("list: %+v, want %s pid %d running in %s", list, s.id, s.pid, b.Dir)
	}
	if got := strings.TrimSpace(r.ok("list", "-q")); got != s.id {
		t.Errorf("list -q: %q, want %q", got, s.id)
	}

	var pids []int
	if err := json.Unmarshal([]byte(r.ok("ps", "--format", "json", s.id)), &pids); err != nil {
		t.Fatalf("ps --format json: %v", err)
	}
	if len(pids) != 1 || pids[0] != s.pid {
		t.Errorf("ps: %v, want [%d]", pids, s.pid)
	}

	r.ok("pause", s.id)
	if st := r.mustState(s.id); st.Status != "paused" {
		t.Errorf("status after pause %q, want paused", st.Status)
	}
	r.ok("resume", s.id)
	if st := r.mustState(s.id); st.Status != specs.StateRunning {
		t.Errorf("status after resume %q, want running", st.Status)
	}
	r.stop(s.id)
}

// TestUpdate checks update with flags and with a resources file.
func TestUpdate(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t)
	id0 := fmt.Sprint(os.Getpid(), "-", idSeq.Load())
	b.Spec.Linux.CgroupsPath = "/hull-conformance/upd-" + id0
	s := r.startSleeper(b, false)
	r.ok("update", "--pids-limit", "123", s.id)
	if got := strings.TrimSpace(readFile(cgroupFile(t, s.pid, "pids", "pids.max"))); got != "123" {
		t.Errorf("pids.max after update --pids-limit 123: %q", got)
	}
	res := filepath.Join(t.TempDir(), "res.json")
	os.WriteFile(res, []byte(`{"pids": {"limit": 321}}`), 0o644)
	r.ok("update", "-r", res, s.id)
	if got := strings.TrimSpace(readFile(cgroupFile(t, s.pid, "pids", "pids.max"))); got != "321" {
		t.Errorf("pids.max after update -r: %q", got)
	}
	r.stop(s.id)
}

// TestSpecFeaturesVersion checks spec, features and --version.
func TestSpecFeaturesVersion(t *testing.T) {
	r := newRT(t)
	for _, rootless := range []bool{false, true} {
		dir := t.TempDir()
		args := []string{"spec", "--bundle", dir}
		if rootless {
			args = append(args, "--rootless")
		}
		r.ok(args...)
		var s specs.Spec
		if err := json.Unmarshal([]byte(readFile(filepath.Join(dir, "config.json"))), &s); err != nil {
			t.Fatalf("spec: config.json: %v", err)
		}
		if s.Version == "" || s.Process == nil || s.Root == nil || s.Root.Path != "rootfs" {
			t.Errorf("spec (rootless %v): incomplete document %+v", rootless, s)
		}
		hasUser := false
		for _, ns := range s.Linux.Namespaces {
			hasUser = hasUser || ns.Type == specs.UserNamespace
		}
		if hasUser != rootless {
			t.Errorf("spec (rootless %v): user namespace %v", rootless, hasUser)
		}
	}
	var f struct {
		OCIVersionMin string   `json:"ociVersionMin"`
		OCIVersionMax string   `json:"ociVersionMax"`
		Hooks         []string `json:"hooks"`
		MountOptions  []string `json:"mountOptions"`
	}
	if err := json.Unmarshal([]byte(r.ok("features")), &f); err != nil {
		t.Fatalf("features: %v", err)
	}
	if f.OCIVersionMin == "" || f.OCIVersionMax == "" || !contains(f.Hooks, "prestart") || !contains(f.MountOptions, "rbind") {
		t.Errorf("features document incomplete: %+v", f)
	}
	if out := r.ok("--version"); !strings.Contains(strings.ToLower(out), "version") {
		t.Errorf("--version: %q", out)
	}
}

// TestLogJSON checks the global --log and --log-format json flags (runc
// CLI; containerd's runc shim reads this file when a command fails): a
// refused create leaves a JSON line with its level and message.
func TestLogJSON(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t)
	b.Spec.Root.Path = "no-such-rootfs"
	r.save(b)
	logf := filepath.Join(t.TempDir(), "log.json")
	if _, _, err := r.exec(newStdio(t), "--log", logf, "--log-format", "json", "create", "--bundle", b.Dir, r.newID()); err == nil {
		t.Fatal("create with a missing rootfs succeeded")
	}
	var found bool
	for _, l := range strings.Split(strings.TrimSpace(readFile(logf)), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Errorf("log line is not JSON: %q", l)
			continue
		}
		if e["level"] == "error" && e["msg"] != nil && e["msg"] != "" {
			found = true
		}
	}
	if !found {
		t.Errorf("no error record in the JSON log: %q", readFile(logf))
	}
}

// TestNoPivot checks create --no-pivot (runc CLI): the container still
// gets the bundle's rootfs as / (through MS_MOVE and chroot).
func TestNoPivot(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "cat /marker")
	os.WriteFile(filepath.Join(b.Rootfs(), "marker"), []byte("no-pivot-root"), 0o644)
	r.save(b)
	id := r.newID()
	s := newStdio(t)
	if _, _, err := r.exec(s, "run", "--no-pivot", "--bundle", b.Dir, id); err != nil {
		t.Fatalf("run --no-pivot: %v: %s", err, s.stderr())
	}
	if got := s.stdout(); got != "no-pivot-root" {
		t.Errorf("container read %q, want no-pivot-root", got)
	}
}

// TestForceDeletePaused checks delete --force of a paused container (runc
// CLI; what a shim does to a paused task it is told to remove): the frozen
// processes die and the container is gone.
func TestForceDeletePaused(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t)
	b.Spec.Linux.CgroupsPath = "/hull-conformance/" + fmt.Sprint("fdp-", os.Getpid())
	s := r.startSleeper(b, false)
	r.ok("pause", s.id)
	r.ok("delete", "--force", s.id)
	if _, err := r.state(s.id); err == nil {
		t.Error("state of a force-deleted paused container succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for pidAlive(s.pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if pidAlive(s.pid) {
		t.Errorf("pid %d alive after delete --force of the paused container", s.pid)
	}
	if left := cgroupDirs(b.Spec.Linux.CgroupsPath); len(left) > 0 {
		t.Errorf("delete --force left the cgroups %v", left)
	}
}
