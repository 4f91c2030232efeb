package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/agent"
	agentapi "github.com/hullproject/hull/agent/api"
	"github.com/hullproject/hull/blockimage"
	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/qemu"
	"github.com/hullproject/hull/vm/vmtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	vmtest.Cleanup()
	os.Exit(code)
}

const shareTag = "hullfs"
const guestShare = "/run/hull-agent/shared"

// bootWithBundle boots a guest sharing the bundle's directory over virtio-fs.
func bootWithBundle(t *testing.T, b *testutil.Bundle) *vm.Sandbox {
	t.Helper()
	return bootOn(t, b, false)
}

// bootOn is bootWithBundle on microvm, or on q35 when hotplug is set.
func bootOn(t *testing.T, b *testutil.Bundle, hotplug bool) *vm.Sandbox {
	t.Helper()
	cfg := vm.Config{
		ID: strings.ReplaceAll(t.Name(), "/", "-"), StateDir: t.TempDir(),
		Kernel: vmtest.Kernel(t), Initrd: vmtest.Initramfs(t),
		VCPUs: 1, MemoryMiB: 256,
		Shares:  []vm.Share{{Tag: shareTag, Source: b.Dir}},
		Hotplug: hotplug,
	}
	q := qemu.New(qemu.Options{Accel: "tcg"})
	sb, err := vm.Boot(context.Background(), q, cfg, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sb.Shutdown(context.Background(), 10*time.Second); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		vmtest.NoStrays(t)
		// Only the console log stays: no QMP, agent or virtiofsd socket.
		ents, _ := os.ReadDir(cfg.StateDir)
		for _, e := range ents {
			if e.Name() != "console.log" {
				t.Errorf("left in the state dir: %s", e.Name())
			}
		}
	})
	return sb
}

func createReq(t testing.TB, id string, b *testutil.Bundle) *agentapi.CreateContainerRequest {
	t.Helper()
	spec := *b.Spec
	// The guest is a cgroup v2 host: give the container its own cgroup
	// namespace, as engines do by default on v2.
	linux := *spec.Linux
	linux.Namespaces = append(append([]specs.LinuxNamespace(nil), linux.Namespaces...), specs.LinuxNamespace{Type: specs.CgroupNamespace})
	spec.Linux = &linux
	root := *spec.Root
	root.Path = guestShare + "/rootfs"
	spec.Root = &root
	js, err := json.Marshal(&spec)
	if err != nil {
		t.Fatal(err)
	}
	return &agentapi.CreateContainerRequest{
		ContainerId: id, OciSpec: js,
		Storages: []*agentapi.Storage{{Source: shareTag, Fstype: "virtiofs", MountPoint: guestShare}},
	}
}

// collect reads a stream until EOF.
func collect(ctx context.Context, read func(context.Context, *agentapi.ReadStreamRequest) (*agentapi.ReadStreamResponse, error), cid, eid string) (*bytes.Buffer, *sync.WaitGroup) {
	var buf bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			r, err := read(ctx, &agentapi.ReadStreamRequest{ContainerId: cid, ExecId: eid})
			if err != nil || len(r.Data) == 0 {
				return
			}
			buf.Write(r.Data)
		}
	}()
	return &buf, &wg
}

func hostRelease(t *testing.T) string {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	return unix.ByteSliceToString(uts.Release[:])
}

// TestContainerInGuest runs a busybox container in the guest from a rootfs
// shared over virtio-fs: its kernel is the guest's, host processes and
// mounts are invisible, stdout/stderr and the exit code come back.
func TestContainerInGuest(t *testing.T) {
	testutil.RequireRoot(t)
	for _, machine := range []string{"microvm", "q35"} {
		t.Run(machine, func(t *testing.T) { testContainerInGuest(t, machine == "q35") })
	}
}

