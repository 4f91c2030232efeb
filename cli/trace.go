package cli

import (
	"fmt"
	"os"
	"time"
)

// tracer prints the time of each step of a command to stderr when
// HULL_TRACE=1 (to see where a `hull run` spends its time).
type tracer struct {
	on   bool
	last time.Time
}

func newTracer() *tracer {
	return &tracer{on: os.Getenv("HULL_TRACE") == "1", last: time.Now()}
}

func (t *tracer) step(what string) {
	if !t.on {
		return
	}
	now := time.Now()
	fmt.Fprintf(os.Stderr, "hull: %-18s %6.2f ms\n", what, float64(now.Sub(t.last).Microseconds())/1000)
	t.last = now
}
