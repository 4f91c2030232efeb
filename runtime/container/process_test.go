package container_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/internal/testutil"
)

// consoleSocket listens on a unix socket and returns the pty master the
// runtime sends over it.
func consoleSocket(t *testing.T) (string, <-chan *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan *os.File, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			close(ch)
			return
		}
		defer c.Close()
		buf := make([]byte, 256)
		oob := make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			close(ch)
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) == 1 {
			if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) == 1 {
				ch <- os.NewFile(uintptr(fds[0]), "pty-master")
				return
			}
		}
		close(ch)
	}()
	return path, ch
}

func TestTerminal(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "tty; test -t 0 && echo stdin-is-tty; echo console=$(stat -c %t:%T /dev/console); stty size")
	b.Spec.Process.Terminal = true
	b.Spec.Process.ConsoleSize = &specs.Box{Height: 40, Width: 100}
	b.Save()
	sock, masters := consoleSocket(t)
	c := r.mustCreate(b, "--console-socket", sock)
	var master *os.File
	select {
	case master = <-masters:
	case <-time.After(10 * time.Second):
		t.Fatal("no pty master received")
	}
	if master == nil {
		t.Fatal("console socket got no fd")
	}
	defer master.Close()
	// Outside: the init's stdio is the pty slave.
	if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", c.pid)); !strings.HasPrefix(l, "/dev/pts/") {
		t.Errorf("init's stdout is %q, want a pty", l)
	}
	r.must("start", c.id)
	var out strings.Builder
	buf := make([]byte, 1024)
	master.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !strings.Contains(out.String(), "40 100") {
		n, err := master.Read(buf)
		if n > 0 {
			out.Write(buf[:n])
		}
		if err != nil {
			break
		}
	}
	// /dev/console is the pty's slave, /dev/pts/0 (136:0).
	for _, w := range []string{"/dev/pts/0", "stdin-is-tty", "console=88:0", "40 100"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("terminal output lacks %q: %q", w, out.String())
		}
	}
	r.waitStopped(c.id)
	r.must("delete", c.id)
}

func TestExec(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "100")
	b.Spec.Hostname = "exechost"
	b.Save()
	c := r.mustCreate(b)
	r.must("start", c.id)
	out := r.must("exec", "--user", "1000:1000", "--env", "X=1", "--cwd", "/tmp", c.id,
		"sh", "-c", "hostname; id -u; echo X=$X; pwd; cat /proc/1/cmdline; echo; readlink /proc/self/ns/mnt; cat /proc/self/cgroup | grep memory; grep CapEff /proc/self/status")
	for _, w := range []string{"exechost\n1000\nX=1\n/tmp\nsleep", nsLink(t, c.pid, "mnt"), cgroupOf(t, c.pid, "memory"), "CapEff:\t0000000000000000"} {
		if !strings.Contains(out, w) {
			t.Errorf("exec output lacks %q:\n%s", w, out)
		}
	}
	if _, _, code := r.cmd("exec", c.id, "sh", "-c", "exit 5"); code != 5 {
		t.Errorf("exec exit code %d, want 5", code)
	}
	// --process with a process.json, detached, with a pid file.
	p := specs.Process{Args: []string{"sleep", "50"}, Cwd: "/", Env: []string{"PATH=/bin"}}
	data, _ := json.Marshal(p)
	pf := filepath.Join(t.TempDir(), "proc.json")
	os.WriteFile(pf, data, 0o644)
	pidFile := filepath.Join(t.TempDir(), "pid")
	r.must("exec", "--process", pf, "--detach", "--pid-file", pidFile, c.id)
	pid := strings.TrimSpace(readFile(t, pidFile))
	if l, _ := os.Readlink("/proc/" + pid + "/ns/pid"); l != nsLink(t, c.pid, "pid") {
		t.Errorf("exec'd process %s is not in the container's pid namespace", pid)
	}
	if _, errs, code := r.cmd("exec", c.id, "/nonexistent"); code == 0 || !strings.Contains(errs, "process.args[0]") {
		t.Errorf("exec of a missing binary: exit %d: %s", code, errs)
	}
	r.must("delete", "-f", c.id)
}

