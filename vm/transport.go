package vm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/hullproject/hull/agent"
)

// AgentTransport is how the host reaches the guest's agent.
type AgentTransport string

const (
	// TransportSerial: a virtio-serial port whose host end is the unix
	// socket Hypervisor.AgentSocket (QEMU without vhost-vsock).
	TransportSerial AgentTransport = "virtio-serial"
	// TransportVsock: AF_VSOCK through the host kernel's vhost-vsock, to
	// the guest's CID (QEMU on hosts with /dev/vhost-vsock).
	TransportVsock AgentTransport = "vsock"
	// TransportHybridVsock: a VMM's unix-socket proxy of the guest's
	// vsock, AgentSocket, with the CONNECT handshake (Cloud Hypervisor,
	// Firecracker).
	TransportHybridVsock AgentTransport = "hybrid-vsock"
)

// VhostVsockDevice is the host device vhost-vsock guests need.
const VhostVsockDevice = "/dev/vhost-vsock"

// AgentDialer is implemented by drivers whose agent channel is not a
// plain connect to AgentSocket (vsock, hybrid vsock). DialAgent retries
// until the guest's agent listens or ctx ends.
type AgentDialer interface {
	DialAgent(ctx context.Context) (net.Conn, error)
	AgentTransport() AgentTransport
}

// SelectTransport picks the agent channel of a QEMU guest: vsock when dev
// (VhostVsockDevice) exists and opens read-write, else virtio-serial; the
// reason says why, for logs and `hull info`.
func SelectTransport(dev string) (AgentTransport, string) {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		if os.IsNotExist(err) {
			return TransportSerial, fmt.Sprintf("%s does not exist (load vhost_vsock for vsock)", dev)
		}
		return TransportSerial, fmt.Sprintf("%s does not open: %v", dev, err)
	}
	f.Close()
	return TransportVsock, dev + " opens"
}

// LogTransport logs the chosen agent channel and why.
func LogTransport(log *slog.Logger, id string, t AgentTransport, reason string) {
	if log == nil {
		log = slog.Default()
	}
	if t == TransportSerial {
		log.Info("agent channel: virtio-serial, not vsock", "vm", id, "reason", reason)
		return
	}
	log.Debug("agent channel", "vm", id, "transport", string(t), "reason", reason)
}

// TransportOf returns h's agent channel.
func TransportOf(h Hypervisor) AgentTransport {
	if d, ok := h.(AgentDialer); ok {
		return d.AgentTransport()
	}
	return TransportSerial
}

// DialAgent connects an agent client to h's guest: through the driver's
// DialAgent when it has one, else to the unix socket AgentSocket. A dial
// that waits for the guest gives up when the VM ends (with the VM's end as
// the error), and wraps ErrAgentTimeout when ctx's deadline passes.
func DialAgent(ctx context.Context, h Hypervisor) (*agent.Client, error) {
	d, ok := h.(AgentDialer)
	if !ok {
		return agent.Dial(ctx, h.AgentSocket())
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-h.Done():
			cancel()
		case <-dctx.Done():
		}
	}()
	conn, err := d.DialAgent(dctx)
	if err != nil {
		select {
		case <-h.Done():
			if werr := h.Wait(); werr != nil {
				return nil, werr
			}
			return nil, fmt.Errorf("%w: the guest powered off before its agent answered", ErrVMExited)
		default:
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// Over vsock the wait for the agent is in the dial.
			return nil, fmt.Errorf("%w: %w: %s: %w", ErrAgentTimeout, agent.ErrUnreachable, d.AgentTransport(), err)
		}
		return nil, fmt.Errorf("%w: %s: %w", agent.ErrUnreachable, d.AgentTransport(), err)
	}
	return agent.NewClient(conn), nil
}
