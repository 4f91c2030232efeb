package daemon

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Output streams.
const (
	streamStdout = 1
	streamStderr = 2
)

type chunk struct {
	stream int
	data   []byte
}

// pump reads one process's output fifos into its log (if any) and into
// attached clients, and holds the write end of its stdin fifo.
//
// The daemon holds a write end of each output fifo too, so a read never
// sees EOF between shims (the fifos outlive both); reading ends with drain,
// once the process has exited.
type pump struct {
	outs  []*os.File // read ends
	dummy []*os.File // write ends held so reads never see EOF
	stdin *os.File

	logMu sync.Mutex
	log   io.WriteCloser

	mu   sync.Mutex
	subs map[*subscriber]struct{}

	wg       sync.WaitGroup
	done     chan struct{}
	draining chan struct{}
	drainOne sync.Once
}

type subscriber struct {
	ch  chan chunk
	ctx context.Context
}

// openPump opens the fifos at stdout, stderr, stdin ("" for none) and
// starts reading. log may be nil.
func openPump(stdout, stderr, stdin string, log io.WriteCloser) (_ *pump, err error) {
	p := &pump{log: log, subs: map[*subscriber]struct{}{}, done: make(chan struct{}), draining: make(chan struct{})}
	defer func() {
		if err != nil {
			p.closeFiles()
		}
	}()
	for i, path := range []string{stdout, stderr} {
		if path == "" {
			continue
		}
		r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, err
		}
		p.outs = append(p.outs, r)
		w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, err
		}
		p.dummy = append(p.dummy, w)
		p.wg.Add(1)
		go p.read(r, i+1)
	}
	if stdin != "" {
		// Read-write: the open never blocks, and the shim sees EOF only
		// when this end closes.
		if p.stdin, err = os.OpenFile(stdin, os.O_RDWR, 0); err != nil {
			return nil, err
		}
	}
	go func() {
		p.wg.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *pump) read(f *os.File, stream int) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			p.deliver(stream, buf[:n])
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			select {
			case <-p.draining:
				p.drainRaw(f, stream, buf)
				return
			default:
				_ = f.SetReadDeadline(time.Time{})
				continue
			}
		}
		return
	}
}

// drainRaw reads what is left in the pipe without waiting.
func (p *pump) drainRaw(f *os.File, stream int, buf []byte) {
	_ = f.SetReadDeadline(time.Time{})
	sc, err := f.SyscallConn()
	if err != nil {
		return
	}
	for {
		var n int
		var rerr error
		if err := sc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			return true
		}); err != nil {
			return
		}
		if n <= 0 || rerr != nil {
			return
		}
		p.deliver(stream, buf[:n])
	}
}

func (p *pump) deliver(stream int, data []byte) {
	if p.log != nil {
		p.logMu.Lock()
		_, _ = p.log.Write(data)
		p.logMu.Unlock()
	}
	p.mu.Lock()
	subs := make([]*subscriber, 0, len(p.subs))
	for s := range p.subs {
		subs = append(subs, s)
	}
	p.mu.Unlock()
	for _, s := range subs {
		c := chunk{stream: stream, data: append([]byte(nil), data...)}
		select {
		case s.ch <- c:
		case <-s.ctx.Done():
		}
	}
}

// subscribe attaches a client until ctx ends.
func (p *pump) subscribe(ctx context.Context) *subscriber {
	s := &subscriber{ch: make(chan chunk, 64), ctx: ctx}
	p.mu.Lock()
	p.subs[s] = struct{}{}
	p.mu.Unlock()
	return s
}

func (p *pump) unsubscribe(s *subscriber) {
	p.mu.Lock()
	delete(p.subs, s)
	p.mu.Unlock()
}

// drain ends reading once the process has exited: after grace (for shims
// that may still be copying output when they report the exit), whatever is
// in the pipes is read, then the readers stop.
func (p *pump) drain(grace time.Duration) {
	p.drainOne.Do(func() {
		go func() {
			if grace > 0 {
				time.Sleep(grace)
			}
			close(p.draining)
			for _, f := range p.outs {
				_ = f.SetReadDeadline(time.Now())
			}
		}()
	})
	if len(p.outs) == 0 {
		return
	}
}

// writeStdin writes to the process's stdin.
func (p *pump) writeStdin(b []byte) error {
	if p.stdin == nil {
		return errors.New("process has no stdin")
	}
	_, err := p.stdin.Write(b)
	return err
}

func (p *pump) closeStdin() {
	if p.stdin != nil {
		p.stdin.Close()
	}
}

func (p *pump) closeFiles() {
	for _, f := range p.outs {
		f.Close()
	}
	for _, f := range p.dummy {
		f.Close()
	}
	if p.stdin != nil {
		p.stdin.Close()
	}
}

// close stops everything (the task is gone or the daemon stops).
func (p *pump) close() {
	p.drain(0)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
	}
	p.closeFiles()
	if p.log != nil {
		p.logMu.Lock()
		p.log.Close()
		p.logMu.Unlock()
	}
}
