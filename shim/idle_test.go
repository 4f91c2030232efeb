package shim

import (
	"runtime"
	"testing"
	"time"
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
