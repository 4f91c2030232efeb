// Package cloudhypervisor is the Cloud Hypervisor driver of Hull's vm
// runtime (vm.Hypervisor).
//
// One value runs one VM: `cloud-hypervisor --api-socket api.sock` is
// started with nothing else, and the VM is described and booted through
// its REST API (vm.create, vm.add-net with the tap device passed over the
// socket, vm.boot; vm.info, vm.pause and vm.resume for control;
// vm.power-button, then vm.shutdown and vmm.shutdown to stop). Devices are virtio-pci. The
// guest RAM is shared when there are virtio-fs shares (one virtiofsd each,
// as with QEMU). The guest serial console goes to console.log. The agent
// channel is Cloud Hypervisor's hybrid vsock: the unix socket agent.sock,
// on which a "CONNECT <port>" line reaches the agent's vsock port.
//
// Cloud Hypervisor reboots a guest that reboots, so the kernel runs with
// panic=0 (a panicked guest halts) and the driver's console watch ends the
// VM when the guest prints a panic (vm.ErrGuestPanic). It needs KVM.
package cloudhypervisor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hullproject/hull/agent/vsock"
	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/internal/vmm"
)

const (
	// DefaultBinary is looked up in PATH; $HULL_CLOUD_HYPERVISOR overrides it.
	DefaultBinary = "cloud-hypervisor"
	// BinaryEnv names the environment variable that points to the binary.
	BinaryEnv = "HULL_CLOUD_HYPERVISOR"
	// guestCID is the guest's vsock CID. Hybrid vsock is a per-VM unix
	// socket, so every guest may use the same one.
	guestCID = 3
)

// Options configure the driver. Zero values take the defaults.
type Options struct {
	Binary    string // $HULL_CLOUD_HYPERVISOR, else DefaultBinary
	Virtiofsd string // vmm.DefaultVirtiofsd
	// PowerdownTimeout is how long Stop waits after vm.power-button (the
	// ACPI power button, on which hull-agent powers the guest off) before
	// it ends the VM through the API (1 s).
	PowerdownTimeout time.Duration
	// ShutdownTimeout is how long Stop waits for the VMM to exit after
	// vm.shutdown and vmm.shutdown before SIGKILL (2 s).
	ShutdownTimeout time.Duration
	// APITimeout bounds the wait for the API socket at start (10 s).
	APITimeout time.Duration
	Logger     *slog.Logger
}

// CloudHypervisor is one VM run by Cloud Hypervisor.
type CloudHypervisor struct {
	opts Options

	mu      sync.Mutex
	started bool
	paths   paths
	api     *vmm.Client
	m       *vmm.Machine
	payload *VMConfig
}

var (
	_ vm.Hypervisor  = (*CloudHypervisor)(nil)
	_ vm.AgentDialer = (*CloudHypervisor)(nil)
	_ vm.Pauser      = (*CloudHypervisor)(nil)
)

