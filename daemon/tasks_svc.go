package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

type tasksSvc struct {
	hullv1.UnimplementedTasksServer
	d *Daemon
}

func (s *tasksSvc) ts() *tasks { return s.d.tasks }

func apiTask(t *task, p *proc, status string) *hullv1.Task {
	pid, st, code, at := p.snapshot()
	if status == "" {
		status = st
	}
	out := &hullv1.Task{Id: t.id, ExecId: p.execID, Pid: pid, Status: status, Runtime: t.file.Runtime}
	if st == StatusStopped {
		out.ExitStatus = code
		out.ExitedAt = timestamppb.New(at)
	}
	return out
}

func (s *tasksSvc) Create(ctx context.Context, r *hullv1.TaskRequest) (*hullv1.Task, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.d.store.get(ns, r.Id)
	if err != nil {
		return nil, err
	}
	t, err := s.ts().create(ctx, ns, c)
	if err != nil {
		return nil, err
	}
	return apiTask(t, t.init, ""), nil
}

func (s *tasksSvc) Start(ctx context.Context, r *hullv1.TaskRequest) (*hullv1.Task, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.ts().start(ctx, ns, r.Id, r.ExecId)
	if err != nil {
		return nil, err
	}
	t, err := s.ts().get(ns, r.Id)
	if err != nil {
		return nil, err
	}
	return apiTask(t, p, ""), nil
}

