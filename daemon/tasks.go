package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/fifo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
	"github.com/hullproject/hull/config"
	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/network"
)

// Process statuses.
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusPaused  = "paused"
	StatusStopped = "stopped"
	StatusUnknown = "unknown"
)

// taskFile is what a task needs to be found again after a restart
// (<bundle>/task.json).
type taskFile struct {
	Runtime    string              `json:"runtime"`
	Type       string              `json:"type"`
	Shim       string              `json:"shim"`
	Address    string              `json:"address"`
	Terminal   bool                `json:"terminal,omitempty"`
	Stdin      bool                `json:"stdin,omitempty"`
	Pid        uint32              `json:"pid,omitempty"`
	Started    bool                `json:"started,omitempty"`
	Execs      map[string]execFile `json:"execs,omitempty"`
	Exited     bool                `json:"exited,omitempty"`
	ExitStatus uint32              `json:"exitStatus,omitempty"`
	ExitedAt   time.Time           `json:"exitedAt,omitzero"`
}

// execFile is what task.json keeps of an exec process.
type execFile struct {
	Terminal bool `json:"terminal,omitempty"`
	Stdin    bool `json:"stdin,omitempty"`
	Started  bool `json:"started,omitempty"`
}

// proc is one process of a task: init ("") or an exec.
type proc struct {
	execID   string
	terminal bool
	pump     *pump
	exited   chan struct{}

	mu         sync.Mutex
	pid        uint32
	status     string
	exitStatus uint32
	exitedAt   time.Time
}

func (p *proc) snapshot() (uint32, string, uint32, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid, p.status, p.exitStatus, p.exitedAt
}

// task is a container's running (or stopped, not yet deleted) task.
type task struct {
	ns, id, bundle string
	file           taskFile
	shim           *shimConn
	grace          time.Duration // wait for late output after an exit
	shimLog        io.Closer

	mu    sync.Mutex
	init  *proc
	execs map[string]*proc
	dead  bool // the shim is gone (cleaned up with `shim delete`)

	netMu   sync.Mutex
	netDone bool // the container's network attachment is gone
}

// shimConn returns the task's shim connection, or an error when the shim
// is gone.
func (t *task) liveShim() (*shimConn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead || t.shim == nil {
		return nil, fmt.Errorf("task of container %q: its shim is gone: %w", t.id, errdefs.ErrFailedPrecondition)
	}
	return t.shim, nil
}

func (t *task) isDead() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dead
}

func (t *task) save() error {
	t.mu.Lock()
	data, err := json.Marshal(t.file)
	t.mu.Unlock()
	if err != nil {
		return err
	}
	tmp := filepath.Join(t.bundle, "task.json.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(t.bundle, "task.json"))
}

func (t *task) proc(execID string) (*proc, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if execID == "" {
		return t.init, nil
	}
	p, ok := t.execs[execID]
	if !ok {
		return nil, fmt.Errorf("exec %q in container %q: %w", execID, t.id, errdefs.ErrNotFound)
	}
	return p, nil
}

// tasks manages the daemon's tasks.
type tasks struct {
	d        *Daemon
	launcher *shimLauncher
	ctx      context.Context // ends when the daemon stops

	mu       sync.Mutex
	m        map[string]*task
	creating map[string]bool
	// closing holds, per container, a channel closed once the shim of its
	// deleted task has gone: a new shim for the same id must not find the
	// old one still serving its socket.
	closing map[string]chan struct{}
}

func taskKey(ns, id string) string { return ns + "/" + id }

func (ts *tasks) get(ns, id string) (*task, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t, ok := ts.m[taskKey(ns, id)]
	if !ok {
		return nil, fmt.Errorf("task of container %q: %w", id, errdefs.ErrNotFound)
	}
	return t, nil
}

func (ts *tasks) bundle(ns, id string) string {
	return filepath.Join(ts.d.cfg.State, "tasks", ns, id)
}

// runtime resolves a configured runtime's shim binary.
func (ts *tasks) runtime(name string) (config.Runtime, string, error) {
	rt, ok := ts.d.cfg.Runtimes[name]
	if !ok {
		return rt, "", fmt.Errorf("runtime %q is not configured (have %s): %w", name, strings.Join(ts.d.cfg.RuntimeNames(), ", "), errdefs.ErrNotFound)
	}
	bin, err := config.ShimBinary(rt.Type)
	if err != nil {
		return rt, "", err
	}
	path, err := findBinary(bin)
	if err != nil {
		return rt, "", fmt.Errorf("runtime %q: %w", name, err)
	}
	return rt, path, nil
}

func mkfifo(path string) error {
	if err := syscall.Mkfifo(path, 0o600); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("mkfifo %s: %w", path, err)
	}
	return nil
}