func testContainerInGuest(t *testing.T, hotplug bool) {
	b := testutil.NewBundle(t, "sh", "-c", "uname -r; echo procs: $(cat /proc/[0-9]*/comm | sort -u); cat /proc/mounts; echo oops >&2; exit 7")
	sb := bootOn(t, b, hotplug)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := sb.Agent
	if _, err := c.CreateContainer(ctx, createReq(t, "c1", b)); err != nil {
		t.Fatal(err)
	}
	out, owg := collect(ctx, c.ReadStdout, "c1", "")
	errb, ewg := collect(ctx, c.ReadStderr, "c1", "")
	if _, err := c.StartContainer(ctx, &agentapi.ContainerRequest{ContainerId: "c1"}); err != nil {
		t.Fatal(err)
	}
	w, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	owg.Wait()
	ewg.Wait()
	if w.Status != 7 {
		t.Errorf("exit status %d, want 7", w.Status)
	}
	lines := strings.Split(out.String(), "\n")
	t.Logf("stdout:\n%s", out.String())
	if lines[0] != sb.Version.KernelRelease || lines[0] == hostRelease(t) {
		t.Errorf("uname -r in the container = %q; guest %q, host %q", lines[0], sb.Version.KernelRelease, hostRelease(t))
	}
	// Only the container's own processes: not the agent (/init), nor
	// any host process (another kernel altogether).
	if len(lines) < 2 || lines[1] != "procs: cat sh sort" {
		t.Errorf("the container sees other processes: %q", lines[1])
	}
	for _, hostOnly := range []string{"/work", "/tmp/", "/run/hull-agent"} {
		if strings.Contains(out.String(), hostOnly) {
			t.Errorf("host mount %q visible in the container", hostOnly)
		}
	}
	if errb.String() != "oops\n" {
		t.Errorf("stderr %q, want %q", errb.String(), "oops\n")
	}
	if _, err := c.RemoveContainer(ctx, &agentapi.ContainerRequest{ContainerId: "c1"}); err != nil {
		t.Fatal(err)
	}
}

func execReq(t testing.TB, cid, eid string, p specs.Process) *agentapi.ExecProcessRequest {
	t.Helper()
	js, err := json.Marshal(&p)
	if err != nil {
		t.Fatal(err)
	}
	return &agentapi.ExecProcessRequest{ContainerId: cid, ExecId: eid, Process: js}
}

