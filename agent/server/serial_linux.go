package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// pollInterval is how often the guest retries a read on a port with no host
// connected (read returns 0 then) and how often it looks for the port.
const pollInterval = 5 * time.Millisecond

// FindPort returns the device of the virtio-serial port called name, polling
// /sys/class/virtio-ports until it appears or ctx ends (the port shows up a
// few ms after the virtio_console driver binds).
func FindPort(ctx context.Context, name string) (string, error) {
	for {
		dirs, _ := filepath.Glob("/sys/class/virtio-ports/*")
		for _, d := range dirs {
			b, err := os.ReadFile(filepath.Join(d, "name"))
			if err == nil && strings.TrimSpace(string(b)) == name {
				return "/dev/" + filepath.Base(d), nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("virtio-serial port %q: %w", name, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// SerialListener is a net.Listener over one virtio-serial port: Accept
// returns one connection on the port, then blocks until Close.
type SerialListener struct {
	Path   string
	once   sync.Once
	done   chan struct{}
	closeO sync.Once
	conn   *serialConn
}

// NewSerialListener listens on the port device at path.
func NewSerialListener(path string) *SerialListener {
	return &SerialListener{Path: path, done: make(chan struct{})}
}

// Accept implements net.Listener.
func (l *SerialListener) Accept() (net.Conn, error) {
	var c net.Conn
	var err error
	first := false
	l.once.Do(func() {
		first = true
		var f *os.File
		f, err = os.OpenFile(l.Path, os.O_RDWR, 0)
		if err == nil {
			l.conn = &serialConn{f: f, done: l.done}
			c = l.conn
		}
	})
	if first {
		return c, err
	}
	<-l.done
	return nil, net.ErrClosed
}

// Close implements net.Listener.
func (l *SerialListener) Close() error {
	l.closeO.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener.
func (l *SerialListener) Addr() net.Addr { return serialAddr(l.Path) }

type serialAddr string

func (a serialAddr) Network() string { return "virtio-serial" }
func (a serialAddr) String() string  { return string(a) }

// serialConn is a port as a net.Conn. A read of 0 bytes means no host is
// connected (yet, or for now): it is retried after pollInterval.
type serialConn struct {
	f    *os.File
	done chan struct{}
}

func (c *serialConn) Read(p []byte) (int, error) {
	for {
		n, err := c.f.Read(p)
		if n > 0 {
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		select {
		case <-c.done:
			return 0, io.EOF
		case <-time.After(pollInterval):
		}
	}
}

func (c *serialConn) Write(p []byte) (int, error)        { return c.f.Write(p) }
func (c *serialConn) Close() error                       { return c.f.Close() }
func (c *serialConn) LocalAddr() net.Addr                { return serialAddr(c.f.Name()) }
func (c *serialConn) RemoteAddr() net.Addr               { return serialAddr("host") }
func (c *serialConn) SetDeadline(t time.Time) error      { return nil }
func (c *serialConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *serialConn) SetWriteDeadline(t time.Time) error { return nil }