// stdioPaths are the fifos of a process ("" for an exec's prefix gives
// the init's).
func stdioPaths(bundle, execID string, terminal, stdin bool) (out, errp, in string) {
	prefix := "init-"
	if execID != "" {
		prefix = "exec-" + execID + "-"
	}
	out = filepath.Join(bundle, prefix+"stdout")
	if !terminal {
		errp = filepath.Join(bundle, prefix+"stderr")
	}
	if stdin {
		in = filepath.Join(bundle, prefix+"stdin")
	}
	return
}

func makeFifos(paths ...string) error {
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := mkfifo(p); err != nil {
			return err
		}
	}
	return nil
}

// openShimLog makes the "log" fifo the shims write their own log to and
// copies it into shim.log.
func openShimLog(bundle string) (io.Closer, error) {
	path := filepath.Join(bundle, "log")
	r, err := fifo.OpenFifo(context.Background(), path, syscall.O_RDONLY|syscall.O_CREAT|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, fmt.Errorf("shim log fifo: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(bundle, "shim.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		r.Close()
		return nil, err
	}
	go func() {
		_, _ = io.Copy(f, r)
		f.Close()
	}()
	return r, nil
}

func (ts *tasks) logPath(ns, id string) string {
	return filepath.Join(ts.d.cfg.Root, "logs", ns, id+".log")
}

func (ts *tasks) openLog(ns, id string) (io.WriteCloser, error) {
	p := ts.logPath(ns, id)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
}

// hullShimType is the runtime type of Hull's own shim.
const hullShimType = "io.containerd.hull.v2"

// graceFor is how long to wait for output after an exit: Hull's shim
// drains output before it reports an exit; others may still be copying.
func graceFor(typ string) time.Duration {
	if typ == hullShimType {
		return 0
	}
	return 50 * time.Millisecond
}

// create starts the shim of container c and creates its init process.
func (ts *tasks) create(ctx context.Context, ns string, c Container) (_ *task, err error) {
	key := taskKey(ns, c.ID)
	ts.mu.Lock()
	if _, ok := ts.m[key]; ok || ts.creating[key] {
		ts.mu.Unlock()
		return nil, fmt.Errorf("task of container %q: %w", c.ID, errdefs.ErrAlreadyExists)
	}
	ts.creating[key] = true
	gone := ts.closing[key]
	ts.mu.Unlock()
	if gone != nil {
		select {
		case <-gone:
		case <-ctx.Done():
			ts.mu.Lock()
			delete(ts.creating, key)
			ts.mu.Unlock()
			return nil, ctx.Err()
		}
	}
	defer func() {
		ts.mu.Lock()
		delete(ts.creating, key)
		ts.mu.Unlock()
	}()

	rt, shimBin, err := ts.runtime(c.Runtime)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(c.Spec, &spec); err != nil {
		return nil, fmt.Errorf("container %q: spec: %v: %w", c.ID, err, errdefs.ErrInvalidArgument)
	}
	terminal := spec.Process != nil && spec.Process.Terminal
	mounts, err := ts.d.images.Snapshotter.Mounts(ctx, c.SnapshotKey)
	if err != nil {
		return nil, fmt.Errorf("container %q: rootfs: %w", c.ID, err)
	}
	opts, err := runtimeOptions(rt)
	if err != nil {
		return nil, fmt.Errorf("runtime %q: %w", c.Runtime, err)
	}

	bundle := ts.bundle(ns, c.ID)
	if err := os.MkdirAll(filepath.Dir(bundle), 0o711); err != nil {
		return nil, err
	}
	if err := os.Mkdir(bundle, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("task of container %q: bundle %s is left over: %w", c.ID, bundle, errdefs.ErrAlreadyExists)
		}
		return nil, err
	}
	t := &task{ns: ns, id: c.ID, bundle: bundle, grace: graceFor(rt.Type), execs: map[string]*proc{},
		file: taskFile{Runtime: c.Runtime, Type: rt.Type, Shim: shimBin, Terminal: terminal, Stdin: c.Stdin}}
	defer func() {
		if err != nil {
			ts.undoCreate(t)
		}
	}()
	if err := ts.setupNetwork(ctx, ns, c, rt, &spec, bundle, mounts); err != nil {
		return nil, err
	}
	specJSON, err := json.Marshal(&spec)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), specJSON, 0o600); err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(bundle, "rootfs"), 0o711); err != nil {
		return nil, err
	}
	out, errp, in := stdioPaths(bundle, "", terminal, c.Stdin)
	if err := makeFifos(out, errp, in); err != nil {
		return nil, err
	}
	logw, err := ts.openLog(ns, c.ID)
	if err != nil {
		return nil, err
	}
	pp, err := openPump(out, errp, in, logw)
	if err != nil {
		logw.Close()
		return nil, fmt.Errorf("stdio: %w", err)
	}
	t.init = &proc{terminal: terminal, pump: pp, exited: make(chan struct{}), status: StatusCreated}
	if t.shimLog, err = openShimLog(bundle); err != nil {
		return nil, err
	}
	t0 := time.Now()
	if t.shim, err = ts.launcher.start(ctx, rt.Type, shimBin, ns, c.ID, bundle); err != nil {
		return nil, fmt.Errorf("runtime %q: %w", c.Runtime, err)
	}
	t.file.Address = t.shim.address
	if err := t.save(); err != nil {
		return nil, err
	}
	req := &taskapi.CreateTaskRequest{ID: c.ID, Bundle: bundle, Terminal: terminal, Stdin: in, Stdout: out, Stderr: errp, Options: opts}
	for _, m := range mounts {
		req.Rootfs = append(req.Rootfs, &types.Mount{Type: m.Type, Source: m.Source, Options: m.Options})
	}
	t1 := time.Now()
	resp, err := t.shim.task.Create(t.shim.ctx(ctx), req)
	slog.Debug("task create", "id", c.ID, "shim-start", t1.Sub(t0), "shim-create", time.Since(t1))
	if err != nil {
		return nil, fmt.Errorf("create task %q (runtime %q): %w", c.ID, c.Runtime, errgrpc.ToNative(err))
	}
	if containerNetwork(c) == network.None && !isVM(rt) {
		if err := loopbackUp(resp.Pid); err != nil {
			return nil, fmt.Errorf("container %q: --net none: %w", c.ID, err)
		}
	}
	t.init.pid = resp.Pid
	t.file.Pid = resp.Pid
	if err := t.save(); err != nil {
		return nil, err
	}
	ts.mu.Lock()
	ts.m[key] = t
	ts.mu.Unlock()
	go ts.watch(t, t.init)
	return t, nil
}

