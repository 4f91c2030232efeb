package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/agent"
	agentapi "github.com/hullproject/hull/agent/api"
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
	cfg := vm.Config{
		ID: strings.ReplaceAll(t.Name(), "/", "-"), StateDir: t.TempDir(),
		Kernel: vmtest.Kernel(t), Initrd: vmtest.Initramfs(t),
		VCPUs: 1, MemoryMiB: 256,
		Shares: []vm.Share{{Tag: shareTag, Source: b.Dir}},
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
	})
	return sb
}

func createReq(t *testing.T, id string, b *testutil.Bundle) *agentapi.CreateContainerRequest {
	t.Helper()
	spec := *b.Spec
	// The guest is a cgroup v2 host: give the container its own cgroup
	// namespace, as engines do by default on v2.
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
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
	b := testutil.NewBundle(t, "sh", "-c", "uname -r; echo procs: $(cat /proc/[0-9]*/comm | sort -u); cat /proc/mounts; echo oops >&2; exit 7")
	sb := bootWithBundle(t, b)
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

var _ = agent.PortName
