package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

// exchange fans events out to subscribers. A subscriber that falls 256
// events behind loses the oldest ones rather than stalling the daemon.
type exchange struct {
	mu   sync.Mutex
	subs map[chan *hullv1.Event]struct{}
	// onShimEvent sees every event a shim sends (the task manager uses
	// exits and OOMs).
	onShimEvent func(ns string, ev *hullv1.Event)
}

func newExchange() *exchange { return &exchange{subs: map[chan *hullv1.Event]struct{}{}} }

func (x *exchange) subscribe() (chan *hullv1.Event, func()) {
	ch := make(chan *hullv1.Event, 256)
	x.mu.Lock()
	x.subs[ch] = struct{}{}
	x.mu.Unlock()
	return ch, func() {
		x.mu.Lock()
		delete(x.subs, ch)
		x.mu.Unlock()
	}
}

func (x *exchange) publish(ev *hullv1.Event) {
	if ev.Timestamp == nil {
		ev.Timestamp = timestamppb.Now()
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for ch := range x.subs {
		select {
		case ch <- ev:
		default:
			select { // drop the oldest
			case <-ch:
			default:
			}
			select {
			case ch <- ev:
			default:
			}
		}
	}
}

// fromEnvelope turns a shim's event into the API's.
func fromEnvelope(ns, topic string, ts time.Time, a *anypb.Any) *hullv1.Event {
	ev := &hullv1.Event{Namespace: ns, Topic: topic, Timestamp: timestamppb.New(ts)}
	if a == nil {
		return ev
	}
	m, err := anypb.UnmarshalNew(a, proto.UnmarshalOptions{})
	if err != nil {
		return ev
	}
	switch e := m.(type) {
	case *eventstypes.TaskCreate:
		ev.ContainerId, ev.Pid = e.ContainerID, e.Pid
	case *eventstypes.TaskStart:
		ev.ContainerId, ev.Pid = e.ContainerID, e.Pid
	case *eventstypes.TaskExit:
		ev.ContainerId, ev.Pid, ev.ExitStatus = e.ContainerID, e.Pid, e.ExitStatus
		if e.ID != e.ContainerID {
			ev.ExecId = e.ID
		}
	case *eventstypes.TaskDelete:
		ev.ContainerId, ev.Pid, ev.ExitStatus = e.ContainerID, e.Pid, e.ExitStatus
	case *eventstypes.TaskExecAdded:
		ev.ContainerId, ev.ExecId = e.ContainerID, e.ExecID
	case *eventstypes.TaskExecStarted:
		ev.ContainerId, ev.ExecId, ev.Pid = e.ContainerID, e.ExecID, e.Pid
	case *eventstypes.TaskOOM:
		ev.ContainerId = e.ContainerID
	case *eventstypes.TaskPaused:
		ev.ContainerId = e.ContainerID
	case *eventstypes.TaskResumed:
		ev.ContainerId = e.ContainerID
	}
	return ev
}

// forward is the ttrpc events service the shims call (containerd's
// Events.Forward, at $TTRPC_ADDRESS).
type forward struct{ x *exchange }

var _ eventsapi.EventsService = forward{}

func (f forward) Forward(ctx context.Context, r *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	env := r.GetEnvelope()
	if env == nil {
		return &emptypb.Empty{}, nil
	}
	f.x.fromShim(env)
	return &emptypb.Empty{}, nil
}

func (x *exchange) fromShim(env *types.Envelope) {
	ev := fromEnvelope(env.Namespace, env.Topic, env.Timestamp.AsTime(), env.Event)
	slog.Debug("shim event", "ns", ev.Namespace, "topic", ev.Topic, "container", ev.ContainerId)
	if x.onShimEvent != nil {
		x.onShimEvent(env.Namespace, ev)
	}
	// The daemon publishes task exits and deletes itself, once each, when
	// it has recorded them (so a restart does not report them twice).
	switch ev.Topic {
	case "/tasks/exit", "/tasks/delete":
		return
	}
	x.publish(ev)
}
