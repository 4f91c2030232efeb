package qemu

import (
	"context"
	"errors"
	"testing"
	"time"

	agentapi "github.com/hullproject/hull/agent/api"
	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/vmtest"
)

// TestPauseResume: a paused guest's agent does not answer; after Resume
// it does.
func TestPauseResume(t *testing.T) {
	cfg := baseConfig(t)
	q := newTCG()
	ctx := context.Background()
	if err := q.Pause(ctx); !errors.Is(err, vm.ErrNotStarted) {
		t.Fatalf("Pause before Start: %v", err)
	}
	sb, err := vm.Boot(ctx, q, cfg, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sb.Shutdown(ctx, 10*time.Second); err != nil {
			t.Error(err)
		}
		vmtest.NoStrays(t)
	}()
	if err := q.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := q.Status(ctx); err != nil || st != "paused" {
		t.Fatalf("status %q, %v", st, err)
	}
	// The guest's vCPUs are stopped: the agent cannot answer.
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = sb.Agent.Version(pctx, &agentapi.VersionRequest{})
	cancel()
	if err == nil {
		t.Fatal("a paused guest's agent answered")
	}
	if err := q.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := q.Status(ctx); err != nil || st != "running" {
		t.Fatalf("status %q, %v", st, err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := sb.Agent.Version(rctx, &agentapi.VersionRequest{}); err != nil {
		t.Fatalf("agent after Resume: %v", err)
	}
}
