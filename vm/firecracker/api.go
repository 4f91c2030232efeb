package firecracker

// Bodies of Firecracker's API requests (the fields Hull sets).

// MachineConfig is PUT /machine-config.
type MachineConfig struct {
	VCPUCount  int `json:"vcpu_count"`
	MemSizeMiB int `json:"mem_size_mib"`
}

// BootSource is PUT /boot-source.
type BootSource struct {
	KernelImagePath string `json:"kernel_image_path"`
	InitrdPath      string `json:"initrd_path,omitempty"`
	BootArgs        string `json:"boot_args,omitempty"`
}

// Drive is PUT /drives/{drive_id}. No drive is the root device: the
// guest runs from its initramfs.
type Drive struct {
	ID           string `json:"drive_id"`
	Path         string `json:"path_on_host"`
	IsRootDevice bool   `json:"is_root_device"`
	ReadOnly     bool   `json:"is_read_only"`
}

// NetworkInterface is PUT /network-interfaces/{iface_id}.
type NetworkInterface struct {
	ID          string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
	GuestMAC    string `json:"guest_mac,omitempty"`
}

// Vsock is PUT /vsock.
type Vsock struct {
	GuestCID uint32 `json:"guest_cid"`
	UDSPath  string `json:"uds_path"`
}

// Action is PUT /actions: InstanceStart, SendCtrlAltDel, FlushMetrics.
type Action struct {
	Type string `json:"action_type"`
}

// VMState is PATCH /vm.
type VMState struct {
	State string `json:"state"`
}
