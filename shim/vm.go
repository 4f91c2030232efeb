package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/fifo"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"

	"github.com/hullproject/hull/agent"
	agentapi "github.com/hullproject/hull/agent/api"
	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/drivers"
)

// The vm mode (`mode = "vm"` in the runtime options): each container runs
// in its own QEMU guest, driven through hull-agent. Create mounts the
// rootfs on <bundle>/rootfs as native does, shares that directory into the
// guest over virtio-fs and boots the VM; every other call is an agent RPC.
// Stdio is relayed by the shim between the fifos it was given and the
// agent's stream RPCs. Delete removes the container in the guest, shuts
// the VM down (QEMU and virtiofsd end, their sockets go) and unmounts.
// The network (vm_net.go): the VM takes over the interfaces of the network
// namespace whose path the spec names (taps mirrored to the veths with tc;
// the agent configures the guest's NICs), or has only lo when the spec asks
// for a new namespace; a spec without one (host network) is refused. Bind
// mounts (vm_mounts.go) reach the guest through a second virtio-fs share.
//
// Keys of the [backend] table (all optional):
//
//	guest_dir      directory of the guest assets (vmlinux or bzImage, and
//	               agent.cpio); default: $HULL_GUEST_DIR, else
//	               ../build/guest beside the shim binary (a checkout's
//	               bin/), else /usr/lib/hull/guest
//	kernel, initrd override the kernel (vmlinux/bzImage) and agent initramfs
//	kernel_params  added to the driver's kernel command line
//	vcpus, memory_mib  the defaults vm.Size adds the container's limits to
//	hypervisor     "qemu" (default), "cloud-hypervisor", "firecracker"
//	accel          QEMU -accel ("" lets vm/accel decide)
//	tb_size_mib    TCG's translation-cache size in MiB (0: Hull's default,
//	               accel.DefaultTBSizeMiB; -1: QEMU's own)
//	boot_timeout   seconds to wait for the agent (vm.DefaultAgentTimeout)
func init() {
	RegisterBackend("vm", func(o *Options) (Backend, error) {
		c, err := parseVMConfig(o.Backend)
		if err != nil {
			return nil, err
		}
		return &VMBackend{cfg: c, procs: map[string]*vmProc{}}, nil
	})
}

// vmShareTag and vmGuestRoot are where the container's rootfs appears in
// the guest.
const (
	vmShareTag  = "hullrootfs"
	vmGuestRoot = "/run/hull-agent/rootfs"
)

type vmConfig struct {
	Kernel, Initrd, KernelParams, Accel string
	Hypervisor                          string
	// GuestDir is the guest asset directory resolved (the acceleration
	// probe boots from it).
	GuestDir         string
	VCPUs, MemoryMiB int
	TBSizeMiB        int
	BootTimeout      time.Duration
}

// vmGuestDir is the default guest asset directory: $HULL_GUEST_DIR, else
// ../build/guest beside the shim binary (bin/ of a checkout after make
// build) when it holds agent.cpio, else the installed /usr/lib/hull/guest.
func vmGuestDir() string {
	if d := os.Getenv("HULL_GUEST_DIR"); d != "" {
		return d
	}
	if self, err := os.Executable(); err == nil {
		d := filepath.Join(filepath.Dir(self), "..", "build", "guest")
		if _, err := os.Stat(filepath.Join(d, "agent.cpio")); err == nil {
			return filepath.Clean(d)
		}
	}
	return "/usr/lib/hull/guest"
}

