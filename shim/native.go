package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// Native runs a container on the host through a runc-compatible OCI
// runtime CLI (hull-runtime, runc, crun), driven by go-runc.
type Native struct {
	id, bundle string
	rt         *runc.Runc
	rootfs     string // mounted by the shim; "" when the bundle had one already

	mu    sync.Mutex
	procs map[string]*nativeProc
	// While a runtime call that creates a process is running, exits of
	// pids not yet known are kept here: the process can end before its pid
	// file is read.
	inflight int
	early    map[int]Exit

	sub       *subscription
	closed    bool
	sharedPid bool // no pid namespace of its own: kill all when init ends
}

type nativeProc struct {
	io      *procIO
	spec    *specs.Process // exec'd processes
	pid     int
	exit    Exit
	done    chan struct{}
	ended   bool
	started bool
}

// NewNative makes a native backend. The reaper must be running
// (StartReaper) before its first call.
func NewNative() *Native {
	return &Native{procs: map[string]*nativeProc{}, early: map[int]Exit{}}
}

// stateFile is where Create records what `shim delete` needs to clean up
// after a shim that died: the runtime binary, its root and the rootfs.
const stateFile = "hull-shim.json"

type nativeState struct {
	ID      string `json:"id"`
	Binary  string `json:"binary"`
	Root    string `json:"root"`
	Systemd bool   `json:"systemd_cgroup,omitempty"`
	Rootfs  string `json:"rootfs,omitempty"`
}

func newRunc(binary, root, bundle string, systemd bool) *runc.Runc {
	return &runc.Runc{
		Command:       binary,
		Root:          root,
		Log:           filepath.Join(bundle, "runtime-log.json"),
		LogFormat:     runc.JSON,
		SystemdCgroup: systemd,
		Setpgid:       true,
	}
}

// call runs one runtime CLI call; when it fails, the error carries the
// last error the runtime logged during that call.
func (n *Native) call(op string, f func() error) error {
	var off int64
	if fi, err := os.Stat(n.rt.Log); err == nil {
		off = fi.Size()
	}
	err := f()
	if err == nil {
		return nil
	}
	if msg := lastLogError(n.rt.Log, off); msg != "" {
		return fmt.Errorf("%s %s: %s: %w", filepath.Base(n.rt.Command), op, msg, err)
	}
	return fmt.Errorf("%s %s: %w", filepath.Base(n.rt.Command), op, err)
}

// lastLogError is the msg of the last error-level line of a runc-style
// JSON log, from byte offset off on.
func lastLogError(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return ""
	}
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && (l.Level == "error" || l.Level == "fatal") {
			last = l.Msg
		}
	}
	return last
}

func (n *Native) Create(ctx context.Context, c *CreateConfig) (pid int, err error) {
	binary, err := c.Options.RuntimeBinary()
	if err != nil {
		return 0, err
	}
	n.id, n.bundle = c.ID, c.Bundle
	n.rt = newRunc(binary, c.Options.RuntimeRoot(c.Namespace), c.Bundle, c.Options.SystemdCgroup)

	spec, err := readSpec(c.Bundle)
	if err != nil {
		return 0, err
	}
	n.sharedPid = !ownPidNamespace(spec)

	// A failed create leaves nothing: no runtime state, mount, stdio or
	// state file.
	var pio *procIO
	created := false
	defer func() {
		if err == nil {
			return
		}
		if created {
			_ = n.rt.Delete(context.WithoutCancel(ctx), c.ID, &runc.DeleteOpts{Force: true})
		}
		if pio != nil {
			pio.close()
		}
		if n.sub != nil {
			defaultReaper.unsubscribe(n.sub)
			n.sub = nil
		}
		if n.rootfs != "" {
			_ = unmountAll(n.rootfs)
			n.rootfs = ""
		}
		_ = os.Remove(filepath.Join(c.Bundle, stateFile))
	}()

	if len(c.Rootfs) > 0 {
		rootfs := filepath.Join(c.Bundle, "rootfs")
		if err := mountAll(c.Rootfs, rootfs); err != nil {
			return 0, err
		}
		n.rootfs = rootfs
	}
	st := nativeState{ID: c.ID, Binary: binary, Root: n.rt.Root, Systemd: c.Options.SystemdCgroup, Rootfs: n.rootfs}
	if data, err := json.Marshal(st); err == nil {
		_ = os.WriteFile(filepath.Join(c.Bundle, stateFile), data, 0o600)
	}

	uid, gid := int(c.Options.IoUID), int(c.Options.IoGID)
	if uid == 0 && gid == 0 && spec.Process != nil {
		uid, gid = int(spec.Process.User.UID), int(spec.Process.User.GID)
	}
	if pio, err = newProcIO(ctx, c.Stdio, uid, gid); err != nil {
		return 0, err
	}
	n.sub = defaultReaper.subscribe()
	go n.watchExits(n.sub)

	pidFile := filepath.Join(c.Bundle, "init.pid")
	n.beginSpawn()
	defer n.endSpawn()
	created = true // from here on the runtime may hold state
	if err := n.call("create", func() error {
		return n.rt.Create(ctx, c.ID, c.Bundle, &runc.CreateOpts{
			IO:            pio.runtimeIO(),
			PidFile:       pidFile,
			ConsoleSocket: pio.consoleSocket(),
			NoPivot:       c.Options.NoPivotRoot,
			NoNewKeyring:  c.Options.NoNewKeyring,
		})
	}); err != nil {
		return 0, err
	}
	if err := pio.started(ctx); err != nil {
		return 0, err
	}
	if pid, err = runc.ReadPidFile(pidFile); err != nil {
		return 0, fmt.Errorf("read init pid: %w", err)
	}
	n.register("", &nativeProc{io: pio, pid: pid, done: make(chan struct{})})
	if c.OnOOM != nil {
		n.watchOOM(pid, c.OnOOM)
	}
	return pid, nil
}

