package oci

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/runtime/caps"
	"github.com/hullproject/hull/runtime/label"
	"github.com/hullproject/hull/runtime/seccomp"
)

// ValidateSecurity checks the security parts of s the way a runtime must
// at create time: the seccomp profile (statically and by building it with
// libseccomp when linked) and the AppArmor/SELinux labels against what
// this host has. Errors name the field. Unknown capability names are not
// errors (the runtime spec asks for a warning, and runc ignores them):
// CapabilityWarnings lists them. The runtime core checks the rest.
func ValidateSecurity(s *specs.Spec) error {
	if s == nil {
		return fmt.Errorf("spec is nil: %w", ErrInvalidOpt)
	}
	if s.Linux != nil {
		if err := seccomp.Validate(s.Linux.Seccomp); err != nil {
			return err
		}
	}
	return label.ValidateSpec(s)
}

// CapabilityWarnings lists what of s's process capabilities this host
// cannot grant (caps.Warnings), for the runtime to log.
func CapabilityWarnings(s *specs.Spec) []string {
	if s == nil || s.Process == nil {
		return nil
	}
	return caps.Warnings(s.Process.Capabilities)
}
