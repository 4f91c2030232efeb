package vm

// BlockShares is implemented by drivers that cannot share directories
// (Capabilities.FileSystemSharing false: Firecracker) and instead attach
// each Config.Shares entry as a block device holding a filesystem image of
// it. Writes in the guest stay in the image; they do not reach the host
// directory.
type BlockShares interface {
	// ShareDevice returns the guest block device (/dev/vdX) and its
	// filesystem type for the share tagged tag.
	ShareDevice(tag string) (device, fstype string, ok bool)
}

// ShareStorage says how the guest mounts the share tagged tag of h's
// Config: the device and filesystem of its image where the driver turned
// it into a block device, else the virtio-fs tag and "virtiofs".
func ShareStorage(h Hypervisor, tag string) (source, fstype string) {
	if b, ok := h.(BlockShares); ok {
		if dev, fs, ok := b.ShareDevice(tag); ok {
			return dev, fs
		}
	}
	return tag, "virtiofs"
}
