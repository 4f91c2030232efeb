package shim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	apitask "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/fifo"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/shim"
)

// These tests speak the shim's two protocols directly, as a daemon does:
// the binary protocol (start, delete) and the ttrpc task service.

var (
	shimOnce sync.Once
	shimBin  string
	shimErr  error
)

// shimBinary builds containerd-shim-hull-v2 once per test binary.
func shimBinary(t *testing.T) string {
	t.Helper()
	shimOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hullshimbin")
		if err != nil {
			shimErr = err
			return
		}
		shimBin = filepath.Join(dir, "containerd-shim-hull-v2")
		shimErr = buildShim(shimBin)
	})
	if shimErr != nil {
		t.Fatal(shimErr)
	}
	return shimBin
}

// shimRun is one shim started with `start` for one bundle.
type shimRun struct {
	bin, bundle, ns, id, events string
	pid                         int
	client                      *ttrpc.Client
	task                        taskapi.TaskService
}

func (s *shimRun) cmd(args ...string) *exec.Cmd {
	base := []string{"-namespace", s.ns, "-id", s.id, "-address", "/run/hull-test-none.sock", "-publish-binary", filepath.Join(s.bundle, "..", "publish.sh")}
	cmd := exec.Command(s.bin, append(base, args...)...)
	cmd.Dir = s.bundle
	cmd.Env = append(os.Environ(), "TTRPC_ADDRESS=")
	return cmd
}

// startShim runs `shim start` in the bundle and connects to the shim.
func startShim(t *testing.T, bundle string) *shimRun {
	t.Helper()
	parent := filepath.Dir(bundle)
	events := filepath.Join(parent, "events.log")
	script := "#!/bin/sh\necho \"$*\" >> " + events + "\ncat >> " + events + ".bin\n"
	if err := os.WriteFile(filepath.Join(parent, "publish.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &shimRun{bin: shimBinary(t), bundle: bundle, ns: "hulltest", id: fmt.Sprintf("s%d-%d", os.Getpid(), time.Now().UnixNano()%100000), events: events}
	out, err := s.cmd("start").Output()
	if err != nil {
		t.Fatalf("shim start: %v %s", err, stderrOf(err))
	}
	addr := string(out)
	if !strings.HasPrefix(addr, "unix://"+shim.SocketDir+"/") {
		t.Fatalf("shim start printed %q, want a unix:// address under %s", addr, shim.SocketDir)
	}
	conn, err := net.Dial("unix", strings.TrimPrefix(addr, "unix://"))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	s.client = ttrpc.NewClient(conn)
	s.task = taskapi.NewTaskClient(s.client)
	data, _ := os.ReadFile(filepath.Join(bundle, "shim.pid"))
	s.pid, _ = strconv.Atoi(string(data))
	t.Cleanup(func() {
		s.client.Close()
		if s.pid > 0 && processAlive(s.pid) {
			_ = syscall.Kill(s.pid, syscall.SIGKILL)
		}
		_ = s.cmd("-bundle", bundle, "delete").Run()
	})
	return s
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

func processAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	state := strings.Fields(s[strings.LastIndex(s, ")")+2:])[0]
	return state != "Z" && state != "X"
}

// sessionID is the session of pid (field 6 of /proc/pid/stat).
func sessionID(pid int) int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(data)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	sid, _ := strconv.Atoi(f[3])
	return sid
}

// stdioFifos makes stdin, stdout and stderr fifos in dir and opens the
// daemon's ends: it writes stdin and reads the others.
type stdioFifos struct {
	stdin, stdout, stderr string
	in                    io.WriteCloser
	out, errOut           syncBuffer
	wg                    sync.WaitGroup
}

func newStdioFifos(t *testing.T, dir string) *stdioFifos {
	t.Helper()
	ctx := context.Background()
	f := &stdioFifos{stdin: filepath.Join(dir, "stdin"), stdout: filepath.Join(dir, "stdout"), stderr: filepath.Join(dir, "stderr")}
	var err error
	if f.in, err = fifo.OpenFifo(ctx, f.stdin, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_NONBLOCK, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		path string
		buf  *syncBuffer
	}{{f.stdout, &f.out}, {f.stderr, &f.errOut}} {
		r, err := fifo.OpenFifo(ctx, o.path, syscall.O_RDONLY|syscall.O_CREAT|syscall.O_NONBLOCK, 0o700)
		if err != nil {
			t.Fatal(err)
		}
		f.wg.Add(1)
		go func(buf *syncBuffer) {
			defer f.wg.Done()
			_, _ = buf.ReadFrom(r)
			r.Close()
		}(o.buf)
	}
	t.Cleanup(func() { f.in.Close() })
	return f
}

func anyOf(t *testing.T, url string, m proto.Message) *anypb.Any {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: url, Value: data}
}

