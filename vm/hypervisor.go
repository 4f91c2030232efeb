// Package vm is the seam between Hull's vm runtime and the hypervisors that
// run its guests: the Hypervisor interface (one VM per value; the QEMU
// driver is vm/qemu, vm/cloudhypervisor and vm/firecracker sit beside it,
// vm/drivers picks one by name), the Config a VM is started from (shares
// with their binds, disks, network devices backed by taps), sizing from a
// container's limits, and Boot, which starts a VM and waits for its agent.
package vm

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
)

var (
	// ErrHypervisorMissing: the hypervisor binary (or virtiofsd) is not there.
	ErrHypervisorMissing = fmt.Errorf("hypervisor: %w", errdefs.ErrNotFound)
	// ErrKernelMissing: the guest kernel or initrd file is not there.
	ErrKernelMissing = fmt.Errorf("guest kernel: %w", errdefs.ErrNotFound)
	// ErrInvalidConfig: a Config field is wrong (named in the message).
	ErrInvalidConfig = fmt.Errorf("vm config: %w", errdefs.ErrInvalidArgument)
	// ErrVMExited: the VM ended when it was not asked to (killed from
	// outside, a guest panic, a crash).
	ErrVMExited = fmt.Errorf("vm exited: %w", errdefs.ErrUnavailable)
	// ErrGuestPanic: the guest kernel panicked (a kind of ErrVMExited).
	ErrGuestPanic = fmt.Errorf("guest kernel panic: %w", ErrVMExited)
	// ErrAgentTimeout: the agent did not answer in time.
	ErrAgentTimeout = fmt.Errorf("guest agent did not answer: %w", errdefs.ErrUnavailable)
	// ErrNotStarted: the operation needs a started VM.
	ErrNotStarted = fmt.Errorf("vm not started: %w", errdefs.ErrFailedPrecondition)
)

// Share is a host directory shared into the guest over virtio-fs.
type Share struct {
	// Tag is the virtio-fs tag the guest mounts (mount -t virtiofs Tag).
	Tag string
	// Source is the host directory.
	Source string
	// Cache is virtiofsd's cache mode: "always" (default), "auto", "none".
	Cache string
	// Binds are bind-mounted under Source before the share's server
	// starts, in a mount namespace of its own: the guest sees them, the
	// host's mount table never holds them, and they vanish with the
	// server (a volume or a bind-mounted file of a container).
	Binds []Bind
}

// Bind is one host file or directory bind-mounted into a Share.
type Bind struct {
	// Source is the host path (file or directory).
	Source string
	// Target is a path relative to the share's Source, which must exist
	// and be of the same kind (file or directory) as Source.
	Target string
	// ReadOnly makes the bind read-only; Recursive binds the submounts of
	// Source too (rbind).
	ReadOnly, Recursive bool
}

// NetDevice is a guest network interface backed by a host tap device. The
// tap lives in the container's network namespace, where the caller mirrors
// it to the container's veth (tc redirect, Kata's tcfilter model).
type NetDevice struct {
	// Tap is the open tap device (IFF_TAP|IFF_NO_PI, IFF_VNET_HDR optional)
	// handed to the hypervisor process; the caller keeps and closes its
	// copy. Nil for a persistent tap that the driver opens by TapName in
	// NetNS (Firecracker); QEMU and Cloud Hypervisor need the fd.
	Tap *os.File
	// TapName is the tap's name and NetNS the path of the network namespace
	// holding it (for drivers that open the tap by name there).
	TapName, NetNS string
	// MAC is the guest interface's address (the veth's, so the peers' ARP
	// entries stay right).
	MAC string
	// MTU is the interface's MTU (0: the device's default).
	MTU int
}

// Disk is a host file attached as a virtio-blk device. Disks appear in the
// guest in order as /dev/vda, /dev/vdb, ...
type Disk struct {
	Path     string
	ReadOnly bool
}

// Config describes one VM.
type Config struct {
	// ID names the VM (logs, QEMU's -name).
	ID string
	// StateDir holds the VM's sockets and console log; it must exist.
	StateDir string
	// Kernel is a bzImage or an ELF vmlinux with a PVH note; Initrd the
	// agent initramfs.
	Kernel, Initrd string
	// KernelParams are added to the driver's base command line.
	KernelParams string
	// VCPUs and MemoryMiB size the guest (see Size).
	VCPUs     int
	MemoryMiB int
	// Shares are shared over virtio-fs (one virtiofsd each).
	Shares []Share
	// Disks are attached over virtio-blk (a rootfs image, volumes).
	Disks []Disk
	// NetDevices are the guest's network interfaces, in order.
	NetDevices []NetDevice
	// Hotplug asks for a machine that can hotplug devices (q35 on QEMU
	// instead of microvm).
	Hotplug bool
}

