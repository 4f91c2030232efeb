package vsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// ErrNoDevice: the guest has no virtio-vsock device.
var ErrNoDevice = fmt.Errorf("no virtio-vsock device: %w", errdefs.ErrNotFound)

// virtioIDVsock is the virtio device ID of a vsock device (virtio spec
// 5.10).
const virtioIDVsock = "0x0013"

// HasDevice reports whether a virtio-vsock device is present under
// sysRoot ("/sys" in a guest): one of /sys/bus/virtio/devices/*/device
// reads 0x0013. A device the driver has not bound yet still counts: the
// listener works once it binds.
func HasDevice(sysRoot string) bool {
	devs, _ := filepath.Glob(filepath.Join(sysRoot, "bus", "virtio", "devices", "*", "device"))
	for _, d := range devs {
		b, err := os.ReadFile(d)
		if err == nil && strings.TrimSpace(string(b)) == virtioIDVsock {
			return true
		}
	}
	return false
}

// Listen listens on port on every CID of this machine (VMADDR_CID_ANY).
func Listen(port uint32) (net.Listener, error) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vsock socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: port}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vsock bind port %d: %w", port, err)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vsock listen port %d: %w", port, err)
	}
	return newListener(fd, "vsock")
}

// Dial connects to port of the guest cid through the host's vhost-vsock.
// Until the guest listens the connection is reset or refused: Dial retries
// every 20 ms until it connects or ctx ends.
func Dial(ctx context.Context, cid, port uint32) (net.Conn, error) {
	var last error
	for {
		c, err := dialOnce(ctx, cid, port)
		if err == nil {
			return c, nil
		}
		// An attempt cut short by ctx's end says less than the one before.
		if last == nil || !cutShort(ctx, err) {
			last = err
		}
		if !retryable(err) {
			return nil, fmt.Errorf("vsock dial %d:%d: %w", cid, port, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("vsock dial %d:%d: %w (last: %w)", cid, port, ctx.Err(), last)
		case <-time.After(retryInterval):
		}
	}
}

func retryable(err error) bool {
	for _, e := range []error{unix.ECONNRESET, unix.ECONNREFUSED, unix.ETIMEDOUT, unix.ENODEV, unix.EHOSTUNREACH, unix.ENETUNREACH} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func dialOnce(ctx context.Context, cid, port uint32) (net.Conn, error) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vsock socket: %w", err)
	}
	return connectFD(ctx, fd, &unix.SockaddrVM{CID: cid, Port: port}, "vsock")
}

// connectFD connects the non-blocking socket fd to sa, waiting in Go's
// poller, and returns it as a net.Conn (fd is owned by the result or
// closed).
func connectFD(ctx context.Context, fd int, sa unix.Sockaddr, name string) (net.Conn, error) {
	err := unix.Connect(fd, sa)
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if err == unix.EINPROGRESS {
		if dl, ok := ctx.Deadline(); ok {
			f.SetWriteDeadline(dl)
		}
		rc, rerr := f.SyscallConn()
		if rerr != nil {
			f.Close()
			return nil, rerr
		}
		var soErr error
		werr := rc.Write(func(fd uintptr) bool {
			v, gerr := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
			if gerr != nil {
				soErr = gerr
				return true
			}
			if v == int(unix.EINPROGRESS) || v == int(unix.EALREADY) {
				return false
			}
			if v != 0 {
				soErr = syscall.Errno(v)
				return true
			}
			// Writable with no error can also mean "not done yet" on
			// the first poll: make sure the peer is there.
			if _, perr := unix.Getpeername(int(fd)); perr != nil {
				if perr == unix.ENOTCONN {
					return false
				}
				soErr = perr
			}
			return true
		})
		if werr != nil {
			f.Close()
			return nil, werr
		}
		if soErr != nil {
			f.Close()
			return nil, soErr
		}
		f.SetWriteDeadline(time.Time{})
	}
	return newConn(f), nil
}

// listener is a listening socket in an *os.File: Accept waits in Go's
// poller and Close wakes it.
type listener struct {
	f      *os.File
	rc     syscall.RawConn
	addr   net.Addr
	closed atomic.Bool
}

func newListener(fd int, name string) (*listener, error) {
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	var addr net.Addr = &Addr{}
	if sa, err := unix.Getsockname(fd); err == nil {
		addr = sockaddrToAddr(sa)
	}
	return &listener{f: f, rc: rc, addr: addr}, nil
}

func sockaddrToAddr(sa unix.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrVM:
		return &Addr{CID: a.CID, Port: a.Port}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return &Addr{}
}

// Accept implements net.Listener.
func (l *listener) Accept() (net.Conn, error) {
	var nfd int
	var aerr error
	err := l.rc.Read(func(fd uintptr) bool {
		nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return aerr != unix.EAGAIN
	})
	if err != nil {
		if l.closed.Load() {
			return nil, net.ErrClosed
		}
		return nil, err
	}
	if aerr != nil {
		return nil, fmt.Errorf("accept: %w", aerr)
	}
	return newConn(os.NewFile(uintptr(nfd), l.f.Name())), nil
}

// Close implements net.Listener.
func (l *listener) Close() error {
	l.closed.Store(true)
	return l.f.Close()
}

// Addr implements net.Listener.
func (l *listener) Addr() net.Addr { return l.addr }

// conn is a connected socket in an *os.File.
type conn struct {
	*os.File
	local, remote net.Addr
}

func newConn(f *os.File) *conn {
	c := &conn{File: f, local: &Addr{}, remote: &Addr{}}
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if sa, err := unix.Getsockname(int(fd)); err == nil {
				c.local = sockaddrToAddr(sa)
			}
			if sa, err := unix.Getpeername(int(fd)); err == nil {
				c.remote = sockaddrToAddr(sa)
			}
		})
	}
	return c
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// CloseWrite shuts the sending side down.
func (c *conn) CloseWrite() error {
	rc, err := c.File.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_WR) }); err != nil {
		return err
	}
	return serr
}