// New returns a driver for one VM.
func New(o Options) *CloudHypervisor {
	if o.Binary == "" {
		o.Binary = os.Getenv(BinaryEnv)
	}
	if o.Binary == "" {
		o.Binary = DefaultBinary
	}
	if o.Virtiofsd == "" {
		o.Virtiofsd = vmm.DefaultVirtiofsd
	}
	if o.PowerdownTimeout <= 0 {
		o.PowerdownTimeout = time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 2 * time.Second
	}
	if o.APITimeout <= 0 {
		o.APITimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &CloudHypervisor{opts: o, m: vmm.NewMachine("", o.Logger)}
}

// LookPath returns the binary the driver would run, or an error wrapping
// vm.ErrHypervisorMissing that says how to get one.
func LookPath(o Options) (string, error) {
	return vmm.LookPath(o.Binary, BinaryEnv, DefaultBinary, "Cloud Hypervisor")
}

// Capabilities implements vm.Hypervisor: virtio-fs, virtio-blk, tap
// networking and (hybrid) vsock; devices can be hot-added (vm.add-*),
// which Hull does not use yet.
func (c *CloudHypervisor) Capabilities() vm.Capabilities {
	return vm.Capabilities{FileSystemSharing: true, BlockDevices: true, Hotplug: true, Vsock: true, Network: true}
}

type paths struct {
	api, agent, console string
	fs                  []string
}

func pathsFor(cfg *vm.Config) paths {
	p := paths{
		api:     filepath.Join(cfg.StateDir, "ch-api.sock"),
		agent:   filepath.Join(cfg.StateDir, "agent.sock"),
		console: filepath.Join(cfg.StateDir, "console.log"),
	}
	for i := range cfg.Shares {
		p.fs = append(p.fs, filepath.Join(cfg.StateDir, "fs"+strconv.Itoa(i)+".sock"))
	}
	return p
}

// Start implements vm.Hypervisor.
func (c *CloudHypervisor) Start(ctx context.Context, cfg vm.Config) (retErr error) {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return fmt.Errorf("%w: already started", vm.ErrInvalidConfig)
	}
	c.started = true
	c.mu.Unlock()
	bin, err := LookPath(c.opts)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := vmm.RequireELFKernel(cfg.Kernel, "cloud-hypervisor", true); err != nil {
		return err
	}
	for i, n := range cfg.NetDevices {
		if n.Tap == nil {
			return fmt.Errorf("%w: net device %d: cloud-hypervisor needs the tap's fd (it is passed with vm.add-net)", vm.ErrInvalidConfig, i)
		}
	}
	p := pathsFor(&cfg)
	m := vmm.NewMachine(p.console, c.opts.Logger)
	c.mu.Lock()
	c.paths, c.m = p, m
	c.api = &vmm.Client{Socket: p.api, Prefix: "/api/v1"}
	c.mu.Unlock()
	m.RemoveAtEnd(append([]string{p.api, p.agent}, p.fs...)...)
	defer func() {
		if retErr != nil {
			m.Kill()
			if m.Started() {
				<-m.Done()
			}
			m.Cleanup()
		}
	}()
	for _, f := range append([]string{p.api, p.agent, p.console}, p.fs...) {
		_ = os.Remove(f)
	}
	for i, s := range cfg.Shares {
		fsd, err := vmm.StartVirtiofsd(ctx, c.opts.Virtiofsd, s, p.fs[i])
		if err != nil {
			return err
		}
		m.AddHelper(fsd)
	}
	proc, err := vmm.Start(vmm.Spec{Path: bin, Args: []string{"--api-socket", p.api}})
	if err != nil {
		return err
	}
	m.Run(proc)
	actx, cancel := context.WithTimeout(ctx, c.opts.APITimeout)
	defer cancel()
	if err := vmm.WaitForAPI(actx, proc, p.api, "cloud-hypervisor"); err != nil {
		return err
	}
	payload := vmConfig(&cfg, p)
	c.mu.Lock()
	c.payload = payload
	c.mu.Unlock()
	if err := c.api.Do(ctx, "PUT", "/vm.create", payload, nil); err != nil {
		return c.fail(err)
	}
	for i, n := range cfg.NetDevices {
		if err := c.api.Do(ctx, "PUT", "/vm.add-net", netConfig(i, n), nil, n.Tap); err != nil {
			return c.fail(fmt.Errorf("net device %d (%s): %w", i, n.TapName, err))
		}
	}
	if err := c.api.Do(ctx, "PUT", "/vm.boot", nil, nil); err != nil {
		return c.fail(err)
	}
	m.KillOnDone(ctx)
	return nil
}

// fail adds the VMM's stderr to a Start error.
func (c *CloudHypervisor) fail(err error) error {
	if s := c.m.VMMStderr(); s != "" {
		return fmt.Errorf("cloud-hypervisor: %w (stderr: %s)", err, s)
	}
	return fmt.Errorf("cloud-hypervisor: %w", err)
}