func (s *tasksSvc) Attach(stream hullv1.Tasks_AttachServer) error {
	ctx := stream.Context()
	ns, err := namespaceOf(ctx)
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	t, err := s.ts().get(ns, first.Id)
	if err != nil {
		return err
	}
	p, err := t.proc(first.ExecId)
	if err != nil {
		return err
	}
	sub := p.pump.subscribe(ctx)
	defer p.pump.unsubscribe(sub)
	if err := stream.Send(&hullv1.AttachResponse{Ready: true}); err != nil {
		return err
	}
	input := func(r *hullv1.AttachRequest) {
		if len(r.Stdin) > 0 {
			_ = p.pump.writeStdin(r.Stdin)
		}
		if r.Width > 0 && r.Height > 0 && p.terminal && t.shim != nil {
			_, _ = t.shim.task.ResizePty(t.shim.ctx(ctx), &taskapi.ResizePtyRequest{ID: t.id, ExecID: p.execID, Width: r.Width, Height: r.Height})
		}
		if r.CloseStdin {
			p.pump.closeStdin()
			// Hull's shim holds no write end of the stdin fifo: closing
			// the daemon's gives the process EOF once it has read what was
			// written (its CloseIO would drop what it has not copied yet).
			// containerd's runc shim holds one, which CloseIO closes.
			if t.shim != nil && t.file.Type != hullShimType {
				_, _ = t.shim.task.CloseIO(t.shim.ctx(ctx), &taskapi.CloseIORequest{ID: t.id, ExecID: p.execID, Stdin: true})
			}
		}
	}
	input(first)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			input(r)
		}
	}()
	send := func(c chunk) error {
		m := &hullv1.AttachResponse{}
		if c.stream == streamStderr {
			m.Stderr = c.data
		} else {
			m.Stdout = c.data
		}
		return stream.Send(m)
	}
	for {
		select {
		case c := <-sub.ch:
			if err := send(c); err != nil {
				return err
			}
		case <-p.pump.done:
			for {
				select {
				case c := <-sub.ch:
					if err := send(c); err != nil {
						return err
					}
					continue
				default:
				}
				break
			}
			select {
			case <-p.exited:
			case <-ctx.Done():
				return ctx.Err()
			}
			_, _, code, _ := p.snapshot()
			return stream.Send(&hullv1.AttachResponse{Exited: true, ExitStatus: code})
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *tasksSvc) Wait(ctx context.Context, r *hullv1.TaskRequest) (*hullv1.Task, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.ts().wait(ctx, ns, r.Id, r.ExecId)
	if err != nil {
		return nil, err
	}
	t, err := s.ts().get(ns, r.Id)
	if err != nil {
		// Deleted meanwhile: answer from the process.
		_, st, code, at := p.snapshot()
		return &hullv1.Task{Id: r.Id, ExecId: r.ExecId, Status: st, ExitStatus: code, ExitedAt: timestamppb.New(at)}, nil
	}
	return apiTask(t, p, ""), nil
}

func (s *tasksSvc) Kill(ctx context.Context, r *hullv1.KillRequest) (*hullv1.Empty, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	sig := r.Signal
	if sig == 0 {
		sig = 15
	}
	return &hullv1.Empty{}, s.ts().kill(ctx, ns, r.Id, r.ExecId, sig, r.All)
}

func (s *tasksSvc) Delete(ctx context.Context, r *hullv1.TaskRequest) (*hullv1.Task, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.ts().delete(ctx, ns, r.Id, r.ExecId, r.Force)
	if err != nil {
		return nil, err
	}
	pid, st, code, at := p.snapshot()
	return &hullv1.Task{Id: r.Id, ExecId: r.ExecId, Pid: pid, Status: st, ExitStatus: code, ExitedAt: timestamppb.New(at)}, nil
}

func (s *tasksSvc) Exec(ctx context.Context, r *hullv1.ExecRequest) (*hullv1.Empty, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	return &hullv1.Empty{}, s.ts().exec(ctx, ns, r.Id, r.ExecId, r.Process)
}

func (s *tasksSvc) Get(ctx context.Context, r *hullv1.TaskRequest) (*hullv1.Task, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	t, err := s.ts().get(ns, r.Id)
	if err != nil {
		return nil, err
	}
	p, err := t.proc(r.ExecId)
	if err != nil {
		return nil, err
	}
	return apiTask(t, p, s.ts().state(ctx, t, p)), nil
}

func (s *tasksSvc) List(ctx context.Context, _ *hullv1.Empty) (*hullv1.ListTasksResponse, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	out := &hullv1.ListTasksResponse{}
	for _, t := range s.ts().list(ns) {
		out.Tasks = append(out.Tasks, apiTask(t, t.init, s.ts().state(ctx, t, t.init)))
	}
	sort.Slice(out.Tasks, func(i, j int) bool { return out.Tasks[i].Id < out.Tasks[j].Id })
	return out, nil
}

// live returns a task whose shim answers.
func (s *tasksSvc) live(ctx context.Context, id string) (*task, error) {
	ns, err := namespaceOf(ctx)
	if err != nil {
		return nil, err
	}
	t, err := s.ts().get(ns, id)
	if err != nil {
		return nil, err
	}
	if _, err := t.liveShim(); err != nil {
		return nil, err
	}
	return t, nil
}

func (s *tasksSvc) Pids(ctx context.Context, r *hullv1.TaskRequest) (*hullv1.PidsResponse, error) {
	t, err := s.live(ctx, r.Id)
	if err != nil {
		return nil, err
	}
	resp, err := t.shim.task.Pids(t.shim.ctx(ctx), &taskapi.PidsRequest{ID: r.Id})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	out := &hullv1.PidsResponse{}
	for _, p := range resp.Processes {
		out.Pids = append(out.Pids, p.Pid)
	}
	return out, nil
}

func (s *tasksSvc) Pause(ctx context.Context, r *hullv1.TaskRequest) (*hullv1.Empty, error) {
	t, err := s.live(ctx, r.Id)
	if err != nil {
		return nil, err
	}
	if _, err := t.shim.task.Pause(t.shim.ctx(ctx), &taskapi.PauseRequest{ID: r.Id}); err != nil {
		return nil, fmt.Errorf("pause %q: %w", r.Id, errgrpc.ToNative(err))
	}
	return &hullv1.Empty{}, nil
}

func (s *tasksSvc) Resume(ctx context.Context, r *hullv1.TaskRequest) (*hullv1.Empty, error) {
	t, err := s.live(ctx, r.Id)
	if err != nil {
		return nil, err
	}
	if _, err := t.shim.task.Resume(t.shim.ctx(ctx), &taskapi.ResumeRequest{ID: r.Id}); err != nil {
		return nil, fmt.Errorf("resume %q: %w", r.Id, errgrpc.ToNative(err))
	}
	return &hullv1.Empty{}, nil
}

func (s *tasksSvc) Metrics(ctx context.Context, r *hullv1.TaskRequest) (*hullv1.MetricsResponse, error) {
	t, err := s.live(ctx, r.Id)
	if err != nil {
		return nil, err
	}
	resp, err := t.shim.task.Stats(t.shim.ctx(ctx), &taskapi.StatsRequest{ID: r.Id})
	if err != nil {
		return nil, fmt.Errorf("metrics %q: %w", r.Id, errgrpc.ToNative(err))
	}
	out := &hullv1.MetricsResponse{Type: resp.Stats.GetTypeUrl(), Data: resp.Stats.GetValue()}
	if resp.Stats != nil {
		a := &anypb.Any{TypeUrl: resp.Stats.TypeUrl, Value: resp.Stats.Value}
		if m, err := anypb.UnmarshalNew(a, proto.UnmarshalOptions{}); err == nil {
			if js, err := protojson.Marshal(m); err == nil {
				out.Json = string(js)
			}
		}
	}
	return out, nil
}

func (s *tasksSvc) Resize(ctx context.Context, r *hullv1.ResizeRequest) (*hullv1.Empty, error) {
	t, err := s.live(ctx, r.Id)
	if err != nil {
		return nil, err
	}
	if _, err := t.shim.task.ResizePty(t.shim.ctx(ctx), &taskapi.ResizePtyRequest{ID: r.Id, ExecID: r.ExecId, Width: r.Width, Height: r.Height}); err != nil {
		return nil, errgrpc.ToNative(err)
	}
	return &hullv1.Empty{}, nil
}

func (s *tasksSvc) Logs(r *hullv1.LogsRequest, stream hullv1.Tasks_LogsServer) error {
	ctx := stream.Context()
	ns, err := namespaceOf(ctx)
	if err != nil {
		return err
	}
	if _, err := s.d.store.get(ns, r.Id); err != nil {
		return err
	}
	f, err := os.Open(s.ts().logPath(ns, r.Id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // never ran
		}
		return err
	}
	defer f.Close()
	buf := make([]byte, 32<<10)
	copyAll := func() error {
		for {
			n, err := f.Read(buf)
			if n > 0 {
				if err := stream.Send(&hullv1.LogsResponse{Data: append([]byte(nil), buf[:n]...)}); err != nil {
					return err
				}
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	if err := copyAll(); err != nil || !r.Follow {
		return err
	}
	for {
		t, err := s.ts().get(ns, r.Id)
		var done <-chan struct{}
		if err == nil {
			done = t.init.pump.done
		}
		if done == nil {
			return copyAll()
		}
		select {
		case <-done:
			return copyAll()
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		if err := copyAll(); err != nil {
			return err
		}
	}
}