// TestExecSignalStdinStats: in one running container, exec'd processes
// see the container's pid namespace, get stdin (and EOF on CloseStdin)
// and return their exit codes; stats come from the guest's cgroup v2; a
// signal ends the init with the status its trap chose; unknown ids are
// errdefs.ErrNotFound on the host.
func TestExecSignalStdinStats(t *testing.T) {
	testutil.RequireRoot(t)
	b := testutil.NewBundle(t, "sh", "-c", `trap "exit 42" TERM; echo ready; while true; do sleep 0.1; done`)
	sb := bootWithBundle(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := sb.Agent
	if _, err := c.CreateContainer(ctx, createReq(t, "c1", b)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartContainer(ctx, &agentapi.ContainerRequest{ContainerId: "c1"}); err != nil {
		t.Fatal(err)
	}
	if r, err := c.ReadStdout(ctx, &agentapi.ReadStreamRequest{ContainerId: "c1"}); err != nil || string(r.Data) != "ready\n" {
		t.Fatalf("init stdout %q, %v", r.GetData(), err)
	}
	proc := *b.Spec.Process

	t.Run("exec stdin", func(t *testing.T) {
		p := proc
		p.Args = []string{"cat"}
		if _, err := c.ExecProcess(ctx, execReq(t, "c1", "cat", p)); err != nil {
			t.Fatal(err)
		}
		out, wg := collect(ctx, c.ReadStdout, "c1", "cat")
		if _, err := c.WriteStdin(ctx, &agentapi.WriteStreamRequest{ContainerId: "c1", ExecId: "cat", Data: []byte("hello\n")}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CloseStdin(ctx, &agentapi.ProcessRequest{ContainerId: "c1", ExecId: "cat"}); err != nil {
			t.Fatal(err)
		}
		w, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "c1", ExecId: "cat"})
		if err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if w.Status != 0 || out.String() != "hello\n" {
			t.Fatalf("cat: status %d, stdout %q", w.Status, out.String())
		}
	})
	t.Run("exec joins the pid namespace", func(t *testing.T) {
		p := proc
		p.Args = []string{"sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; exit 3"}
		if _, err := c.ExecProcess(ctx, execReq(t, "c1", "e2", p)); err != nil {
			t.Fatal(err)
		}
		out, wg := collect(ctx, c.ReadStdout, "c1", "e2")
		w, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "c1", ExecId: "e2"})
		if err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if w.Status != 3 || !strings.HasPrefix(out.String(), "sh -c trap") {
			t.Fatalf("status %d, pid 1 is %q", w.Status, out.String())
		}
	})
	t.Run("stats", func(t *testing.T) {
		st, err := c.StatsContainer(ctx, &agentapi.ContainerRequest{ContainerId: "c1"})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(st.CgroupStats, &m); err != nil {
			t.Fatal(err)
		}
		pids, _ := m["pids"].(map[string]any)
		if cur, _ := pids["current"].(float64); cur < 1 {
			t.Fatalf("stats without pids.current >= 1: %s", st.CgroupStats)
		}
		if _, ok := m["memory"]; !ok {
			t.Fatalf("stats without memory: %s", st.CgroupStats)
		}
	})
	t.Run("unknown ids", func(t *testing.T) {
		_, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "nope"})
		if !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("unknown container: %v, want ErrNotFound", err)
		}
		_, err = c.SignalProcess(ctx, &agentapi.SignalProcessRequest{ContainerId: "c1", ExecId: "nope", Signal: 9})
		if !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("unknown exec: %v, want ErrNotFound", err)
		}
		_, err = c.CreateContainer(ctx, createReq(t, "c1", b))
		if !errors.Is(err, errdefs.ErrAlreadyExists) {
			t.Errorf("duplicate container: %v, want ErrAlreadyExists", err)
		}
	})
	t.Run("signal", func(t *testing.T) {
		if _, err := c.SignalProcess(ctx, &agentapi.SignalProcessRequest{ContainerId: "c1", Signal: uint32(unix.SIGTERM)}); err != nil {
			t.Fatal(err)
		}
		w, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "c1"})
		if err != nil {
			t.Fatal(err)
		}
		if w.Status != 42 {
			t.Fatalf("status after SIGTERM %d, want 42 (the trap's)", w.Status)
		}
	})
	if _, err := c.RemoveContainer(ctx, &agentapi.ContainerRequest{ContainerId: "c1"}); err != nil {
		t.Fatal(err)
	}
}