// Validate checks the fields every driver needs.
func (c *Config) Validate() error {
	if c.StateDir == "" {
		return fmt.Errorf("%w: StateDir is empty", ErrInvalidConfig)
	}
	if st, err := os.Stat(c.StateDir); err != nil || !st.IsDir() {
		return fmt.Errorf("%w: StateDir %s is not a directory", ErrInvalidConfig, c.StateDir)
	}
	if c.Kernel == "" {
		return fmt.Errorf("no kernel given: %w", ErrKernelMissing)
	}
	for _, f := range []string{c.Kernel, c.Initrd} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s: %w", f, ErrKernelMissing)
		}
	}
	if c.VCPUs < 0 || c.MemoryMiB < 0 {
		return fmt.Errorf("%w: negative VCPUs or MemoryMiB", ErrInvalidConfig)
	}
	for i, d := range c.Disks {
		if st, err := os.Stat(d.Path); err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("%w: disk %d: %s is not a regular file", ErrInvalidConfig, i, d.Path)
		}
		if strings.Contains(d.Path, ",") {
			return fmt.Errorf("%w: disk %d: path %s has a ','", ErrInvalidConfig, i, d.Path)
		}
	}
	tags := map[string]bool{}
	for _, s := range c.Shares {
		if s.Tag == "" || strings.ContainsAny(s.Tag, ", =") || tags[s.Tag] {
			return fmt.Errorf("%w: share tag %q is empty, repeated or has ',', ' ' or '='", ErrInvalidConfig, s.Tag)
		}
		tags[s.Tag] = true
		if st, err := os.Stat(s.Source); err != nil || !st.IsDir() {
			return fmt.Errorf("%w: share %q: source %s is not a directory", ErrInvalidConfig, s.Tag, s.Source)
		}
		switch s.Cache {
		case "", "always", "auto", "none":
		default:
			return fmt.Errorf("%w: share %q: cache %q (want always, auto or none)", ErrInvalidConfig, s.Tag, s.Cache)
		}
		for _, b := range s.Binds {
			if err := b.validate(s.Source); err != nil {
				return fmt.Errorf("%w: share %q: %w", ErrInvalidConfig, s.Tag, err)
			}
		}
	}
	for i, n := range c.NetDevices {
		if n.Tap == nil && (n.TapName == "" || n.NetNS == "") {
			return fmt.Errorf("%w: net device %d: neither a tap fd nor a tap name and namespace", ErrInvalidConfig, i)
		}
		if hw, err := net.ParseMAC(n.MAC); err != nil || len(hw) != 6 {
			return fmt.Errorf("%w: net device %d: MAC %q is not an Ethernet address", ErrInvalidConfig, i, n.MAC)
		}
		if n.MTU < 0 || n.MTU > 65535 {
			return fmt.Errorf("%w: net device %d: MTU %d", ErrInvalidConfig, i, n.MTU)
		}
	}
	return nil
}

func (b Bind) validate(share string) error {
	if filepath.IsAbs(b.Target) || b.Target == "" || !filepath.IsLocal(b.Target) {
		return fmt.Errorf("bind target %q must be a relative path inside the share", b.Target)
	}
	src, err := os.Stat(b.Source)
	if err != nil {
		return fmt.Errorf("bind source: %w", err)
	}
	dst, err := os.Lstat(filepath.Join(share, b.Target))
	if err != nil {
		return fmt.Errorf("bind target: %w", err)
	}
	if src.IsDir() != dst.IsDir() {
		return fmt.Errorf("bind %s on %s: one is a directory, the other not", b.Source, b.Target)
	}
	return nil
}

// Capabilities say what a driver can do.
type Capabilities struct {
	// FileSystemSharing: virtio-fs shares.
	FileSystemSharing bool
	// BlockDevices: rootfs as a block image.
	BlockDevices bool
	// Hotplug: devices can be added to a running VM.
	Hotplug bool
	// Vsock: the agent channel can be vsock (else virtio-serial).
	Vsock bool
	// Network: Config.NetDevices are attached.
	Network bool
}

// Hypervisor is one VM under one driver. A value starts at most once.
type Hypervisor interface {
	// Start launches the VM (and its helpers, such as virtiofsd) and
	// returns once the hypervisor runs; it does not wait for the guest.
	// When ctx ends, the VM is killed and cleaned up.
	Start(ctx context.Context, cfg Config) error
	// Stop ends the VM: cleanly if the hypervisor allows it, killing it
	// after a timeout, and removes its sockets. No process is left. It is
	// safe to call more than once and after the VM exited.
	Stop(ctx context.Context) error
	// Wait blocks until the VM has exited: nil when it powered off or was
	// stopped, an ErrVMExited error (with the console tail) otherwise.
	Wait() error
	// Done is closed when the VM has exited.
	Done() <-chan struct{}
	// Pid is the hypervisor process's pid (0 before Start).
	Pid() int
	// ConsolePath is the guest console log.
	ConsolePath() string
	// AgentSocket is the host end of the agent channel (a unix socket).
	AgentSocket() string
	// Capabilities of the driver.
	Capabilities() Capabilities
}

// BootFileReleaser is a Hypervisor that can give back, once the guest has
// booted, the memory its process keeps of the boot files (QEMU keeps the
// kernel and the initrd mapped for the VM's whole life, read only at boot).
type BootFileReleaser interface {
	// ReleaseBootFiles releases them and returns the bytes it released;
	// best effort.
	ReleaseBootFiles() (int, error)
}

// ConsoleTail returns the last n lines of the console log at path.
func ConsoleTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Assets are the default guest kernel and agent initramfs.
type Assets struct {
	Kernel, Initrd string
}

// DefaultAssets returns Hull's minimal kernel (its vmlinux, booted through
// PVH, when present) and the agent initramfs in guestDir (build/guest);
// cloud selects Debian's cloud kernel and its initramfs with modules.
func DefaultAssets(guestDir string, cloud bool) Assets {
	if cloud {
		d := filepath.Join(guestDir, "cloud")
		return Assets{Kernel: filepath.Join(d, "vmlinuz"), Initrd: filepath.Join(d, "agent.cpio")}
	}
	k := filepath.Join(guestDir, "vmlinux")
	if _, err := os.Stat(k); err != nil {
		k = filepath.Join(guestDir, "bzImage")
	}
	return Assets{Kernel: k, Initrd: filepath.Join(guestDir, "agent.cpio")}
}
