package shim

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSubscriptionOrder: every subscriber gets every exit, in order, and
// a closed subscription ends its reader.
func TestSubscriptionOrder(t *testing.T) {
	r := &reaper{subs: map[*subscription]struct{}{}}
	a, b := r.subscribe(), r.subscribe()
	for pid := 1; pid <= 100; pid++ {
		r.mu.Lock()
		for s := range r.subs {
			s.push(Exit{Pid: pid})
		}
		r.mu.Unlock()
	}
	for _, s := range []*subscription{a, b} {
		for want := 1; want <= 100; want++ {
			e, ok := s.next()
			if !ok || e.Pid != want {
				t.Fatalf("got %v %v, want pid %d", e, ok, want)
			}
		}
	}
	done := make(chan bool)
	go func() { _, ok := a.next(); done <- ok }()
	time.Sleep(10 * time.Millisecond)
	r.unsubscribe(a)
	select {
	case ok := <-done:
		if ok {
			t.Fatal("next on a closed, empty subscription returned an exit")
		}
	case <-time.After(time.Second):
		t.Fatal("unsubscribe did not wake the reader")
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		ws   uint32
		want int
	}{
		{0, 0},
		{3 << 8, 3},
		{9, 137},  // killed by SIGKILL
		{15, 143}, // killed by SIGTERM
	}
	for _, tt := range tests {
		if got := exitStatus(waitStatus(tt.ws)); got != tt.want {
			t.Errorf("wait status %#x: %d, want %d", tt.ws, got, tt.want)
		}
	}
}

func waitStatus(v uint32) unix.WaitStatus { return unix.WaitStatus(v) }