// undoCreate removes what a failed create made: the shim, fifos, bundle.
func (ts *tasks) undoCreate(t *task) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if t.shim != nil {
		// The shim undid its own part of a failed Create; stop it.
		_, _ = t.shim.task.Shutdown(t.shim.ctx(ctx), &taskapi.ShutdownRequest{ID: t.id, Now: true})
		t.shim.close()
		_, _ = ts.launcher.cleanup(ctx, t.file.Shim, t.ns, t.id, t.bundle)
		ts.launcher.removeSocket(t.shim.address)
	}
	if t.init != nil {
		t.init.pump.close()
	}
	if t.shimLog != nil {
		t.shimLog.Close()
	}
	ts.detachTask(t)
	ts.removeBundle(t.bundle)
}

// removeBundle deletes a task's directory, unmounting a rootfs a shim
// may have left.
func (ts *tasks) removeBundle(bundle string) {
	rootfs := filepath.Join(bundle, "rootfs")
	_ = mount.UnmountAll(rootfs, 0)
	if err := os.RemoveAll(bundle); err != nil {
		slog.Warn("remove bundle", "bundle", bundle, "err", err)
	}
}

// watch waits for a process to exit and records it.
func (ts *tasks) watch(t *task, p *proc) {
	r, err := t.shim.task.Wait(t.shim.ctx(ts.ctx), &taskapi.WaitRequest{ID: t.id, ExecID: p.execID})
	if ts.ctx.Err() != nil {
		return // the daemon is stopping: the shim keeps the exit for later
	}
	var status uint32
	var at time.Time
	if err != nil {
		// The shim is gone: clean up after it.
		slog.Warn("shim lost", "ns", t.ns, "id", t.id, "exec", p.execID, "err", err)
		status, at = ts.shimDied(t)
	} else {
		status, at = r.ExitStatus, r.ExitedAt.AsTime()
	}
	ts.exited(t, p, status, at, true)
}

