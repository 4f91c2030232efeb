// Package drivers picks a vm.Hypervisor driver by name, as the vm
// runtime's `hypervisor` option says: "qemu" (the default),
// "cloud-hypervisor" or "firecracker".
package drivers

import (
	"fmt"
	"log/slog"
	"os/exec"
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
	// Accel and TBSizeMiB are QEMU's (vm/accel decides when Accel is "");
	// GuestDir holds the guest assets of vm/accel's probe boot.
	Accel     string
	TBSizeMiB int
	GuestDir  string
	Logger    *slog.Logger
	// AfterBootFileRelease is qemu.Options.AfterRelease.
	AfterBootFileRelease func()
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
		return qemu.New(qemu.Options{Binary: o.Binary, Accel: o.Accel, TBSizeMiB: o.TBSizeMiB, GuestDir: o.GuestDir, Logger: o.Logger, AfterRelease: o.AfterBootFileRelease}), nil
	}
}

// Status says whether a driver can run on this host.
type Status struct {
	Name string
	// Path is the hypervisor binary found ("" when missing).
	Path string
	// Reason says what is missing ("" when the binary is there).
	Reason string
}

// Probe reports, for each driver, whether its binary is installed (it
// does not check KVM: see vm/accel).
func Probe() []Status {
	var out []Status
	for _, n := range Names() {
		var p string
		var err error
		switch n {
		case CloudHypervisor:
			p, err = cloudhypervisor.LookPath(cloudhypervisor.Options{})
		case Firecracker:
			p, err = firecracker.LookPath(firecracker.Options{})
		default:
			p, err = exec.LookPath(qemu.DefaultBinary)
			if err != nil {
				err = fmt.Errorf("%s: %w (install qemu-system-x86)", qemu.DefaultBinary, vm.ErrHypervisorMissing)
			}
		}
		s := Status{Name: n, Path: p}
		if err != nil {
			s.Reason = err.Error()
		}
		out = append(out, s)
	}
	return out
}

// Summary is Probe and the QEMU agent transport in words, one entry per
// key, for `hull info` details.
func Summary() map[string]string {
	m := map[string]string{}
	for _, s := range Probe() {
		if s.Path != "" {
			m["hypervisor."+s.Name] = s.Path
		} else {
			m["hypervisor."+s.Name] = "not available: " + s.Reason
		}
	}
	t, reason := vm.SelectTransport(vm.VhostVsockDevice)
	m["agent_transport"] = fmt.Sprintf("%s (%s)", t, reason)
	return m
}
