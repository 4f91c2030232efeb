package agent

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentapi "github.com/hullproject/hull/agent/api"
)

// ErrUnreachable wraps errdefs.ErrUnavailable: the agent did not answer.
var ErrUnreachable = fmt.Errorf("agent unreachable: %w", errdefs.ErrUnavailable)

// Client is the host side of the agent API over one connection (the unix
// socket QEMU exposes for the agent's virtio-serial port).
type Client struct {
	agentapi.AgentService
	tc *ttrpc.Client
}

// NewClient speaks the agent API over conn.
func NewClient(conn net.Conn) *Client {
	// Errors come back as gRPC statuses (see server.NewTTRPCServer):
	// turn them into errdefs kinds again.
	tc := ttrpc.NewClient(conn, ttrpc.WithUnaryClientInterceptor(
		func(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, _ *ttrpc.UnaryClientInfo, invoke ttrpc.Invoker) error {
			if err := invoke(ctx, req, resp); err != nil {
				return errgrpc.ToNative(err)
			}
			// ttrpc turns resp.Status into an error only after the
			// interceptors: do it here, as errdefs.
			if st := resp.Status; st != nil && st.Code != int32(codes.OK) {
				return errgrpc.ToNative(status.ErrorProto(st))
			}
			return nil
		}))
	return &Client{AgentService: agentapi.NewAgentClient(tc), tc: tc}
}

// Dial connects to the unix socket at path.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrUnreachable, path, err)
	}
	return NewClient(conn), nil
}

// WaitReady calls Version until it answers or ctx ends. Bytes the host
// writes before the guest opens its port are delivered once it does, so one
// call is enough; it blocks until the agent serves.
func (c *Client) WaitReady(ctx context.Context) (*agentapi.VersionResponse, error) {
	v, err := c.Version(ctx, &agentapi.VersionRequest{})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return v, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.tc.Close() }

// Reconnect connects a new client to an agent that already served another
// one (a restarted shim). The guest notices that the previous client went
// away only when it next reads the port; if the new client's first request
// reaches the old connection first, the agent refuses it (ttrpc stream ids
// cannot restart on one connection) or, when the old connection ends with
// it unread, never answers. So Reconnect closes and dials again, every 100
// ms, until Version answers or ctx ends; each attempt waits at most
// attemptTimeout (doubling up to 8 s: a loaded TCG guest answers slowly).
// Use it only once the agent has answered a first client (vm.Boot): before
// that, requests wait in the port and a retry would queue duplicates.
func Reconnect(ctx context.Context, path string) (*Client, error) {
	attempt := attemptTimeout
	for {
		c, err := Dial(ctx, path)
		if err != nil {
			return nil, err
		}
		actx, cancel := context.WithTimeout(ctx, attempt)
		_, err = c.Version(actx, &agentapi.VersionRequest{})
		cancel()
		if err == nil {
			return c, nil
		}
		c.Close()
		if attempt < 8*time.Second {
			attempt *= 2
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w (last: %w)", ErrUnreachable, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// attemptTimeout bounds Reconnect's first Version call.
var attemptTimeout = time.Second
