// Package firecracker is the Firecracker driver of Hull's vm runtime
// (vm.Hypervisor).
//
// One value runs one VM: `firecracker --api-sock fc-api.sock` is started
// (inside the network namespace of the VM's taps, which Firecracker opens
// by name), and the VM is configured and started through its REST API:
// machine-config, boot-source, drives, network-interfaces, vsock, then the
// InstanceStart action. Firecracker has no virtio-fs, so each share of
// the config is turned into an ext4 image (package blockimage) attached as
// a drive after the config's disks; vm.ShareStorage tells the caller which
// device holds it. Writes in the guest stay in that image. The guest's
// serial console (Firecracker's standard output) goes to console.log,
// Firecracker's own log to firecracker.log. The agent channel is the
// hybrid vsock unix socket agent.sock ("CONNECT <port>" handshake).
//
// Firecracker ends when the guest reboots or powers off; Stop sends
// Ctrl+Alt+Del (which a guest with an i8042 driver and reboot=k turns into
// that end) and kills the VMM after a timeout. A guest panic (panic=-1
// reboots) is reported as vm.ErrGuestPanic. It needs KVM.
package firecracker

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
	"github.com/hullproject/hull/blockimage"
	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/internal/vmm"
)

const (
	// DefaultBinary is looked up in PATH; $HULL_FIRECRACKER overrides it.
	DefaultBinary = "firecracker"
	// BinaryEnv names the environment variable that points to the binary.
	BinaryEnv = "HULL_FIRECRACKER"
	// guestCID is the guest's vsock CID (hybrid vsock is per VM).
	guestCID = 3
	// shareImageSlack is the free space added to a share's ext4 image
	// (sparse: unused space costs no disk).
	shareImageSlack = 256 << 20
)

// Options configure the driver. Zero values take the defaults.
type Options struct {
	Binary string // $HULL_FIRECRACKER, else DefaultBinary
	// ShutdownTimeout is how long Stop waits after Ctrl+Alt+Del before
	// SIGKILL (1 s).
	ShutdownTimeout time.Duration
	// APITimeout bounds the wait for the API socket at start (10 s).
	APITimeout time.Duration
	Logger     *slog.Logger
}

// Firecracker is one VM run by Firecracker.
type Firecracker struct {
	opts Options

	mu      sync.Mutex
	started bool
	paths   paths
	api     *vmm.Client
	m       *vmm.Machine
	// shareDev maps a share's tag to its guest block device.
	shareDev map[string]string
}

var (
	_ vm.Hypervisor  = (*Firecracker)(nil)
	_ vm.AgentDialer = (*Firecracker)(nil)
	_ vm.BlockShares = (*Firecracker)(nil)
	_ vm.Pauser      = (*Firecracker)(nil)
)

// New returns a driver for one VM.
func New(o Options) *Firecracker {
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = time.Second
	}
	if o.APITimeout <= 0 {
		o.APITimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Firecracker{opts: o, m: vmm.NewMachine("", o.Logger)}
}

// LookPath returns the binary the driver would run, or an error wrapping
// vm.ErrHypervisorMissing that says how to get one.
func LookPath(o Options) (string, error) {
	return vmm.LookPath(o.Binary, BinaryEnv, DefaultBinary, "Firecracker")
}

// Capabilities implements vm.Hypervisor: no virtio-fs (shares become
// block images), no hotplug; block devices, taps and (hybrid) vsock.
func (f *Firecracker) Capabilities() vm.Capabilities {
	return vm.Capabilities{FileSystemSharing: false, BlockDevices: true, Hotplug: false, Vsock: true, Network: true}
}

type paths struct {
	api, agent, console, log string
	images                   []string
}

func pathsFor(cfg *vm.Config) paths {
	p := paths{
		api:     filepath.Join(cfg.StateDir, "fc-api.sock"),
		agent:   filepath.Join(cfg.StateDir, "agent.sock"),
		console: filepath.Join(cfg.StateDir, "console.log"),
		log:     filepath.Join(cfg.StateDir, "firecracker.log"),
	}
	for i := range cfg.Shares {
		p.images = append(p.images, filepath.Join(cfg.StateDir, "share"+strconv.Itoa(i)+".ext4"))
	}
	return p
}

// guestDevice is the name of the n-th virtio-blk device in the guest.
func guestDevice(n int) string {
	name := ""
	for n++; n > 0; n = (n - 1) / 26 {
		name = string(rune('a'+(n-1)%26)) + name
	}
	return "/dev/vd" + name
}