func parseVMConfig(m map[string]any) (*vmConfig, error) {
	c := &vmConfig{}
	dir := ""
	str := func(k string, dst *string) error {
		v, ok := m[k]
		if !ok {
			return nil
		}
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("runtime option backend.%s: %v is not a string: %w", k, v, errdefs.ErrInvalidArgument)
		}
		*dst = s
		return nil
	}
	num := func(k string, dst *int) error {
		v, ok := m[k]
		if !ok {
			return nil
		}
		switch n := v.(type) {
		case int64:
			*dst = int(n)
		case float64:
			*dst = int(n)
		case int:
			*dst = n
		default:
			return fmt.Errorf("runtime option backend.%s: %v is not a number: %w", k, v, errdefs.ErrInvalidArgument)
		}
		if *dst < 0 && k != "tb_size_mib" {
			return fmt.Errorf("runtime option backend.%s: %d is negative: %w", k, *dst, errdefs.ErrInvalidArgument)
		}
		return nil
	}
	known := map[string]bool{"guest_dir": true, "kernel": true, "initrd": true, "kernel_params": true, "accel": true, "vcpus": true, "memory_mib": true, "boot_timeout": true, "tb_size_mib": true, "hypervisor": true}
	for k := range m {
		if !known[k] {
			return nil, fmt.Errorf("runtime option backend.%s: unknown key for the vm mode: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	var timeout int
	for _, err := range []error{
		str("guest_dir", &dir), str("kernel", &c.Kernel), str("initrd", &c.Initrd),
		str("kernel_params", &c.KernelParams), str("accel", &c.Accel), str("hypervisor", &c.Hypervisor),
		num("vcpus", &c.VCPUs), num("memory_mib", &c.MemoryMiB), num("boot_timeout", &timeout),
		num("tb_size_mib", &c.TBSizeMiB),
	} {
		if err != nil {
			return nil, err
		}
	}
	if err := drivers.Validate(c.Hypervisor); err != nil {
		return nil, fmt.Errorf("runtime option backend.hypervisor: %w", err)
	}
	if dir == "" {
		dir = vmGuestDir()
	}
	c.GuestDir = dir
	a := vm.DefaultAssets(dir, false)
	if c.Kernel == "" {
		c.Kernel = a.Kernel
	}
	if c.Initrd == "" {
		c.Initrd = a.Initrd
	}
	c.BootTimeout = time.Duration(timeout) * time.Second
	return c, nil
}

// VMBackend is the vm mode's Backend: one container in one VM.
type VMBackend struct {
	cfg      *vmConfig
	id       string
	rootfs   string // mounted by the shim; "" when the bundle had one
	bundle   string
	binds    bool // the guest has the mounts share (volumes, bind mounts)
	stateDir string
	sb       *vm.Sandbox
	stopVM   context.CancelFunc
	net      *vmNetwork // nil without a network namespace path

	mu      sync.Mutex
	procs   map[string]*vmProc
	deleted bool
}

type vmProc struct {
	execID  string
	spec    *specs.Process
	stdio   Stdio
	stdin   io.ReadCloser
	outs    [2]io.WriteCloser
	keep    []io.Closer
	relays  sync.WaitGroup
	pid     int
	started bool
	exit    Exit
	ended   bool
	done    chan struct{}
}

func (b *VMBackend) client() *agent.Client { return b.sb.Agent }

func (b *VMBackend) Create(ctx context.Context, c *CreateConfig) (pid int, err error) {
	vmTraceMark(c.ID, "create")
	b.id, b.bundle = c.ID, c.Bundle
	spec, err := readSpec(c.Bundle)
	if err != nil {
		return 0, err
	}
	netMode, netNS, err := specNetwork(spec)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			b.teardown(context.WithoutCancel(ctx), false)
		}
	}()
	rootfs := filepath.Join(c.Bundle, "rootfs")
	if len(c.Rootfs) > 0 {
		if err := mountAll(c.Rootfs, rootfs); err != nil {
			return 0, err
		}
		b.rootfs = rootfs
	} else if spec.Root != nil && spec.Root.Path != "" {
		rootfs = spec.Root.Path
		if !filepath.IsAbs(rootfs) {
			rootfs = filepath.Join(c.Bundle, rootfs)
		}
	}
	if b.stateDir, err = vmStateDir(c.Bundle); err != nil {
		return 0, err
	}
	vcpus, mem := vm.Size(vm.Defaults{VCPUs: b.cfg.VCPUs, MemoryMiB: b.cfg.MemoryMiB}, linuxResources(spec), runtime.NumCPU())
	cfg := vm.Config{
		ID: c.ID, StateDir: b.stateDir, Kernel: b.cfg.Kernel, Initrd: b.cfg.Initrd,
		KernelParams: b.cfg.KernelParams, VCPUs: vcpus, MemoryMiB: mem,
		Shares: []vm.Share{{Tag: vmShareTag, Source: rootfs}},
	}
	storages := []*agentapi.Storage{{Source: vmShareTag, Fstype: "virtiofs", MountPoint: vmGuestRoot}}
	mountsDir := filepath.Join(b.stateDir, "mounts")
	binds, bindSources, err := vmBinds(spec, mountsDir)
	if err != nil {
		return 0, err
	}
	if len(binds) > 0 {
		b.binds = true
		cfg.Shares = append(cfg.Shares, vm.Share{Tag: vmMountsTag, Source: mountsDir, Cache: "auto", Binds: binds})
		storages = append(storages, &agentapi.Storage{Source: vmMountsTag, Fstype: "virtiofs", MountPoint: vmGuestMounts})
	}
	if netMode == vmNetJoin {
		// Firecracker opens taps by name (its API takes no fd): persistent
		// ones, which the shim does not hold.
		if b.net, err = setupVMNetwork(netNS, b.cfg.Hypervisor == drivers.Firecracker); err != nil {
			return 0, err
		}
		cfg.NetDevices = b.net.devices()
	}
	vctx, cancel := context.WithCancel(context.Background())
	b.stopVM = cancel
	h, err := drivers.New(b.cfg.Hypervisor, drivers.Options{Accel: b.cfg.Accel, TBSizeMiB: b.cfg.TBSizeMiB, GuestDir: b.cfg.GuestDir,
		// The boot-file release maps the shim's code back in: trim after it.
		AfterBootFileRelease: trimSoon})
	if err != nil {
		return 0, err
	}
	sb, err := vm.Boot(vctx, h, cfg, b.cfg.BootTimeout)
	if b.net != nil {
		// QEMU holds the taps now: they go when it does.
		b.net.closeTaps()
	}
	if err != nil {
		return 0, fmt.Errorf("boot vm: %w", err)
	}
	b.sb = sb
	vmTraceBoot(c.ID, sb)
	go b.watchVM()
	// Drivers without virtio-fs attach the rootfs as a block image.
	storages[0].Source, storages[0].Fstype = vm.ShareStorage(sb.Hypervisor, vmShareTag)

	// The container uses the guest's network namespace: the VM is the
	// sandbox. With --net none it has only lo (no NIC is attached); the
	// agent brings lo up either way. (Run beside CreateContainer it saved
	// ~13 ms of ~500 under TCG, within the noise: sequential is simpler to
	// reason about in the agent.)
	netReq := &agentapi.ConfigureNetworkRequest{}
	if b.net != nil {
		netReq = b.net.request()
	}
	if _, err := b.client().ConfigureNetwork(ctx, netReq); err != nil {
		return 0, fmt.Errorf("configure the network in the guest: %w; console tail:\n%s", err, vm.ConsoleTail(sb.Hypervisor.ConsolePath(), 20))
	}
	vmTraceMark(c.ID, "network")
	gspec := guestSpec(spec, bindSources)
	js, err := json.Marshal(gspec)
	if err != nil {
		return 0, err
	}
	p := &vmProc{spec: spec.Process, stdio: c.Stdio, done: make(chan struct{}), pid: sb.Hypervisor.Pid()}
	if err := p.openStdio(ctx); err != nil {
		return 0, err
	}
	b.mu.Lock()
	b.procs[""] = p
	b.mu.Unlock()
	vmTraceMark(c.ID, "create_sent")
	if _, err := b.client().CreateContainer(ctx, &agentapi.CreateContainerRequest{
		ContainerId: c.ID, OciSpec: js, Storages: storages,
	}); err != nil {
		return 0, fmt.Errorf("create in guest: %w; console tail:\n%s", err, vm.ConsoleTail(sb.Hypervisor.ConsolePath(), 20))
	}
	vmTraceMark(c.ID, "created")
	b.relay(p)
	return p.pid, nil
}

