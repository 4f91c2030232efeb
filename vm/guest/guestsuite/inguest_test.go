package guestsuite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/oci"
)

// The in-guest tests: they run only inside TestGuestSuite's VM, as root on
// a cgroup v2 guest with /mnt/ext4 (the ext4 disk, holding rootfs/) and
// /bin/hull-runtime, set up by the suite's init.

const (
	ext4Mount  = "/mnt/ext4"
	runtimeBin = "/bin/hull-runtime"
	stateRoot  = "/run/hull-runtime"
)

func inGuest(t *testing.T) {
	t.Helper()
	if os.Getenv(inVMEnv) == "" {
		t.Skip("runs inside the guest suite's VM (TestGuestSuite)")
	}
}

// TestInGuestControllers: the cgroup v2 root offers every controller the
// native runtime uses, and they can be enabled for children.
func TestInGuestControllers(t *testing.T) {
	inGuest(t)
	b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		t.Fatal(err)
	}
	have := strings.Fields(string(b))
	for _, c := range []string{"cpu", "cpuset", "memory", "pids", "io"} {
		if !contains(have, c) {
			t.Errorf("cgroup v2 controller %s missing (have %v)", c, have)
		}
		if err := os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+"+c), 0o644); err != nil {
			t.Errorf("enable %s for children: %v", c, err)
		}
	}
	// The v2 freezer is cgroup.freeze in every non-root cgroup.
	d := "/sys/fs/cgroup/guestsuite-probe"
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(d)
	for _, f := range []string{"cgroup.freeze", "cpu.max", "cpuset.cpus", "memory.max", "pids.max", "io.max"} {
		if _, err := os.Stat(filepath.Join(d, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// overlayRootfs mounts an overlay whose lower layer is the ext4 disk's
// rootfs/ and whose upper layer is on tmpfs, at dir/rootfs.
func overlayRootfs(t *testing.T, dir string) string {
	t.Helper()
	lower := filepath.Join(ext4Mount, "rootfs")
	if _, err := os.Stat(filepath.Join(lower, "bin", "busybox")); err != nil {
		t.Fatalf("the ext4 disk's rootfs: %v", err)
	}
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "rootfs")
	for _, d := range []string{upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("overlay", merged, "overlay", 0, fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)); err != nil {
		t.Fatalf("mount overlay over ext4: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(merged, unix.MNT_DETACH) })
	return merged
}

// TestInGuestOverlayOnExt4: the disk is ext4 (read-write), and an overlay
// over it copies up on write and leaves the lower layer alone.
func TestInGuestOverlayOnExt4(t *testing.T) {
	inGuest(t)
	var st unix.Statfs_t
	if err := unix.Statfs(ext4Mount, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.EXT4_SUPER_MAGIC {
		t.Fatalf("%s is not ext4 (magic %#x)", ext4Mount, st.Type)
	}
	probe := filepath.Join(ext4Mount, "written-in-guest")
	if err := os.WriteFile(probe, []byte("ext4 rw"), 0o644); err != nil {
		t.Fatalf("write to ext4: %v", err)
	}
	unix.Sync()
	os.Remove(probe)

	dir := t.TempDir()
	root := overlayRootfs(t, dir)
	if err := os.WriteFile(filepath.Join(root, "etc", "lower-file"), []byte("changed in the overlay\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	up, err := os.ReadFile(filepath.Join(dir, "upper", "etc", "lower-file"))
	if err != nil || string(up) != "changed in the overlay\n" {
		t.Errorf("copy-up: upper has %q, %v", up, err)
	}
	low, err := os.ReadFile(filepath.Join(ext4Mount, "rootfs", "etc", "lower-file"))
	if err != nil || string(low) != "from the ext4 lower layer\n" {
		t.Errorf("lower layer changed: %q, %v", low, err)
	}
}

// TestInGuestDevpts: a new devpts instance gives a working pty pair.
func TestInGuestDevpts(t *testing.T) {
	inGuest(t)
	dir := t.TempDir()
	if err := unix.Mount("devpts", dir, "devpts", 0, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		t.Fatalf("mount devpts: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	ptmx, err := os.OpenFile(filepath.Join(dir, "ptmx"), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	pts, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pty's slave: %v", err)
	}
	defer pts.Close()
	if _, err := ptmx.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	k, err := pts.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:k]), "ping") {
		t.Errorf("slave read %q, %v", buf[:k], err)
	}
}

// TestInGuestSockets: unix stream sockets and TCP over IPv4 and IPv6
// loopback.
func TestInGuestSockets(t *testing.T) {
	inGuest(t)
	for _, tc := range []struct{ network, addr string }{
		{"unix", filepath.Join(t.TempDir(), "s.sock")},
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			l, err := net.Listen(tc.network, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
			c, err := net.DialTimeout(tc.network, l.Addr().String(), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte("echo")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "echo" {
				t.Errorf("echo: %q, %v", buf, err)
			}
		})
	}
}

// nsLinks returns /proc/<pid>/ns/* link targets by namespace name.
func nsLinks(t *testing.T, pid string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir("/proc/" + pid + "/ns")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		l, err := os.Readlink("/proc/" + pid + "/ns/" + e.Name())
		if err == nil {
			out[e.Name()] = l
		}
	}
	return out
}

// TestInGuestNamespaces: a process can be given each of the eight
// namespaces (user, mount, pid, net, uts, ipc, cgroup, time).
func TestInGuestNamespaces(t *testing.T) {
	inGuest(t)
	self := nsLinks(t, "self")
	for _, ns := range []string{"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"} {
		if self[ns] == "" {
			t.Errorf("the kernel has no %s namespace", ns)
		}
	}
	// The time namespace applies to children of the thread that unshares
	// it (clone cannot ask for it), so unshare on a locked thread and fork
	// from it.
	runtime.LockOSThread() // not unlocked: the thread ends with the test's goroutine
	if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
		t.Fatalf("unshare(CLONE_NEWTIME): %v", err)
	}
	cmd := exec.Command("/bin/busybox", "sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
			unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a process in new namespaces: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	child := nsLinks(t, fmt.Sprint(cmd.Process.Pid))
	for _, ns := range []string{"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"} {
		if child[ns] == "" || child[ns] == self[ns] {
			t.Errorf("%s namespace: child %q, parent %q: not a new one", ns, child[ns], self[ns])
		}
	}
}

// bundle writes a bundle at dir (rootfs: overlay over ext4) running args
// with the native runtime's default spec: default seccomp profile, new
// pid, ipc, uts, mount, network and cgroup namespaces, and limits on every
// controller.
func bundle(t *testing.T, dir, id string, args ...string) {
	t.Helper()
	overlayRootfs(t, dir)
	s, err := oci.NewSpec("guestsuite", id,
		oci.WithProcessArgs(args...),
		oci.WithHostname("guestsuite"),
		oci.WithMemoryLimit(64<<20),
		oci.WithCPUs(0.5),
		oci.WithCPUSet("0"),
		oci.WithPidsLimit(32),
	)
	if err != nil {
		t.Fatal(err)
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	weight := uint16(200)
	s.Linux.Resources.BlockIO = &specs.LinuxBlockIO{Weight: &weight}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func hullRuntime(args ...string) *exec.Cmd {
	return exec.Command(runtimeBin, append([]string{"--root", stateRoot}, args...)...)
}

// TestInGuestNativeContainer runs a container with hull-runtime (the native
// runtime) in the guest and checks, from inside it, the seccomp filter,
// the namespaces, the cgroup v2 limits, devpts and the overlay rootfs.
func TestInGuestNativeContainer(t *testing.T) {
	inGuest(t)
	dir := t.TempDir()
	script := `set -e
grep -q '^Seccomp:[[:space:]]*2' /proc/self/status || { echo "no seccomp filter"; exit 10; }
test "$(hostname)" = guestsuite || exit 11
test "$(cat /sys/fs/cgroup/memory.max)" = 67108864 || { echo "memory.max $(cat /sys/fs/cgroup/memory.max)"; exit 12; }
test "$(cat /sys/fs/cgroup/cpu.max)" = "50000 100000" || { echo "cpu.max $(cat /sys/fs/cgroup/cpu.max)"; exit 13; }
test "$(cat /sys/fs/cgroup/pids.max)" = 32 || exit 14
test "$(cat /sys/fs/cgroup/cpuset.cpus)" = 0 || exit 15
test -c /dev/pts/ptmx || exit 16
echo written > /etc/from-container
cat /etc/lower-file
for n in cgroup ipc mnt net pid uts; do echo "ns $n $(readlink /proc/self/ns/$n)"; done
echo CONTAINER-OK`
	bundle(t, dir, "gs-run", "/bin/sh", "-c", script)
	var out bytes.Buffer
	cmd := hullRuntime("run", "--bundle", dir, "gs-run")
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	defer hullRuntime("delete", "--force", "gs-run").Run()
	if err != nil || !strings.Contains(out.String(), "CONTAINER-OK") {
		t.Fatalf("hull-runtime run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "from the ext4 lower layer") {
		t.Errorf("the container did not read the ext4 lower layer:\n%s", out.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "upper", "etc", "from-container")); err != nil || string(b) != "written\n" {
		t.Errorf("the container's write is not in the overlay's upper layer: %q, %v", b, err)
	}
	self := nsLinks(t, "self")
	for _, l := range strings.Split(out.String(), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == "ns" && f[2] == self[f[1]] {
			t.Errorf("the container shares the guest's %s namespace", f[1])
		}
	}
}

// TestInGuestFreezer: hull-runtime pause and resume freeze and thaw a
// running container through the cgroup v2 freezer (cgroup.freeze).
func TestInGuestFreezer(t *testing.T) {
	inGuest(t)
	dir := t.TempDir()
	bundle(t, dir, "gs-freeze", "/bin/sleep", "600")
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	cmd := hullRuntime("run", "--detach", "--bundle", dir, "gs-freeze")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	if err := cmd.Run(); err != nil {
		t.Fatalf("hull-runtime run --detach: %v", err)
	}
	defer func() {
		_ = hullRuntime("kill", "gs-freeze", "KILL").Run()
		time.Sleep(100 * time.Millisecond)
		_ = hullRuntime("delete", "--force", "gs-freeze").Run()
	}()
	status := func() string {
		out, err := hullRuntime("state", "gs-freeze").Output()
		if err != nil {
			t.Fatalf("hull-runtime state: %v", err)
		}
		var st specs.State
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("state: %v: %s", err, out)
		}
		return string(st.Status)
	}
	if s := status(); s != "running" {
		t.Fatalf("status %q, want running", s)
	}
	cgFreeze := "/sys/fs/cgroup/guestsuite/gs-freeze/cgroup.freeze"
	if out, err := hullRuntime("pause", "gs-freeze").CombinedOutput(); err != nil {
		t.Fatalf("hull-runtime pause: %v: %s", err, out)
	}
	if s := status(); s != "paused" {
		t.Errorf("after pause: status %q", s)
	}
	if b, err := os.ReadFile(cgFreeze); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Errorf("%s after pause: %q, %v", cgFreeze, b, err)
	}
	if out, err := hullRuntime("resume", "gs-freeze").CombinedOutput(); err != nil {
		t.Fatalf("hull-runtime resume: %v: %s", err, out)
	}
	if s := status(); s != "running" {
		t.Errorf("after resume: status %q", s)
	}
	if b, err := os.ReadFile(cgFreeze); err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Errorf("%s after resume: %q, %v", cgFreeze, b, err)
	}
}
