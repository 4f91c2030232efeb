package oci

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/runtime/caps"
	"github.com/hullproject/hull/runtime/label"
	"github.com/hullproject/hull/runtime/seccomp"
)

// ValidateSecurity checks the security parts of s: the capability names
// of the process, the seccomp profile (statically and by building it with
// libseccomp when linked), and the AppArmor/SELinux labels against what
// this host has. Errors name the field. The runtime core checks the rest
// of the spec.
func ValidateSecurity(s *specs.Spec) error {
	if s == nil {
		return fmt.Errorf("spec is nil: %w", ErrInvalidOpt)
	}
	if s.Process != nil {
		if err := caps.Validate(s.Process.Capabilities); err != nil {
			return err
		}
	}
	if s.Linux != nil {
		if err := seccomp.Validate(s.Linux.Seccomp); err != nil {
			return err
		}
	}
	return label.ValidateSpec(s)
}