// TestTerminal: a container with process.terminal gets a pty in the
// guest: it is a tty, TtyWinResize changes its size, output comes back.
func TestTerminal(t *testing.T) {
	testutil.RequireRoot(t)
	b := testutil.NewBundle(t, "sh", "-c", `read x; stty size; tty -s && echo is-a-tty`)
	b.Spec.Process.Terminal = true
	sb := bootWithBundle(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := sb.Agent
	if _, err := c.CreateContainer(ctx, createReq(t, "t1", b)); err != nil {
		t.Fatal(err)
	}
	out, wg := collect(ctx, c.ReadStdout, "t1", "")
	if _, err := c.StartContainer(ctx, &agentapi.ContainerRequest{ContainerId: "t1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TtyWinResize(ctx, &agentapi.TtyWinResizeRequest{ContainerId: "t1", Rows: 33, Cols: 111}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteStdin(ctx, &agentapi.WriteStreamRequest{ContainerId: "t1", Data: []byte("go\n")}); err != nil {
		t.Fatal(err)
	}
	w, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	got := strings.ReplaceAll(out.String(), "\r", "")
	if w.Status != 0 || !strings.Contains(got, "33 111\n") || !strings.Contains(got, "is-a-tty") {
		t.Fatalf("status %d, output %q", w.Status, got)
	}
	if _, err := c.TtyWinResize(ctx, &agentapi.TtyWinResizeRequest{ContainerId: "t1", ExecId: "none"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("resize of an unknown exec: %v", err)
	}
}

// TestEnvUserLimits: the process's env and user, and the container's
// memory and pids limits, as seen from inside the guest (cgroup v2 there).
func TestEnvUserLimits(t *testing.T) {
	testutil.RequireRoot(t)
	b := testutil.NewBundle(t, "sh", "-c", "echo $FOO; id -u; id -g; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max")
	b.Spec.Process.Env = append(b.Spec.Process.Env, "FOO=bar")
	b.Spec.Process.User = specs.User{UID: 1000, GID: 1001}
	mem, pids := int64(32<<20), int64(20)
	b.Spec.Linux.Resources = &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &mem},
		Pids:   &specs.LinuxPids{Limit: &pids},
	}
	sb := bootWithBundle(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := sb.Agent
	if _, err := c.CreateContainer(ctx, createReq(t, "u1", b)); err != nil {
		t.Fatal(err)
	}
	out, wg := collect(ctx, c.ReadStdout, "u1", "")
	errb, ewg := collect(ctx, c.ReadStderr, "u1", "")
	if _, err := c.StartContainer(ctx, &agentapi.ContainerRequest{ContainerId: "u1"}); err != nil {
		t.Fatal(err)
	}
	w, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	ewg.Wait()
	if want := "bar\n1000\n1001\n33554432\n20\n"; w.Status != 0 || out.String() != want {
		t.Fatalf("status %d, stdout %q (want %q), stderr %q", w.Status, out.String(), want, errb.String())
	}
}

// TestSeccompInGuest: the agent (static, with libseccomp) compiles and
// loads a container's seccomp profile in the guest.
func TestSeccompInGuest(t *testing.T) {
	testutil.RequireRoot(t)
	b := testutil.NewBundle(t, "sh", "-c", "mkdir /tmp/x && echo made; echo after")
	b.Spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{{
			Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno,
		}},
	}
	sb := bootWithBundle(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := sb.Agent
	if _, err := c.CreateContainer(ctx, createReq(t, "s1", b)); err != nil {
		t.Fatal(err)
	}
	out, wg := collect(ctx, c.ReadStdout, "s1", "")
	errb, ewg := collect(ctx, c.ReadStderr, "s1", "")
	if _, err := c.StartContainer(ctx, &agentapi.ContainerRequest{ContainerId: "s1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "s1"}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	ewg.Wait()
	if out.String() != "after\n" || !strings.Contains(errb.String(), "Operation not permitted") {
		t.Fatalf("mkdir was not refused by the filter: stdout %q, stderr %q", out.String(), errb.String())
	}
}

// TestBlockRootfs: the rootfs reaches the guest as an ext4 or erofs image
// on virtio-blk (the way Firecracker needs), read-only.
func TestBlockRootfs(t *testing.T) {
	testutil.RequireRoot(t)
	for _, fs := range []string{"ext4", "erofs"} {
		t.Run(fs, func(t *testing.T) {
			b := testutil.NewBundle(t, "sh", "-c", "cat /proc/mounts | head -1; touch /x 2>/dev/null || echo read-only")
			root := *b.Spec.Root
			root.Readonly = true
			b.Spec.Root = &root
			img := filepath.Join(t.TempDir(), "rootfs."+fs)
			if err := blockimage.Build(context.Background(), b.Rootfs(), img, fs, 0); err != nil {
				t.Fatal(err)
			}
			cfg := vm.Config{
				ID: fs, StateDir: t.TempDir(), Kernel: vmtest.Kernel(t), Initrd: vmtest.Initramfs(t),
				Disks: []vm.Disk{{Path: img, ReadOnly: true}},
			}
			q := qemu.New(qemu.Options{Accel: "tcg"})
			sb, err := vm.Boot(context.Background(), q, cfg, 60*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := sb.Shutdown(context.Background(), 10*time.Second); err != nil {
					t.Error(err)
				}
				vmtest.NoStrays(t)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			c := sb.Agent
			req := createReq(t, "b1", b)
			req.Storages = []*agentapi.Storage{{Source: "/dev/vda", Fstype: fs, Options: []string{"ro"}, MountPoint: guestShare + "/rootfs"}}
			if _, err := c.CreateContainer(ctx, req); err != nil {
				t.Fatal(err)
			}
			out, wg := collect(ctx, c.ReadStdout, "b1", "")
			if _, err := c.StartContainer(ctx, &agentapi.ContainerRequest{ContainerId: "b1"}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "b1"}); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if !strings.HasPrefix(out.String(), "/dev/vda / "+fs+" ro") || !strings.Contains(out.String(), "read-only") {
				t.Fatalf("stdout %q", out.String())
			}
		})
	}
}

// TestExecTerminal: an exec'd process with process.terminal gets its own
// pty, resizable with TtyWinResize.
func TestExecTerminal(t *testing.T) {
	testutil.RequireRoot(t)
	b := testutil.NewBundle(t, "sleep", "100")
	sb := bootWithBundle(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := sb.Agent
	if _, err := c.CreateContainer(ctx, createReq(t, "x1", b)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartContainer(ctx, &agentapi.ContainerRequest{ContainerId: "x1"}); err != nil {
		t.Fatal(err)
	}
	p := *b.Spec.Process
	p.Terminal = true
	p.Args = []string{"sh", "-c", "read x; stty size; tty -s && echo is-a-tty"}
	if _, err := c.ExecProcess(ctx, execReq(t, "x1", "tty", p)); err != nil {
		t.Fatal(err)
	}
	out, wg := collect(ctx, c.ReadStdout, "x1", "tty")
	if _, err := c.TtyWinResize(ctx, &agentapi.TtyWinResizeRequest{ContainerId: "x1", ExecId: "tty", Rows: 44, Cols: 99}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteStdin(ctx, &agentapi.WriteStreamRequest{ContainerId: "x1", ExecId: "tty", Data: []byte("go\n")}); err != nil {
		t.Fatal(err)
	}
	w, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "x1", ExecId: "tty"})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	got := strings.ReplaceAll(out.String(), "\r", "")
	if w.Status != 0 || !strings.Contains(got, "44 99\n") || !strings.Contains(got, "is-a-tty") {
		t.Fatalf("status %d, output %q", w.Status, got)
	}
	if _, err := c.SignalProcess(ctx, &agentapi.SignalProcessRequest{ContainerId: "x1", Signal: uint32(unix.SIGKILL)}); err != nil {
		t.Fatal(err)
	}
	if w, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "x1"}); err != nil || w.Status != 128+9 {
		t.Fatalf("init after SIGKILL: %v, status %d", err, w.GetStatus())
	}
}

// TestAgentReconnect: a host client that goes away (a shim restarting) and
// a new one that connects get fresh ttrpc connections on the same port;
// the guest's containers are still there.
func TestAgentReconnect(t *testing.T) {
	testutil.RequireRoot(t)
	b := testutil.NewBundle(t, "sleep", "100")
	sb := bootWithBundle(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := sb.Agent.CreateContainer(ctx, createReq(t, "r1", b)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		sb.Agent.Close()
		c, err := agent.Reconnect(ctx, sb.Hypervisor.AgentSocket())
		if err != nil {
			t.Fatalf("reconnect %d: %v", i, err)
		}
		sb.Agent = c
	}
	if _, err := sb.Agent.StartContainer(ctx, &agentapi.ContainerRequest{ContainerId: "r1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Agent.SignalProcess(ctx, &agentapi.SignalProcessRequest{ContainerId: "r1", Signal: uint32(unix.SIGKILL)}); err != nil {
		t.Fatal(err)
	}
}
