package vm

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hullproject/hull/agent"
	agentapi "github.com/hullproject/hull/agent/api"
)

// ReleaseBootFilesDelay is how long after its agent answered a VM gives
// back its hypervisor's pages of the boot files (BootFileReleaser).
const ReleaseBootFilesDelay = 2 * time.Second

// DefaultAgentTimeout bounds the wait for the agent in Boot.
const DefaultAgentTimeout = 30 * time.Second

// Sandbox is a started VM with a connected agent.
type Sandbox struct {
	Hypervisor Hypervisor
	Agent      *agent.Client
	// Version is the agent's first answer.
	Version *agentapi.VersionResponse
	// StartedAt is when Boot began; VMMUp when the hypervisor ran (its
	// Start returned: QEMU answers QMP); Ready when the agent first
	// answered.
	StartedAt, VMMUp, Ready time.Time
}

// Boot starts the VM and waits up to timeout (DefaultAgentTimeout when 0)
// for its agent to answer. On any failure the VM is stopped and the error
// carries the console's tail. ctx bounds the VM's life (see
// Hypervisor.Start).
func Boot(ctx context.Context, h Hypervisor, cfg Config, timeout time.Duration) (*Sandbox, error) {
	if timeout <= 0 {
		timeout = DefaultAgentTimeout
	}
	sb := &Sandbox{Hypervisor: h, StartedAt: time.Now()}
	caps := h.Capabilities()
	if len(cfg.NetDevices) > 0 && !caps.Network {
		return nil, fmt.Errorf("%w: the hypervisor driver cannot attach network devices", ErrInvalidConfig)
	}
	if _, blocks := h.(BlockShares); len(cfg.Shares) > 0 && !caps.FileSystemSharing && !blocks {
		// (Drivers without virtio-fs may turn shares into block images.)
		return nil, fmt.Errorf("%w: the hypervisor driver cannot share directories (virtio-fs)", ErrInvalidConfig)
	}
	if err := h.Start(ctx, cfg); err != nil {
		return nil, err
	}
	sb.VMMUp = time.Now()
	fail := func(err error) (*Sandbox, error) {
		_ = h.Stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%w; console tail (%s):\n%s", err, h.ConsolePath(), ConsoleTail(h.ConsolePath(), 20))
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := DialAgent(actx, h)
	if err != nil {
		return fail(err)
	}
	type res struct {
		v   *agentapi.VersionResponse
		err error
	}
	ch := make(chan res, 1)
	go func() { v, err := c.WaitReady(actx); ch <- res{v, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			c.Close()
			if actx.Err() == context.DeadlineExceeded {
				return fail(fmt.Errorf("%w after %s: %w", ErrAgentTimeout, timeout, r.err))
			}
			// The channel closes when QEMU ends: give it a moment to say why.
			select {
			case <-h.Done():
				if werr := h.Wait(); werr != nil {
					return nil, werr
				}
				return fail(fmt.Errorf("%w: the guest powered off before its agent answered", ErrVMExited))
			case <-time.After(2 * time.Second):
			}
			return fail(r.err)
		}
		sb.Agent, sb.Version, sb.Ready = c, r.v, time.Now()
		if rel, ok := h.(BootFileReleaser); ok {
			// Off the start's path, and only for a VM that lives on: the
			// release costs some CPU and I/O (QEMU's pages of the boot
			// files go, the page cache is refilled), which measurably
			// slowed a cold `run --rm` when done at once.
			go func() {
				t := time.NewTimer(ReleaseBootFilesDelay)
				defer t.Stop()
				select {
				case <-h.Done():
					return
				case <-t.C:
				}
				n, err := rel.ReleaseBootFiles()
				slog.Debug("vm: boot files released", "id", cfg.ID, "bytes", n, "err", err)
			}()
		}
		return sb, nil
	case <-h.Done():
		cancel()
		c.Close()
		if werr := h.Wait(); werr != nil {
			return nil, werr
		}
		return fail(fmt.Errorf("%w: the guest powered off before its agent answered", ErrVMExited))
	}
}

// Shutdown asks the agent to power the guest off (DestroySandbox), waits
// up to grace for the VM to end, then stops it through the hypervisor.
func (s *Sandbox) Shutdown(ctx context.Context, grace time.Duration) error {
	if grace <= 0 {
		grace = 5 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	_, aerr := s.Agent.DestroySandbox(cctx, &agentapi.Empty{})
	s.Agent.Close()
	if aerr == nil {
		select {
		case <-s.Hypervisor.Done():
			return s.Hypervisor.Wait()
		case <-cctx.Done():
		}
	}
	if err := s.Hypervisor.Stop(ctx); err != nil {
		return err
	}
	return nil
}

// Quitter is a Hypervisor that can end its VM at once, without a guest
// power-off (QEMU: QMP quit), for a caller that has nothing left in the
// guest.
type Quitter interface {
	// Quit ends the VM now and cleans up as Stop does; it is safe after
	// the VM exited.
	Quit(ctx context.Context) error
}

// Quit ends a VM whose containers the agent has removed, as Kata does:
// the hypervisor quits, with no guest power-off to wait for (the
// container's files are on the host already: the agent unmounted the
// shares, and virtiofsd has no writeback cache). A hypervisor that cannot
// quit is shut down through the agent (Shutdown).
func (s *Sandbox) Quit(ctx context.Context, grace time.Duration) error {
	q, ok := s.Hypervisor.(Quitter)
	if !ok {
		return s.Shutdown(ctx, grace)
	}
	s.Agent.Close()
	return q.Quit(ctx)
}