// vmStateDir makes the directory of the VM's sockets and console log:
// <bundle>/vm, so that it goes with the bundle even when the shim dies,
// unless that path is too long for a unix socket name (108 bytes with
// "/agent.sock"); then a temporary directory.
func vmStateDir(bundle string) (string, error) {
	d := filepath.Join(bundle, "vm")
	if len(d)+len("/agent.sock") >= 100 {
		t, err := os.MkdirTemp("", "hull-vm-")
		if err != nil {
			return "", fmt.Errorf("vm state dir: %w", err)
		}
		return t, nil
	}
	if err := os.Mkdir(d, 0o700); err != nil {
		return "", fmt.Errorf("vm state dir: %w", err)
	}
	return d, nil
}

func linuxResources(s *specs.Spec) *specs.LinuxResources {
	if s.Linux == nil {
		return nil
	}
	return s.Linux.Resources
}

// guestSpec is the spec as the agent runs it: the root inside the guest's
// share, bind mount sources in the mounts share (bindSources: mount index
// to guest path), no network namespace (the VM is the sandbox: the
// container uses the guest's, which has the NICs taken over from the
// host's namespace, or only lo) and (the guest is a cgroup v2 host) a
// cgroup namespace of its own.
func guestSpec(s *specs.Spec, bindSources map[int]string) *specs.Spec {
	g := *s
	root := specs.Root{}
	if s.Root != nil {
		root = *s.Root
	}
	root.Path = vmGuestRoot
	g.Root = &root
	g.Hooks = nil // host hooks cannot run in the guest
	if len(bindSources) > 0 {
		g.Mounts = append([]specs.Mount(nil), s.Mounts...)
		for i, src := range bindSources {
			g.Mounts[i].Source = src
		}
	}
	if s.Linux != nil {
		l := *s.Linux
		has := false
		var nss []specs.LinuxNamespace
		for _, ns := range l.Namespaces {
			has = has || ns.Type == specs.CgroupNamespace
			if ns.Type == specs.NetworkNamespace {
				continue
			}
			nss = append(nss, ns)
		}
		if !has {
			nss = append(nss, specs.LinuxNamespace{Type: specs.CgroupNamespace})
		}
		l.Namespaces = nss
		l.CgroupsPath = "" // a host path means nothing in the guest
		g.Linux = &l
	}
	return &g
}