// shimDied cleans up after a dead shim and returns the exit it reports.
func (ts *tasks) shimDied(t *task) (uint32, time.Time) {
	t.mu.Lock()
	already := t.dead
	t.dead = true
	t.mu.Unlock()
	if already {
		return 128 + uint32(syscall.SIGKILL), time.Now()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := ts.launcher.cleanup(ctx, t.file.Shim, t.ns, t.id, t.bundle)
	ts.launcher.removeSocket(t.file.Address)
	if err != nil {
		slog.Warn("shim delete", "ns", t.ns, "id", t.id, "err", err)
		return 128 + uint32(syscall.SIGKILL), time.Now()
	}
	return r.ExitStatus, r.ExitedAt.AsTime()
}

// exited records a process's exit, drains its output and reports it.
func (ts *tasks) exited(t *task, p *proc, status uint32, at time.Time, publish bool) {
	p.mu.Lock()
	if p.status == StatusStopped {
		p.mu.Unlock()
		return
	}
	p.status, p.exitStatus, p.exitedAt = StatusStopped, status, at
	p.mu.Unlock()
	if p.pump != nil {
		p.pump.drain(t.grace)
	}
	if p.execID == "" {
		t.mu.Lock()
		t.file.Exited, t.file.ExitStatus, t.file.ExitedAt = true, status, at
		t.mu.Unlock()
		if err := t.save(); err != nil {
			slog.Warn("save task", "id", t.id, "err", err)
		}
		// Its ports and address are free once the container has ended.
		// The detach (CNI DEL: plugin runs and iptables, ~100 ms) goes on
		// beside the exit's report rather than before it: an Attach that
		// wants its ports, and a network rm, wait for it (Releasing), and
		// a delete of the task waits for it (detachTask).
		ts.d.net.Releasing(netID(t.ns, t.id))
		ts.d.background(func() { ts.detachTask(t) })
	}
	close(p.exited)
	if publish {
		ev := &hullv1.Event{Namespace: t.ns, Topic: "/tasks/exit", ContainerId: t.id, ExecId: p.execID, ExitStatus: status, Timestamp: timestamppb.New(at)}
		ev.Pid, _, _, _ = p.snapshot()
		ts.d.events.publish(ev)
	}
}

func (ts *tasks) start(ctx context.Context, ns, id, execID string) (*proc, error) {
	t, err := ts.get(ns, id)
	if err != nil {
		return nil, err
	}
	p, err := t.proc(execID)
	if err != nil {
		return nil, err
	}
	if _, err := t.liveShim(); err != nil {
		return nil, err
	}
	r, err := t.shim.task.Start(t.shim.ctx(ctx), &taskapi.StartRequest{ID: id, ExecID: execID})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", procName(id, execID), errgrpc.ToNative(err))
	}
	p.mu.Lock()
	p.pid = r.Pid
	if p.status == StatusCreated {
		p.status = StatusRunning
	}
	p.mu.Unlock()
	t.mu.Lock()
	if execID == "" {
		t.file.Started, t.file.Pid = true, r.Pid
	} else if e, ok := t.file.Execs[execID]; ok {
		e.Started = true
		t.file.Execs[execID] = e
	}
	t.mu.Unlock()
	_ = t.save()
	return p, nil
}

func procName(id, execID string) string {
	if execID == "" {
		return fmt.Sprintf("container %q", id)
	}
	return fmt.Sprintf("exec %q of container %q", execID, id)
}

func (ts *tasks) kill(ctx context.Context, ns, id, execID string, sig uint32, all bool) error {
	t, err := ts.get(ns, id)
	if err != nil {
		return err
	}
	if _, err := t.proc(execID); err != nil {
		return err
	}
	if t.isDead() {
		return fmt.Errorf("%s: not running: %w", procName(id, execID), errdefs.ErrNotFound)
	}
	if _, err := t.shim.task.Kill(t.shim.ctx(ctx), &taskapi.KillRequest{ID: id, ExecID: execID, Signal: sig, All: all}); err != nil {
		return fmt.Errorf("kill %s: %w", procName(id, execID), errgrpc.ToNative(err))
	}
	return nil
}

