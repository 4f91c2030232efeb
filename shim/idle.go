package shim

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
)

// A shim spends nearly all its life idle, one per container, so what it
// keeps resident between calls is what counts. After each burst of calls
// (trimDelay with no call) it
//   - returns freed heap to the kernel (debug.FreeOSMemory), and
//   - drops its page-table entries for the read-only file pages of its own
//     binary (madvise MADV_DONTNEED on the executable's r-x and r--
//     mappings). Those pages stay in the page cache, shared by every shim,
//     and come back as minor faults when code runs again; without this the
//     kernel's fault-around keeps nearly the whole binary mapped in each
//     shim after start-up.
//
// HULL_SHIM_NO_TRIM=1 turns this off (to measure without it).
const trimDelay = 500 * time.Millisecond

type trimmer struct {
	mu    sync.Mutex
	timer *time.Timer
	off   bool
}

func newTrimmer() *trimmer {
	return &trimmer{off: os.Getenv("HULL_SHIM_NO_TRIM") == "1"}
}

// touch (re)arms the trim after activity.
func (t *trimmer) touch() {
	if t.off {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer == nil {
		t.timer = time.AfterFunc(trimDelay, trimMemory)
		return
	}
	t.timer.Reset(trimDelay)
}

// interceptor arms the trim after every ttrpc call.
// It also logs each call with its duration at debug level.
func (t *trimmer) interceptor(ctx context.Context, u ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, m ttrpc.Method) (any, error) {
	defer t.touch()
	start := time.Now()
	resp, err := m(ctx, u)
	slog.Debug("call", "method", info.FullMethod, "took", time.Since(start), "err", err)
	return resp, err
}

func trimMemory() {
	debug.FreeOSMemory()
	dropExecutablePages()
}

// dropExecutablePages zaps the mappings of the executable's read-only
// segments (text, rodata); data and heap are left alone.
func dropExecutablePages() {
	self, err := os.Executable()
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != self || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
	}
}
