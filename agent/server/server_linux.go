package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	agentapi "github.com/hullproject/hull/agent/api"
	"github.com/hullproject/hull/runtime/container"
)

// Server implements agentapi.AgentService in the guest.
type Server struct {
	// Root is the native runtime's state root in the guest.
	Root string
	// BundleDir holds one bundle directory (config.json) per container.
	BundleDir string
	// Reaper tracks the processes the server waits for itself.
	Reaper *Reaper
	// PowerOff is called after DestroySandbox has answered.
	PowerOff func()
	Logger   *slog.Logger

	mu         sync.Mutex
	containers map[string]*ctr
}

type ctr struct {
	id       string
	mounts   []string
	init     *proc
	started  bool
	execs    map[string]*proc
	creating bool
}

type proc struct {
	pid    int
	stdin  io.WriteCloser // write end; nil once closed
	stdout io.ReadCloser  // read ends (stdout is the pty master with a terminal)
	stderr io.ReadCloser  // nil with a terminal
	// console is the pty master when the process has a terminal.
	console console.Console
	exited  chan struct{}
	status  int
	inMu    sync.Mutex
}

// NewServer returns a Server with the default guest paths.
func NewServer(r *Reaper, powerOff func(), log *slog.Logger) *Server {
	// The runtime's own steps of a create or start join the guest trace.
	container.SetTraceSink(Mark)
	if log == nil {
		log = slog.Default()
	}
	return &Server{
		Root: "/run/hull-agent/runtime", BundleDir: "/run/hull-agent/bundles",
		Reaper: r, PowerOff: powerOff, Logger: log,
		containers: map[string]*ctr{},
	}
}

var _ agentapi.AgentService = (*Server)(nil)

// Version implements the readiness check.
func (s *Server) Version(ctx context.Context, _ *agentapi.VersionRequest) (*agentapi.VersionResponse, error) {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return &agentapi.VersionResponse{
		AgentVersion:  Version,
		KernelRelease: unix.ByteSliceToString(uts.Release[:]),
		BootNs:        ts.Nano(),
	}, nil
}

func (s *Server) get(id string) (*ctr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok || c.creating {
		return nil, fmt.Errorf("container %q: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

func (s *Server) proc(cid, eid string) (*proc, error) {
	c, err := s.get(cid)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if eid == "" {
		return c.init, nil
	}
	p, ok := c.execs[eid]
	if !ok {
		return nil, fmt.Errorf("exec %q in container %q: %w", eid, cid, errdefs.ErrNotFound)
	}
	return p, nil
}

// stdio makes the pipes of one process; the child ends are returned
// separately and closed by the caller once the process started.
func newStdio() (p *proc, child [3]*os.File, err error) {
	p = &proc{exited: make(chan struct{})}
	var files []*os.File
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
		}
	}()
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, child, err
	}
	files = append(files, inR, inW)
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, child, err
	}
	files = append(files, outR, outW)
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, child, err
	}
	p.stdin, p.stdout, p.stderr = inW, outR, errR
	return p, [3]*os.File{inR, outW, errW}, nil
}

func closeAll(fs ...io.Closer) {
	for _, f := range fs {
		if f != nil && !reflect.ValueOf(f).IsNil() {
			f.Close()
		}
	}
}

