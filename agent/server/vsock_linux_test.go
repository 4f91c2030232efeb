package server

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeServer struct {
	mu     sync.Mutex
	served []string
}

func (f *fakeServer) Serve(ctx context.Context, l net.Listener) error {
	f.mu.Lock()
	f.served = append(f.served, l.Addr().String())
	f.mu.Unlock()
	<-ctx.Done()
	l.Close()
	return nil
}

func (f *fakeServer) addrs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.served...)
}

// appearing is a transport found after n polls (never when n < 0).
func appearing(t *testing.T, name string, n int) transport {
	polls := 0
	return transport{name: name, find: func() (net.Listener, bool, error) {
		polls++
		if n < 0 || polls <= n {
			return nil, false, errors.New(name + " not yet")
		}
		l, err := net.Listen("unix", filepath.Join(t.TempDir(), name+".sock"))
		if err != nil {
			t.Fatal(err)
		}
		return l, true, nil
	}}
}

func TestServeTransports(t *testing.T) {
	for _, tc := range []struct {
		name       string
		serial     int
		vsock      int
		wantServed []string
	}{
		{"serial only (no vhost-vsock on the host)", 3, -1, []string{"serial"}},
		{"vsock only", -1, 2, []string{"vsock"}},
		{"both", 0, 2, []string{"serial", "vsock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeServer{}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				errc <- serveTransports(ctx, f, []transport{appearing(t, "serial", tc.serial), appearing(t, "vsock", tc.vsock)}, 10*time.Second, nil)
			}()
			for i := 0; i < 200 && len(f.addrs()) < len(tc.wantServed); i++ {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
			cancel()
			if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			got := f.addrs()
			if len(got) != len(tc.wantServed) {
				t.Fatalf("served on %v, want %v", got, tc.wantServed)
			}
			for i, w := range tc.wantServed {
				if !strings.HasSuffix(got[i], w+".sock") {
					t.Errorf("served on %v, want %v", got, tc.wantServed)
				}
			}
		})
	}
}

func TestServeTransportsNone(t *testing.T) {
	f := &fakeServer{}
	err := serveTransports(context.Background(), f, []transport{appearing(t, "serial", -1), appearing(t, "vsock", -1)}, 50*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), "no agent channel") || !strings.Contains(err.Error(), "serial not yet") || !strings.Contains(err.Error(), "vsock not yet") {
		t.Fatalf("err = %v, want one naming both channels and why", err)
	}
}

// TestServeTransportsServeFails: a channel whose serving fails ends
// ServeAgent with that error, naming the channel.
func TestServeTransportsServeFails(t *testing.T) {
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bad := failingServer{}
	err = serveTransports(context.Background(), bad, []transport{{name: "serial", find: func() (net.Listener, bool, error) { return l, true, nil }}}, time.Second, nil)
	if err == nil || !strings.Contains(err.Error(), "serial: broken") {
		t.Fatalf("err = %v", err)
	}
}

type failingServer struct{}

func (failingServer) Serve(context.Context, net.Listener) error { return errors.New("broken") }
