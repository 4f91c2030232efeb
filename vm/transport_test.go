package vm

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hullproject/hull/agent"
)

// dialerVM is a Hypervisor whose agent channel is dialled by the driver.
type dialerVM struct {
	dir  string
	done chan struct{}
	dial func(ctx context.Context) (net.Conn, error)
}

func (h *dialerVM) Start(context.Context, Config) error { return nil }
func (h *dialerVM) Stop(context.Context) error          { return nil }
func (h *dialerVM) Wait() error                         { <-h.done; return nil }
func (h *dialerVM) Done() <-chan struct{}               { return h.done }
func (h *dialerVM) Pid() int                            { return 1 }
func (h *dialerVM) ConsolePath() string                 { return filepath.Join(h.dir, "console.log") }
func (h *dialerVM) AgentSocket() string                 { return filepath.Join(h.dir, "a.sock") }
func (h *dialerVM) Capabilities() Capabilities          { return Capabilities{Vsock: true} }
func (h *dialerVM) AgentTransport() AgentTransport      { return TransportHybridVsock }
func (h *dialerVM) DialAgent(ctx context.Context) (net.Conn, error) {
	return h.dial(ctx)
}

func TestDialAgent(t *testing.T) {
	t.Run("through the driver", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		h := &dialerVM{dir: t.TempDir(), done: make(chan struct{}), dial: func(context.Context) (net.Conn, error) { return a, nil }}
		c, err := DialAgent(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if TransportOf(h) != TransportHybridVsock {
			t.Errorf("TransportOf = %s", TransportOf(h))
		}
	})
	t.Run("the VM ends while dialling", func(t *testing.T) {
		h := &dialerVM{dir: t.TempDir(), done: make(chan struct{}), dial: func(ctx context.Context) (net.Conn, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}}
		go func() { time.Sleep(20 * time.Millisecond); close(h.done) }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := DialAgent(ctx, h)
		if !errors.Is(err, ErrVMExited) || !strings.Contains(err.Error(), "powered off before its agent answered") {
			t.Fatalf("err = %v, want ErrVMExited", err)
		}
	})
	t.Run("the agent never answers", func(t *testing.T) {
		h := &dialerVM{dir: t.TempDir(), done: make(chan struct{}), dial: func(ctx context.Context) (net.Conn, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := DialAgent(ctx, h)
		if !errors.Is(err, ErrAgentTimeout) || !errors.Is(err, agent.ErrUnreachable) || !strings.Contains(err.Error(), "hybrid-vsock") {
			t.Fatalf("err = %v, want ErrAgentTimeout naming the transport", err)
		}
	})
}
