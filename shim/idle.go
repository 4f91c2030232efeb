package shim

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// busy counts the calls in progress but Wait (which lasts as long as
	// the container): a trim then waits for the call's end (it re-arms
	// the trim), so none runs in the middle of a Create or Start.
	busy atomic.Int32
}

// waitMethod is the task API's Wait, which blocks until the process exits.
const waitMethod = "/containerd.task.v2.Task/Wait"

func (t *trimmer) trim() {
	if t.busy.Load() > 0 {
		return
	}
	trimMemory()
}

// serving is the trimmer of the shim's ttrpc server (the last newTrimmer),
// which background work re-arms through trimSoon.
var serving atomic.Pointer[trimmer]

func newTrimmer() *trimmer {
	t := &trimmer{off: os.Getenv("HULL_SHIM_NO_TRIM") == "1"}
	serving.Store(t)
	if !t.off {
		watchGCOnce.Do(watchGC)
	}
	return t
}

var watchGCOnce sync.Once

// lastTrim is when trimMemory last began (UnixNano).
var lastTrim atomic.Int64

// gcSentinel is garbage whose finalizer tells that a GC cycle ran.
type gcSentinel struct{ _ [64]byte }

// watchGC re-arms the trim after each garbage collection but the ones
// trimMemory runs itself: a GC walks the stacks with the binary's pclntab,
// which maps ~3 MiB of its pages back in. An idle shim still collects
// every two minutes (the Go runtime's forced GC), so without this an idle
// shim kept ~3 MiB more after its first two minutes.
func watchGC() {
	runtime.SetFinalizer(new(gcSentinel), func(*gcSentinel) {
		if time.Since(time.Unix(0, lastTrim.Load())) > 2*trimDelay {
			trimSoon()
		}
		watchGC()
	})
}

// touch (re)arms the trim after activity.
func (t *trimmer) touch() {
	if t.off {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer == nil {
		t.timer = time.AfterFunc(trimDelay, t.trim)
		return
	}
	t.timer.Reset(trimDelay)
}

// interceptor arms the trim after every ttrpc call.
// It also logs each call with its duration at debug level.
func (t *trimmer) interceptor(ctx context.Context, u ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, m ttrpc.Method) (any, error) {
	if info.FullMethod != waitMethod {
		t.busy.Add(1)
		defer t.busy.Add(-1)
	}
	defer t.touch()
	start := time.Now()
	resp, err := m(ctx, u)
	slog.Debug("call", "method", info.FullMethod, "took", time.Since(start), "err", err)
	return resp, err
}

// trimSoon re-arms the serving shim's trim (no-op before it serves, or
// with HULL_SHIM_NO_TRIM=1), for work the shim does in the background
// after its last call. A vm's boot-file release runs ~2 s after the agent
// answered, after the trim that followed Create and Start, and maps code
// and heap back in: ~5 MiB of the binary's pages on hosts whose page cache
// holds the binary in large folios (one fault maps a whole folio).
func trimSoon() {
	if t := serving.Load(); t != nil {
		t.touch()
	}
}

func trimMemory() {
	lastTrim.Store(time.Now().UnixNano())
	debug.FreeOSMemory()
	dropExecutablePages()
}

// dropExecutablePages zaps the mappings of the executable's read-only
// segments (text, rodata); data and heap are left alone, and so is any
// read-only mapping holding private copies (a PIE's relocated RELRO pages,
// "Anonymous" in smaps), which the file could not give back.
func dropExecutablePages() {
	self, err := os.Executable()
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return
	}
	defer f.Close()
	var start, end uint64
	var candidate bool
	flush := func(anon bool) {
		if candidate && !anon && end > start {
			_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
		}
		candidate = false
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "Anonymous:" {
			// The last field of a mapping's block that we need.
			flush(len(fields) > 1 && fields[1] != "0")
			continue
		}
		if !strings.Contains(fields[0], "-") || strings.HasSuffix(fields[0], ":") {
			continue
		}
		// A mapping header: "start-end perms offset dev inode path".
		candidate = false
		if len(fields) < 6 || fields[5] != self || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		s, err1 := strconv.ParseUint(lo, 16, 64)
		e, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		start, end, candidate = s, e, true
	}
}
