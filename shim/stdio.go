package shim

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/errdefs"
	"github.com/containerd/fifo"
	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// procIO joins one process's stdio to the paths containerd gave: fifos
// (ctr, hulld) or plain files (file:// log URIs). Without a terminal the
// runtime gets pipes and the shim copies between them and the fifos; with
// one it gets a console socket and the shim copies to and from the pty
// master it receives.
type procIO struct {
	stdio Stdio

	pipes   runc.IO         // no terminal: the runtime's ends are in here
	socket  *runc.Socket    // terminal: where the runtime sends the master
	console console.Console // terminal: the master, once received

	stdin  io.ReadCloser // the stdin fifo, read by the shim
	stdinW io.WriteCloser
	outs   []io.WriteCloser // stdout, stderr fifos
	keep   []io.Closer      // read ends held open so writes never EPIPE

	outputs   sync.WaitGroup
	stdinOnce sync.Once
	stdinDone chan struct{} // closed when the stdin copy ends
}

// fileURI turns a file:// URI or plain path into a path. Other URI schemes
// (containerd's binary:// loggers) are not supported.
func fileURI(p string) (string, error) {
	if path, ok := strings.CutPrefix(p, "file://"); ok {
		return path, nil
	}
	if scheme, _, ok := strings.Cut(p, "://"); ok {
		return "", fmt.Errorf("stdio %q: %s:// loggers are not supported (fifos, files and file:// are): %w", p, scheme, errdefs.ErrNotImplemented)
	}
	return p, nil
}

// newProcIO prepares the stdio of a process whose user is uid:gid (the
// owner of the pipes). Fifos are opened now: containerd opened their other
// ends before it asked for the process.
func newProcIO(ctx context.Context, s Stdio, uid, gid int) (_ *procIO, err error) {
	p := &procIO{stdio: s}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	switch {
	case s.Terminal:
		if p.socket, err = runc.NewTempConsoleSocket(); err != nil {
			return nil, fmt.Errorf("console socket: %w", err)
		}
	case s.Stdin == "" && s.Stdout == "" && s.Stderr == "":
		// No stdio at all: /dev/null. (Without any, the runtime CLI's own
		// captured output pipe would be inherited by the container.)
		if p.pipes, err = runc.NewNullIO(); err != nil {
			return nil, fmt.Errorf("stdio: %w", err)
		}
	default:
		p.pipes, err = runc.NewPipeIO(uid, gid, func(o *runc.IOOption) {
			o.OpenStdin, o.OpenStdout, o.OpenStderr = s.Stdin != "", s.Stdout != "", s.Stderr != ""
		})
		if err != nil {
			return nil, fmt.Errorf("stdio pipes: %w", err)
		}
	}
	if s.Stdin != "" {
		path, err := fileURI(s.Stdin)
		if err != nil {
			return nil, err
		}
		// Not the call's ctx: a non-blocking OpenFifo finishes opening in
		// the background and gives up when its ctx ends, which is as soon
		// as the Create or Exec call returns; the daemon may open its
		// writing end only later.
		if p.stdin, err = fifo.OpenFifo(context.WithoutCancel(ctx), path, syscall.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
			return nil, fmt.Errorf("open stdin %s: %w", s.Stdin, err)
		}
	}
	for _, uri := range []string{s.Stdout, s.Stderr} {
		if uri == "" || (s.Terminal && uri == s.Stderr) {
			p.outs = append(p.outs, nil)
			continue
		}
		path, err := fileURI(uri)
		if err != nil {
			return nil, err
		}
		w, err := p.openOutput(ctx, path)
		if err != nil {
			return nil, err
		}
		p.outs = append(p.outs, w)
	}
	return p, nil
}