func TestHooks(t *testing.T) {
	r := newRT(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	hook := func(name string) specs.Hook {
		// Each hook appends its name, the status it was given and
		// whether it ran in the container's mount namespace.
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c",
			`read s; st=$(echo "$s" | sed 's/.*"status":"\([a-z]*\)".*/\1/'); echo "` + name + ` $st" >> ` + log}}
	}
	cHook := func(name string) specs.Hook {
		// startContainer runs in the container, after pivot_root, where
		// the log is bind-mounted at /hooklog.
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c",
			`read s; st=$(echo "$s" | sed 's/.*"status":"\([a-z]*\)".*/\1/'); echo "` + name + ` $st $(hostname)" >> /hooklog/log`}}
	}
	b := testutil.NewBundle(t, "true")
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/hooklog", Type: "bind", Source: dir, Options: []string{"bind"}})
	b.Spec.Hooks = &specs.Hooks{
		Prestart:      []specs.Hook{hook("prestart")},
		CreateRuntime: []specs.Hook{hook("createRuntime")},
		CreateContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c",
			`read s; echo "createContainer $(readlink /proc/self/ns/mnt)" >> ` + log}}},
		StartContainer: []specs.Hook{cHook("startContainer")},
		Poststart:      []specs.Hook{hook("poststart")},
		Poststop:       []specs.Hook{hook("poststop")},
	}
	b.Save()
	c := r.mustCreate(b)
	// createContainer runs in the container's mount namespace, before
	// pivot_root (so its paths are the host's).
	if got := readFile(t, log); got != "prestart creating\ncreateRuntime creating\ncreateContainer "+nsLink(t, c.pid, "mnt")+"\n" {
		t.Errorf("after create:\n%s", got)
	}
	r.must("start", c.id)
	if got := readFile(t, log); !strings.HasSuffix(got, "startContainer running hull\npoststart running\n") {
		t.Errorf("after start:\n%s", got)
	}
	r.waitStopped(c.id)
	r.must("delete", c.id)
	if got := readFile(t, log); !strings.HasSuffix(got, "poststop stopped\n") {
		t.Errorf("after delete:\n%s", got)
	}
}

func TestPauseResumeUpdateEvents(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "100")
	c := r.mustCreate(b)
	r.must("start", c.id)
	freezer := "/sys/fs/cgroup/freezer" + cgroupOf(t, c.pid, "freezer") + "/freezer.state"
	r.must("pause", c.id)
	if got := strings.TrimSpace(readFile(t, freezer)); got != "FROZEN" {
		t.Errorf("paused: freezer.state %s", got)
	}
	if st := r.state(c.id); st.Status != "paused" {
		t.Errorf("state %s", st.Status)
	}
	r.must("resume", c.id)
	if got := strings.TrimSpace(readFile(t, freezer)); got != "THAWED" {
		t.Errorf("resumed: freezer.state %s", got)
	}
	r.must("update", "--memory", "33554432", "--pids-limit", "50", c.id)
	mem := "/sys/fs/cgroup/memory" + cgroupOf(t, c.pid, "memory") + "/memory.limit_in_bytes"
	if got := strings.TrimSpace(readFile(t, mem)); got != "33554432" {
		t.Errorf("after update --memory: %s", got)
	}
	res := filepath.Join(t.TempDir(), "r.json")
	os.WriteFile(res, []byte(`{"pids":{"limit":60}}`), 0o644)
	r.must("update", "-r", res, c.id)
	pids := "/sys/fs/cgroup/pids" + cgroupOf(t, c.pid, "pids") + "/pids.max"
	if got := strings.TrimSpace(readFile(t, pids)); got != "60" {
		t.Errorf("after update -r: pids.max %s", got)
	}
	if got := strings.TrimSpace(readFile(t, mem)); got != "33554432" {
		t.Errorf("update -r reset the memory limit: %s", got)
	}
	var ev struct {
		Type string         `json:"type"`
		ID   string         `json:"id"`
		Data map[string]any `json:"data"`
	}
	out := r.must("events", "--stats", c.id)
	if err := json.Unmarshal([]byte(out), &ev); err != nil || ev.Type != "stats" || ev.ID != c.id || ev.Data["memory"] == nil {
		t.Errorf("events --stats: %s (%v)", out, err)
	}
	r.must("delete", "-f", c.id)
}

