package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/internal/hulltest"
	"github.com/hullproject/hull/vm/vmtest"
)

// vmProcs returns the pids of QEMU and virtiofsd processes whose command
// line mentions id (QEMU's -name, virtiofsd's shared directory).
func vmProcs(id string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		c := strings.TrimSpace(string(comm))
		if !strings.HasPrefix(c, "qemu-system") && !strings.HasPrefix(c, "virtiofsd") {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmdline), id) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// vmLeft returns what of container id of daemon d is on the host: QEMU
// and virtiofsd processes whose command line names its bundle directory
// (QEMU's state files, virtiofsd's shared rootfs), and whether a mount
// below that directory remains. Other daemons' containers of the same
// name (tests run side by side) do not count.
func vmLeft(d *hulltest.Daemon, id string) (pids []int, mounted bool) {
	bundle := filepath.Join(d.State, "tasks", "default", id) + "/"
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	return vmProcs(bundle), strings.Contains(string(mounts), bundle)
}

// TestRunVM: `hull run --rm --runtime vm` through hulld and the shim's vm
// mode: the container runs on the guest's kernel, its output and exit code
// come back, and nothing of the VM (QEMU, virtiofsd, mounts) remains.
func TestRunVM(t *testing.T) {
	hulltest.RequireRoot(t)
	kernel, initrd := vmtest.Kernel(t), vmtest.Initramfs(t)
	ref := hulltest.Busybox(t)
	d := hulltest.NewDaemon(t)
	d.Config = fmt.Sprintf("[runtimes.vmtest]\ntype = \"io.containerd.hull.v2\"\noptions = { mode = \"vm\", backend = { kernel = %q, initrd = %q, accel = \"tcg\", boot_timeout = 90 } }\n", kernel, initrd)
	d.Start()
	d.MustHull("images", "pull", ref)

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	host := unix.ByteSliceToString(uts.Release[:])

	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		check func(t *testing.T, out, errOut string)
	}{
		{"guest kernel", []string{"sh", "-c", "id -u; uname -r"}, 0, func(t *testing.T, out, errOut string) {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 2 || lines[0] != "0" || lines[1] == "" || lines[1] == host {
				t.Fatalf("stdout %q (host kernel %q), stderr %q", out, host, errOut)
			}
			t.Logf("guest uname -r: %s (host %s)", lines[1], host)
		}},
		{"exit code and stderr", []string{"sh", "-c", "echo out; echo err >&2; exit 7"}, 7, func(t *testing.T, out, errOut string) {
			if out != "out\n" || errOut != "err\n" {
				t.Fatalf("stdout %q, stderr %q", out, errOut)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "vm-" + strings.ReplaceAll(tc.name, " ", "-")
			out, errOut, code := d.Hull(append([]string{"run", "--rm", "--runtime", "vmtest", ref, id}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d; stdout %q stderr %q\nhulld log:\n%s", code, tc.code, out, errOut, d.Log())
			}
			tc.check(t, out, errOut)
			// The delete answers once the shim's Delete is done: the VM
			// quit, virtiofsd ended and the rootfs is unmounted.
			if pids, leftMounts := vmLeft(d, id); len(pids) > 0 || leftMounts {
				t.Errorf("when run --rm returned: QEMU/virtiofsd %v, mounts of the rootfs left: %v", pids, leftMounts)
			}
			if out, _, _ := d.Hull("c", "ls"); strings.Contains(out, id) {
				t.Errorf("container %s still listed:\n%s", id, out)
			}
		})
	}
}

// waitVMGone waits up to 20s for QEMU, virtiofsd and the rootfs mount of
// container id to be gone.
func waitVMGone(t *testing.T, id string) {
	t.Helper()
	t0 := time.Now()
	for {
		pids := vmProcs(id)
		mounts, _ := os.ReadFile("/proc/self/mountinfo")
		left := strings.Contains(string(mounts), "/"+id+"/")
		if len(pids) == 0 && !left {
			return
		}
		if time.Since(t0) > 20*time.Second {
			t.Fatalf("20s after delete: QEMU/virtiofsd %v, rootfs mount left: %v", pids, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestVMDetachedLifecycle: a detached vm container takes stdin-less exec
// (exit codes, env), exec -i (stdin through the agent), run -i, and a
// signal whose trap sets the exit status; rm leaves nothing.
func TestVMDetachedLifecycle(t *testing.T) {
	hulltest.RequireRoot(t)
	kernel, initrd := vmtest.Kernel(t), vmtest.Initramfs(t)
	ref := hulltest.Busybox(t)
	d := hulltest.NewDaemon(t)
	d.Config = fmt.Sprintf("[runtimes.vmtest]\ntype = \"io.containerd.hull.v2\"\noptions = { mode = \"vm\", backend = { kernel = %q, initrd = %q, accel = \"tcg\", boot_timeout = 90 } }\n", kernel, initrd)
	d.Start()
	d.MustHull("images", "pull", ref)

	if out, _, code := d.HullIn([]byte("from stdin\n"), "run", "--rm", "-i", "--runtime", "vmtest", ref, "vm-stdin", "cat"); code != 0 || out != "from stdin\n" {
		t.Fatalf("run -i cat: code %d, stdout %q", code, out)
	}
	waitVMGone(t, "vm-stdin")
	if out, _, code := d.Hull("run", "--rm", "-t", "--runtime", "vmtest", ref, "vm-tty", "sh", "-c", "test -t 1 && echo is-a-tty; exit 4"); code != 4 || strings.TrimSpace(out) != "is-a-tty" {
		t.Fatalf("run -t: code %d out %q", code, out)
	}
	waitVMGone(t, "vm-tty")

	id := "vm-life"
	d.MustHull("run", "-d", "--runtime", "vmtest", "--env", "GREETING=hi", ref, id,
		"sh", "-c", "echo started $GREETING; trap 'echo got TERM; exit 42' TERM; while true; do sleep 0.1; done")
	waitFor(t, "log line", func() bool { out, _, _ := d.Hull("logs", id); return out == "started hi\n" })
	if out, _, code := d.Hull("exec", id, "sh", "-c", "echo in $GREETING; exit 5"); code != 5 || out != "in hi\n" {
		t.Fatalf("exec: code %d out %q", code, out)
	}
	if out, _, code := d.HullIn([]byte("through stdin\n"), "exec", "-i", id, "cat"); code != 0 || out != "through stdin\n" {
		t.Fatalf("exec -i cat: code %d out %q", code, out)
	}
	if out, _, code := d.Hull("exec", "-t", id, "sh", "-c", "test -t 0 && test -t 1 && echo tty"); code != 0 || strings.TrimSpace(out) != "tty" {
		t.Fatalf("exec -t: code %d out %q", code, out)
	}
	// The guest cgroup's stats, as cgroups v1 Metrics (not empty).
	if out := d.MustHull("tasks", "metrics", id); !strings.Contains(out, "cgroups.v1.Metrics") || strings.Contains(out, `"data": ""`) || !strings.Contains(out, `"data": "`) {
		t.Fatalf("metrics: %q", out)
	}
	d.MustHull("tasks", "kill", "-s", "TERM", id)
	waitFor(t, "stopped", func() bool { return strings.HasPrefix(taskStatus(d, "default", id), "stopped") })
	if st := taskStatus(d, "default", id); !strings.Contains(st, "42") {
		t.Fatalf("status after TERM %q, want exit 42", st)
	}
	if out, _, _ := d.Hull("logs", id); out != "started hi\ngot TERM\n" {
		t.Fatalf("logs %q", out)
	}
	d.MustHull("tasks", "rm", id)
	waitVMGone(t, id)
	d.MustHull("c", "rm", id)

	// A running one removed with force: killed, VM torn down.
	d.MustHull("run", "-d", "--runtime", "vmtest", ref, "vm-force", "sleep", "1000")
	waitFor(t, "running", func() bool { return strings.HasPrefix(taskStatus(d, "default", "vm-force"), "running") })
	d.MustHull("c", "rm", "-f", "vm-force")
	waitVMGone(t, "vm-force")
}

// TestVMShimKilled: when the shim dies, its VM goes with it (QEMU and
// virtiofsd die with their parent) and hulld's cleanup unmounts the rootfs.
func TestVMShimKilled(t *testing.T) {
	hulltest.RequireRoot(t)
	kernel, initrd := vmtest.Kernel(t), vmtest.Initramfs(t)
	ref := hulltest.Busybox(t)
	d := hulltest.NewDaemon(t)
	d.Config = fmt.Sprintf("[runtimes.vmtest]\ntype = \"io.containerd.hull.v2\"\noptions = { mode = \"vm\", backend = { kernel = %q, initrd = %q, accel = \"tcg\", boot_timeout = 90 } }\n", kernel, initrd)
	d.Start()
	d.MustHull("images", "pull", ref)

	id := "vm-shimkill"
	d.MustHull("run", "-d", "--runtime", "vmtest", ref, id, "sleep", "1000")
	waitFor(t, "running", func() bool { return strings.HasPrefix(taskStatus(d, "default", id), "running") })
	pids := vmProcs(id)
	if len(pids) == 0 {
		t.Fatal("no QEMU/virtiofsd for the running vm container")
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pids[0]))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	shim, _ := strconv.Atoi(f[1])
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", shim))
	if !strings.HasPrefix(string(comm), "containerd-shim") {
		t.Fatalf("parent of %d is %d (%s), not the shim", pids[0], shim, comm)
	}
	if err := unix.Kill(shim, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "stopped", func() bool { return strings.HasPrefix(taskStatus(d, "default", id), "stopped") })
	waitVMGone(t, id)
	d.MustHull("c", "rm", "-f", id)
	if left, _ := filepath.Glob("/tmp/hull-vm-*"); len(left) > 0 {
		t.Errorf("vm state dirs left: %v", left)
	}
}

// TestVMDefaultRuntime: the built-in [runtimes.vm] finds its guest assets
// in $HULL_GUEST_DIR (vmlinux, agent.cpio); a runtime whose kernel is
// missing fails the run with an error naming the file, leaving nothing.
func TestVMDefaultRuntime(t *testing.T) {
	hulltest.RequireRoot(t)
	kernel, initrd := vmtest.Kernel(t), vmtest.Initramfs(t)
	ref := hulltest.Busybox(t)
	guest := t.TempDir()
	if err := os.Symlink(kernel, filepath.Join(guest, "vmlinux")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(initrd, filepath.Join(guest, "agent.cpio")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HULL_GUEST_DIR", guest)
	d := hulltest.NewDaemon(t)
	d.Config = "[runtimes.nokernel]\ntype = \"io.containerd.hull.v2\"\noptions = { mode = \"vm\", backend = { kernel = \"/no/such/vmlinux\" } }\n"
	d.Start()
	d.MustHull("images", "pull", ref)

	if out, errOut, code := d.Hull("run", "--rm", "--runtime", "vm", ref, "vm-default", "sh", "-c", "exit 3"); code != 3 {
		t.Fatalf("run --runtime vm: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	waitVMGone(t, "vm-default")

	_, errOut, code := d.Hull("run", "--rm", "--runtime", "nokernel", ref, "vm-nokernel", "true")
	if code == 0 || !strings.Contains(errOut, "/no/such/vmlinux") || !strings.Contains(errOut, "not found") {
		t.Fatalf("run with a missing kernel: code %d, stderr %q", code, errOut)
	}
	t.Logf("missing kernel: %s", strings.TrimSpace(errOut))
	waitVMGone(t, "vm-nokernel")
}

// TestVMKilledFromOutside: when QEMU is killed, the container's task stops
// (exit 137) instead of hanging, and delete leaves nothing.
func TestVMKilledFromOutside(t *testing.T) {
	hulltest.RequireRoot(t)
	kernel, initrd := vmtest.Kernel(t), vmtest.Initramfs(t)
	ref := hulltest.Busybox(t)
	d := hulltest.NewDaemon(t)
	d.Config = fmt.Sprintf("[runtimes.vmtest]\ntype = \"io.containerd.hull.v2\"\noptions = { mode = \"vm\", backend = { kernel = %q, initrd = %q, accel = \"tcg\", boot_timeout = 90 } }\n", kernel, initrd)
	d.Start()
	d.MustHull("images", "pull", ref)

	id := "vm-outside"
	d.MustHull("run", "-d", "--runtime", "vmtest", ref, id, "sleep", "1000")
	waitFor(t, "running", func() bool { return strings.HasPrefix(taskStatus(d, "default", id), "running") })
	killed := false
	for _, pid := range vmProcs(id) {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.HasPrefix(string(comm), "qemu-system") {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	if !killed {
		t.Fatal("no QEMU process for the container")
	}
	waitFor(t, "stopped", func() bool { return strings.HasPrefix(taskStatus(d, "default", id), "stopped") })
	if st := taskStatus(d, "default", id); !strings.Contains(st, "137") {
		t.Fatalf("status after QEMU was killed: %q, want exit 137", st)
	}
	d.MustHull("c", "rm", "-f", id)
	waitVMGone(t, id)
}