// wait waits for a process to exit.
func (ts *tasks) wait(ctx context.Context, ns, id, execID string) (*proc, error) {
	t, err := ts.get(ns, id)
	if err != nil {
		return nil, err
	}
	p, err := t.proc(execID)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
		return p, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// exec adds a process to a running task.
func (ts *tasks) exec(ctx context.Context, ns, id, execID string, pc *hullv1.ProcessConfig) (err error) {
	if err := validateID("exec", execID); err != nil {
		return err
	}
	t, err := ts.get(ns, id)
	if err != nil {
		return err
	}
	if _, st, _, _ := t.init.snapshot(); st != StatusRunning {
		return fmt.Errorf("container %q is %s: %w", id, st, errdefs.ErrFailedPrecondition)
	}
	if _, err := t.liveShim(); err != nil {
		return err
	}
	if len(pc.GetArgs()) == 0 {
		return fmt.Errorf("exec: no command given: %w", errdefs.ErrInvalidArgument)
	}
	var spec specs.Spec
	data, err := os.ReadFile(filepath.Join(t.bundle, "config.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return err
	}
	proc0 := *spec.Process
	proc0.Args = pc.Args
	proc0.Terminal = pc.Tty
	proc0.Env = append(append([]string{}, proc0.Env...), pc.Env...)
	if pc.Cwd != "" {
		proc0.Cwd = pc.Cwd
	}
	if pc.User != "" {
		// The rootfs is mounted in the bundle while the task runs: names
		// are looked up in its /etc/passwd and /etc/group.
		s := &specs.Spec{Root: &specs.Root{Path: filepath.Join(t.bundle, "rootfs")}, Process: &proc0}
		if err := applyUser(s, pc.User); err != nil {
			return err
		}
	}
	specJSON, err := json.Marshal(&proc0)
	if err != nil {
		return err
	}
	t.mu.Lock()
	if _, ok := t.execs[execID]; ok {
		t.mu.Unlock()
		return fmt.Errorf("exec %q in container %q: %w", execID, id, errdefs.ErrAlreadyExists)
	}
	p := &proc{execID: execID, terminal: pc.Tty, exited: make(chan struct{}), status: StatusCreated}
	t.execs[execID] = p
	t.mu.Unlock()
	out, errp, in := stdioPaths(t.bundle, execID, pc.Tty, pc.Stdin)
	defer func() {
		if err != nil {
			t.mu.Lock()
			delete(t.execs, execID)
			t.mu.Unlock()
			if p.pump != nil {
				p.pump.close()
			}
			for _, f := range []string{out, errp, in} {
				if f != "" {
					os.Remove(f)
				}
			}
		}
	}()
	if err := makeFifos(out, errp, in); err != nil {
		return err
	}
	if p.pump, err = openPump(out, errp, in, nil); err != nil {
		return err
	}
	_, err = t.shim.task.Exec(t.shim.ctx(ctx), &taskapi.ExecProcessRequest{
		ID: id, ExecID: execID, Terminal: pc.Tty, Stdin: in, Stdout: out, Stderr: errp,
		Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: specJSON},
	})
	if err != nil {
		return fmt.Errorf("exec %q in container %q: %w", execID, id, errgrpc.ToNative(err))
	}
	t.mu.Lock()
	if t.file.Execs == nil {
		t.file.Execs = map[string]execFile{}
	}
	t.file.Execs[execID] = execFile{Terminal: pc.Tty, Stdin: pc.Stdin}
	t.mu.Unlock()
	_ = t.save()
	go ts.watchWhenStarted(t, p)
	return nil
}

// watchWhenStarted waits for an exec's exit once it has started (a shim's
// Wait on a created exec would return at once on some shims).
func (ts *tasks) watchWhenStarted(t *task, p *proc) {
	for {
		_, st, _, _ := p.snapshot()
		if st != StatusCreated {
			break
		}
		select {
		case <-ts.ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
		t.mu.Lock()
		_, still := t.execs[p.execID]
		t.mu.Unlock()
		if !still {
			return
		}
	}
	ts.watch(t, p)
}

// delete removes a process, or the whole task (init) with its shim.
func (ts *tasks) delete(ctx context.Context, ns, id, execID string, force bool) (*proc, error) {
	t, err := ts.get(ns, id)
	if err != nil {
		return nil, err
	}
	p, err := t.proc(execID)
	if err != nil {
		return nil, err
	}
	_, st, _, _ := p.snapshot()
	if st != StatusStopped && st != StatusCreated {
		if !force {
			return nil, fmt.Errorf("%s is %s: stop it first, or force: %w", procName(id, execID), st, errdefs.ErrFailedPrecondition)
		}
		_ = ts.kill(ctx, ns, id, execID, uint32(syscall.SIGKILL), execID == "")
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := ts.wait(wctx, ns, id, execID)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s did not stop after SIGKILL: %w", procName(id, execID), err)
		}
	}
	if execID != "" {
		if _, err := t.shim.task.Delete(t.shim.ctx(ctx), &taskapi.DeleteRequest{ID: id, ExecID: execID}); err != nil && !errdefs.IsNotFound(errgrpc.ToNative(err)) {
			return nil, fmt.Errorf("delete %s: %w", procName(id, execID), errgrpc.ToNative(err))
		}
		t.mu.Lock()
		delete(t.execs, execID)
		delete(t.file.Execs, execID)
		t.mu.Unlock()
		_ = t.save()
		p.pump.close()
		out, errp, in := stdioPaths(t.bundle, execID, p.terminal, true)
		for _, f := range []string{out, errp, in} {
			if f != "" {
				os.Remove(f)
			}
		}
		return p, nil
	}
	t.mu.Lock()
	dead := t.dead
	t.mu.Unlock()
	if !dead {
		if st == StatusCreated {
			// Never started: the shim's Delete kills the created init.
			_ = ts.kill(ctx, ns, id, "", uint32(syscall.SIGKILL), true)
		}
		t0 := time.Now()
		r, err := t.shim.task.Delete(t.shim.ctx(ctx), &taskapi.DeleteRequest{ID: id})
		slog.Debug("shim delete", "id", id, "took", time.Since(t0))
		if err != nil && !errdefs.IsNotFound(errgrpc.ToNative(err)) {
			return nil, fmt.Errorf("delete %s: %w", procName(id, ""), errgrpc.ToNative(err))
		}
		if err == nil && st == StatusCreated {
			ts.exited(t, p, r.ExitStatus, r.ExitedAt.AsTime(), false)
		}
		gone := make(chan struct{})
		ts.mu.Lock()
		ts.closing[taskKey(ns, id)] = gone
		ts.mu.Unlock()
		go func(sc *shimConn) {
			// The shim exits after Shutdown; a new task of the same id
			// waits for that (closing), the caller does not.
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = sc.task.Shutdown(sc.ctx(sctx), &taskapi.ShutdownRequest{ID: id})
			cancel()
			wctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			if sc.client.UserOnCloseWait(wctx) == nil {
				ts.launcher.removeSocket(sc.address)
			}
			cancel()
			sc.close()
			ts.mu.Lock()
			if ts.closing[taskKey(ns, id)] == gone {
				delete(ts.closing, taskKey(ns, id))
			}
			ts.mu.Unlock()
			close(gone)
		}(t.shim)
	}
	ts.mu.Lock()
	delete(ts.m, taskKey(ns, id))
	ts.mu.Unlock()
	ts.released(ns, id, t, p)
	return p, nil
}

// released drops what hulld holds for a deleted task: the output pumps of
// its processes, the shim log and the bundle; then it publishes
// /tasks/delete with the init's exit status.
func (ts *tasks) released(ns, id string, t *task, p *proc) {
	t.mu.Lock()
	execs := t.execs
	t.execs = map[string]*proc{}
	t.mu.Unlock()
	for _, e := range execs {
		e.pump.close()
	}
	p.pump.close()
	if t.shimLog != nil {
		t.shimLog.Close()
	}
	ts.detachTask(t)
	ts.removeBundle(t.bundle)
	_, _, status, at := p.snapshot()
	ts.d.events.publish(&hullv1.Event{Namespace: ns, Topic: "/tasks/delete", ContainerId: id, ExitStatus: status, Timestamp: timestamppb.New(at)})
}

// state asks the shim for a process's live status (paused shows here).
func (ts *tasks) state(ctx context.Context, t *task, p *proc) string {
	_, st, _, _ := p.snapshot()
	if st != StatusRunning || t.isDead() {
		return st
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := t.shim.task.State(t.shim.ctx(ctx), &taskapi.StateRequest{ID: t.id, ExecID: p.execID})
	if err != nil {
		return StatusUnknown
	}
	switch r.Status {
	case tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
		return StatusPaused
	case tasktypes.Status_STOPPED:
		return StatusStopped
	}
	return st
}

func (ts *tasks) list(ns string) []*task {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []*task
	for _, t := range ts.m {
		if t.ns == ns {
			out = append(out, t)
		}
	}
	return out
}

// closeAll lets go of every shim without stopping it (daemon shutdown).
func (ts *tasks) closeAll() {
	ts.mu.Lock()
	all := ts.m
	ts.mu.Unlock()
	for _, t := range all {
		t.mu.Lock()
		procs := []*proc{t.init}
		for _, e := range t.execs {
			procs = append(procs, e)
		}
		t.mu.Unlock()
		for _, p := range procs {
			p.pump.close()
		}
		t.shim.close()
		if t.shimLog != nil {
			t.shimLog.Close()
		}
	}
}

// rootfsDiscardedFile in a task's bundle tells its shim, before Delete,
// that the rootfs is discarded with the container (shim.RootfsDiscardedFile:
// the vm shim then quits the VM without asking the guest to flush it).
const rootfsDiscardedFile = "rootfs-discarded"

// deleteLater takes a container's task out of the table, killing its
// processes first if they run, and returns the rest of the delete (shim
// Delete and Shutdown, stdio, bundle) to run in the background, and a
// channel closed once the container's resources are gone: the shim's
// Delete returned (the processes, a VM, the rootfs mount) and the network
// is detached, the two side by side. The caller waits for that; the shim's
// exit, the fifos and the bundle follow, and a new task of the same id
// waits until they are done.
func (ts *tasks) deleteLater(ctx context.Context, ns, id string) (func(), <-chan struct{}, error) {
	t, err := ts.get(ns, id)
	if err != nil {
		return nil, nil, err
	}
	p := t.init
	if _, st, _, _ := p.snapshot(); st != StatusStopped && st != StatusCreated {
		_ = ts.kill(ctx, ns, id, "", uint32(syscall.SIGKILL), true)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := ts.wait(wctx, ns, id, "")
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("%s did not stop after SIGKILL: %w", procName(id, ""), err)
		}
	}
	_, st, _, _ := p.snapshot()
	key := taskKey(ns, id)
	gone := make(chan struct{})
	ts.mu.Lock()
	delete(ts.m, key)
	ts.closing[key] = gone
	ts.mu.Unlock()
	freed := make(chan struct{})
	return func() {
		defer func() {
			ts.mu.Lock()
			if ts.closing[key] == gone {
				delete(ts.closing, key)
			}
			ts.mu.Unlock()
			close(gone)
		}()
		// The detach runs beside the shim's Delete (it began at the exit
		// already, unless the task never started).
		detached := make(chan struct{})
		go func() {
			defer close(detached)
			ts.detachTask(t)
		}()
		freedOnce := sync.OnceFunc(func() {
			<-detached
			close(freed)
		})
		defer freedOnce()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if sc, err := t.liveShim(); err == nil {
			if st == StatusCreated {
				_, _ = sc.task.Kill(sc.ctx(ctx), &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGKILL), All: true})
			}
			// The container goes, its rw layer with it: a shim need not
			// flush what it still holds of the rootfs (a VM quits at once).
			if err := os.WriteFile(filepath.Join(t.bundle, rootfsDiscardedFile), nil, 0o600); err != nil {
				slog.Debug("mark the rootfs discarded", "id", id, "err", err)
			}
			if r, err := sc.task.Delete(sc.ctx(ctx), &taskapi.DeleteRequest{ID: id}); err != nil && !errdefs.IsNotFound(errgrpc.ToNative(err)) {
				slog.Warn("shim delete", "ns", ns, "id", id, "err", err)
			} else if err == nil && st == StatusCreated {
				ts.exited(t, p, r.ExitStatus, r.ExitedAt.AsTime(), false)
			}
			freedOnce()
			sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
			_, _ = sc.task.Shutdown(sc.ctx(sctx), &taskapi.ShutdownRequest{ID: id})
			scancel()
			wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
			if sc.client.UserOnCloseWait(wctx) == nil {
				ts.launcher.removeSocket(sc.address)
			} else {
				// It did not go: make sure nothing of the container stays.
				killShim(t.bundle)
				_, _ = ts.launcher.cleanup(ctx, t.file.Shim, ns, id, t.bundle)
				ts.launcher.removeSocket(sc.address)
			}
			wcancel()
			sc.close()
		}
		ts.released(ns, id, t, p)
	}, freed, nil
}