// openStdio opens the process's fifos (or files): stdin for reading,
// stdout and stderr for writing.
func (p *vmProc) openStdio(ctx context.Context) error {
	s := p.stdio
	if s.Stdin != "" {
		path, err := fileURI(s.Stdin)
		if err != nil {
			return err
		}
		if p.stdin, err = fifo.OpenFifo(context.WithoutCancel(ctx), path, syscall.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
			return fmt.Errorf("open stdin %s: %w", s.Stdin, err)
		}
	}
	for i, uri := range []string{s.Stdout, s.Stderr} {
		if uri == "" || (s.Terminal && i == 1) {
			continue
		}
		path, err := fileURI(uri)
		if err != nil {
			p.closeStdio()
			return err
		}
		pio := &procIO{}
		w, err := pio.openOutput(ctx, path)
		if err != nil {
			p.closeStdio()
			return err
		}
		p.outs[i] = w
		p.keep = append(p.keep, pio.keep...)
	}
	return nil
}

func (p *vmProc) closeStdio() {
	if p.stdin != nil {
		p.stdin.Close()
	}
	for i, w := range p.outs {
		if w != nil {
			w.Close()
			p.outs[i] = nil
		}
	}
	for _, k := range p.keep {
		k.Close()
	}
	p.keep = nil
}