func readSpec(bundle string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %v: %w", bundle, err, errdefs.ErrInvalidArgument)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("bundle %s config.json: %v: %w", bundle, err, errdefs.ErrInvalidArgument)
	}
	return &s, nil
}

// ownPidNamespace reports whether the spec gives the container a new pid
// namespace.
func ownPidNamespace(s *specs.Spec) bool {
	if s.Linux == nil {
		return false
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace && ns.Path == "" {
			return true
		}
	}
	return false
}

func (n *Native) beginSpawn() {
	n.mu.Lock()
	n.inflight++
	n.mu.Unlock()
}

func (n *Native) endSpawn() {
	n.mu.Lock()
	n.inflight--
	if n.inflight == 0 {
		clear(n.early)
	}
	n.mu.Unlock()
}

// register records a process with a known pid; an exit already seen for
// that pid is applied at once.
func (n *Native) register(execID string, p *nativeProc) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.procs[execID] = p
	if e, ok := n.early[p.pid]; ok {
		delete(n.early, p.pid)
		n.endLocked(p, e)
	}
}

func (n *Native) endLocked(p *nativeProc, e Exit) {
	if p.ended {
		return
	}
	p.ended, p.exit = true, e
	close(p.done)
}

// watchExits matches reaped pids to the container's processes.
func (n *Native) watchExits(s *subscription) {
	for {
		e, ok := s.next()
		if !ok {
			return
		}
		n.mu.Lock()
		matched := false
		for execID, p := range n.procs {
			if p.pid == e.Pid && p.pid != 0 {
				n.endLocked(p, e)
				matched = true
				if execID == "" && n.sharedPid {
					// Without its own pid namespace the kernel does not
					// take the container's other processes down with init.
					go func() {
						_ = n.rt.Kill(context.Background(), n.id, int(unix.SIGKILL), &runc.KillOpts{All: true})
					}()
				}
			}
		}
		if !matched && n.inflight > 0 {
			n.early[e.Pid] = e
		}
		n.mu.Unlock()
	}
}

