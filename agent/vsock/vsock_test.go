package vsock

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeProxy is a hybrid vsock proxy as Cloud Hypervisor and Firecracker
// run it: refuse (close at once) the first `refuse` connections, as while
// the guest does not listen yet, then answer with answer and echo.
func fakeProxy(t *testing.T, refuse int, answer string) (path string, ports chan uint32) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "v.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ports = make(chan uint32, 16)
	go func() {
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(n int, c net.Conn) {
				defer c.Close()
				p, err := ServeHybrid(c)
				if err != nil {
					return
				}
				ports <- p
				if n < refuse {
					return
				}
				// The answer and the first stream bytes in one write:
				// the dialer must not swallow what follows the line.
				if _, err := io.WriteString(c, answer+"hello"); err != nil {
					return
				}
				io.Copy(c, c)
			}(n, c)
		}
	}()
	return path, ports
}

func TestDialHybrid(t *testing.T) {
	path, ports := fakeProxy(t, 2, "OK 1073741824\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := DialHybrid(ctx, path, Port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		if p := <-ports; p != Port {
			t.Errorf("CONNECT %d, want %d", p, Port)
		}
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("first bytes after the handshake: %q, %v", buf, err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf = make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
}

func TestDialHybridErrors(t *testing.T) {
	for _, tc := range []struct {
		name, answer, want string
	}{
		{"not OK", "NOPE 1\n", `answer "NOPE 1"`},
		{"bad port", "OK x\n", `answer "OK x"`},
		{"never answers", "", "closed before an answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refuse := 0
			if tc.answer == "" {
				refuse = 1 << 30
			}
			path, _ := fakeProxy(t, refuse, tc.answer)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err := DialHybrid(ctx, path, 52)
			if !errors.Is(err, ErrHandshake) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrHandshake, the deadline and %q", err, tc.want)
			}
		})
	}
	t.Run("no socket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := DialHybrid(ctx, filepath.Join(t.TempDir(), "missing.sock"), 52)
		if err == nil || !strings.Contains(err.Error(), "missing.sock") {
			t.Fatalf("err = %v, want one naming the socket", err)
		}
	})
}

func TestServeHybridBadRequest(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go func() { io.WriteString(b, "HELLO 3\n"); b.Close() }()
	if _, err := ServeHybrid(a); !errors.Is(err, ErrHandshake) {
		t.Fatalf("err = %v, want ErrHandshake", err)
	}
}

// TestListenerOverFD drives the socket wrapping (non-blocking connect,
// Accept in the poller, stream, deadlines, Close waking Accept) with
// AF_UNIX sockets: the code is family-agnostic, and this host has no
// vsock peer to connect to.
func TestListenerOverFD(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.sock")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	l, err := newListener(fd, "test")
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := l.Addr().(*net.UnixAddr); !ok || a.Name != path {
		t.Errorf("Addr() = %v, want %s", l.Addr(), path)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	cfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := connectFD(ctx, cfd, &unix.SockaddrUnix{Name: path}, "client")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	defer s.Close()
	if _, err := c.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "abc" {
		t.Fatalf("read %q, %v", buf, err)
	}
	// A read deadline ends a read that has nothing to read.
	s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := s.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	s.SetReadDeadline(time.Time{})
	if err := c.(*conn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer's CloseWrite: %d, %v; want EOF", n, err)
	}
	// Close wakes a pending Accept with net.ErrClosed.
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	time.Sleep(10 * time.Millisecond)
	l.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

func TestConnectFDRefused(t *testing.T) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = connectFD(context.Background(), fd, &unix.SockaddrUnix{Name: filepath.Join(t.TempDir(), "none")}, "c")
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("err = %v, want ENOENT", err)
	}
}

// TestListen binds a real AF_VSOCK listener (no peer connects: this host's
// only vsock peer is the machine it runs on).
func TestListen(t *testing.T) {
	l, err := Listen(unix.VMADDR_PORT_ANY)
	if errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EADDRNOTAVAIL) {
		t.Skipf("this kernel has no AF_VSOCK transport: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	a, ok := l.Addr().(*Addr)
	if !ok || a.Port == 0 || a.Port == unix.VMADDR_PORT_ANY || a.Network() != "vsock" {
		t.Errorf("Addr() = %#v, want a bound vsock port", l.Addr())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestHasDevice(t *testing.T) {
	for _, tc := range []struct {
		name string
		ids  []string
		want bool
	}{
		{"none", nil, false},
		{"console, block and net", []string{"0x0003", "0x0002", "0x0001"}, false},
		{"vsock", []string{"0x0003", "0x0013"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for i, id := range tc.ids {
				d := filepath.Join(root, "bus", "virtio", "devices", "virtio"+string(rune('0'+i)))
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "device"), []byte(id+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := HasDevice(root); got != tc.want {
				t.Errorf("HasDevice = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{unix.ECONNRESET, true},
		{unix.ECONNREFUSED, true},
		{unix.ETIMEDOUT, true},
		{unix.EACCES, false},
		{unix.EAFNOSUPPORT, false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