// relay starts copying the agent's stdout and stderr of p to its outputs
// (until the agent reports EOF) and its stdin to the agent.
func (b *VMBackend) relay(p *vmProc) {
	c := b.client()
	ctx := context.Background()
	reads := [2]func(context.Context, *agentapi.ReadStreamRequest) (*agentapi.ReadStreamResponse, error){c.ReadStdout, c.ReadStderr}
	for i, read := range reads {
		if p.stdio.Terminal && i == 1 {
			continue
		}
		w := p.outs[i]
		p.relays.Add(1)
		go func() {
			defer p.relays.Done()
			for {
				r, err := read(ctx, &agentapi.ReadStreamRequest{ContainerId: b.id, ExecId: p.execID})
				if err != nil || len(r.Data) == 0 {
					return
				}
				if w != nil {
					_, _ = w.Write(r.Data)
				}
			}
		}()
	}
	if p.stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := p.stdin.Read(buf)
				if n > 0 {
					if _, werr := c.WriteStdin(ctx, &agentapi.WriteStreamRequest{ContainerId: b.id, ExecId: p.execID, Data: buf[:n]}); werr != nil {
						return
					}
				}
				if err != nil {
					_, _ = c.CloseStdin(ctx, &agentapi.ProcessRequest{ContainerId: b.id, ExecId: p.execID})
					return
				}
			}
		}()
	}
}

// wait waits in the guest for p to end, then for its output to be copied,
// and records its exit.
func (b *VMBackend) wait(p *vmProc) {
	r, err := b.client().WaitProcess(context.Background(), &agentapi.ProcessRequest{ContainerId: b.id, ExecId: p.execID})
	if p.execID == "" {
		vmTraceMark(b.id, "exited")
	}
	status := int(r.GetStatus())
	if err != nil {
		slog.Warn("vm: wait in guest", "exec", p.execID, "err", err)
		status = 128 + int(syscall.SIGKILL)
	}
	p.relays.Wait()
	b.end(p, status)
}

// watchVM ends the container's processes (status 128+SIGKILL) when the
// VM stops without being asked to: killed from outside, a guest panic. The
// cause, with the console's tail, goes to the shim's log.
func (b *VMBackend) watchVM() {
	h := b.sb.Hypervisor
	<-h.Done()
	b.mu.Lock()
	deleting := b.deleted
	ps := make([]*vmProc, 0, len(b.procs))
	for _, p := range b.procs {
		ps = append(ps, p)
	}
	b.mu.Unlock()
	if deleting {
		return
	}
	slog.Error("vm: the VM of the container ended", "id", b.id, "err", h.Wait())
	for _, p := range ps {
		b.end(p, 128+int(syscall.SIGKILL))
	}
}

func (b *VMBackend) end(p *vmProc, status int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.ended {
		return
	}
	p.ended, p.exit = true, Exit{Pid: p.pid, Status: status, At: time.Now()}
	p.closeStdio()
	close(p.done)
}