// ociRuntimes are the runtime binaries the direct tests use, each named the
// way a daemon would: the runc shim's options (crun, runc) and a runtime
// config file (hull-runtime).
func ociRuntimes(t *testing.T) map[string]func(t *testing.T, dir string) *anypb.Any {
	out := map[string]func(t *testing.T, dir string) *anypb.Any{}
	// crun 1.8 refuses this host's hybrid cgroup layout, so the runc
	// shim's options are tested with runc.
	for _, name := range []string{"runc"} {
		if _, err := exec.LookPath(name); err == nil {
			out[name] = func(t *testing.T, dir string) *anypb.Any {
				return anyOf(t, "containerd.runc.v1.Options", &runcoptions.Options{BinaryName: name})
			}
		}
	}
	for name, bin := range runtimes(t) {
		if name == "hull-runtime" {
			out[name] = func(t *testing.T, dir string) *anypb.Any {
				cfg := filepath.Join(dir, "hull.toml")
				if err := os.WriteFile(cfg, []byte(fmt.Sprintf("binary_name = %q\n", bin)), 0o600); err != nil {
					t.Fatal(err)
				}
				return anyOf(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigPath: cfg})
			}
		}
	}
	return out
}

// TestShimProtocol runs a container through `start`, the task service and
// Shutdown: stdio through fifos, exit status, events by -publish-binary,
// the shim in its own session, and nothing left after.
func TestShimProtocol(t *testing.T) {
	testutil.RequireRoot(t)
	for name, opts := range ociRuntimes(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			parent := t.TempDir()
			bundleDir := filepath.Join(parent, "bundle")
			b := makeBundle(t, bundleDir, "sh", "-c", "echo out; echo err >&2; read x; echo got $x; exit 6")
			// The rootfs arrives as a mount, as from a snapshotter.
			lower := filepath.Join(parent, "lower")
			if err := os.Rename(b.Rootfs(), lower); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(b.Rootfs(), 0o755); err != nil {
				t.Fatal(err)
			}
			s := startShim(t, bundleDir)
			if sid := sessionID(s.pid); sid != s.pid {
				t.Errorf("shim %d is in session %d, want its own", s.pid, sid)
			}
			io := newStdioFifos(t, parent)
			cr, err := s.task.Create(ctx, &taskapi.CreateTaskRequest{
				ID: s.id, Bundle: bundleDir, Stdin: io.stdin, Stdout: io.stdout, Stderr: io.stderr,
				Rootfs:  []*types.Mount{{Type: "bind", Source: lower, Options: []string{"rbind", "rw"}}},
				Options: opts(t, parent),
			})
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			st, err := s.task.State(ctx, &taskapi.StateRequest{ID: s.id})
			if err != nil || st.Status != apitask.Status_CREATED || st.Pid != cr.Pid {
				t.Fatalf("state after create: %v %v, want CREATED pid %d", st, err, cr.Pid)
			}
			if _, err := s.task.Start(ctx, &taskapi.StartRequest{ID: s.id}); err != nil {
				t.Fatalf("start: %v", err)
			}
			if _, err := io.in.Write([]byte("hello\n")); err != nil {
				t.Fatal(err)
			}
			if _, err := s.task.CloseIO(ctx, &taskapi.CloseIORequest{ID: s.id, Stdin: true}); err != nil {
				t.Fatalf("closeio: %v", err)
			}
			w, err := s.task.Wait(ctx, &taskapi.WaitRequest{ID: s.id})
			if err != nil || w.ExitStatus != 6 {
				t.Fatalf("wait: %v %v, want exit 6", w, err)
			}
			dr, err := s.task.Delete(ctx, &taskapi.DeleteRequest{ID: s.id})
			if err != nil || dr.ExitStatus != 6 || dr.Pid != cr.Pid {
				t.Fatalf("delete: %v %v, want exit 6 pid %d", dr, err, cr.Pid)
			}
			io.wg.Wait()
			if got := io.out.String(); got != "out\ngot hello\n" {
				t.Errorf("stdout %q", got)
			}
			if got := io.errOut.String(); got != "err\n" {
				t.Errorf("stderr %q", got)
			}
			// containerd, too, takes a closed connection as a done Shutdown.
			if _, err := s.task.Shutdown(ctx, &taskapi.ShutdownRequest{ID: s.id}); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
				t.Fatalf("shutdown: %v", err)
			}
			waitFor(t, "shim exit", func() bool { return !processAlive(s.pid) })
			addr, _ := os.ReadFile(filepath.Join(bundleDir, "address"))
			if fileExists(strings.TrimPrefix(string(addr), "unix://")) {
				t.Errorf("socket %s left behind", addr)
			}
			if mountedAt(b.Rootfs()) {
				t.Errorf("rootfs still mounted at %s", b.Rootfs())
			}
			waitFor(t, "events", func() bool {
				ev, _ := os.ReadFile(s.events)
				for _, topic := range []string{"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"} {
					if !bytes.Contains(ev, []byte("--topic "+topic+" --namespace hulltest")) {
						return false
					}
				}
				return true
			})
		})
	}
}

