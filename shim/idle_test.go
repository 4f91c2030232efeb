package shim

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
)

// TestTrimAfterGC: a garbage collection the shim did not run itself
// re-arms the idle trim (its stack walk maps the binary's pclntab back in).
func TestTrimAfterGC(t *testing.T) {
	t.Setenv("HULL_SHIM_NO_TRIM", "")
	tr := newTrimmer()
	armed := func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.timer != nil
	}
	if armed() {
		t.Fatal("a new trimmer is armed before any call")
	}
	lastTrim.Store(0)
	deadline := time.Now().Add(5 * time.Second)
	for !armed() {
		if time.Now().After(deadline) {
			t.Fatal("no trim armed 5 s after runtime.GC")
		}
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTrimBusy: no trim runs during a call (it is re-armed after), except
// during Wait, which lasts as long as the container.
func TestTrimBusy(t *testing.T) {
	for _, tc := range []struct {
		method string
		busy   int32
	}{
		{"/containerd.task.v2.Task/Create", 1},
		{"/containerd.task.v2.Task/Start", 1},
		{waitMethod, 0},
	} {
		t.Run(tc.method, func(t *testing.T) {
			tr := &trimmer{off: true}
			var during int32
			_, err := tr.interceptor(context.Background(), nil, &ttrpc.UnaryServerInfo{FullMethod: tc.method},
				func(context.Context, func(any) error) (any, error) { during = tr.busy.Load(); return nil, nil })
			if err != nil {
				t.Fatal(err)
			}
			if during != tc.busy || tr.busy.Load() != 0 {
				t.Errorf("busy during the call %d, after %d; want %d, 0", during, tr.busy.Load(), tc.busy)
			}
		})
	}
}
