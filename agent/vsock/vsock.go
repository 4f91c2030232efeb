// Package vsock is the agent channel over virtio-vsock: the guest listens
// on an AF_VSOCK port (Listen), and the host reaches it either through the
// kernel's vhost-vsock (Dial, with the guest's CID; QEMU) or through a
// hybrid vsock, the unix socket a VMM proxies (DialHybrid; Cloud
// Hypervisor and Firecracker), where a "CONNECT <port>\n" line selects the
// guest port and the VMM answers "OK <host port>\n".
//
// Sockets are wrapped by hand on golang.org/x/sys/unix rather than taken
// from github.com/mdlayher/vsock, which the module proxy here does not
// serve; the wrapping is small: a non-blocking socket in an *os.File, so
// that reads, writes, deadlines and Close go through Go's poller.
package vsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// Port is the guest port the agent listens on.
const Port = 1024

// ErrHandshake: the hybrid vsock proxy refused or broke the CONNECT
// handshake (no guest listener yet, or not a hybrid vsock socket).
var ErrHandshake = fmt.Errorf("hybrid vsock handshake: %w", errdefs.ErrUnavailable)

// retryInterval is how often a dial is retried while the guest does not
// listen yet.
const retryInterval = 20 * time.Millisecond

// Addr is a vsock address.
type Addr struct {
	CID, Port uint32
}

// Network implements net.Addr.
func (a *Addr) Network() string { return "vsock" }

func (a *Addr) String() string {
	return strconv.FormatUint(uint64(a.CID), 10) + ":" + strconv.FormatUint(uint64(a.Port), 10)
}

// DialHybrid connects to guest port through the hybrid vsock unix socket
// at path. Until the guest listens, the proxy closes the connection (or
// the socket is not there yet): DialHybrid retries every 20 ms until it is
// answered or ctx ends.
func DialHybrid(ctx context.Context, path string, port uint32) (net.Conn, error) {
	var last error
	for {
		c, err := dialHybridOnce(ctx, path, port)
		if err == nil {
			return c, nil
		}
		// An attempt cut short by ctx's end says less than the one before.
		if last == nil || !cutShort(ctx, err) {
			last = err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("hybrid vsock %s port %d: %w (last: %w)", path, port, ctx.Err(), last)
		case <-time.After(retryInterval):
		}
	}
}

func dialHybridOnce(ctx context.Context, path string, port uint32) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(5 * time.Second))
	}
	if _, err := fmt.Fprintf(c, "CONNECT %d\n", port); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: write CONNECT: %w", ErrHandshake, err)
	}
	// Read the answer byte by byte: what follows the line is the agent's
	// stream and must stay in the connection.
	line, err := readLine(c, 64)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: %s port %d: %w", ErrHandshake, path, port, err)
	}
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != "OK" {
		c.Close()
		return nil, fmt.Errorf("%w: %s port %d: answer %q", ErrHandshake, path, port, line)
	}
	if _, err := strconv.ParseUint(f[1], 10, 32); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: %s port %d: answer %q", ErrHandshake, path, port, line)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// cutShort reports whether an attempt failed because ctx's deadline came
// (the socket's deadline, which is ctx's, may fire a moment before ctx
// itself says so).
func cutShort(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
}

// readLine reads up to '\n' one byte at a time (at most max bytes).
func readLine(c net.Conn, max int) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for b.Len() < max {
		n, err := c.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return b.String(), nil
			}
			b.WriteByte(buf[0])
			continue
		}
		if err != nil {
			if b.Len() == 0 {
				return "", fmt.Errorf("closed before an answer (no guest listener yet?): %w", err)
			}
			return "", err
		}
	}
	return "", errors.New("answer line too long")
}

// ServeHybrid answers the hybrid vsock handshake on the host side of a
// test double: it reads "CONNECT <port>\n" from c and returns the port.
// It is exported for the drivers' fake VMMs in tests.
func ServeHybrid(c net.Conn) (uint32, error) {
	line, err := readLine(c, 64)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != "CONNECT" {
		return 0, fmt.Errorf("%w: request %q", ErrHandshake, line)
	}
	p, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: request %q", ErrHandshake, line)
	}
	return uint32(p), nil
}