func closeFiles(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// ttyIO prepares a console socket for a process with a terminal; get
// returns the pty master the runtime sent, once the process is created.
func ttyIO() (path string, get func() (console.Console, error), closeSock func(), err error) {
	sock, err := runc.NewTempConsoleSocket()
	if err != nil {
		return "", nil, nil, err
	}
	ch := make(chan struct {
		c   console.Console
		err error
	}, 1)
	go func() {
		c, err := sock.ReceiveMaster()
		ch <- struct {
			c   console.Console
			err error
		}{c, err}
	}()
	get = func() (console.Console, error) {
		select {
		case r := <-ch:
			return r.c, r.err
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("no pty master from the runtime")
		}
	}
	return sock.Path(), get, func() { sock.Close() }, nil
}

// mountStorage mounts one Storage in the guest.
func mountStorage(st *agentapi.Storage) error {
	if st.MountPoint == "" || !filepath.IsAbs(st.MountPoint) {
		return fmt.Errorf("storage %q: mount point %q must be absolute: %w", st.Source, st.MountPoint, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(st.MountPoint, 0o755); err != nil {
		return err
	}
	var flags uintptr
	var data []string
	for _, o := range st.Options {
		switch o {
		case "ro":
			flags |= unix.MS_RDONLY
		case "nosuid":
			flags |= unix.MS_NOSUID
		case "nodev":
			flags |= unix.MS_NODEV
		default:
			data = append(data, o)
		}
	}
	if err := unix.Mount(st.Source, st.MountPoint, st.Fstype, flags, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", st.Source, st.Fstype, st.MountPoint, err)
	}
	return nil
}

// CreateContainer mounts the storages, writes the bundle and creates the
// container with the native runtime; its init waits for StartContainer.
func (s *Server) CreateContainer(ctx context.Context, r *agentapi.CreateContainerRequest) (_ *agentapi.Empty, retErr error) {
	if err := container.ValidateID(r.ContainerId); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	// Only process.terminal is needed here: the runtime decodes (and
	// validates) the whole spec itself.
	var spec struct {
		Process *struct {
			Terminal bool `json:"terminal"`
		} `json:"process"`
	}
	if err := json.Unmarshal(r.OciSpec, &spec); err != nil {
		return nil, fmt.Errorf("oci spec: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	Mark("create: spec decoded")
	s.mu.Lock()
	if _, ok := s.containers[r.ContainerId]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("container %q: %w", r.ContainerId, errdefs.ErrAlreadyExists)
	}
	c := &ctr{id: r.ContainerId, execs: map[string]*proc{}, creating: true}
	s.containers[c.id] = c
	s.mu.Unlock()
	defer func() {
		if retErr != nil {
			for i := len(c.mounts) - 1; i >= 0; i-- {
				_ = unix.Unmount(c.mounts[i], unix.MNT_DETACH)
			}
			s.mu.Lock()
			delete(s.containers, c.id)
			s.mu.Unlock()
		}
	}()
	for _, st := range r.Storages {
		if err := mountStorage(st); err != nil {
			return nil, err
		}
		c.mounts = append(c.mounts, st.MountPoint)
	}
	Mark("create: storages mounted")
	bundle := filepath.Join(s.BundleDir, c.id)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), r.OciSpec, 0o600); err != nil {
		return nil, err
	}
	Mark("create: bundle written")
	terminal := spec.Process != nil && spec.Process.Terminal
	p, err := s.spawn(terminal, func(stdio [3]*os.File, consoleSocket string) (*container.Process, error) {
		return container.Create(ctx, container.CreateOptions{
			Root: s.Root, ID: c.id, Bundle: bundle,
			ConsoleSocket: consoleSocket,
			Stdin:         stdio[0], Stdout: stdio[1], Stderr: stdio[2],
		})
	})
	if err != nil {
		_ = os.RemoveAll(bundle)
		return nil, fmt.Errorf("create container %q: %w", c.id, err)
	}
	s.mu.Lock()
	c.init = p
	c.creating = false
	s.mu.Unlock()
	return &agentapi.Empty{}, nil
}

// spawn starts one process (create or exec) with pipes, or with a
// terminal through a console socket, tracks it for the reaper and waits
// for it in the background.
func (s *Server) spawn(terminal bool, start func(stdio [3]*os.File, consoleSocket string) (*container.Process, error)) (*proc, error) {
	var (
		p        *proc
		child    [3]*os.File
		sockPath string
		getTTY   func() (console.Console, error)
		closeTTY = func() {}
		err      error
	)
	if terminal {
		p = &proc{exited: make(chan struct{})}
		if sockPath, getTTY, closeTTY, err = ttyIO(); err != nil {
			return nil, err
		}
		defer closeTTY()
	} else if p, child, err = newStdio(); err != nil {
		return nil, err
	}
	s.Reaper.Spawn.RLock()
	cp, err := start(child, sockPath)
	if err == nil {
		s.Reaper.Track(cp.Pid)
	}
	s.Reaper.Spawn.RUnlock()
	closeFiles(child[:]...)
	if err == nil && terminal {
		var con console.Console
		if con, err = getTTY(); err == nil {
			p.console, p.stdin, p.stdout = con, con, con
		} else {
			_ = unix.Kill(cp.Pid, unix.SIGKILL)
			go s.wait(cp, p)
		}
	}
	if err != nil {
		closeAll(p.stdin, p.stdout, p.stderr)
		return nil, err
	}
	p.pid = cp.Pid
	go s.wait(cp, p)
	return p, nil
}

func (s *Server) wait(cp *container.Process, p *proc) {
	status, err := cp.Wait()
	Mark("process exited")
	if err != nil {
		s.Logger.Warn("wait", "pid", p.pid, "err", err)
	}
	s.Reaper.Untrack(p.pid)
	p.status = status
	close(p.exited)
}

// StartContainer starts the created container's process.
func (s *Server) StartContainer(ctx context.Context, r *agentapi.ContainerRequest) (*agentapi.StartResponse, error) {
	c, err := s.get(r.ContainerId)
	if err != nil {
		return nil, err
	}
	if err := container.Start(ctx, s.Root, c.id); err != nil {
		return nil, fmt.Errorf("start container %q: %w", c.id, err)
	}
	Mark("start: container.Start returned")
	s.mu.Lock()
	c.started = true
	s.mu.Unlock()
	return &agentapi.StartResponse{Pid: uint32(c.init.pid)}, nil
}

// ExecProcess runs another process in a running container.
func (s *Server) ExecProcess(ctx context.Context, r *agentapi.ExecProcessRequest) (*agentapi.StartResponse, error) {
	c, err := s.get(r.ContainerId)
	if err != nil {
		return nil, err
	}
	if r.ExecId == "" {
		return nil, fmt.Errorf("exec id: %w: empty", errdefs.ErrInvalidArgument)
	}
	var sp specs.Process
	if err := json.Unmarshal(r.Process, &sp); err != nil {
		return nil, fmt.Errorf("exec process: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	s.mu.Lock()
	if _, ok := c.execs[r.ExecId]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("exec %q: %w", r.ExecId, errdefs.ErrAlreadyExists)
	}
	s.mu.Unlock()
	p, err := s.spawn(sp.Terminal, func(stdio [3]*os.File, consoleSocket string) (*container.Process, error) {
		return container.Exec(ctx, container.ExecOptions{
			Root: s.Root, ID: c.id, Process: &sp, ConsoleSocket: consoleSocket,
			Stdin: stdio[0], Stdout: stdio[1], Stderr: stdio[2],
		})
	})
	if err != nil {
		return nil, fmt.Errorf("exec in container %q: %w", c.id, err)
	}
	s.mu.Lock()
	c.execs[r.ExecId] = p
	s.mu.Unlock()
	return &agentapi.StartResponse{Pid: uint32(p.pid)}, nil
}

// SignalProcess sends a signal to the init or an exec'd process.
func (s *Server) SignalProcess(ctx context.Context, r *agentapi.SignalProcessRequest) (*agentapi.Empty, error) {
	p, err := s.proc(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
		return nil, fmt.Errorf("process %d: %w: already exited", p.pid, errdefs.ErrNotFound)
	default:
	}
	if err := unix.Kill(p.pid, unix.Signal(r.Signal)); err != nil {
		return nil, fmt.Errorf("signal %d to %d: %w", r.Signal, p.pid, err)
	}
	return &agentapi.Empty{}, nil
}

// WaitProcess waits for a process and returns its exit status (128+signal
// when killed by one).
func (s *Server) WaitProcess(ctx context.Context, r *agentapi.ProcessRequest) (*agentapi.WaitProcessResponse, error) {
	p, err := s.proc(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
		return &agentapi.WaitProcessResponse{Status: int32(p.status)}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// WriteStdin writes to a process's stdin.
func (s *Server) WriteStdin(ctx context.Context, r *agentapi.WriteStreamRequest) (*agentapi.WriteStreamResponse, error) {
	p, err := s.proc(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	p.inMu.Lock()
	defer p.inMu.Unlock()
	if p.stdin == nil {
		return nil, fmt.Errorf("stdin: %w: closed", errdefs.ErrFailedPrecondition)
	}
	n, err := p.stdin.Write(r.Data)
	if err != nil {
		return nil, fmt.Errorf("stdin: %w", err)
	}
	return &agentapi.WriteStreamResponse{Len: uint32(n)}, nil
}

// CloseStdin closes a process's stdin (the process reads EOF).
func (s *Server) CloseStdin(ctx context.Context, r *agentapi.ProcessRequest) (*agentapi.Empty, error) {
	p, err := s.proc(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	p.inMu.Lock()
	defer p.inMu.Unlock()
	if p.console != nil {
		// The master is the output too: send the terminal's EOF instead.
		if p.stdin != nil {
			_, _ = p.console.Write([]byte{4})
			p.stdin = nil
		}
		return &agentapi.Empty{}, nil
	}
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
	}
	return &agentapi.Empty{}, nil
}

const maxRead = 64 << 10

func readStream(f io.Reader, n uint32) (*agentapi.ReadStreamResponse, error) {
	if f == nil {
		return &agentapi.ReadStreamResponse{}, nil
	}
	if n == 0 || n > maxRead {
		n = maxRead
	}
	buf := make([]byte, n)
	k, err := f.Read(buf)
	if k > 0 {
		return &agentapi.ReadStreamResponse{Data: buf[:k]}, nil
	}
	// A pty master reads EIO once the terminal's last process ended.
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EIO) {
		return &agentapi.ReadStreamResponse{}, nil
	}
	return nil, err
}

// ReadStdout returns the next bytes the process wrote to stdout; empty data
// at EOF.
func (s *Server) ReadStdout(ctx context.Context, r *agentapi.ReadStreamRequest) (*agentapi.ReadStreamResponse, error) {
	p, err := s.proc(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	return readStream(p.stdout, r.Len)
}

// ReadStderr is ReadStdout for stderr.
func (s *Server) ReadStderr(ctx context.Context, r *agentapi.ReadStreamRequest) (*agentapi.ReadStreamResponse, error) {
	p, err := s.proc(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	return readStream(p.stderr, r.Len)
}

// TtyWinResize sets the window size of a process's terminal.
func (s *Server) TtyWinResize(ctx context.Context, r *agentapi.TtyWinResizeRequest) (*agentapi.Empty, error) {
	p, err := s.proc(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	if p.console == nil {
		return nil, fmt.Errorf("process %d has no terminal: %w", p.pid, errdefs.ErrFailedPrecondition)
	}
	if err := p.console.Resize(console.WinSize{Height: uint16(r.Rows), Width: uint16(r.Cols)}); err != nil {
		return nil, fmt.Errorf("resize terminal: %w", err)
	}
	return &agentapi.Empty{}, nil
}

// StatsContainer returns the container's cgroup statistics.
func (s *Server) StatsContainer(ctx context.Context, r *agentapi.ContainerRequest) (*agentapi.StatsContainerResponse, error) {
	c, err := s.get(r.ContainerId)
	if err != nil {
		return nil, err
	}
	st, err := container.Stats(s.Root, c.id)
	if err != nil {
		return nil, fmt.Errorf("stats of %q: %w", c.id, err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	return &agentapi.StatsContainerResponse{CgroupStats: b}, nil
}

// RemoveContainer kills what is left of the container, deletes it and
// unmounts its storages.
func (s *Server) RemoveContainer(ctx context.Context, r *agentapi.ContainerRequest) (*agentapi.Empty, error) {
	c, err := s.get(r.ContainerId)
	if err != nil {
		return nil, err
	}
	if err := s.remove(ctx, c); err != nil {
		return nil, err
	}
	return &agentapi.Empty{}, nil
}

func (s *Server) remove(ctx context.Context, c *ctr) error {
	if err := container.Delete(ctx, s.Root, c.id, true); err != nil && !errors.Is(err, container.ErrNotExist) {
		return fmt.Errorf("delete container %q: %w", c.id, err)
	}
	Mark("remove: container.Delete returned")
	procs := []*proc{c.init}
	for _, p := range c.execs {
		procs = append(procs, p)
	}
	for _, p := range procs {
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
		p.inMu.Lock()
		closeAll(p.stdin, p.stdout, p.stderr)
		p.stdin = nil
		p.inMu.Unlock()
	}
	for i := len(c.mounts) - 1; i >= 0; i-- {
		// What the container wrote reaches the host before the answer:
		// the host may end the VM right after it, without a power-off's
		// sync (and FUSE does not write shared writable mmaps through).
		if err := syncFS(c.mounts[i]); err != nil {
			s.Logger.Warn("sync", "path", c.mounts[i], "err", err)
		}
		if err := unix.Unmount(c.mounts[i], unix.MNT_DETACH); err != nil {
			s.Logger.Warn("unmount", "path", c.mounts[i], "err", err)
		}
	}
	Mark("remove: storages synced and unmounted")
	_ = os.RemoveAll(filepath.Join(s.BundleDir, c.id))
	s.mu.Lock()
	delete(s.containers, c.id)
	s.mu.Unlock()
	return nil
}

// syncFS writes back the filesystem mounted at path (syncfs(2)).
func syncFS(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// DestroySandbox removes every container and powers the guest off just
// after answering.
func (s *Server) DestroySandbox(ctx context.Context, _ *agentapi.Empty) (*agentapi.Empty, error) {
	s.mu.Lock()
	var all []*ctr
	for _, c := range s.containers {
		if !c.creating {
			all = append(all, c)
		}
	}
	s.mu.Unlock()
	for _, c := range all {
		if err := s.remove(ctx, c); err != nil {
			s.Logger.Warn("destroy", "container", c.id, "err", err)
		}
	}
	if s.PowerOff != nil {
		go func() {
			time.Sleep(20 * time.Millisecond)
			s.PowerOff()
		}()
	}
	return &agentapi.Empty{}, nil
}
