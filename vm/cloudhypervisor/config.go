package cloudhypervisor

import (
	"strconv"

	"github.com/hullproject/hull/vm"
)

// VMConfig is the body of vm.create (the fields Hull sets).
type VMConfig struct {
	CPUs    CPUsConfig    `json:"cpus"`
	Memory  MemoryConfig  `json:"memory"`
	Payload PayloadConfig `json:"payload"`
	Disks   []DiskConfig  `json:"disks,omitempty"`
	FS      []FSConfig    `json:"fs,omitempty"`
	Serial  ConsoleConfig `json:"serial"`
	Console ConsoleConfig `json:"console"`
	Vsock   *VsockConfig  `json:"vsock,omitempty"`
	RNG     *RNGConfig    `json:"rng,omitempty"`
}

type CPUsConfig struct {
	BootVCPUs int `json:"boot_vcpus"`
	MaxVCPUs  int `json:"max_vcpus"`
}

type MemoryConfig struct {
	Size   int64 `json:"size"` // bytes
	Shared bool  `json:"shared,omitempty"`
}

type PayloadConfig struct {
	Kernel    string `json:"kernel"`
	Cmdline   string `json:"cmdline,omitempty"`
	Initramfs string `json:"initramfs,omitempty"`
}

type DiskConfig struct {
	Path     string `json:"path"`
	Readonly bool   `json:"readonly,omitempty"`
	ID       string `json:"id,omitempty"`
}

type FSConfig struct {
	Tag       string `json:"tag"`
	Socket    string `json:"socket"`
	NumQueues int    `json:"num_queues"`
	QueueSize int    `json:"queue_size"`
	ID        string `json:"id,omitempty"`
}

// ConsoleConfig is a serial or virtio-console setting: Mode is "Off",
// "File" (to File), "Tty", "Pty", "Null".
type ConsoleConfig struct {
	Mode string `json:"mode"`
	File string `json:"file,omitempty"`
}

type VsockConfig struct {
	CID    uint32 `json:"cid"`
	Socket string `json:"socket"`
	ID     string `json:"id,omitempty"`
}

type RNGConfig struct {
	Src string `json:"src"`
}

// NetConfig is the body of vm.add-net; the tap comes with the request.
type NetConfig struct {
	MAC       string `json:"mac,omitempty"`
	MTU       int    `json:"mtu,omitempty"`
	NumQueues int    `json:"num_queues"`
	QueueSize int    `json:"queue_size"`
	ID        string `json:"id,omitempty"`
}

func vmConfig(cfg *vm.Config, p paths) *VMConfig {
	mem := cfg.MemoryMiB
	if mem <= 0 {
		mem = 256
	}
	cpus := cfg.VCPUs
	if cpus <= 0 {
		cpus = 1
	}
	c := &VMConfig{
		CPUs:    CPUsConfig{BootVCPUs: cpus, MaxVCPUs: cpus},
		Memory:  MemoryConfig{Size: int64(mem) << 20, Shared: len(cfg.Shares) > 0},
		Payload: PayloadConfig{Kernel: cfg.Kernel, Cmdline: kernelCmdline(cfg), Initramfs: cfg.Initrd},
		Serial:  ConsoleConfig{Mode: "File", File: p.console},
		Console: ConsoleConfig{Mode: "Off"},
		Vsock:   &VsockConfig{CID: guestCID, Socket: p.agent},
		RNG:     &RNGConfig{Src: "/dev/urandom"},
	}
	for i, d := range cfg.Disks {
		c.Disks = append(c.Disks, DiskConfig{Path: d.Path, Readonly: d.ReadOnly, ID: "disk" + strconv.Itoa(i)})
	}
	for i, s := range cfg.Shares {
		c.FS = append(c.FS, FSConfig{Tag: s.Tag, Socket: p.fs[i], NumQueues: 1, QueueSize: 1024, ID: "fs" + strconv.Itoa(i)})
	}
	return c
}

func netConfig(i int, n vm.NetDevice) NetConfig {
	// One queue pair: the tap is opened single-queue.
	return NetConfig{MAC: n.MAC, MTU: n.MTU, NumQueues: 2, QueueSize: 256, ID: "net" + strconv.Itoa(i)}
}
