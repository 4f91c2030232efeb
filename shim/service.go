package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"

	eventstypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Service is containerd's task service (containerd.task.v2.Task) for one
// container. It keeps each process's state machine, answers waits and
// publishes the task events; the Backend does the work.
type Service struct {
	id, namespace string
	pub           *Publisher
	newBackend    func(*Options) (Backend, error)
	shutdown      func()

	mu      sync.Mutex
	bundle  string
	backend Backend
	init    *process
	execs   map[string]*process
	// lifecycle orders a process's start against its exit, so TaskStart
	// (or TaskExecStarted) is always published before its TaskExit.
	lifecycle sync.Mutex
}

// NewService makes the task service of container id. shutdown is called
// once the Shutdown call finds nothing left to serve.
func NewService(id, namespace string, pub *Publisher, newBackend func(*Options) (Backend, error), shutdown func()) *Service {
	if newBackend == nil {
		newBackend = newBackendFor
	}
	return &Service{id: id, namespace: namespace, pub: pub, newBackend: newBackend, shutdown: shutdown, execs: map[string]*process{}}
}

var _ taskapi.TaskService = (*Service)(nil)

// rpcError turns an error into the gRPC status containerd maps back to an
// errdefs kind.
func rpcError(err error) error {
	if err == nil {
		return nil
	}
	return errgrpc.ToGRPC(err)
}

// validID checks a container or exec id the way containerd does
// (letters, digits, '_', '.', '-', starting with a letter or digit, at
// most 76 characters): ids become file names in the bundle and runtime
// root.
func validID(kind, id string) error {
	ok := id != "" && len(id) <= 76
	for i, r := range id {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || (r != '_' && r != '.' && r != '-')) {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%s id %q: want 1-76 letters, digits, '_', '.' or '-', starting with a letter or digit: %w", kind, id, errdefs.ErrInvalidArgument)
	}
	return nil
}

// lookup finds the process execID of container id.
func (s *Service) lookup(id, execID string) (*process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.init == nil || id != s.id {
		return nil, fmt.Errorf("container %q: %w", id, errdefs.ErrNotFound)
	}
	if execID == "" {
		return s.init, nil
	}
	p, ok := s.execs[execID]
	if !ok {
		return nil, fmt.Errorf("exec %q in container %q: %w", execID, id, errdefs.ErrNotFound)
	}
	return p, nil
}

