package agent

import (
	"context"
	"fmt"
	"net"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"

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
	tc := ttrpc.NewClient(conn)
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
