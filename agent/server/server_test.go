package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/agent"
	agentapi "github.com/hullproject/hull/agent/api"
	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/runtime/initproc"
	_ "github.com/hullproject/hull/runtime/nsenter"
)

// TestMain lets the test binary be the container init, as hull-agent is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		initproc.Main()
	}
	// The exec'd processes' parents exit; their children must come back
	// to this process (PID 1 in the guest), as they do to the agent.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// serve runs a Server on the host over an in-memory connection, with the
// host client of package agent.
func serve(t *testing.T) (*agent.Client, *Server) {
	t.Helper()
	testutil.RequireRoot(t)
	dir := t.TempDir()
	s := NewServer(&Reaper{}, nil, slog.Default())
	s.Root, s.BundleDir = dir+"/runtime", dir+"/bundles"
	srv, err := NewTTRPCServer(s)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", dir+"/agent.sock")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), ln)
	c, err := agent.Dial(context.Background(), dir+"/agent.sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Close()
	})
	return c, s
}

// spec is the bundle's config with an absolute root path (the agent
// writes config.json into its own bundle directory).
func spec(t *testing.T, b *testutil.Bundle) []byte {
	sp := *b.Spec
	root := *sp.Root
	root.Path = b.Rootfs()
	sp.Root = &root
	js, err := json.Marshal(&sp)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func readAll(ctx context.Context, t *testing.T, c *agent.Client, stderr bool, cid, eid string) string {
	var buf bytes.Buffer
	for {
		req := &agentapi.ReadStreamRequest{ContainerId: cid, ExecId: eid}
		var r *agentapi.ReadStreamResponse
		var err error
		if stderr {
			r, err = c.ReadStderr(ctx, req)
		} else {
			r, err = c.ReadStdout(ctx, req)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) == 0 {
			return buf.String()
		}
		buf.Write(r.Data)
	}
}

// TestServerOnHost drives the agent's service on the host (no VM): a
// container's lifecycle, stdio, exec and errors, through ttrpc.
func TestServerOnHost(t *testing.T) {
	c, s := serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := testutil.NewBundle(t, "sh", "-c", "read x; echo out:$x; echo err >&2; exit 5")
	if _, err := c.CreateContainer(ctx, &agentapi.CreateContainerRequest{ContainerId: "h1", OciSpec: spec(t, b)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartContainer(ctx, &agentapi.ContainerRequest{ContainerId: "h1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteStdin(ctx, &agentapi.WriteStreamRequest{ContainerId: "h1", Data: []byte("hi\n")}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(ctx, t, c, false, "h1", ""); got != "out:hi\n" {
		t.Errorf("stdout %q", got)
	}
	if got := readAll(ctx, t, c, true, "h1", ""); got != "err\n" {
		t.Errorf("stderr %q", got)
	}
	w, err := c.WaitProcess(ctx, &agentapi.ProcessRequest{ContainerId: "h1"})
	if err != nil || w.Status != 5 {
		t.Fatalf("wait: %v, status %d", err, w.GetStatus())
	}
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"bad id", func() error {
			_, err := c.CreateContainer(ctx, &agentapi.CreateContainerRequest{ContainerId: "../x", OciSpec: spec(t, b)})
			return err
		}, errdefs.ErrInvalidArgument},
		{"bad spec", func() error {
			_, err := c.CreateContainer(ctx, &agentapi.CreateContainerRequest{ContainerId: "x", OciSpec: []byte("{")})
			return err
		}, errdefs.ErrInvalidArgument},
		{"relative mount point", func() error {
			_, err := c.CreateContainer(ctx, &agentapi.CreateContainerRequest{ContainerId: "y", OciSpec: spec(t, b),
				Storages: []*agentapi.Storage{{Source: "x", Fstype: "virtiofs", MountPoint: "rel"}}})
			return err
		}, errdefs.ErrInvalidArgument},
		{"duplicate", func() error {
			_, err := c.CreateContainer(ctx, &agentapi.CreateContainerRequest{ContainerId: "h1", OciSpec: spec(t, b)})
			return err
		}, errdefs.ErrAlreadyExists},
		{"start unknown", func() error {
			_, err := c.StartContainer(ctx, &agentapi.ContainerRequest{ContainerId: "nope"})
			return err
		}, errdefs.ErrNotFound},
		{"resize without tty", func() error {
			_, err := c.TtyWinResize(ctx, &agentapi.TtyWinResizeRequest{ContainerId: "h1", Rows: 1, Cols: 1})
			return err
		}, errdefs.ErrFailedPrecondition},
		{"signal exited", func() error {
			_, err := c.SignalProcess(ctx, &agentapi.SignalProcessRequest{ContainerId: "h1", Signal: 9})
			return err
		}, errdefs.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := c.RemoveContainer(ctx, &agentapi.ContainerRequest{ContainerId: "h1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.BundleDir + "/h1"); !os.IsNotExist(err) {
		t.Errorf("bundle left after remove: %v", err)
	}
	if n := len(s.containers); n != 0 {
		t.Errorf("%d containers left", n)
	}
}

// TestReaper: an orphan that comes back to this process (a subreaper, as
// PID 1 is) is reaped; a tracked child is left to its owner's wait.
func TestReaper(t *testing.T) {
	r := &Reaper{}
	stop := make(chan struct{})
	defer close(stop)
	go r.Run(stop)
	time.Sleep(10 * time.Millisecond) // signal.Notify is in place
	tracked := exec.Command("sh", "-c", "exit 3")
	r.Spawn.RLock()
	if err := tracked.Start(); err != nil {
		t.Fatal(err)
	}
	r.Track(tracked.Process.Pid)
	r.Spawn.RUnlock()
	// sh starts a background sleep and exits: the sleep is re-parented here.
	out, err := exec.Command("sh", "-c", "sleep 0.2 & echo $!").Output()
	if err != nil {
		t.Fatal(err)
	}
	orphan := strings.TrimSpace(string(out))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + orphan); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan %s not reaped", orphan)
		}
		time.Sleep(20 * time.Millisecond)
	}
	err = tracked.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("tracked child's wait: %v (the reaper took its status?)", err)
	}
	r.Untrack(tracked.Process.Pid)
}