func (s *Service) Create(ctx context.Context, r *taskapi.CreateTaskRequest) (_ *taskapi.CreateTaskResponse, err error) {
	if err := validID("container", r.ID); err != nil {
		return nil, rpcError(err)
	}
	if r.Bundle == "" {
		return nil, rpcError(fmt.Errorf("create %s: a bundle is required: %w", r.ID, errdefs.ErrInvalidArgument))
	}
	if r.Checkpoint != "" || r.ParentCheckpoint != "" {
		return nil, rpcError(fmt.Errorf("create from checkpoint: %w", errdefs.ErrNotImplemented))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.init != nil {
		return nil, rpcError(fmt.Errorf("container %q: this shim already runs one: %w", s.id, errdefs.ErrAlreadyExists))
	}
	if s.id != "" && r.ID != s.id {
		return nil, rpcError(fmt.Errorf("container %q: this shim serves %q: %w", r.ID, s.id, errdefs.ErrInvalidArgument))
	}
	opts, err := ParseOptions(r.Options)
	if err != nil {
		return nil, rpcError(err)
	}
	b, err := s.newBackend(opts)
	if err != nil {
		return nil, rpcError(err)
	}
	stdio := Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	id := r.ID
	pid, err := b.Create(ctx, &CreateConfig{
		ID: id, Bundle: r.Bundle, Namespace: s.namespace, Rootfs: r.Rootfs,
		Stdio: stdio, Options: opts,
		OnOOM: func() { s.pub.Publish(TopicTaskOOM, &eventstypes.TaskOOM{ContainerID: id}) },
	})
	if err != nil {
		return nil, rpcError(err)
	}
	s.id, s.bundle, s.backend = id, r.Bundle, b
	p := newProcess("", stdio)
	p.pid = pid
	s.init = p
	s.pub.Publish(TopicTaskCreate, &eventstypes.TaskCreate{
		ContainerID: id, Bundle: r.Bundle, Rootfs: r.Rootfs, Pid: uint32(pid),
		IO: &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
	})
	go s.watch(p)
	return &taskapi.CreateTaskResponse{Pid: uint32(pid)}, nil
}

// watch waits for a process to end, records its exit and publishes it.
func (s *Service) watch(p *process) {
	e, err := s.backend.Wait(context.Background(), p.execID)
	if err != nil {
		slog.Error("wait for process", "exec", p.execID, "err", err)
		return
	}
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if !p.exited(e) {
		return
	}
	id := s.id
	if p.execID != "" {
		id = p.execID
	}
	_, _, e = p.snapshot()
	s.pub.Publish(TopicTaskExit, &eventstypes.TaskExit{
		ContainerID: s.id, ID: id, Pid: uint32(e.Pid), ExitStatus: uint32(e.Status), ExitedAt: timestamppb.New(e.At),
	})
}

func (s *Service) Start(ctx context.Context, r *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	p, err := s.lookup(r.ID, r.ExecID)
	if err != nil {
		return nil, rpcError(err)
	}
	if st, _, _ := p.snapshot(); st != Created {
		return nil, rpcError(&TransitionError{From: st, To: Running})
	}
	s.lifecycle.Lock()
	pid, err := s.backend.Start(ctx, r.ExecID)
	if err != nil {
		s.lifecycle.Unlock()
		return nil, rpcError(err)
	}
	if err := p.started(pid); err != nil {
		s.lifecycle.Unlock()
		return nil, rpcError(err)
	}
	if r.ExecID == "" {
		s.pub.Publish(TopicTaskStart, &eventstypes.TaskStart{ContainerID: s.id, Pid: uint32(pid)})
	} else {
		s.pub.Publish(TopicTaskExecStarted, &eventstypes.TaskExecStarted{ContainerID: s.id, ExecID: r.ExecID, Pid: uint32(pid)})
		go s.watch(p)
	}
	s.lifecycle.Unlock()
	return &taskapi.StartResponse{Pid: uint32(pid)}, nil
}

func (s *Service) Delete(ctx context.Context, r *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	p, err := s.lookup(r.ID, r.ExecID)
	if err != nil {
		return nil, rpcError(err)
	}
	st, _, _ := p.snapshot()
	if err := checkTransition(st, Deleted); err != nil {
		return nil, rpcError(err)
	}
	if r.ExecID != "" {
		if err := s.backend.DeleteProcess(ctx, r.ExecID); err != nil {
			return nil, rpcError(err)
		}
		s.mu.Lock()
		delete(s.execs, r.ExecID)
		s.mu.Unlock()
	} else if err := s.backend.Delete(ctx); err != nil {
		return nil, rpcError(err)
	}
	if err := p.transition(Deleted); err != nil {
		return nil, rpcError(err)
	}
	_, pid, e := p.snapshot()
	if e.Pid == 0 {
		e.Pid = pid
	}
	at := timestamppb.New(e.At)
	if e.At.IsZero() {
		at = timestamppb.Now()
	}
	if r.ExecID == "" {
		s.pub.Publish(TopicTaskDelete, &eventstypes.TaskDelete{
			ContainerID: s.id, ID: s.id, Pid: uint32(e.Pid), ExitStatus: uint32(e.Status), ExitedAt: at,
		})
	}
	return &taskapi.DeleteResponse{Pid: uint32(e.Pid), ExitStatus: uint32(e.Status), ExitedAt: at}, nil
}

func (s *Service) State(ctx context.Context, r *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	p, err := s.lookup(r.ID, r.ExecID)
	if err != nil {
		return nil, rpcError(err)
	}
	st, pid, e := p.snapshot()
	id := s.id
	if r.ExecID != "" {
		id = r.ExecID
	}
	resp := &taskapi.StateResponse{
		ID: id, ExecID: r.ExecID, Bundle: s.bundle, Pid: uint32(pid), Status: st.Proto(),
		Stdin: p.stdio.Stdin, Stdout: p.stdio.Stdout, Stderr: p.stdio.Stderr, Terminal: p.stdio.Terminal,
		ExitStatus: uint32(e.Status),
	}
	if !e.At.IsZero() {
		resp.ExitedAt = timestamppb.New(e.At)
	}
	return resp, nil
}

func (s *Service) Pids(ctx context.Context, r *taskapi.PidsRequest) (*taskapi.PidsResponse, error) {
	if _, err := s.lookup(r.ID, ""); err != nil {
		return nil, rpcError(err)
	}
	pids, err := s.backend.Pids(ctx)
	if err != nil {
		return nil, rpcError(err)
	}
	// Exec'd processes are marked with their exec id, as the runc shim
	// does (ProcessDetails), so `ctr task ps` can show it.
	execOf := map[int]string{}
	s.mu.Lock()
	for id, p := range s.execs {
		if st, pid, _ := p.snapshot(); st == Running || st == Paused {
			execOf[pid] = id
		}
	}
	s.mu.Unlock()
	resp := &taskapi.PidsResponse{}
	for _, pid := range pids {
		info := &task.ProcessInfo{Pid: uint32(pid)}
		if id, ok := execOf[pid]; ok {
			if a, err := marshalAny(&runcoptions.ProcessDetails{ExecID: id}); err == nil {
				info.Info = a
			}
		}
		resp.Processes = append(resp.Processes, info)
	}
	return resp, nil
}

func (s *Service) Pause(ctx context.Context, r *taskapi.PauseRequest) (*emptypb.Empty, error) {
	p, err := s.lookup(r.ID, "")
	if err != nil {
		return nil, rpcError(err)
	}
	if st, _, _ := p.snapshot(); !CanTransition(st, Paused) {
		return nil, rpcError(&TransitionError{From: st, To: Paused})
	}
	if err := s.backend.Pause(ctx); err != nil {
		return nil, rpcError(err)
	}
	if err := p.transition(Paused); err != nil {
		return nil, rpcError(err)
	}
	s.pub.Publish(TopicTaskPaused, &eventstypes.TaskPaused{ContainerID: s.id})
	return &emptypb.Empty{}, nil
}

func (s *Service) Resume(ctx context.Context, r *taskapi.ResumeRequest) (*emptypb.Empty, error) {
	p, err := s.lookup(r.ID, "")
	if err != nil {
		return nil, rpcError(err)
	}
	if st, _, _ := p.snapshot(); st != Paused {
		return nil, rpcError(&TransitionError{From: st, To: Running})
	}
	if err := s.backend.Resume(ctx); err != nil {
		return nil, rpcError(err)
	}
	if err := p.transition(Running); err != nil {
		return nil, rpcError(err)
	}
	s.pub.Publish(TopicTaskResumed, &eventstypes.TaskResumed{ContainerID: s.id})
	return &emptypb.Empty{}, nil
}

func (s *Service) Checkpoint(ctx context.Context, r *taskapi.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, rpcError(fmt.Errorf("checkpoint: %w", errdefs.ErrNotImplemented))
}

func (s *Service) Kill(ctx context.Context, r *taskapi.KillRequest) (*emptypb.Empty, error) {
	if _, err := s.lookup(r.ID, r.ExecID); err != nil {
		return nil, rpcError(err)
	}
	if r.Signal == 0 || r.Signal > 64 {
		return nil, rpcError(fmt.Errorf("signal %d: %w", r.Signal, errdefs.ErrInvalidArgument))
	}
	if err := s.backend.Kill(ctx, r.ExecID, syscall.Signal(r.Signal), r.All); err != nil {
		return nil, rpcError(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) Exec(ctx context.Context, r *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
	if err := validID("exec", r.ExecID); err != nil {
		return nil, rpcError(err)
	}
	initp, err := s.lookup(r.ID, "")
	if err != nil {
		return nil, rpcError(err)
	}
	if st, _, _ := initp.snapshot(); st != Running && st != Paused {
		return nil, rpcError(fmt.Errorf("exec in container %q: it is %s: %w", r.ID, st, errdefs.ErrFailedPrecondition))
	}
	if r.Spec == nil {
		return nil, rpcError(fmt.Errorf("exec %q: no process spec: %w", r.ExecID, errdefs.ErrInvalidArgument))
	}
	var spec specs.Process
	if err := json.Unmarshal(r.Spec.Value, &spec); err != nil {
		return nil, rpcError(fmt.Errorf("exec %q: process spec: %v: %w", r.ExecID, err, errdefs.ErrInvalidArgument))
	}
	stdio := Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	spec.Terminal = r.Terminal
	s.mu.Lock()
	if _, ok := s.execs[r.ExecID]; ok {
		s.mu.Unlock()
		return nil, rpcError(fmt.Errorf("exec %q: %w", r.ExecID, errdefs.ErrAlreadyExists))
	}
	p := newProcess(r.ExecID, stdio)
	s.execs[r.ExecID] = p
	s.mu.Unlock()
	if err := s.backend.Exec(ctx, r.ExecID, &ExecConfig{Spec: &spec, Stdio: stdio}); err != nil {
		s.mu.Lock()
		delete(s.execs, r.ExecID)
		s.mu.Unlock()
		return nil, rpcError(err)
	}
	s.pub.Publish(TopicTaskExecAdded, &eventstypes.TaskExecAdded{ContainerID: s.id, ExecID: r.ExecID})
	return &emptypb.Empty{}, nil
}

func (s *Service) ResizePty(ctx context.Context, r *taskapi.ResizePtyRequest) (*emptypb.Empty, error) {
	if _, err := s.lookup(r.ID, r.ExecID); err != nil {
		return nil, rpcError(err)
	}
	if err := s.backend.ResizePty(ctx, r.ExecID, r.Width, r.Height); err != nil {
		return nil, rpcError(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) CloseIO(ctx context.Context, r *taskapi.CloseIORequest) (*emptypb.Empty, error) {
	if _, err := s.lookup(r.ID, r.ExecID); err != nil {
		return nil, rpcError(err)
	}
	if r.Stdin {
		if err := s.backend.CloseStdin(ctx, r.ExecID); err != nil {
			return nil, rpcError(err)
		}
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) Update(ctx context.Context, r *taskapi.UpdateTaskRequest) (*emptypb.Empty, error) {
	p, err := s.lookup(r.ID, "")
	if err != nil {
		return nil, rpcError(err)
	}
	if st, _, _ := p.snapshot(); st == Stopped || st == Deleted {
		return nil, rpcError(fmt.Errorf("update container %q: it is %s: %w", r.ID, st, errdefs.ErrFailedPrecondition))
	}
	if r.Resources == nil {
		return nil, rpcError(fmt.Errorf("update: no resources: %w", errdefs.ErrInvalidArgument))
	}
	var res specs.LinuxResources
	if err := json.Unmarshal(r.Resources.Value, &res); err != nil {
		return nil, rpcError(fmt.Errorf("update: resources (%s): %v: %w", r.Resources.TypeUrl, err, errdefs.ErrInvalidArgument))
	}
	if err := s.backend.Update(ctx, &res); err != nil {
		return nil, rpcError(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) Wait(ctx context.Context, r *taskapi.WaitRequest) (*taskapi.WaitResponse, error) {
	p, err := s.lookup(r.ID, r.ExecID)
	if err != nil {
		return nil, rpcError(err)
	}
	e, err := p.wait(ctx)
	if err != nil {
		return nil, rpcError(err)
	}
	return &taskapi.WaitResponse{ExitStatus: uint32(e.Status), ExitedAt: timestamppb.New(e.At)}, nil
}

func (s *Service) Stats(ctx context.Context, r *taskapi.StatsRequest) (*taskapi.StatsResponse, error) {
	if _, err := s.lookup(r.ID, ""); err != nil {
		return nil, rpcError(err)
	}
	m, err := s.backend.Stats(ctx)
	if err != nil {
		return nil, rpcError(err)
	}
	a, err := marshalAny(m)
	if err != nil {
		return nil, rpcError(err)
	}
	return &taskapi.StatsResponse{Stats: a}, nil
}

// marshalAny wraps m with the bare type URL containerd 1.6's typeurl
// registry expects ("io.containerd.cgroups.v1.Metrics").
func marshalAny(m proto.Message) (*anypb.Any, error) {
	a, err := anypb.New(m)
	if err != nil {
		return nil, err
	}
	a.TypeUrl = strings.TrimPrefix(a.TypeUrl, "type.googleapis.com/")
	return a, nil
}

func (s *Service) Connect(ctx context.Context, r *taskapi.ConnectRequest) (*taskapi.ConnectResponse, error) {
	resp := &taskapi.ConnectResponse{ShimPid: uint32(os.Getpid())}
	if p, err := s.lookup(r.ID, ""); err == nil {
		_, pid, _ := p.snapshot()
		resp.TaskPid = uint32(pid)
	}
	return resp, nil
}

func (s *Service) Shutdown(ctx context.Context, r *taskapi.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	live := s.init != nil
	if live {
		st, _, _ := s.init.snapshot()
		live = st != Deleted
	}
	s.mu.Unlock()
	if live {
		if !r.Now {
			// The container is still there: a shim never leaves one behind.
			return &emptypb.Empty{}, nil
		}
		// Shutdown now: take the container down with the shim.
		if err := s.backend.Delete(ctx); err != nil {
			slog.Warn("delete on shutdown", "err", err)
		}
	}
	if s.shutdown != nil {
		s.shutdown()
	}
	return &emptypb.Empty{}, nil
}
