// Package drivers picks a vm.Hypervisor driver by name, as the vm
// runtime's `hypervisor` option says: "qemu" (the default),
// "cloud-hypervisor" or "firecracker".
package drivers

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/cloudhypervisor"
	"github.com/hullproject/hull/vm/firecracker"
	"github.com/hullproject/hull/vm/qemu"
)

// Driver names.
const (
	QEMU            = "qemu"
	CloudHypervisor = "cloud-hypervisor"
	Firecracker     = "firecracker"
	// Default is the driver of an empty name.
	Default = QEMU
)

// Names lists the drivers.
func Names() []string { return []string{QEMU, CloudHypervisor, Firecracker} }

// Options configure the driver New returns; each driver takes what
// applies to it.
type Options struct {
	// Binary overrides the hypervisor binary.
	Binary string
	// Accel and TBSizeMiB are QEMU's (vm/accel decides when Accel is "").
	Accel     string
	TBSizeMiB int
	Logger    *slog.Logger
}

// Validate checks a driver name ("" is the default).
func Validate(name string) error {
	if name == "" || slices.Contains(Names(), name) {
		return nil
	}
	return fmt.Errorf("%w: hypervisor %q (want one of %s)", vm.ErrInvalidConfig, name, strings.Join(Names(), ", "))
}

// New returns a driver for one VM.
func New(name string, o Options) (vm.Hypervisor, error) {
	if err := Validate(name); err != nil {
		return nil, err
	}
	switch name {
	case CloudHypervisor:
		return cloudhypervisor.New(cloudhypervisor.Options{Binary: o.Binary, Logger: o.Logger}), nil
	case Firecracker:
		return firecracker.New(firecracker.Options{Binary: o.Binary, Logger: o.Logger}), nil
	default:
		return qemu.New(qemu.Options{Binary: o.Binary, Accel: o.Accel, TBSizeMiB: o.TBSizeMiB, Logger: o.Logger}), nil
	}
}
