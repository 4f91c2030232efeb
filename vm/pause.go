package vm

import "context"

// Pauser is implemented by drivers that can freeze a running VM's vCPUs
// (QEMU's stop/cont, Cloud Hypervisor's vm.pause/vm.resume, Firecracker's
// PATCH /vm). With one container per VM, pausing the VM pauses the
// container, its agent included: a paused guest answers nothing until
// Resume.
type Pauser interface {
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
}
