package cgroups

import (
	"context"
	"errors"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestOOMNotify drives a real process past its memory limit and expects an
// OOM event, a kill count, and the stream to end when the cgroup goes.
func TestOOMNotify(t *testing.T) {
	needRoot(t)
	lim := int64(16 << 20)
	res := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &lim, Swap: &lim}}
	m := newTestManager(t, testParent(t)+"/oom", "oom", res)
	p := startProc(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(res); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, err := m.NotifyOOM(ctx)
	if err != nil {
		t.Fatalf("NotifyOOM: %v", err)
	}
	if n, err := m.OOMKillCount(); err != nil || n != 0 {
		t.Fatalf("OOMKillCount before = %d, %v", n, err)
	}
	// the subshell that evaluates this grows past 16 MiB and is killed
	if p.run(t, "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}") {
		t.Fatal("a 64 MiB allocation succeeded under a 16 MiB limit")
	}
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatal("OOM channel closed without an event")
		}
	case <-ctx.Done():
		t.Fatal("no OOM event")
	}
	if n, err := m.OOMKillCount(); err != nil || n == 0 {
		t.Errorf("OOMKillCount after = %d, %v", n, err)
	}
	p.kill()
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return // closed by the cgroup's removal
			}
		case <-ctx.Done():
			t.Fatal("OOM channel not closed after Destroy")
		}
	}
}

// TestOOMNotifyCancel: the stream ends with its context.
func TestOOMNotifyCancel(t *testing.T) {
	needRoot(t)
	m := newTestManager(t, testParent(t)+"/oomc", "oomc", nil)
	p := startProc(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := m.NotifyOOM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after cancel")
	}
}

// TestOOMNotifyV2NeedsMemory: on a cgroup2 group without the memory
// controller the error says so.
func TestOOMNotifyV2NeedsMemory(t *testing.T) {
	needRoot(t)
	m := newV2TestManager(t, testParent(t)+"/oom2")
	p := startProc(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatal(err)
	}
	if v2Controllers(m.Paths()[""])["memory"] {
		t.Skip("this cgroup2 tree has the memory controller; TestOOMNotify covers it (in the VM)")
	}
	if _, err := m.NotifyOOM(context.Background()); !errors.Is(err, ErrNoCgroup) {
		t.Errorf("NotifyOOM = %v, want ErrNoCgroup", err)
	}
}
