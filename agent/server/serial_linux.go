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

// SerialListener is a net.Listener over one virtio-serial port. A port is
// one stream with no connection semantics, and it can be open only once at
// a time: Accept opens it and returns a connection, and the next Accept
// waits until that connection is closed, then opens the port again for the
// next host client.
type SerialListener struct {
	Path   string
	done   chan struct{}
	closeO sync.Once
	// free has a token while no connection holds the port.
	free chan struct{}
}

// NewSerialListener listens on the port device at path.
func NewSerialListener(path string) *SerialListener {
	l := &SerialListener{Path: path, done: make(chan struct{}), free: make(chan struct{}, 1)}
	l.free <- struct{}{}
	return l
}

// Accept implements net.Listener.
func (l *SerialListener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.free:
	}
	f, err := os.OpenFile(l.Path, os.O_RDWR, 0)
	if err != nil {
		l.free <- struct{}{}
		return nil, err
	}
	Mark("port opened")
	warmRPC()
	return &serialConn{f: f, done: l.done, free: l.free}, nil
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

// serialConn is a port as a net.Conn. read() returns 0 while no host is
// connected: before the host's first byte that means "not yet" and is
// retried after pollInterval; after it, the host went away, and the
// connection ends (EOF) so that the next client gets a fresh ttrpc
// connection (ttrpc stream ids cannot restart on one connection).
type serialConn struct {
	f         *os.File
	done      chan struct{}
	free      chan struct{}
	gotData   bool
	closeOnce sync.Once
}

func (c *serialConn) Read(p []byte) (int, error) {
	for {
		n, err := c.f.Read(p)
		if n > 0 {
			if !c.gotData {
				Mark("port: first bytes from the host")
			}
			c.gotData = true
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if c.gotData {
			return 0, io.EOF
		}
		select {
		case <-c.done:
			return 0, io.EOF
		case <-time.After(pollInterval):
		}
	}
}

func (c *serialConn) Write(p []byte) (int, error) { return c.f.Write(p) }

func (c *serialConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.f.Close()
		c.free <- struct{}{}
	})
	return err
}

func (c *serialConn) LocalAddr() net.Addr                { return serialAddr(c.f.Name()) }
func (c *serialConn) RemoteAddr() net.Addr               { return serialAddr("host") }
func (c *serialConn) SetDeadline(t time.Time) error      { return nil }
func (c *serialConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *serialConn) SetWriteDeadline(t time.Time) error { return nil }