func (n *Native) proc(execID string) (*nativeProc, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.procs[execID]
	if !ok {
		if execID == "" {
			return nil, fmt.Errorf("container not created: %w", errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("exec %q: %w", execID, errdefs.ErrNotFound)
	}
	return p, nil
}

func (n *Native) Start(ctx context.Context, execID string) (int, error) {
	p, err := n.proc(execID)
	if err != nil {
		return 0, err
	}
	if execID == "" {
		if err := n.call("start", func() error { return n.rt.Start(ctx, n.id) }); err != nil {
			return 0, err
		}
		return p.pid, nil
	}
	n.mu.Lock()
	already := p.started
	p.started = true
	n.mu.Unlock()
	if already {
		return 0, fmt.Errorf("exec %q already started: %w", execID, errdefs.ErrFailedPrecondition)
	}
	pidFile := filepath.Join(n.bundle, execID+".pid")
	defer os.Remove(pidFile)
	n.beginSpawn()
	defer n.endSpawn()
	// A process that failed to start has ended, with the status a shell
	// gives a command it could not run.
	failed := func(err error) (int, error) {
		n.mu.Lock()
		n.endLocked(p, Exit{Status: 255, At: time.Now()})
		n.mu.Unlock()
		return 0, err
	}
	err = n.call("exec", func() error {
		return n.rt.Exec(ctx, n.id, *p.spec, &runc.ExecOpts{
			IO:            p.io.runtimeIO(),
			PidFile:       pidFile,
			ConsoleSocket: p.io.consoleSocket(),
			Detach:        true,
		})
	})
	if err != nil {
		return failed(err)
	}
	if err := p.io.started(ctx); err != nil {
		return failed(err)
	}
	pid, err := runc.ReadPidFile(pidFile)
	if err != nil {
		return failed(fmt.Errorf("read exec pid: %w", err))
	}
	n.mu.Lock()
	p.pid = pid
	n.mu.Unlock()
	n.register(execID, p)
	return pid, nil
}

func (n *Native) Exec(ctx context.Context, execID string, c *ExecConfig) error {
	n.mu.Lock()
	_, exists := n.procs[execID]
	n.mu.Unlock()
	if exists {
		return fmt.Errorf("exec %q: %w", execID, errdefs.ErrAlreadyExists)
	}
	pio, err := newProcIO(ctx, c.Stdio, int(c.Spec.User.UID), int(c.Spec.User.GID))
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.procs[execID] = &nativeProc{io: pio, spec: c.Spec, done: make(chan struct{})}
	n.mu.Unlock()
	return nil
}

func (n *Native) Wait(ctx context.Context, execID string) (Exit, error) {
	p, err := n.proc(execID)
	if err != nil {
		return Exit{}, err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return Exit{}, ctx.Err()
	}
	// The output is drained before the exit is reported, so a client that
	// sees the exit has all of it.
	p.io.wait(2 * time.Second)
	n.mu.Lock()
	defer n.mu.Unlock()
	return p.exit, nil
}

func (n *Native) Kill(ctx context.Context, execID string, sig syscall.Signal, all bool) error {
	p, err := n.proc(execID)
	if err != nil {
		return err
	}
	n.mu.Lock()
	ended, pid := p.ended, p.pid
	n.mu.Unlock()
	if execID == "" {
		if ended && !all {
			return fmt.Errorf("container %s: process already finished: %w", n.id, errdefs.ErrNotFound)
		}
		if err := n.call("kill", func() error { return n.rt.Kill(ctx, n.id, int(sig), &runc.KillOpts{All: all}) }); err != nil {
			// The runtime CLI says so only in words.
			msg := strings.ToLower(err.Error())
			for _, gone := range []string{"not running", "no such process", "does not exist", "not found"} {
				if strings.Contains(msg, gone) {
					return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
				}
			}
			return err
		}
		return nil
	}
	if ended || pid == 0 {
		return fmt.Errorf("exec %q: process not running: %w", execID, errdefs.ErrNotFound)
	}
	if err := unix.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal exec %q (pid %d): %w", execID, pid, err)
	}
	return nil
}

func (n *Native) ResizePty(ctx context.Context, execID string, w, h uint32) error {
	p, err := n.proc(execID)
	if err != nil {
		return err
	}
	if err := p.io.resize(w, h); err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func (n *Native) CloseStdin(ctx context.Context, execID string) error {
	p, err := n.proc(execID)
	if err != nil {
		return err
	}
	p.io.endStdin()
	return nil
}

func (n *Native) Pause(ctx context.Context) error {
	return n.call("pause", func() error { return n.rt.Pause(ctx, n.id) })
}

func (n *Native) Resume(ctx context.Context) error {
	return n.call("resume", func() error { return n.rt.Resume(ctx, n.id) })
}

func (n *Native) Pids(ctx context.Context) ([]int, error) {
	var pids []int
	err := n.call("ps", func() (err error) {
		pids, err = n.rt.Ps(ctx, n.id)
		return err
	})
	return pids, err
}

func (n *Native) Update(ctx context.Context, r *specs.LinuxResources) error {
	return n.call("update", func() error { return n.rt.Update(ctx, n.id, r) })
}

func (n *Native) Stats(ctx context.Context) (proto.Message, error) {
	var st *runc.Stats
	if err := n.call("events --stats", func() (err error) {
		st, err = n.rt.Stats(ctx, n.id)
		return err
	}); err != nil {
		return nil, err
	}
	return metricsV1(st), nil
}

func (n *Native) DeleteProcess(ctx context.Context, execID string) error {
	if execID == "" {
		return fmt.Errorf("init is removed with Delete: %w", errdefs.ErrInvalidArgument)
	}
	p, err := n.proc(execID)
	if err != nil {
		return err
	}
	n.mu.Lock()
	if p.started && !p.ended {
		n.mu.Unlock()
		return fmt.Errorf("exec %q is running: %w", execID, errdefs.ErrFailedPrecondition)
	}
	delete(n.procs, execID)
	n.mu.Unlock()
	p.io.wait(2 * time.Second)
	p.io.close()
	return nil
}

func (n *Native) Delete(ctx context.Context) error {
	var errs []error
	if n.rt != nil {
		if err := n.call("delete", func() error { return n.rt.Delete(ctx, n.id, &runc.DeleteOpts{Force: true}) }); err != nil {
			if _, serr := n.rt.State(ctx, n.id); serr == nil {
				errs = append(errs, err)
			}
		}
	}
	n.mu.Lock()
	procs := n.procs
	n.procs = map[string]*nativeProc{}
	n.closed = true
	n.mu.Unlock()
	for _, p := range procs {
		p.io.wait(2 * time.Second)
		p.io.close()
	}
	if n.sub != nil {
		defaultReaper.unsubscribe(n.sub)
	}
	if n.rootfs != "" {
		if err := unmountAll(n.rootfs); err != nil {
			errs = append(errs, err)
		}
	}
	if n.bundle != "" {
		for _, f := range []string{stateFile, "init.pid", "runtime-log.json"} {
			_ = os.Remove(filepath.Join(n.bundle, f))
		}
	}
	return errors.Join(errs...)
}

// Cleanup is `shim delete`: it removes what a dead shim left of the
// container in bundle (runtime state, rootfs mounts), using the state file
// Create wrote.
func Cleanup(ctx context.Context, bundle string) error {
	data, err := os.ReadFile(filepath.Join(bundle, stateFile))
	if err != nil {
		// Nothing was created, or the shim already cleaned up.
		_ = unmountAll(filepath.Join(bundle, "rootfs"))
		return nil
	}
	var st nativeState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("%s: %w", stateFile, err)
	}
	rt := newRunc(st.Binary, st.Root, bundle, st.Systemd)
	var errs []error
	if err := rt.Delete(ctx, st.ID, &runc.DeleteOpts{Force: true}); err != nil {
		if _, serr := rt.State(ctx, st.ID); serr == nil {
			errs = append(errs, fmt.Errorf("runtime delete %s: %w", st.ID, err))
		}
	}
	if st.Rootfs != "" {
		if err := unmountAll(st.Rootfs); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range []string{stateFile, "init.pid", "runtime-log.json"} {
		_ = os.Remove(filepath.Join(bundle, f))
	}
	return errors.Join(errs...)
}

// watchOOM reports the memory cgroup's OOM events (cgroup v1: an eventfd
// registered on memory.oom_control). Where that is unavailable (cgroup v2,
// no memory controller) it does nothing.
func (n *Native) watchOOM(pid int, onOOM func()) {
	dir := memoryCgroupV1(pid)
	if dir == "" {
		return
	}
	ctl, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		ctl.Close()
		return
	}
	reg := fmt.Sprintf("%d %d", efd, ctl.Fd())
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(reg), 0o700); err != nil {
		ctl.Close()
		unix.Close(efd)
		return
	}
	go func() {
		// Removing the cgroup (runtime delete) fires the eventfd: the
		// goroutine then sees the directory gone and ends.
		defer unix.Close(efd)
		defer ctl.Close()
		buf := make([]byte, 8)
		for {
			if _, err := unix.Read(efd, buf); err != nil {
				return
			}
			// The eventfd also fires when the cgroup is removed.
			if _, err := os.Stat(filepath.Join(dir, "memory.oom_control")); err != nil {
				return
			}
			onOOM()
		}
	}()
}

// memoryCgroupV1 is the cgroup v1 memory directory of pid, or "".
func memoryCgroupV1(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				dir := filepath.Join("/sys/fs/cgroup/memory", parts[2])
				if _, err := os.Stat(dir); err == nil {
					return dir
				}
			}
		}
	}
	return ""
}
