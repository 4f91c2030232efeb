// Package trace prints the time spent in each phase of a runtime
// operation to stderr when HULL_TRACE=1, for measuring the hot path.
package trace

import (
	"fmt"
	"os"
	"time"
)

var (
	on    = os.Getenv("HULL_TRACE") == "1"
	start = time.Now()
	last  = start
)

// Mark prints the time since the previous mark and since start.
func Mark(what string) {
	if !on {
		return
	}
	now := time.Now()
	fmt.Fprintf(os.Stderr, "[%d %7.2fms +%6.2fms] %s\n", os.Getpid(), float64(now.Sub(start).Microseconds())/1000, float64(now.Sub(last).Microseconds())/1000, what)
	last = now
}
