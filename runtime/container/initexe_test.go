package container_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/oci"
	"github.com/hullproject/hull/runtime/container"
	"github.com/hullproject/hull/runtime/initproc"
)

// The init of a container that joins no namespace runs from
// hull-runtime-init when it is installed beside hull-runtime, through a
// private read-only mount that leaves nothing in the host's mount table
// (so that runtimes of different builds can run side by side).
func TestInitBinary(t *testing.T) {
	r := newRT(t)
	helper := filepath.Join(filepath.Dir(r.bin), container.InitBinary)
	hs, err := os.Stat(helper)
	if err != nil {
		t.Skipf("%s not built (make build builds it): %v", helper, err)
	}
	before := hullMounts(t)
	b := testutil.NewBundle(t, "true")
	c := r.mustCreate(b)
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/exe", c.pid), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != hs.Size() {
		t.Errorf("the init runs a binary of %d bytes, %s has %d", st.Size, helper, hs.Size())
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("the init's binary is on a writable mount")
	}
	if after := hullMounts(t); after != before {
		t.Errorf("host mounts changed while a container exists:\nbefore %q\nafter  %q", before, after)
	}
	r.output(c)
	r.must("delete", c.id)
}

// hullMounts lists the host's mounts whose line names a hull-runtime path.
func hullMounts(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "hull-runtime") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// An init of another build refuses to run, saying so, instead of
// misreading the config.
func TestInitBinaryOtherBuild(t *testing.T) {
	r := newRT(t)
	for _, bin := range []string{filepath.Join(filepath.Dir(r.bin), container.InitBinary), r.bin} {
		if _, err := os.Stat(bin); err != nil {
			continue
		}
		t.Run(filepath.Base(bin), func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			parent, child := os.NewFile(uintptr(fds[0]), "parent"), os.NewFile(uintptr(fds[1]), "child")
			defer parent.Close()
			cmd := exec.Command(bin, "init")
			cmd.ExtraFiles = []*os.File{child}
			cmd.Env = []string{initproc.EnvSyncFD + "=3", initproc.EnvProtocol + "=0-other-build"}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			child.Close()
			var m initproc.Message
			if err := json.NewDecoder(parent).Decode(&m); err != nil {
				t.Fatalf("read the init's report: %v", err)
			}
			err = cmd.Wait()
			if m.Type != initproc.MsgError || !strings.Contains(m.Msg, "same build") || err == nil {
				t.Errorf("init of another protocol: %+v, exit %v", m, err)
			}
		})
	}
}

// A non-root user runs a rootless spec (`spec --rootless`: a user
// namespace mapping only its own uid and gid, no cgroup limits): the
// container's process is root in its namespace and the user outside, and
// the runtime needs no cgroup.
func TestRootless(t *testing.T) {
	r := newRT(t)
	const uid, gid = 65534, 65534 // nobody, nogroup
	b := testutil.NewBundle(t, "sh", "-c", "cat /proc/self/uid_map; id -u; echo ok")
	oci.Rootless(b.Spec) // maps root's ids: the user's instead
	b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uid, Size: 1}}
	b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: gid, Size: 1}}
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	// The user must reach the bundle and own its state directory.
	for d := b.Dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(b.Dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(state, uid, gid); err != nil {
		t.Fatal(err)
	}
	id := r.newID()
	// No --root: a non-root user's default is $XDG_RUNTIME_DIR/hull-runtime.
	cmd := exec.Command(r.bin, "run", "--bundle", b.Dir, id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=" + state}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rootless run: %v: %s", err, out)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 5 || fields[0] != "0" || fields[1] != fmt.Sprint(uid) || fields[3] != "0" || fields[4] != "ok" {
		t.Errorf("rootless container printed %q, want uid_map \"0 %d 1\", id 0, ok", out, uid)
	}
	if ents, err := os.ReadDir(filepath.Join(state, "hull-runtime")); err != nil || len(ents) != 0 {
		t.Errorf("state under $XDG_RUNTIME_DIR/hull-runtime: %v, %v (want the directory, empty)", ents, err)
	}
}

// A runtime whose binary has no path any more (hull-agent, PID 1 of a VM
// guest, runs from an initramfs that switch_root emptied; here: a memfd
// copy) still starts containers: it re-executes itself through
// /proc/self/exe, and no hull-runtime-init is looked for.
func TestRuntimeWithoutPath(t *testing.T) {
	r := newRT(t)
	data, err := os.ReadFile(r.bin)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.MemfdCreate("hull-runtime-copy", 0)
	if err != nil {
		t.Skipf("memfd_create: %v", err)
	}
	mem := os.NewFile(uintptr(fd), "memfd")
	defer mem.Close()
	if _, err := mem.Write(data); err != nil {
		t.Fatal(err)
	}
	b := testutil.NewBundle(t, "sh", "-c", "echo in-container")
	id := r.newID()
	cmd := exec.Command("/proc/self/fd/3", "--root", r.root, "run", "--bundle", b.Dir, id)
	cmd.ExtraFiles = []*os.File{mem}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "in-container") {
		t.Fatalf("run from a memfd: %v: %s", err, out)
	}
}

// An exec'd process is born in the container's cgroup rather than moved
// there: in every v1 hierarchy (a thread that joined them forks it, see
// startInCgroup) and, where cgroup2 is mounted, in the v2 group
// (CLONE_INTO_CGROUP). Run on the host's layout and in a private mount
// namespace without the hybrid layout's cgroup2 mount (v1 only, as the
// benchmark runs).
func TestExecBornInCgroup(t *testing.T) {
	r := newRT(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	for _, tt := range []struct {
		name, prep string
	}{
		{"host layout", ":"},
		{"v1 only", "umount /sys/fs/cgroup/unified 2>/dev/null"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := testutil.NewBundle(t, "sleep", "30")
			id := r.newID()
			script := tt.prep + `
"$0" --root "$1" run -d --bundle "$2" "$3" </dev/null >/dev/null || exit 1
"$0" --root "$1" exec "$3" cat /proc/self/cgroup; rc=$?
echo ---
cat "/proc/$("$0" --root "$1" state "$3" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')/cgroup"
"$0" --root "$1" delete --force "$3"
exit $rc`
			out, err := exec.Command("unshare", "-m", "sh", "-c", script, r.bin, r.root, b.Dir, id).CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			execd, init, _ := strings.Cut(strings.TrimSpace(string(out)), "---")
			// The exec'd process must be where the init is.
			want := strings.TrimSpace(init)
			if got := strings.TrimSpace(execd); got != want || !strings.Contains(got, "/"+id) {
				t.Errorf("exec'd process in\n%s\ninit in\n%s", got, want)
			}
		})
	}
}
