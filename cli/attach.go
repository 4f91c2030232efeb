package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/console"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
)

// attachment is a client's hold on a process's stdio through the daemon.
type attachment struct {
	g      *globals
	tc     hullv1.TasksClient
	id     string
	execID string
	stream hullv1.Tasks_AttachClient
	cancel context.CancelFunc
}

// attach joins a created process's stdio; output is captured for it from
// the moment this returns.
func attach(ctx context.Context, g *globals, tc hullv1.TasksClient, id, execID string) (*attachment, error) {
	ctx, cancel := context.WithCancel(ctx)
	st, err := tc.Attach(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	if err := st.Send(&hullv1.AttachRequest{Id: id, ExecId: execID}); err != nil {
		cancel()
		return nil, fromRPC(err)
	}
	m, err := st.Recv()
	if err != nil {
		cancel()
		return nil, fromRPC(err)
	}
	if !m.Ready {
		cancel()
		return nil, errors.New("attach: the daemon did not confirm")
	}
	return &attachment{g: g, tc: tc, id: id, execID: execID, stream: st, cancel: cancel}, nil
}

// run copies stdio until the process exits and returns its exit status.
// stdin is forwarded when interactive; with tty the local terminal is put
// in raw mode and its size follows; without, SIGINT/SIGTERM are forwarded.
func (a *attachment) run(ctx context.Context, interactive, tty bool) (int, error) {
	defer a.cancel()
	if tty {
		if c, err := console.ConsoleFromFile(os.Stdin); err == nil {
			if err := c.SetRaw(); err == nil {
				defer c.Reset()
			}
			resize := func() {
				if ws, err := c.Size(); err == nil {
					_ = a.stream.Send(&hullv1.AttachRequest{Width: uint32(ws.Width), Height: uint32(ws.Height)})
				}
			}
			resize()
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, syscall.SIGWINCH)
			defer signal.Stop(winch)
			go func() {
				for range winch {
					resize()
				}
			}()
		}
	} else {
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
		defer signal.Stop(sigs)
		go func() {
			for s := range sigs {
				_, _ = a.tc.Kill(ctx, &hullv1.KillRequest{Id: a.id, ExecId: a.execID, Signal: uint32(s.(syscall.Signal))})
			}
		}()
	}
	if interactive {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := a.g.stdin.Read(buf)
				if n > 0 {
					if a.stream.Send(&hullv1.AttachRequest{Stdin: append([]byte(nil), buf[:n]...)}) != nil {
						return
					}
				}
				if err != nil {
					_ = a.stream.Send(&hullv1.AttachRequest{CloseStdin: true})
					return
				}
			}
		}()
	}
	for {
		m, err := a.stream.Recv()
		if err == io.EOF {
			return 0, errors.New("attach: the daemon ended the stream before the process exited")
		}
		if err != nil {
			if ctx.Err() == nil && status.Code(err) == codes.Unavailable {
				return 0, fmt.Errorf("lost the connection to hulld while attached to %s (it keeps running: hull tasks ls, hull logs %s): %w", a.id, a.id, fromRPC(err))
			}
			return 0, fromRPC(err)
		}
		if len(m.Stdout) > 0 {
			if _, err := a.g.stdout.Write(m.Stdout); err != nil {
				return 0, err
			}
		}
		if len(m.Stderr) > 0 {
			_, _ = a.g.stderr.Write(m.Stderr)
		}
		if m.Exited {
			return int(m.ExitStatus), nil
		}
	}
}

// exitErr is the error a command returns for a process's exit status.
func exitErr(code int) error {
	if code == 0 {
		return nil
	}
	return &ExitError{Code: code}
}

func wrapf(err error, format string, a ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(a, err)...)
}