func (b *VMBackend) proc(execID string) (*vmProc, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.procs[execID]
	if !ok {
		if execID == "" {
			return nil, fmt.Errorf("container not created: %w", errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("exec %q: %w", execID, errdefs.ErrNotFound)
	}
	return p, nil
}

func (b *VMBackend) Start(ctx context.Context, execID string) (int, error) {
	p, err := b.proc(execID)
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	already := p.started
	p.started = true
	b.mu.Unlock()
	if already {
		return 0, fmt.Errorf("process %q already started: %w", execID, errdefs.ErrFailedPrecondition)
	}
	if execID == "" {
		vmTraceMark(b.id, "start")
		if _, err := b.client().StartContainer(ctx, &agentapi.ContainerRequest{ContainerId: b.id}); err != nil {
			return 0, fmt.Errorf("start in guest: %w", err)
		}
		vmTraceMark(b.id, "started")
		go b.wait(p)
		return p.pid, nil
	}
	js, err := json.Marshal(p.spec)
	if err != nil {
		return 0, err
	}
	if _, err := b.client().ExecProcess(ctx, &agentapi.ExecProcessRequest{ContainerId: b.id, ExecId: execID, Process: js}); err != nil {
		return 0, fmt.Errorf("exec in guest: %w", err)
	}
	b.relay(p)
	go b.wait(p)
	return p.pid, nil
}

func (b *VMBackend) Exec(ctx context.Context, execID string, c *ExecConfig) error {
	b.mu.Lock()
	_, exists := b.procs[execID]
	b.mu.Unlock()
	if exists {
		return fmt.Errorf("exec %q: %w", execID, errdefs.ErrAlreadyExists)
	}
	p := &vmProc{execID: execID, spec: c.Spec, stdio: c.Stdio, done: make(chan struct{}), pid: b.sb.Hypervisor.Pid()}
	if err := p.openStdio(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	b.procs[execID] = p
	b.mu.Unlock()
	return nil
}

func (b *VMBackend) Wait(ctx context.Context, execID string) (Exit, error) {
	p, err := b.proc(execID)
	if err != nil {
		return Exit{}, err
	}
	select {
	case <-p.done:
		return p.exit, nil
	case <-ctx.Done():
		return Exit{}, ctx.Err()
	}
}

func (b *VMBackend) Kill(ctx context.Context, execID string, sig syscall.Signal, all bool) error {
	p, err := b.proc(execID)
	if err != nil {
		return err
	}
	b.mu.Lock()
	started, ended := p.started, p.ended
	b.mu.Unlock()
	if ended {
		return fmt.Errorf("process %q: already stopped: %w", execID, errdefs.ErrNotFound)
	}
	if _, err := b.client().SignalProcess(ctx, &agentapi.SignalProcessRequest{ContainerId: b.id, ExecId: execID, Signal: uint32(sig)}); err != nil {
		return fmt.Errorf("signal in guest: %w", err)
	}
	if !started {
		// No waiter runs yet for a process that never started.
		go b.wait(p)
		b.mu.Lock()
		p.started = true
		b.mu.Unlock()
	}
	return nil
}

func (b *VMBackend) ResizePty(ctx context.Context, execID string, width, height uint32) error {
	if _, err := b.client().TtyWinResize(ctx, &agentapi.TtyWinResizeRequest{ContainerId: b.id, ExecId: execID, Rows: height, Cols: width}); err != nil {
		return fmt.Errorf("resize in guest: %w", err)
	}
	return nil
}

func (b *VMBackend) CloseStdin(ctx context.Context, execID string) error {
	p, err := b.proc(execID)
	if err != nil {
		return err
	}
	if p.stdin == nil {
		_, err := b.client().CloseStdin(ctx, &agentapi.ProcessRequest{ContainerId: b.id, ExecId: execID})
		return err
	}
	// The relay reads what is left, then closes the guest's stdin.
	return nil
}

// Pause freezes the VM's vCPUs (one container per VM: the container, its
// agent included, stops until Resume).
func (b *VMBackend) Pause(ctx context.Context) error {
	if p, ok := b.pauser(); ok {
		if err := p.Pause(ctx); err != nil {
			return fmt.Errorf("pause the vm: %w", err)
		}
		return nil
	}
	return fmt.Errorf("pause in the vm mode with this hypervisor: %w", errdefs.ErrNotImplemented)
}

// Resume lets a paused VM run again.
func (b *VMBackend) Resume(ctx context.Context) error {
	if p, ok := b.pauser(); ok {
		if err := p.Resume(ctx); err != nil {
			return fmt.Errorf("resume the vm: %w", err)
		}
		return nil
	}
	return fmt.Errorf("resume in the vm mode with this hypervisor: %w", errdefs.ErrNotImplemented)
}

func (b *VMBackend) pauser() (vm.Pauser, bool) {
	if b.sb == nil {
		return nil, false
	}
	p, ok := b.sb.Hypervisor.(vm.Pauser)
	return p, ok
}

func (b *VMBackend) Pids(context.Context) ([]int, error) {
	if b.sb == nil {
		return nil, nil
	}
	return []int{b.sb.Hypervisor.Pid()}, nil
}

func (b *VMBackend) Update(context.Context, *specs.LinuxResources) error {
	return fmt.Errorf("update in the vm mode: %w", errdefs.ErrNotImplemented)
}

// Stats are the guest cgroup's, in the `runc events --stats` form the
// agent sends, converted as the native backend's are.
func (b *VMBackend) Stats(ctx context.Context) (proto.Message, error) {
	r, err := b.client().StatsContainer(ctx, &agentapi.ContainerRequest{ContainerId: b.id})
	if err != nil {
		return nil, fmt.Errorf("stats in guest: %w", err)
	}
	var st runc.Stats
	if err := json.Unmarshal(r.CgroupStats, &st); err != nil {
		return nil, fmt.Errorf("stats from the guest: %v: %w", err, errdefs.ErrDataLoss)
	}
	return metricsV1(&st), nil
}

func (b *VMBackend) DeleteProcess(ctx context.Context, execID string) error {
	p, err := b.proc(execID)
	if err != nil {
		return err
	}
	b.mu.Lock()
	delete(b.procs, execID)
	b.mu.Unlock()
	b.end(p, 128+int(syscall.SIGKILL))
	return nil
}

// RootfsDiscardedFile is the file in the bundle by which hulld tells the
// shim, before Delete, that the container's rootfs is discarded with it
// (a container delete: its rw layer goes next), so nothing the guest
// still holds of it needs to reach the host. hulld's copy of the name is
// daemon.rootfsDiscardedFile.
const RootfsDiscardedFile = "rootfs-discarded"

// Delete ends the container and its VM. The agent removes the container
// first, which puts everything the guest wrote on the host (its storages
// synced, unmounted); then the VM quits. When the rootfs is being
// discarded (RootfsDiscardedFile) and the guest has no other share
// (volumes, bind mounts), there is nothing the host needs from the guest:
// the VM quits at once.
func (b *VMBackend) Delete(ctx context.Context) error {
	vmTraceMark(b.id, "delete")
	removed := false
	if b.sb != nil {
		if b.nothingToFlush() {
			removed = true
		} else {
			_, err := b.client().RemoveContainer(ctx, &agentapi.ContainerRequest{ContainerId: b.id})
			removed = err == nil
		}
		vmTraceMark(b.id, "removed")
	}
	return b.teardown(ctx, removed)
}

// nothingToFlush says the host needs nothing the guest may still hold:
// the rootfs is discarded (RootfsDiscardedFile) and there is no share of
// volumes or bind mounts.
func (b *VMBackend) nothingToFlush() bool {
	if b.bundle == "" || b.binds {
		return false
	}
	_, err := os.Stat(filepath.Join(b.bundle, RootfsDiscardedFile))
	return err == nil
}

// teardown stops the VM (QEMU, virtiofsd and their sockets go; the binds
// of the mounts share with virtiofsd's mount namespace), ends the
// processes still recorded, removes the taps and tc qdiscs, unmounts the
// rootfs and removes the state dir. removed says the host needs nothing
// more from the guest (the agent removed the container, its storages
// synced, or they are discarded): then the VM quits at once; otherwise the
// agent powers the guest off.
func (b *VMBackend) teardown(ctx context.Context, removed bool) error {
	b.mu.Lock()
	b.deleted = true
	b.mu.Unlock()
	var err error
	if b.sb != nil {
		stop := b.sb.Shutdown
		if removed {
			// Nothing is left in the guest: end the VM at once, as Kata
			// does, rather than wait for the guest to power off (~70 ms
			// under TCG).
			stop = b.sb.Quit
		}
		if serr := stop(ctx, 5*time.Second); serr != nil {
			err = fmt.Errorf("vm shutdown: %w", serr)
		}
	}
	if b.stopVM != nil {
		b.stopVM()
		if b.sb != nil {
			<-b.sb.Hypervisor.Done()
		}
	}
	vmTraceMark(b.id, "vm_down")
	b.mu.Lock()
	ps := make([]*vmProc, 0, len(b.procs))
	for _, p := range b.procs {
		ps = append(ps, p)
	}
	b.mu.Unlock()
	for _, p := range ps {
		b.end(p, 128+int(syscall.SIGKILL))
	}
	if b.net != nil {
		if nerr := b.net.teardown(); nerr != nil && err == nil {
			err = nerr
		}
		b.net = nil
	}
	if b.rootfs != "" {
		if uerr := unmountAll(b.rootfs); uerr != nil && err == nil {
			err = uerr
		}
		b.rootfs = ""
	}
	if b.stateDir != "" {
		vmTraceMark(b.id, "torndown")
		vmTraceFlush(b.id, filepath.Join(b.stateDir, "console.log"))
		_ = os.RemoveAll(b.stateDir)
		b.stateDir = ""
	}
	return err
}