func mountedAt(dir string) bool {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// TestShimExecAndSignals covers exec processes (stdio, exit codes, kill),
// pids, pause/resume, update and stats through the task service.
func TestShimExecAndSignals(t *testing.T) {
	testutil.RequireRoot(t)
	for name, opts := range ociRuntimes(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			parent := t.TempDir()
			bundleDir := filepath.Join(parent, "bundle")
			b := makeBundle(t, bundleDir, "sh", "-c", `trap "exit 3" TERM; while true; do sleep 0.1; done`)
			b.Spec.Linux.CgroupsPath = fmt.Sprintf("/hulltest/%s-%d", name, time.Now().UnixNano())
			if err := b.Save(); err != nil {
				t.Fatal(err)
			}
			s := startShim(t, bundleDir)
			if _, err := s.task.Create(ctx, &taskapi.CreateTaskRequest{ID: s.id, Bundle: bundleDir, Options: opts(t, parent)}); err != nil {
				t.Fatalf("create: %v", err)
			}
			if _, err := s.task.Start(ctx, &taskapi.StartRequest{ID: s.id}); err != nil {
				t.Fatalf("start: %v", err)
			}

			// An exec'd process with its own stdio and exit code.
			execDir := filepath.Join(parent, "exec")
			if err := os.Mkdir(execDir, 0o700); err != nil {
				t.Fatal(err)
			}
			eio := newStdioFifos(t, execDir)
			spec := *b.Spec.Process
			spec.Args = []string{"sh", "-c", "echo in-exec; exit 4"}
			if _, err := s.task.Exec(ctx, &taskapi.ExecProcessRequest{
				ID: s.id, ExecID: "e1", Stdout: eio.stdout, Stderr: eio.stderr,
				Spec: jsonAny(t, "types.containerd.io/opencontainers/runtime-spec/1/Process", spec),
			}); err != nil {
				t.Fatalf("exec: %v", err)
			}
			if _, err := s.task.Exec(ctx, &taskapi.ExecProcessRequest{ID: s.id, ExecID: "e1", Spec: jsonAny(t, "x", spec)}); !errors.Is(errgrpc.ToNative(err), errdefs.ErrAlreadyExists) {
				t.Errorf("second exec e1: %v, want already exists", err)
			}
			if _, err := s.task.Start(ctx, &taskapi.StartRequest{ID: s.id, ExecID: "e1"}); err != nil {
				t.Fatalf("start exec: %v", err)
			}
			w, err := s.task.Wait(ctx, &taskapi.WaitRequest{ID: s.id, ExecID: "e1"})
			if err != nil || w.ExitStatus != 4 {
				t.Fatalf("wait exec: %v %v, want 4", w, err)
			}
			if _, err := s.task.Delete(ctx, &taskapi.DeleteRequest{ID: s.id, ExecID: "e1"}); err != nil {
				t.Fatalf("delete exec: %v", err)
			}
			eio.wg.Wait()
			if got := eio.out.String(); got != "in-exec\n" {
				t.Errorf("exec stdout %q", got)
			}

			// An exec whose stdin writer is opened only after the Exec call
			// returned (as a daemon may) still gets its input.
			lateDir := filepath.Join(parent, "late")
			if err := os.Mkdir(lateDir, 0o700); err != nil {
				t.Fatal(err)
			}
			lio := newStdioFifos(t, lateDir)
			lio.in.Close() // this test opens stdin itself, late
			lateIn := lio.stdin
			spec.Args = []string{"cat"}
			if _, err := s.task.Exec(ctx, &taskapi.ExecProcessRequest{ID: s.id, ExecID: "late", Stdin: lateIn, Stdout: lio.stdout, Stderr: lio.stderr, Spec: jsonAny(t, "x", spec)}); err != nil {
				t.Fatalf("exec late: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
			// Non-blocking: with no reader left in the shim, fail, not hang.
			var inW *os.File
			waitFor(t, "the shim to hold the stdin fifo open", func() bool {
				inW, err = os.OpenFile(lateIn, os.O_WRONLY|syscall.O_NONBLOCK, 0)
				return err == nil
			})
			if _, err := s.task.Start(ctx, &taskapi.StartRequest{ID: s.id, ExecID: "late"}); err != nil {
				t.Fatalf("start late: %v", err)
			}
			if _, err := inW.Write([]byte("ping\n")); err != nil {
				t.Fatal(err)
			}
			inW.Close()
			if w, err := s.task.Wait(ctx, &taskapi.WaitRequest{ID: s.id, ExecID: "late"}); err != nil || w.ExitStatus != 0 {
				t.Fatalf("wait late: %v %v", w, err)
			}
			if _, err := s.task.Delete(ctx, &taskapi.DeleteRequest{ID: s.id, ExecID: "late"}); err != nil {
				t.Fatalf("delete late: %v", err)
			}
			lio.wg.Wait()
			if got := lio.out.String(); got != "ping\n" {
				t.Errorf("late stdin: cat printed %q, want ping", got)
			}

			// CloseIO right after a write that the process has not read yet
			// (it fits the fifo, the shim's buffer and the pipe), with the
			// writer still open: the process still gets every byte.
			bigDir := filepath.Join(parent, "big")
			if err := os.Mkdir(bigDir, 0o700); err != nil {
				t.Fatal(err)
			}
			bio := newStdioFifos(t, bigDir)
			spec.Args = []string{"sh", "-c", "sleep 0.5; wc -c"}
			if _, err := s.task.Exec(ctx, &taskapi.ExecProcessRequest{ID: s.id, ExecID: "big", Stdin: bio.stdin, Stdout: bio.stdout, Stderr: bio.stderr, Spec: jsonAny(t, "x", spec)}); err != nil {
				t.Fatalf("exec big: %v", err)
			}
			if _, err := s.task.Start(ctx, &taskapi.StartRequest{ID: s.id, ExecID: "big"}); err != nil {
				t.Fatalf("start big: %v", err)
			}
			const size = 150 << 10
			if _, err := bio.in.Write(bytes.Repeat([]byte("x"), size)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.task.CloseIO(ctx, &taskapi.CloseIORequest{ID: s.id, ExecID: "big", Stdin: true}); err != nil {
				t.Fatalf("closeio big: %v", err)
			}
			if w, err := s.task.Wait(ctx, &taskapi.WaitRequest{ID: s.id, ExecID: "big"}); err != nil || w.ExitStatus != 0 {
				t.Fatalf("wait big: %v %v", w, err)
			}
			if _, err := s.task.Delete(ctx, &taskapi.DeleteRequest{ID: s.id, ExecID: "big"}); err != nil {
				t.Fatalf("delete big: %v", err)
			}
			bio.wg.Wait()
			if got := strings.TrimSpace(bio.out.String()); got != strconv.Itoa(size) {
				t.Errorf("wc -c after CloseIO read %s bytes, want %d", got, size)
			}

			// An exec whose binary is missing fails to start, naming it, and
			// can still be deleted.
			spec.Args = []string{"/no/such/binary"}
			if _, err := s.task.Exec(ctx, &taskapi.ExecProcessRequest{ID: s.id, ExecID: "bad", Spec: jsonAny(t, "x", spec)}); err != nil {
				t.Fatalf("exec bad: %v", err)
			}
			if _, err := s.task.Start(ctx, &taskapi.StartRequest{ID: s.id, ExecID: "bad"}); err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
				t.Errorf("start of a missing binary: %v, want an error naming it", err)
			}
			if _, err := s.task.Delete(ctx, &taskapi.DeleteRequest{ID: s.id, ExecID: "bad"}); err != nil {
				t.Errorf("delete of the failed exec: %v", err)
			}

			// A long exec killed by signal.
			spec.Args = []string{"sleep", "1000"}
			if _, err := s.task.Exec(ctx, &taskapi.ExecProcessRequest{ID: s.id, ExecID: "e2", Spec: jsonAny(t, "x", spec)}); err != nil {
				t.Fatalf("exec e2: %v", err)
			}
			if _, err := s.task.Start(ctx, &taskapi.StartRequest{ID: s.id, ExecID: "e2"}); err != nil {
				t.Fatalf("start e2: %v", err)
			}
			pids, err := s.task.Pids(ctx, &taskapi.PidsRequest{ID: s.id})
			if err != nil || len(pids.Processes) < 2 {
				t.Fatalf("pids: %v %v, want init and e2", pids, err)
			}
			marked := false
			for _, p := range pids.Processes {
				var d runcoptions.ProcessDetails
				if p.Info != nil && proto.Unmarshal(p.Info.Value, &d) == nil && d.ExecID == "e2" {
					marked = true
				}
			}
			if !marked {
				t.Errorf("pids: no process marked with exec id e2: %v", pids.Processes)
			}
			if _, err := s.task.Kill(ctx, &taskapi.KillRequest{ID: s.id, ExecID: "e2", Signal: uint32(syscall.SIGKILL)}); err != nil {
				t.Fatalf("kill e2: %v", err)
			}
			if w, err := s.task.Wait(ctx, &taskapi.WaitRequest{ID: s.id, ExecID: "e2"}); err != nil || w.ExitStatus != 137 {
				t.Fatalf("wait e2: %v %v, want 137", w, err)
			}

			// Pause, resume, update, stats.
			if _, err := s.task.Pause(ctx, &taskapi.PauseRequest{ID: s.id}); err != nil {
				t.Fatalf("pause: %v", err)
			}
			if st, _ := s.task.State(ctx, &taskapi.StateRequest{ID: s.id}); st.GetStatus() != apitask.Status_PAUSED {
				t.Fatalf("state after pause: %v", st)
			}
			if _, err := s.task.Pause(ctx, &taskapi.PauseRequest{ID: s.id}); !errors.Is(errgrpc.ToNative(err), errdefs.ErrFailedPrecondition) {
				t.Errorf("pause twice: %v, want failed precondition", err)
			}
			if _, err := s.task.Resume(ctx, &taskapi.ResumeRequest{ID: s.id}); err != nil {
				t.Fatalf("resume: %v", err)
			}
			limit := int64(64 << 20)
			res := map[string]any{"memory": map[string]any{"limit": limit}}
			if _, err := s.task.Update(ctx, &taskapi.UpdateTaskRequest{ID: s.id, Resources: jsonAny(t, "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", res)}); err != nil {
				t.Fatalf("update: %v", err)
			}
			stats, err := s.task.Stats(ctx, &taskapi.StatsRequest{ID: s.id})
			if err != nil {
				t.Fatalf("stats: %v", err)
			}
			if stats.Stats.GetTypeUrl() != "io.containerd.cgroups.v1.Metrics" {
				t.Fatalf("stats type %q", stats.Stats.GetTypeUrl())
			}
			if !bytes.Contains(stats.Stats.Value, protoVarint(uint64(limit))) {
				t.Errorf("stats do not carry the updated 64 MiB memory limit")
			}

			// Delete while running is refused; SIGTERM ends it with the trap's code.
			if _, err := s.task.Delete(ctx, &taskapi.DeleteRequest{ID: s.id}); !errors.Is(errgrpc.ToNative(err), errdefs.ErrFailedPrecondition) {
				t.Errorf("delete running: %v, want failed precondition", err)
			}
			if _, err := s.task.Kill(ctx, &taskapi.KillRequest{ID: s.id, Signal: uint32(syscall.SIGTERM)}); err != nil {
				t.Fatalf("kill: %v", err)
			}
			if w, err := s.task.Wait(ctx, &taskapi.WaitRequest{ID: s.id}); err != nil || w.ExitStatus != 3 {
				t.Fatalf("wait: %v %v, want 3", w, err)
			}
			if _, err := s.task.Kill(ctx, &taskapi.KillRequest{ID: s.id, Signal: uint32(syscall.SIGTERM)}); !errors.Is(errgrpc.ToNative(err), errdefs.ErrNotFound) {
				t.Errorf("kill stopped: %v, want not found", err)
			}
			if _, err := s.task.Delete(ctx, &taskapi.DeleteRequest{ID: s.id}); err != nil {
				t.Fatalf("delete: %v", err)
			}
			if fileExists(filepath.Join("/sys/fs/cgroup/memory", b.Spec.Linux.CgroupsPath)) {
				t.Errorf("cgroup %s left behind", b.Spec.Linux.CgroupsPath)
			}
			removeCgroupParent("hulltest")
		})
	}
}

func jsonAny(t *testing.T, url string, v any) *anypb.Any {
	t.Helper()
	data, err := jsonMarshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: url, Value: data}
}

