package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/hullproject/hull/agent/vsock"
)

// DefaultTransportTimeout bounds ServeAgent's wait for a first channel.
const DefaultTransportTimeout = 30 * time.Second

// listenerServer is what ServeAgent serves on (a *ttrpc.Server).
type listenerServer interface {
	Serve(ctx context.Context, l net.Listener) error
}

// transport is one agent channel the guest may have: find returns its
// listener once the channel is there (false until then).
type transport struct {
	name string
	find func() (net.Listener, bool, error)
}

// ServeAgent serves srv on every agent channel the guest has: the
// virtio-serial port named portName and, when the guest has a
// virtio-vsock device, AF_VSOCK port vsock.Port. The host picks one (vsock
// where it has vhost-vsock or a hybrid vsock, virtio-serial otherwise);
// the guest cannot know which, so it serves each that appears. It looks
// for them until DefaultTransportTimeout: an error if none appeared;
// otherwise it serves until ctx ends or a channel's serving fails.
func ServeAgent(ctx context.Context, srv listenerServer, portName string, log *slog.Logger) error {
	return serveTransports(ctx, srv, []transport{
		{name: "virtio-serial " + portName, find: func() (net.Listener, bool, error) {
			done, cancel := context.WithCancel(context.Background())
			cancel()
			// One scan: an ended context makes FindPort look once.
			p, err := FindPort(done, portName)
			if err != nil {
				return nil, false, nil
			}
			return NewSerialListener(p), true, nil
		}},
		{name: fmt.Sprintf("vsock port %d", vsock.Port), find: func() (net.Listener, bool, error) {
			if !vsock.HasDevice("/sys") {
				return nil, false, nil
			}
			l, err := vsock.Listen(vsock.Port)
			if err != nil {
				// The device is there but the transport may not be
				// bound yet: try again.
				return nil, false, err
			}
			return l, true, nil
		}},
	}, DefaultTransportTimeout, log)
}

// serveTransports polls the transports until each is found or timeout
// passes, serving srv on each one found.
func serveTransports(ctx context.Context, srv listenerServer, ts []transport, timeout time.Duration, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	deadline := time.Now().Add(timeout)
	found := make([]bool, len(ts))
	lastErr := make([]error, len(ts))
	serving := 0
	errc := make(chan error, len(ts))
	for {
		for i, t := range ts {
			if found[i] {
				continue
			}
			l, ok, err := t.find()
			lastErr[i] = err
			if !ok {
				continue
			}
			found[i] = true
			serving++
			Mark("serving " + t.name)
			log.Info("serving", "transport", t.name, "addr", l.Addr().String())
			go func() {
				err := srv.Serve(ctx, l)
				if err != nil {
					err = fmt.Errorf("%s: %w", t.name, err)
				}
				errc <- err
			}()
		}
		if serving == len(ts) || time.Now().After(deadline) {
			break
		}
		// Once one channel serves, look for the others less often.
		interval := pollInterval
		if serving > 0 {
			interval = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case <-time.After(interval):
		}
	}
	if serving == 0 {
		var names []string
		for i, t := range ts {
			n := t.name
			if lastErr[i] != nil {
				n += " (" + lastErr[i].Error() + ")"
			}
			names = append(names, n)
		}
		return fmt.Errorf("no agent channel after %s: looked for %s", timeout, strings.Join(names, ", "))
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-errc:
		if err == nil || errors.Is(err, net.ErrClosed) {
			return nil
		}
		return err
	}
}