// netNS is the one network namespace of the config's taps.
func netNS(cfg *vm.Config) (string, error) {
	ns := ""
	for i, n := range cfg.NetDevices {
		if n.TapName == "" {
			return "", fmt.Errorf("%w: net device %d: firecracker opens taps by name, and TapName is empty", vm.ErrInvalidConfig, i)
		}
		if i > 0 && n.NetNS != ns {
			return "", fmt.Errorf("%w: net devices in different network namespaces (%s, %s)", vm.ErrInvalidConfig, ns, n.NetNS)
		}
		ns = n.NetNS
	}
	return ns, nil
}

// Start implements vm.Hypervisor.
func (f *Firecracker) Start(ctx context.Context, cfg vm.Config) (retErr error) {
	f.mu.Lock()
	if f.started {
		f.mu.Unlock()
		return fmt.Errorf("%w: already started", vm.ErrInvalidConfig)
	}
	f.started = true
	f.mu.Unlock()
	bin, err := LookPath(f.opts)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := vmm.RequireELFKernel(cfg.Kernel, "firecracker", false); err != nil {
		return err
	}
	ns, err := netNS(&cfg)
	if err != nil {
		return err
	}
	for _, s := range cfg.Shares {
		if len(s.Binds) > 0 {
			return fmt.Errorf("%w: share %q: binds need virtio-fs, which firecracker lacks", vm.ErrInvalidConfig, s.Tag)
		}
	}
	p := pathsFor(&cfg)
	m := vmm.NewMachine(p.console, f.opts.Logger)
	f.mu.Lock()
	f.paths, f.m = p, m
	f.api = &vmm.Client{Socket: p.api}
	f.mu.Unlock()
	m.RemoveAtEnd(append([]string{p.api, p.agent}, p.images...)...)
	defer func() {
		if retErr != nil {
			m.Kill()
			if m.Started() {
				<-m.Done()
			}
			m.Cleanup()
		}
	}()
	for _, x := range append([]string{p.api, p.agent, p.console, p.log}, p.images...) {
		_ = os.Remove(x)
	}
	drives := make([]Drive, 0, len(cfg.Disks)+len(cfg.Shares))
	for i, d := range cfg.Disks {
		drives = append(drives, Drive{ID: "disk" + strconv.Itoa(i), Path: d.Path, ReadOnly: d.ReadOnly})
	}
	shareDev := map[string]string{}
	for i, s := range cfg.Shares {
		if err := blockimage.Build(ctx, s.Source, p.images[i], blockimage.Ext4, shareImageSlack); err != nil {
			return fmt.Errorf("share %q as a block image: %w", s.Tag, err)
		}
		shareDev[s.Tag] = guestDevice(len(drives))
		drives = append(drives, Drive{ID: "share" + strconv.Itoa(i), Path: p.images[i]})
	}
	f.mu.Lock()
	f.shareDev = shareDev
	f.mu.Unlock()
	console, err := os.OpenFile(p.console, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("console log: %w", err)
	}
	defer console.Close()
	// Firecracker opens its log path without creating it.
	if err := os.WriteFile(p.log, nil, 0o644); err != nil {
		return fmt.Errorf("firecracker log: %w", err)
	}
	proc, err := vmm.Start(vmm.Spec{Path: bin, Args: []string{"--api-sock", p.api, "--log-path", p.log},
		Stdout: console, NetNS: ns})
	if err != nil {
		return err
	}
	m.Run(proc)
	actx, cancel := context.WithTimeout(ctx, f.opts.APITimeout)
	defer cancel()
	if err := vmm.WaitForAPI(actx, proc, p.api, "firecracker"); err != nil {
		return err
	}
	for _, r := range requests(&cfg, p, drives) {
		if err := f.api.Do(ctx, "PUT", r.endpoint, r.body, nil); err != nil {
			return f.fail(err)
		}
	}
	m.KillOnDone(ctx)
	return nil
}

type request struct {
	endpoint string
	body     any
}

// requests is the configuration sequence up to InstanceStart.
func requests(cfg *vm.Config, p paths, drives []Drive) []request {
	mem := cfg.MemoryMiB
	if mem <= 0 {
		mem = 256
	}
	cpus := cfg.VCPUs
	if cpus <= 0 {
		cpus = 1
	}
	rs := []request{
		{"/machine-config", MachineConfig{VCPUCount: cpus, MemSizeMiB: mem}},
		{"/boot-source", BootSource{KernelImagePath: cfg.Kernel, InitrdPath: cfg.Initrd, BootArgs: kernelCmdline(cfg)}},
	}
	for _, d := range drives {
		rs = append(rs, request{"/drives/" + d.ID, d})
	}
	for i, n := range cfg.NetDevices {
		id := "net" + strconv.Itoa(i)
		rs = append(rs, request{"/network-interfaces/" + id, NetworkInterface{ID: id, HostDevName: n.TapName, GuestMAC: n.MAC}})
	}
	rs = append(rs,
		request{"/vsock", Vsock{GuestCID: guestCID, UDSPath: p.agent}},
		request{"/actions", Action{Type: "InstanceStart"}},
	)
	return rs
}