// protoVarint is the varint encoding of v, to find a value in a message.
func protoVarint(v uint64) []byte {
	var b []byte
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// TestShimDeleteAfterCrash: when the shim is killed, `shim delete` (what
// containerd runs then) kills the container, unmounts its rootfs and prints
// a DeleteResponse.
func TestShimDeleteAfterCrash(t *testing.T) {
	testutil.RequireRoot(t)
	rts := ociRuntimes(t)
	opts := rts["runc"]
	if opts == nil {
		for _, o := range rts {
			opts = o
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	parent := t.TempDir()
	bundleDir := filepath.Join(parent, "bundle")
	b := makeBundle(t, bundleDir, "sleep", "1000")
	lower := filepath.Join(parent, "lower")
	if err := os.Rename(b.Rootfs(), lower); err != nil {
		t.Fatal(err)
	}
	s := startShim(t, bundleDir)
	cr, err := s.task.Create(ctx, &taskapi.CreateTaskRequest{
		ID: s.id, Bundle: bundleDir, Options: opts(t, parent),
		Rootfs: []*types.Mount{{Type: "bind", Source: lower, Options: []string{"rbind", "ro"}}},
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := s.task.Start(ctx, &taskapi.StartRequest{ID: s.id}); err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := syscall.Kill(s.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "shim death", func() bool { return !processAlive(s.pid) })
	if !processAlive(int(cr.Pid)) {
		t.Fatal("the container died with its shim")
	}
	out, err := s.cmd("-bundle", bundleDir, "delete").Output()
	if err != nil {
		t.Fatalf("shim delete: %v %s", err, stderrOf(err))
	}
	var dr taskapi.DeleteResponse
	if err := proto.Unmarshal(out, &dr); err != nil || dr.ExitStatus != 137 {
		t.Fatalf("delete response %v (%v), want exit status 137", &dr, err)
	}
	waitFor(t, "container death", func() bool { return !processAlive(int(cr.Pid)) })
	if mountedAt(b.Rootfs()) {
		t.Errorf("rootfs still mounted")
	}
}

// TestShimBadInput: each bad request gets an error of the right kind.
func TestShimBadInput(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("needs runc (Debian package runc; make deps installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	parent := t.TempDir()
	bundleDir := filepath.Join(parent, "bundle")
	makeBundle(t, bundleDir, "sleep", "1000")
	badToml := filepath.Join(parent, "bad.toml")
	if err := os.WriteFile(badToml, []byte("binary_nam = \"runc\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startShim(t, bundleDir)
	create := func(opts *anypb.Any) error {
		_, err := s.task.Create(ctx, &taskapi.CreateTaskRequest{ID: s.id, Bundle: bundleDir, Options: opts})
		return err
	}
	tests := []struct {
		name string
		call func() error
		want error
		msg  string
	}{
		{"options of unknown type", func() error { return create(&anypb.Any{TypeUrl: "example.com/Nope"}) }, errdefs.ErrInvalidArgument, "example.com/Nope"},
		{"runtime config with unknown key", func() error {
			return create(anyOf(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigPath: badToml}))
		}, errdefs.ErrInvalidArgument, "binary_nam"},
		{"runtime config missing", func() error {
			return create(anyOf(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigPath: "/nonexistent/hull.toml"}))
		}, errdefs.ErrInvalidArgument, "/nonexistent/hull.toml"},
		{"runtime binary missing", func() error {
			return create(anyOf(t, "containerd.runc.v1.Options", &runcoptions.Options{BinaryName: "no-such-runtime"}))
		}, errdefs.ErrNotFound, "no-such-runtime"},
		{"unknown mode", func() error {
			return create(anyOf(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigBody: []byte("mode = \"nosuch\"\n")}))
		}, errdefs.ErrNotImplemented, "nosuch"},
		{"start before create", func() error {
			_, err := s.task.Start(ctx, &taskapi.StartRequest{ID: s.id})
			return err
		}, errdefs.ErrNotFound, s.id},
		{"checkpoint", func() error {
			_, err := s.task.Checkpoint(ctx, &taskapi.CheckpointTaskRequest{ID: s.id})
			return err
		}, errdefs.ErrNotImplemented, "checkpoint"},
		{"create", func() error {
			return create(anyOf(t, "containerd.runc.v1.Options", &runcoptions.Options{BinaryName: "runc"}))
		}, nil, ""},
		{"create twice", func() error {
			return create(anyOf(t, "containerd.runc.v1.Options", &runcoptions.Options{BinaryName: "runc"}))
		}, errdefs.ErrAlreadyExists, s.id},
		{"other container id", func() error {
			_, err := s.task.State(ctx, &taskapi.StateRequest{ID: "other"})
			return err
		}, errdefs.ErrNotFound, "other"},
		{"unknown exec", func() error {
			_, err := s.task.Start(ctx, &taskapi.StartRequest{ID: s.id, ExecID: "nope"})
			return err
		}, errdefs.ErrNotFound, "nope"},
		{"exec id with a slash", func() error {
			_, err := s.task.Exec(ctx, &taskapi.ExecProcessRequest{ID: s.id, ExecID: "../x", Spec: &anypb.Any{Value: []byte("{}")}})
			return err
		}, errdefs.ErrInvalidArgument, "../x"},
		{"signal 0", func() error {
			_, err := s.task.Kill(ctx, &taskapi.KillRequest{ID: s.id, Signal: 0})
			return err
		}, errdefs.ErrInvalidArgument, "signal"},
		{"pause created", func() error {
			_, err := s.task.Pause(ctx, &taskapi.PauseRequest{ID: s.id})
			return err
		}, errdefs.ErrFailedPrecondition, "created"},
		{"exec before start", func() error {
			_, err := s.task.Exec(ctx, &taskapi.ExecProcessRequest{ID: s.id, ExecID: "e", Spec: &anypb.Any{Value: []byte("{}")}})
			return err
		}, errdefs.ErrFailedPrecondition, "created"},
		{"resize without terminal", func() error {
			_, err := s.task.ResizePty(ctx, &taskapi.ResizePtyRequest{ID: s.id, Width: 10, Height: 10})
			return err
		}, errdefs.ErrFailedPrecondition, "terminal"},
		{"delete created", func() error {
			_, err := s.task.Delete(ctx, &taskapi.DeleteRequest{ID: s.id})
			return err
		}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			native := errgrpc.ToNative(err)
			if !errors.Is(native, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not name %q", err, tt.msg)
			}
		})
	}
	if _, err := s.task.Shutdown(ctx, &taskapi.ShutdownRequest{ID: s.id}); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		t.Fatal(err)
	}
	waitFor(t, "shim exit", func() bool { return !processAlive(s.pid) })
}

// makeBundle is testutil.MakeBundle with an ociVersion every runtime here
// takes (crun 1.8 refuses 1.3.0).
func makeBundle(t *testing.T, dir string, args ...string) *testutil.Bundle {
	t.Helper()
	b, err := testutil.MakeBundle(dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	b.Spec.Version = "1.0.2"
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// TestShimFailedCreate: a create the runtime refuses returns the runtime's
// reason and leaves no mount, cgroup or runtime state; the same shim then
// creates the container once the bundle is fixed.
func TestShimFailedCreate(t *testing.T) {
	testutil.RequireRoot(t)
	for name, opts := range ociRuntimes(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			parent := t.TempDir()
			bundleDir := filepath.Join(parent, "bundle")
			b := makeBundle(t, bundleDir, "true")
			lower := filepath.Join(parent, "lower")
			if err := os.Rename(b.Rootfs(), lower); err != nil {
				t.Fatal(err)
			}
			cgroup := fmt.Sprintf("/hulltest/%s-%d", name, time.Now().UnixNano())
			b.Spec.Linux.CgroupsPath = cgroup
			b.Spec.Process.Cwd = "relative/cwd"
			if err := b.Save(); err != nil {
				t.Fatal(err)
			}
			s := startShim(t, bundleDir)
			req := &taskapi.CreateTaskRequest{
				ID: s.id, Bundle: bundleDir, Options: opts(t, parent),
				Rootfs: []*types.Mount{{Type: "bind", Source: lower, Options: []string{"rbind", "rw"}}},
			}
			_, err := s.task.Create(ctx, req)
			if err == nil {
				t.Fatal("create with a relative cwd succeeded")
			}
			if !strings.Contains(strings.ToLower(err.Error()), "cwd") {
				t.Errorf("error %q does not give the runtime's reason (cwd)", err)
			}
			if mountedAt(b.Rootfs()) {
				t.Error("failed create left the rootfs mounted")
			}
			if fileExists(filepath.Join("/sys/fs/cgroup/memory", cgroup)) {
				t.Errorf("failed create left cgroup %s", cgroup)
			}
			if fileExists(filepath.Join(shim.DefaultRoot, s.ns, s.id)) {
				t.Error("failed create left runtime state")
			}
			b.Spec.Process.Cwd = "/"
			if err := b.Save(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.task.Create(ctx, req); err != nil {
				t.Fatalf("create after fixing the bundle: %v", err)
			}
			if _, err := s.task.Delete(ctx, &taskapi.DeleteRequest{ID: s.id}); err != nil {
				t.Fatalf("delete: %v", err)
			}
			if mountedAt(b.Rootfs()) {
				t.Error("delete left the rootfs mounted")
			}
			removeCgroupParent("hulltest")
		})
	}
}

// TestShimInfo: `-info` (containerd 2.x introspection) prints a RuntimeInfo
// and validates the options given on stdin.
func TestShimInfo(t *testing.T) {
	bin := shimBinary(t)
	cmd := exec.Command(bin, "-info")
	cmd.Stdin = bytes.NewReader(nil)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("-info: %v %s", err, stderrOf(err))
	}
	var info types.RuntimeInfo
	if err := proto.Unmarshal(out, &info); err != nil || info.Name != "io.containerd.hull.v2" {
		t.Fatalf("-info printed %v (%v)", &info, err)
	}
	opts, _ := proto.Marshal(anyOf(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigBody: []byte("mode = \"warp\"\n")}))
	cmd = exec.Command(bin, "-info")
	cmd.Stdin = bytes.NewReader(opts)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), `"warp"`) {
		t.Fatalf("-info with an unknown mode: %v %s, want an error naming it", err, out)
	}
}

