package oci

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/oci/runspec"
)

// Rootless turns s into a spec an unprivileged user can run, as
// `runc spec --rootless` does (see runspec.Rootless).
func Rootless(s *specs.Spec) { runspec.Rootless(s) }

// WithRootless is Rootless as a SpecOpt.
func WithRootless(s *specs.Spec) error {
	Rootless(s)
	return nil
}
