// Package trace prints the time spent in each phase of a runtime
// operation to stderr when HULL_TRACE=1, for measuring the hot path.
package trace

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// EnvT0 carries the runtime's start (Unix nanoseconds) to the init, whose
// marks are then on the runtime's clock.
const EnvT0 = "HULL_TRACE_T0"

var (
	on    = os.Getenv("HULL_TRACE") == "1"
	start = startTime()
	last  = time.Now()
)

func startTime() time.Time {
	if ns, err := strconv.ParseInt(os.Getenv(EnvT0), 10, 64); err == nil {
		return time.Unix(0, ns)
	}
	return time.Now()
}

// sink, when set (SetSink), also receives every mark.
var sink func(string)

// SetSink makes Mark hand each step to f ("rt: " + step), whether or not
// HULL_TRACE is on. Set it once, before the marks it should see.
func SetSink(f func(string)) { sink = f }

// Env is what a child started with HULL_TRACE=1 gets to share the clock:
// nil when tracing is off.
func Env() []string {
	if !on {
		return nil
	}
	return []string{"HULL_TRACE=1", EnvT0 + "=" + strconv.FormatInt(start.UnixNano(), 10)}
}

// Mark prints the time since the previous mark and since start.
func Mark(what string) {
	if sink != nil {
		sink("rt: " + what)
	}
	if !on {
		return
	}
	now := time.Now()
	fmt.Fprintf(os.Stderr, "[%d %7.2fms +%6.2fms] %s\n", os.Getpid(), float64(now.Sub(start).Microseconds())/1000, float64(now.Sub(last).Microseconds())/1000, what)
	last = now
}