// TestShimTrimPIE: the idle trim leaves a position-independent build
// working (its relocated read-only pages are private copies the trim must
// keep), and serving with -socket works without `start`.
func TestShimTrimPIE(t *testing.T) {
	if raceDir != "" {
		t.Skip("HULL_SHIM_RACE: the race detector cannot build a PIE")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "shim-pie")
	if err := buildShim(bin, "-buildmode=pie"); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	cmd := exec.Command(bin, "-namespace", "hulltest", "-id", "pie", "-socket", sock)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	waitFor(t, "socket", func() bool { return fileExists(sock) })
	call := func() {
		t.Helper()
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		client := ttrpc.NewClient(conn)
		defer client.Close()
		task := taskapi.NewTaskClient(client)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := task.Connect(ctx, &taskapi.ConnectRequest{ID: "pie"})
		if err != nil || int(r.ShimPid) != cmd.Process.Pid {
			t.Fatalf("connect: %v %v", r, err)
		}
		if _, err := task.State(ctx, &taskapi.StateRequest{ID: "pie"}); !errors.Is(errgrpc.ToNative(err), errdefs.ErrNotFound) {
			t.Fatalf("state before create: %v, want not found", err)
		}
	}
	// Calls before and after the trims that follow start-up and each call.
	for i := 0; i < 3; i++ {
		call()
		time.Sleep(800 * time.Millisecond)
	}
	if !processAlive(cmd.Process.Pid) {
		t.Fatal("shim died")
	}
}
