package qemu

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/guest/bootcheck"
)

// paths of one VM's files in its state directory.
type paths struct {
	qmp, agent, console string
	fs                  map[string]string // tag → virtiofsd socket
}

func pathsFor(cfg *vm.Config) paths {
	p := paths{
		qmp:     filepath.Join(cfg.StateDir, "qmp.sock"),
		agent:   filepath.Join(cfg.StateDir, "agent.sock"),
		console: filepath.Join(cfg.StateDir, "console.log"),
		fs:      map[string]string{},
	}
	for i, s := range cfg.Shares {
		p.fs[s.Tag] = filepath.Join(cfg.StateDir, "fs"+strconv.Itoa(i)+".sock")
	}
	return p
}

// machine returns the machine type: microvm unless hotplug is needed.
func machine(cfg *vm.Config) string {
	if cfg.Hotplug {
		return "q35"
	}
	return "microvm"
}

// kernelCmdline is the base command line plus cfg.KernelParams: the serial
// console, reboot on panic (which -no-reboot turns into QEMU's exit), the
// per-CPU allocator on pages, and the host's TSC frequency, which spares
// TCG guests the calibration.
//
// percpu_alloc=page: with one possible CPU, x86's default ("embed") per-CPU
// allocator makes each chunk's unit 2 MiB (the large-page atom, since no
// second CPU can share it), so the first dynamic chunk, which boot always
// needs, carries 4 MiB of memcg bookkeeping (one pointer per 4 bytes of
// unit) that the guest touches: ~4.8 MiB of guest RAM resident in the host
// per VM (45.7 -> 40.9 MiB idle). Page units are as large as the per-CPU
// area needs (~170 KiB here). Per-CPU data is then reached through vmalloc
// mappings instead of the direct map: no difference to measure under TCG.
func kernelCmdline(cfg *vm.Config) string {
	parts := []string{"console=ttyS0", "panic=-1", "percpu_alloc=page"}
	if khz := bootcheck.HostTSCkHz(); khz > 0 {
		parts = append(parts, "tsc_early_khz="+strconv.Itoa(khz))
	}
	if cfg.KernelParams != "" {
		parts = append(parts, cfg.KernelParams)
	}
	return strings.Join(parts, " ")
}

// buildArgs returns QEMU's command line (without the binary).
func buildArgs(cfg *vm.Config, accelArg string, p paths) []string {
	m := machine(cfg)
	mem := cfg.MemoryMiB
	if mem <= 0 {
		mem = 256
	}
	cpus := cfg.VCPUs
	if cpus <= 0 {
		cpus = 1
	}
	machineArg := m
	if len(cfg.Shares) > 0 {
		// virtio-fs needs the guest's memory shared with virtiofsd.
		machineArg += ",memory-backend=mem"
	}
	name := cfg.ID
	if name == "" {
		name = "hull"
	}
	args := []string{
		"-name", strings.ReplaceAll(name, ",", "_"),
		"-M", machineArg, "-accel", accelArg,
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-chardev", "file,id=con0,path=" + p.console,
		"-serial", "chardev:con0",
		"-qmp", "unix:" + p.qmp + ",server=on,wait=off",
		"-kernel", cfg.Kernel,
		"-append", kernelCmdline(cfg),
	}
	if cfg.Initrd != "" {
		args = append(args, "-initrd", cfg.Initrd)
	}
	if len(cfg.Shares) > 0 {
		args = append(args, "-object", fmt.Sprintf("memory-backend-memfd,id=mem,size=%dM,share=on", mem))
	}
	dev := func(mmio, pci string) string {
		if m == "microvm" {
			return mmio
		}
		return pci
	}
	if m == "microvm" {
		// Modern virtio-mmio: vhost-user-fs refuses legacy devices.
		args = append(args, "-global", "virtio-mmio.force-legacy=false")
	}
	args = append(args,
		"-chardev", "socket,id=agent,path="+p.agent+",server=on,wait=off",
		"-device", dev("virtio-serial-device", "virtio-serial-pci")+",id=vser0",
		"-device", "virtserialport,bus=vser0.0,chardev=agent,name="+agentPortName,
		// Free page reporting: the guest tells QEMU which free memory it
		// has (2 MiB blocks, 2 s after they were freed) and QEMU gives it
		// back to the host (a hole punched in the memfd, or
		// MADV_DONTNEED). Without it guest RAM the workload once touched
		// stays resident in QEMU after it was freed (measured: a 64 MiB
		// spike freed in the guest left 121 MiB resident; with it 65 MiB
		// ~2 s later). It costs no measurable start time (QEMU CPU to an
		// idle container 1320 vs 1350 ms, 4 runs each). The balloon is
		// never inflated.
		"-device", dev("virtio-balloon-device", "virtio-balloon-pci")+",free-page-reporting=on",
	)
	for i, d := range cfg.Disks {
		id := "disk" + strconv.Itoa(i)
		drive := "file=" + d.Path + ",if=none,id=" + id + ",format=raw"
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		args = append(args, "-drive", drive,
			"-device", dev("virtio-blk-device", "virtio-blk-pci")+",drive="+id)
	}
	for i, n := range cfg.NetDevices {
		// The taps are QEMU's fds 3, 4, ... (exec.Cmd.ExtraFiles).
		id := "net" + strconv.Itoa(i)
		device := dev("virtio-net-device", "virtio-net-pci") + ",netdev=" + id + ",mac=" + n.MAC
		if m != "microvm" {
			device += ",romfile=" // no option ROM: the guest boots a kernel directly
		}
		args = append(args,
			"-netdev", "tap,id="+id+",fd="+strconv.Itoa(3+i),
			"-device", device,
		)
	}
	for i, s := range cfg.Shares {
		id := "fs" + strconv.Itoa(i)
		args = append(args,
			"-chardev", "socket,id="+id+",path="+p.fs[s.Tag],
			"-device", dev("vhost-user-fs-device", "vhost-user-fs-pci")+",chardev="+id+",tag="+s.Tag,
		)
	}
	return args
}