// Stop implements vm.Hypervisor: the ACPI power button (the guest powers
// off and Cloud Hypervisor exits), after PowerdownTimeout vm.shutdown and
// vmm.shutdown, after ShutdownTimeout SIGKILL.
func (c *CloudHypervisor) Stop(ctx context.Context) error {
	m := c.machine()
	if !m.Started() {
		return nil
	}
	m.SetStopping()
	select {
	case <-m.Done():
		return nil
	default:
	}
	pctx, pcancel := context.WithTimeout(ctx, c.opts.PowerdownTimeout)
	err := c.api.Do(pctx, "PUT", "/vm.power-button", nil, nil)
	pcancel()
	if err == nil && m.WaitDone(ctx, c.opts.PowerdownTimeout) {
		return nil
	}
	if err != nil {
		c.opts.Logger.Debug("cloud-hypervisor vm.power-button", "err", err)
	}
	sctx, cancel := context.WithTimeout(ctx, c.opts.ShutdownTimeout)
	defer cancel()
	if err := c.api.Do(sctx, "PUT", "/vm.shutdown", nil, nil); err != nil {
		c.opts.Logger.Debug("cloud-hypervisor vm.shutdown", "err", err)
	}
	if err := c.api.Do(sctx, "PUT", "/vmm.shutdown", nil, nil); err != nil {
		c.opts.Logger.Debug("cloud-hypervisor vmm.shutdown", "err", err)
	}
	if m.WaitDone(ctx, c.opts.ShutdownTimeout) {
		return nil
	}
	m.Kill()
	<-m.Done()
	return nil
}

func (c *CloudHypervisor) machine() *vmm.Machine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m
}

// VMInfo is the part of vm.info the driver reads.
type VMInfo struct {
	State            string    `json:"state"`
	Config           *VMConfig `json:"config,omitempty"`
	MemoryActualSize int64     `json:"memory_actual_size,omitempty"`
}

// Info returns vm.info (the state: Created, Running, Paused, Shutdown).
func (c *CloudHypervisor) Info(ctx context.Context) (*VMInfo, error) {
	if !c.machine().Started() {
		return nil, vm.ErrNotStarted
	}
	var info VMInfo
	if err := c.api.Do(ctx, "GET", "/vm.info", nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Pause pauses the VM's vCPUs (vm.pause).
func (c *CloudHypervisor) Pause(ctx context.Context) error {
	if !c.machine().Started() {
		return vm.ErrNotStarted
	}
	return c.api.Do(ctx, "PUT", "/vm.pause", nil, nil)
}

// Resume resumes a paused VM (vm.resume).
func (c *CloudHypervisor) Resume(ctx context.Context) error {
	if !c.machine().Started() {
		return vm.ErrNotStarted
	}
	return c.api.Do(ctx, "PUT", "/vm.resume", nil, nil)
}

// Wait implements vm.Hypervisor.
func (c *CloudHypervisor) Wait() error { return c.machine().Wait() }

// Done implements vm.Hypervisor.
func (c *CloudHypervisor) Done() <-chan struct{} { return c.machine().Done() }

// Pid implements vm.Hypervisor.
func (c *CloudHypervisor) Pid() int { return c.machine().Pid() }

// ConsolePath implements vm.Hypervisor.
func (c *CloudHypervisor) ConsolePath() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paths.console
}

// AgentSocket implements vm.Hypervisor: the hybrid vsock socket.
func (c *CloudHypervisor) AgentSocket() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paths.agent
}

// AgentTransport implements vm.AgentDialer.
func (c *CloudHypervisor) AgentTransport() vm.AgentTransport { return vm.TransportHybridVsock }

// DialAgent implements vm.AgentDialer: the hybrid vsock handshake to the
// agent's port, retried until the agent listens.
func (c *CloudHypervisor) DialAgent(ctx context.Context) (net.Conn, error) {
	return vsock.DialHybrid(ctx, c.AgentSocket(), vsock.Port)
}

// kernelCmdline is the base command line plus cfg.KernelParams.
func kernelCmdline(cfg *vm.Config) string {
	parts := []string{"console=ttyS0", "panic=0"}
	if cfg.KernelParams != "" {
		parts = append(parts, cfg.KernelParams)
	}
	return strings.Join(parts, " ")
}
