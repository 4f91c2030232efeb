package shim

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The event topics of the task API.
const (
	TopicTaskCreate      = "/tasks/create"
	TopicTaskStart       = "/tasks/start"
	TopicTaskExit        = "/tasks/exit"
	TopicTaskDelete      = "/tasks/delete"
	TopicTaskExecAdded   = "/tasks/exec-added"
	TopicTaskExecStarted = "/tasks/exec-started"
	TopicTaskOOM         = "/tasks/oom"
	TopicTaskPaused      = "/tasks/paused"
	TopicTaskResumed     = "/tasks/resumed"
)

// Publisher sends the shim's events back to the daemon, in order, without
// ever blocking the task service. Two ways exist, both given by the daemon:
//   - ttrpcAddress (containerd's $TTRPC_ADDRESS): the Events.Forward call,
//     which containerd's own shims use;
//   - publishBinary (-publish-binary): `BINARY --address ADDRESS publish
//     --topic T --namespace NS` with the event as a protobuf Any on stdin.
//
// The first is tried first; the second is the fallback.
type Publisher struct {
	namespace     string
	ttrpcAddress  string
	publishBinary string
	address       string

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*types.Envelope
	closed bool
	done   chan struct{}

	client *ttrpc.Client
}

// NewPublisher starts a publisher; Close flushes and stops it.
func NewPublisher(namespace, ttrpcAddress, publishBinary, address string) *Publisher {
	p := &Publisher{namespace: namespace, ttrpcAddress: ttrpcAddress, publishBinary: publishBinary, address: address, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.run()
	return p
}

// Publish queues an event for topic.
func (p *Publisher) Publish(topic string, event proto.Message) {
	if p == nil {
		return
	}
	a, err := anypb.New(event)
	if err != nil {
		slog.Error("encode event", "topic", topic, "err", err)
		return
	}
	// containerd 1.6 names event types by their full protobuf name.
	a.TypeUrl = strings.TrimPrefix(a.TypeUrl, "type.googleapis.com/")
	env := &types.Envelope{Timestamp: timestamppb.Now(), Namespace: p.namespace, Topic: topic, Event: a}
	p.mu.Lock()
	if !p.closed {
		p.queue = append(p.queue, env)
	}
	p.mu.Unlock()
	p.cond.Signal()
}

// Close sends what is queued (for up to timeout) and stops.
func (p *Publisher) Close(timeout time.Duration) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
	select {
	case <-p.done:
	case <-time.After(timeout):
	}
	if p.client != nil {
		p.client.Close()
	}
}

func (p *Publisher) run() {
	defer close(p.done)
	for {
		p.mu.Lock()
		for len(p.queue) == 0 && !p.closed {
			p.cond.Wait()
		}
		if len(p.queue) == 0 {
			p.mu.Unlock()
			return
		}
		env := p.queue[0]
		p.queue = p.queue[1:]
		p.mu.Unlock()
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			if err = p.send(env); err == nil {
				break
			}
			time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
		}
		if err != nil {
			slog.Warn("publish event", "topic", env.Topic, "err", err)
		}
	}
}

func (p *Publisher) send(env *types.Envelope) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if p.ttrpcAddress != "" {
		err := p.forward(ctx, env)
		if err == nil || p.publishBinary == "" {
			return err
		}
	}
	if p.publishBinary == "" {
		return fmt.Errorf("no way to publish: neither TTRPC_ADDRESS nor -publish-binary given")
	}
	data, err := proto.Marshal(env.Event)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, p.publishBinary, "--address", p.address, "publish", "--topic", env.Topic, "--namespace", env.Namespace)
	cmd.Stdin = bytes.NewReader(data)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The shim reaps all its children: run it through the reaper.
	ec, err := runc.Monitor.Start(cmd)
	if err != nil {
		return fmt.Errorf("%s publish: %w", p.publishBinary, err)
	}
	if status, _ := runc.Monitor.Wait(cmd, ec); status != 0 {
		return fmt.Errorf("%s publish: exit status %d: %s", p.publishBinary, status, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

func (p *Publisher) forward(ctx context.Context, env *types.Envelope) error {
	if p.client == nil {
		conn, err := (&net.Dialer{}).DialContext(ctx, "unix", strings.TrimPrefix(p.ttrpcAddress, "unix://"))
		if err != nil {
			return err
		}
		p.client = ttrpc.NewClient(conn, ttrpc.WithOnClose(func() {}))
	}
	_, err := eventsapi.NewEventsClient(p.client).Forward(ctx, &eventsapi.ForwardRequest{Envelope: env})
	if err != nil {
		p.client.Close()
		p.client = nil
	}
	return err
}
