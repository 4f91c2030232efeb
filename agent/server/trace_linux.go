package server

import (
	"bytes"
	"context"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	agentapi "github.com/hullproject/hull/agent/api"
)

// maxTraceEvents bounds the agent's trace: the first steps of a guest's
// life are the ones worth timing, and a long-lived guest must not grow.
const maxTraceEvents = 256

var agentTrace struct {
	mu     sync.Mutex
	events []*agentapi.TraceEvent
}

func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// Mark records that the step name happened now (CLOCK_MONOTONIC), for the
// Trace RPC. It costs a clock read and an append.
func Mark(name string) {
	now := monoNow()
	agentTrace.mu.Lock()
	if len(agentTrace.events) < maxTraceEvents {
		agentTrace.events = append(agentTrace.events, &agentapi.TraceEvent{Name: name, MonoNs: now})
	}
	agentTrace.mu.Unlock()
}

// MarkAt records that the step name happened at monoNs (CLOCK_MONOTONIC);
// a zero time is not recorded.
func MarkAt(name string, monoNs int64) {
	if monoNs == 0 {
		return
	}
	agentTrace.mu.Lock()
	if len(agentTrace.events) < maxTraceEvents {
		agentTrace.events = append(agentTrace.events, &agentapi.TraceEvent{Name: name, MonoNs: monoNs})
	}
	agentTrace.mu.Unlock()
}

// Trace returns the agent's steps so far and the kernel's boot markers.
func (s *Server) Trace(ctx context.Context, _ *agentapi.Empty) (*agentapi.TraceResponse, error) {
	agentTrace.mu.Lock()
	ev := append([]*agentapi.TraceEvent(nil), agentTrace.events...)
	agentTrace.mu.Unlock()
	return &agentapi.TraceResponse{Events: ev, Kernel: kernelMarkers()}, nil
}

// kernelLogMarkers are the kernel log lines worth a timestamp (printed at
// info level, so they are in the ring buffer even with a quiet console).
var kernelLogMarkers = []string{
	"Linux version",
	"Unpacking initramfs",
	"Freeing initrd memory",
	"Freeing unused kernel",
	"Run /init as init process",
	"Run /",
}

// kernelMarkers returns the first line of the kernel log matching each of
// kernelLogMarkers with its printk time.
func kernelMarkers() []*agentapi.TraceEvent {
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil || n <= 0 {
		return nil
	}
	buf := make([]byte, n)
	if n, err = unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf); err != nil {
		return nil
	}
	var out []*agentapi.TraceEvent
	seen := map[string]bool{}
	for _, line := range bytes.Split(buf[:n], []byte{'\n'}) {
		// "<6>[    0.712345] Run /init as init process"
		i, j := bytes.IndexByte(line, '['), bytes.IndexByte(line, ']')
		if i < 0 || j < i {
			continue
		}
		msg := string(bytes.TrimSpace(line[j+1:]))
		for _, m := range kernelLogMarkers {
			if seen[m] || len(msg) < len(m) || msg[:len(m)] != m {
				continue
			}
			sec, err := strconv.ParseFloat(string(bytes.TrimSpace(line[i+1:j])), 64)
			if err != nil {
				continue
			}
			seen[m] = true
			out = append(out, &agentapi.TraceEvent{Name: "kernel: " + msg, MonoNs: int64(sec * 1e9)})
			break
		}
	}
	return out
}