func TestSpecFeaturesVersion(t *testing.T) {
	r := newRT(t)
	dir := t.TempDir()
	r.must("spec", "--bundle", dir)
	var s specs.Spec
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "config.json"))), &s); err != nil || s.Process == nil || s.Root.Path != "rootfs" {
		t.Fatalf("spec: %v %+v", err, s)
	}
	if _, _, code := r.cmd("spec", "--bundle", dir); code == 0 {
		t.Error("spec overwrote an existing config.json")
	}
	dir2 := t.TempDir()
	r.must("spec", "--rootless", "--bundle", dir2)
	if got := readFile(t, filepath.Join(dir2, "config.json")); !strings.Contains(got, "uidMappings") {
		t.Errorf("spec --rootless has no uid mappings")
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(r.must("features")), &f); err != nil || f["ociVersionMax"] == nil {
		t.Errorf("features: %v %v", err, f)
	}
	if v := r.must("--version"); !strings.Contains(v, "hull-runtime version") || !strings.Contains(v, "spec: 1.3.0") {
		t.Errorf("--version: %q", v)
	}
	if _, errs, code := r.cmd("--systemd-cgroup", "list"); code == 0 || !strings.Contains(errs, "systemd") {
		t.Errorf("--systemd-cgroup: exit %d %s", code, errs)
	}
}

// Foreground run and exec of a terminal process without --console-socket
// get a pty of the runtime's own (as runc does).
func TestForegroundTerminal(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "tty")
	b.Spec.Process.Terminal = true
	b.Save()
	out, errs, code := r.cmd("run", "--bundle", b.Dir, r.newID())
	if code != 0 || !strings.Contains(out, "/dev/pts/") {
		t.Fatalf("run: exit %d, out %q, err %q", code, out, errs)
	}
	b2 := testutil.NewBundle(t, "sleep", "100")
	c := r.mustCreate(b2)
	r.must("start", c.id)
	if out := r.must("exec", "-t", c.id, "tty"); !strings.Contains(out, "/dev/pts/") {
		t.Errorf("exec -t: %q", out)
	}
	r.must("delete", "-f", c.id)
}

// Socket activation: $LISTEN_FDS fds of the runtime (with LISTEN_PID its
// own pid) reach the process from fd 3, with LISTEN_FDS=N, LISTEN_PID=1.
func TestListenFDs(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; cat <&3")
	extra := filepath.Join(t.TempDir(), "activation")
	os.WriteFile(extra, []byte("socket-activated\n"), 0o644)
	script := fmt.Sprintf("exec 3<%s; export LISTEN_FDS=1 LISTEN_PID=$$; exec %s --root %s run --bundle %s %s",
		extra, r.bin, r.root, b.Dir, r.newID())
	out, err := execCommand("sh", "-c", script)
	if err != nil || !strings.Contains(out, "1 1\nsocket-activated") {
		t.Errorf("out %q, err %v", out, err)
	}
}

// A new session keyring per container (named _ses.<id>), none with
// --no-new-keyring.
func TestSessionKeyring(t *testing.T) {
	r := newRT(t)
	for _, noNew := range []bool{false, true} {
		b := testutil.NewBundle(t, "sh", "-c", "cat /proc/keys")
		b.Spec.Linux.MaskedPaths = nil
		b.Save()
		var extra []string
		if noNew {
			extra = append(extra, "--no-new-keyring")
		}
		c := r.mustCreate(b, extra...)
		out := r.output(c)
		if has := strings.Contains(out, "_ses."+c.id); has == noNew {
			t.Errorf("--no-new-keyring=%v: /proc/keys:\n%s", noNew, out)
		}
		r.must("delete", c.id)
	}
}