func (p *procIO) openOutput(ctx context.Context, path string) (io.WriteCloser, error) {
	fi, err := os.Stat(path)
	if err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
		w, err := fifo.OpenFifo(ctx, path, syscall.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		r, err := fifo.OpenFifo(ctx, path, syscall.O_RDONLY, 0)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		p.keep = append(p.keep, r)
		return w, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return f, nil
}

// consoleSocket is the socket to pass as the runtime's --console-socket
// (nil without a terminal).
func (p *procIO) consoleSocket() runc.ConsoleSocket {
	if p.socket == nil {
		return nil
	}
	return p.socket
}

// runtimeIO is what to pass as the runtime's stdio (nil with a terminal).
func (p *procIO) runtimeIO() runc.IO {
	if p.pipes == nil {
		return nil
	}
	return p.pipes
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (p *procIO) copyOut(dst io.Writer, src io.Reader) {
	p.outputs.Add(1)
	go func() {
		defer p.outputs.Done()
		buf := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(buf)
		if dst == nil {
			dst = io.Discard
		}
		_, _ = io.CopyBuffer(dst, src, *buf)
	}()
}

func (p *procIO) copyIn(dst io.WriteCloser, closeDst bool) {
	if p.stdin == nil {
		return
	}
	p.stdinW = dst
	p.stdinDone = make(chan struct{})
	go func() {
		defer close(p.stdinDone)
		buf := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(buf)
		_, _ = io.CopyBuffer(dst, p.stdin, *buf)
		if closeDst {
			dst.Close()
		}
	}()
}

// started wires the copies once the runtime has created the process,
// receiving the pty master from the console socket with a terminal.
func (p *procIO) started(ctx context.Context) error {
	if p.socket != nil {
		c, err := p.socket.ReceiveMaster()
		p.socket.Close()
		p.socket = nil
		if err != nil {
			return fmt.Errorf("receive console master: %w", err)
		}
		p.console = c
		p.copyIn(c, false)
		p.copyOut(p.outs[0], c)
		return nil
	}
	// go-runc already closed the runtime's ends (CloseAfterStart).
	if w := p.pipes.Stdin(); w != nil {
		p.copyIn(w, true)
	}
	if r := p.pipes.Stdout(); r != nil {
		p.copyOut(p.outs[0], r)
	}
	if r := p.pipes.Stderr(); r != nil {
		p.copyOut(p.outs[1], r)
	}
	return nil
}

// resize sets the terminal's window size.
func (p *procIO) resize(w, h uint32) error {
	if p.console == nil {
		return fmt.Errorf("process has no terminal: %w", errNoTerminal)
	}
	return p.console.Resize(console.WinSize{Width: uint16(w), Height: uint16(h)})
}

// endStdin is CloseIO: the daemon has written all it will. The process
// gets what is still in the fifo, then EOF (without a terminal; with one
// the line discipline decides). It returns at once; the copy drains in the
// background, and ends by itself if the daemon closed its end too.
func (p *procIO) endStdin() {
	if p.stdin == nil {
		return
	}
	done := p.stdinDone
	if done == nil {
		p.closeStdin()
		return
	}
	go func() {
		wait := time.Millisecond
		for {
			select {
			case <-done:
				return
			case <-time.After(wait):
			}
			if pendingBytes(p.stdin) <= 0 {
				p.closeStdin()
				return
			}
			wait = min(2*wait, 100*time.Millisecond)
		}
	}()
}

// pendingBytes is how much unread data a fifo holds (FIONREAD, alias TIOCINQ); -1 when it
// cannot tell (not open yet, closed).
func pendingBytes(f io.Reader) int {
	sc, ok := f.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	ctl := make(chan struct{})
	go func() {
		defer close(ctl)
		_ = rc.Control(func(fd uintptr) {
			if v, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ); err == nil {
				n = v
			}
		})
	}()
	select {
	case <-ctl:
		return n
	case <-time.After(50 * time.Millisecond):
		// Never opened: nothing was written.
		return -1
	}
}

// closeStdin ends the stdin copy at once.
func (p *procIO) closeStdin() {
	p.stdinOnce.Do(func() {
		if p.stdin != nil {
			p.stdin.Close()
		}
	})
}

// wait waits up to timeout for the output copies to drain (a background
// process that inherited the pipes can hold them open for ever).
func (p *procIO) wait(timeout time.Duration) {
	done := make(chan struct{})
	go func() { p.outputs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// close releases everything: pipes, console, fifos.
func (p *procIO) close() {
	if p.socket != nil {
		p.socket.Close()
	}
	if p.console != nil {
		p.console.Close()
	}
	if p.pipes != nil {
		p.pipes.Close()
	}
	p.closeStdin()
	for _, w := range p.outs {
		if w != nil {
			w.Close()
		}
	}
	for _, c := range p.keep {
		c.Close()
	}
}
