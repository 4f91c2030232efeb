package vm

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/ttrpc"

	agentapi "github.com/hullproject/hull/agent/api"
)

// mockAgent answers Version and DestroySandbox; other calls are not
// implemented (the embedded nil interface).
type mockAgent struct {
	agentapi.AgentService
	destroyed chan struct{}
}

func (m *mockAgent) Version(context.Context, *agentapi.VersionRequest) (*agentapi.VersionResponse, error) {
	return &agentapi.VersionResponse{AgentVersion: "mock", KernelRelease: "6.1.0-mock"}, nil
}

func (m *mockAgent) DestroySandbox(context.Context, *agentapi.Empty) (*agentapi.Empty, error) {
	close(m.destroyed)
	return &agentapi.Empty{}, nil
}

// mockHypervisor is a VM without a VM: its agent socket is served by a
// mockAgent (or by nobody that answers), its "guest" exits on
// DestroySandbox, on Stop, or when told to crash.
type mockHypervisor struct {
	startErr error
	silent   bool // accept connections but never answer
	crash    error
	dir      string
	ln       net.Listener
	agent    *mockAgent
	done     chan struct{}
	once     sync.Once
	err      error
	stopped  bool
}

func (h *mockHypervisor) Start(ctx context.Context, cfg Config) error {
	if h.startErr != nil {
		return h.startErr
	}
	h.dir, h.done = cfg.StateDir, make(chan struct{})
	os.WriteFile(h.ConsolePath(), []byte("Linux version mock\nmock init running\n"), 0o644)
	ln, err := net.Listen("unix", h.AgentSocket())
	if err != nil {
		return err
	}
	h.ln = ln
	h.agent = &mockAgent{destroyed: make(chan struct{})}
	if h.silent {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
	} else {
		srv, _ := ttrpc.NewServer()
		agentapi.RegisterAgentService(srv, h.agent)
		go srv.Serve(context.Background(), ln)
		go func() {
			<-h.agent.destroyed
			h.exit(nil)
		}()
	}
	if h.crash != nil {
		go func() {
			time.Sleep(50 * time.Millisecond)
			h.exit(h.crash)
		}()
	}
	return nil
}

func (h *mockHypervisor) exit(err error) {
	h.once.Do(func() {
		h.err = err
		h.ln.Close()
		close(h.done)
	})
}

func (h *mockHypervisor) Stop(context.Context) error {
	h.stopped = true
	if h.done != nil {
		h.exit(nil)
	}
	return nil
}
func (h *mockHypervisor) Wait() error                { <-h.done; return h.err }
func (h *mockHypervisor) Done() <-chan struct{}      { return h.done }
func (h *mockHypervisor) Pid() int                   { return 0 }
func (h *mockHypervisor) ConsolePath() string        { return filepath.Join(h.dir, "console.log") }
func (h *mockHypervisor) AgentSocket() string        { return filepath.Join(h.dir, "a.sock") }
func (h *mockHypervisor) Capabilities() Capabilities { return Capabilities{} }

func TestBoot(t *testing.T) {
	errStart := errors.New("start failed")
	for _, tc := range []struct {
		name      string
		h         *mockHypervisor
		want      error
		wantTail  bool
		wantStop  bool
		wantReady bool
	}{
		{"agent answers", &mockHypervisor{}, nil, false, false, true},
		{"start fails", &mockHypervisor{startErr: errStart}, errStart, false, false, false},
		{"agent silent", &mockHypervisor{silent: true}, ErrAgentTimeout, true, true, false},
		{"vm dies first", &mockHypervisor{silent: true, crash: ErrGuestPanic}, ErrGuestPanic, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{StateDir: t.TempDir()}
			sb, err := Boot(context.Background(), tc.h, cfg, 300*time.Millisecond)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.wantTail && !strings.Contains(err.Error(), "mock init running") {
				t.Errorf("error lacks the console tail: %v", err)
			}
			if tc.h.stopped != tc.wantStop {
				t.Errorf("stopped = %v, want %v", tc.h.stopped, tc.wantStop)
			}
			if !tc.wantReady {
				return
			}
			if sb.Version.KernelRelease != "6.1.0-mock" || sb.Ready.Before(sb.StartedAt) {
				t.Errorf("sandbox %+v", sb)
			}
			if err := sb.Shutdown(context.Background(), time.Second); err != nil {
				t.Fatal(err)
			}
			select {
			case <-tc.h.agent.destroyed:
			default:
				t.Error("Shutdown did not call DestroySandbox")
			}
			if tc.h.stopped {
				t.Error("Shutdown stopped the VM although the guest powered off")
			}
		})
	}
}
