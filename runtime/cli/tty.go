package cli

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// localTTY serves a foreground `run`/`exec` whose process has a terminal
// but no --console-socket was given (runc does the same): it listens on a
// private console socket, receives the pty master, and copies between it
// and the runtime's own stdio (put in raw mode when it is a terminal).
type localTTY struct {
	dir  string
	l    *net.UnixListener
	done chan struct{}
	cur  console.Console
}

func newLocalTTY() (*localTTY, error) {
	dir, err := os.MkdirTemp("", "hull-tty-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	t := &localTTY{dir: dir, l: l, done: make(chan struct{})}
	go t.serve()
	return t, nil
}

func (t *localTTY) path() string { return filepath.Join(t.dir, "console.sock") }

func (t *localTTY) serve() {
	defer close(t.done)
	c, err := t.l.AcceptUnix()
	if err != nil {
		return
	}
	defer c.Close()
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return
	}
	master := os.NewFile(uintptr(fds[0]), "pty-master")
	if cur, err := console.ConsoleFromFile(os.Stdin); err == nil {
		if ws, err := cur.Size(); err == nil {
			if m, err := console.ConsoleFromFile(master); err == nil {
				m.Resize(ws)
			}
		}
		if cur.SetRaw() == nil {
			t.cur = cur
		}
	}
	go io.Copy(master, os.Stdin)
	io.Copy(os.Stdout, master)
}

// close waits for the output to drain (after the process exited) and
// restores the terminal.
func (t *localTTY) close() {
	t.l.Close()
	<-t.done
	if t.cur != nil {
		t.cur.Reset()
	}
	os.RemoveAll(t.dir)
}

func errTTY(err error) error { return fmt.Errorf("terminal: %w", err) }