// PowerOffParam on the kernel command line asks hull-agent to end the
// guest with a reboot rather than a power-off: Firecracker exits on the
// guest's keyboard-controller reset (reboot=k), while a power-off without
// ACPI only halts the vCPUs. It equals agent/server.PowerOffParam (a test
// checks; the driver does not import the guest side).
const PowerOffParam = "hull.poweroff=reboot"

// kernelCmdline is the base command line plus cfg.KernelParams: the
// serial console, the keyboard-controller reboot Firecracker ends on (also
// for the agent's power-off and on panic), and no PCI probing (devices are
// virtio-mmio).
func kernelCmdline(cfg *vm.Config) string {
	parts := []string{"console=ttyS0", "reboot=k", "panic=-1", "pci=off", PowerOffParam}
	if cfg.KernelParams != "" {
		parts = append(parts, cfg.KernelParams)
	}
	return strings.Join(parts, " ")
}

func (f *Firecracker) fail(err error) error {
	if s := f.m.VMMStderr(); s != "" {
		return fmt.Errorf("firecracker: %w (stderr: %s)", err, s)
	}
	tail := vm.ConsoleTail(f.paths.log, 5)
	if tail != "" {
		return fmt.Errorf("firecracker: %w (log: %s)", err, tail)
	}
	return fmt.Errorf("firecracker: %w", err)
}

func (f *Firecracker) machine() *vmm.Machine {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m
}

// Stop implements vm.Hypervisor: Ctrl+Alt+Del, SIGKILL after
// ShutdownTimeout.
func (f *Firecracker) Stop(ctx context.Context) error {
	m := f.machine()
	if !m.Started() {
		return nil
	}
	m.SetStopping()
	select {
	case <-m.Done():
		return nil
	default:
	}
	sctx, cancel := context.WithTimeout(ctx, f.opts.ShutdownTimeout)
	defer cancel()
	if err := f.api.Do(sctx, "PUT", "/actions", Action{Type: "SendCtrlAltDel"}, nil); err == nil {
		if m.WaitDone(ctx, f.opts.ShutdownTimeout) {
			return nil
		}
	} else {
		f.opts.Logger.Debug("firecracker SendCtrlAltDel", "err", err)
	}
	m.Kill()
	<-m.Done()
	return nil
}

// InstanceInfo is Firecracker's GET / answer.
type InstanceInfo struct {
	ID         string `json:"id"`
	State      string `json:"state"` // Not started, Running, Paused
	VMMVersion string `json:"vmm_version"`
	AppName    string `json:"app_name"`
}

// Info returns the instance information (GET /).
func (f *Firecracker) Info(ctx context.Context) (*InstanceInfo, error) {
	if !f.machine().Started() {
		return nil, vm.ErrNotStarted
	}
	var info InstanceInfo
	if err := f.api.Do(ctx, "GET", "/", nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Pause pauses the VM (PATCH /vm Paused).
func (f *Firecracker) Pause(ctx context.Context) error {
	if !f.machine().Started() {
		return vm.ErrNotStarted
	}
	return f.api.Do(ctx, "PATCH", "/vm", VMState{State: "Paused"}, nil)
}

// Resume resumes a paused VM (PATCH /vm Resumed).
func (f *Firecracker) Resume(ctx context.Context) error {
	if !f.machine().Started() {
		return vm.ErrNotStarted
	}
	return f.api.Do(ctx, "PATCH", "/vm", VMState{State: "Resumed"}, nil)
}

// ShareDevice implements vm.BlockShares.
func (f *Firecracker) ShareDevice(tag string) (string, string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.shareDev[tag]
	return d, blockimage.Ext4, ok
}

// Wait implements vm.Hypervisor.
func (f *Firecracker) Wait() error { return f.machine().Wait() }

// Done implements vm.Hypervisor.
func (f *Firecracker) Done() <-chan struct{} { return f.machine().Done() }

// Pid implements vm.Hypervisor.
func (f *Firecracker) Pid() int { return f.machine().Pid() }

// ConsolePath implements vm.Hypervisor.
func (f *Firecracker) ConsolePath() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paths.console
}

// AgentSocket implements vm.Hypervisor: the hybrid vsock socket.
func (f *Firecracker) AgentSocket() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paths.agent
}

// AgentTransport implements vm.AgentDialer.
func (f *Firecracker) AgentTransport() vm.AgentTransport { return vm.TransportHybridVsock }

// DialAgent implements vm.AgentDialer.
func (f *Firecracker) DialAgent(ctx context.Context) (net.Conn, error) {
	return vsock.DialHybrid(ctx, f.AgentSocket(), vsock.Port)
}
