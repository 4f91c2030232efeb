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

// CVE-2019-5736: the runtime binary a container's init runs from cannot
// be opened for writing, even by host root, through /proc/<pid>/exe.
func TestRuntimeBinaryNotWritable(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "echo x >> /proc/self/exe; echo done")
	c := r.mustCreate(b)
	exe := fmt.Sprintf("/proc/%d/exe", c.pid)
	f, err := os.OpenFile(exe, os.O_WRONLY, 0)
	if err == nil {
		f.Close()
		t.Fatalf("%s (the runtime init) opened for writing", exe)
	}
	// Writes fail with ETXTBSY while any process runs the binary, which
	// protects nothing once they are gone: the file must sit on a
	// read-only mount (the attack reopens an O_PATH fd after the runtime
	// exits).
	fd, err := unix.Open(exe, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("the init's binary is on a writable mount")
	}
	out := r.output(c)
	if !strings.Contains(out, "done") {
		t.Errorf("output %q", out)
	}
	r.must("delete", c.id)
}

// CVE-2024-21626: no runtime fd reaches the process (only 0-2, plus what
// --preserve-fds passes), and its cwd resolves inside the rootfs.
func TestNoFDLeak(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "ls /proc/self/fd; readlink /proc/self/cwd")
	b.Spec.Process.Cwd = "/tmp"
	b.Save()
	c := r.mustCreate(b)
	out := r.output(c)
	// ls itself opens one fd (3) for the directory it lists.
	if got := strings.Fields(out); len(got) != 5 || got[0] != "0" || got[3] != "3" || got[4] != "/tmp" {
		t.Errorf("fds and cwd inside: %q", out)
	}
	r.must("delete", c.id)

	// --preserve-fds 1 passes the runtime's fd 3 on.
	b2 := testutil.NewBundle(t, "sh", "-c", "cat <&3")
	extra := filepath.Join(t.TempDir(), "extra")
	os.WriteFile(extra, []byte("preserved\n"), 0o644)
	id := r.newID()
	script := fmt.Sprintf("exec 3<%s; exec %s --root %s run --preserve-fds 1 --bundle %s %s", extra, r.bin, r.root, b2.Dir, id)
	got, err := runShell(script)
	if err != nil || !strings.Contains(got, "preserved") {
		t.Errorf("--preserve-fds: %q %v", got, err)
	}
}

// CVE-2021-30465 class: a mount destination through a symlink that
// points outside the rootfs lands inside it.
func TestMountThroughSymlinkStaysInside(t *testing.T) {
	r := newRT(t)
	// /evil -> /tmp: on the host that is the host's /tmp, in the
	// container the rootfs's.
	name := "hull-escape-" + r.newID()
	b := testutil.NewBundle(t, "sh", "-c", "grep -c ' /tmp/"+name+" ' /proc/self/mountinfo")
	if err := os.Symlink("/tmp", filepath.Join(b.Rootfs(), "evil")); err != nil {
		t.Fatal(err)
	}
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/evil/" + name, Type: "tmpfs", Source: "tmpfs"})
	b.Save()
	c := r.mustCreate(b)
	if _, err := os.Stat(filepath.Join("/tmp", name)); err == nil {
		os.Remove(filepath.Join("/tmp", name))
		t.Errorf("the runtime created /tmp/%s on the host", name)
	}
	if _, err := os.Stat(filepath.Join(b.Rootfs(), "tmp", name)); err != nil {
		t.Errorf("the mount point is not inside the rootfs: %v", err)
	}
	if out := r.output(c); strings.TrimSpace(out) != "1" {
		t.Errorf("inside: %q, want the tmpfs at /tmp/%s", out, name)
	}
	r.must("delete", c.id)
}

func runShell(script string) (string, error) {
	out, err := execCommand("sh", "-c", script)
	return out, err
}

// SCMP_ACT_NOTIFY: the listener fd reaches listenerPath with the
// container process state; with the listener closed, the notified
// syscall fails.
func TestSeccompNotify(t *testing.T) {
	r := newRT(t)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type got struct {
		state specs.ContainerProcessState
		fds   int
		err   error
	}
	ch := make(chan got, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			ch <- got{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		oob := make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		var g got
		g.err = err
		if err == nil {
			g.err = json.Unmarshal(buf[:n], &g.state)
			if msgs, _ := unix.ParseSocketControlMessage(oob[:oobn]); len(msgs) == 1 {
				if fds, _ := unix.ParseUnixRights(&msgs[0]); len(fds) == 1 {
					g.fds = 1
					unix.Close(fds[0]) // the notified syscall then fails
				}
			}
		}
		ch <- g
	}()
	b := testutil.NewBundle(t, "sh", "-c", "mkdir /tmp/notified 2>/dev/null && echo created || echo refused")
	b.Spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction:    specs.ActAllow,
		ListenerPath:     sock,
		ListenerMetadata: "meta1",
		Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
	}
	b.Save()
	c := r.mustCreate(b)
	var g got
	select {
	case g = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent got nothing")
	}
	if g.err != nil || g.fds != 1 || g.state.Pid != c.pid || g.state.Metadata != "meta1" || g.state.State.ID != c.id {
		t.Fatalf("agent got %+v", g)
	}
	if out := r.output(c); !strings.Contains(out, "refused") {
		t.Errorf("inside: %q", out)
	}
	r.must("delete", c.id)
}
