// Package oci builds OCI runtime-spec documents: the example spec that
// `hull-runtime spec` writes (the same shape as `runc spec`) and its
// rootless form (Rootless, as `runc spec --rootless`), and the specs the
// daemon gives containers: DefaultSpec (containerd's defaults, with the
// default seccomp profile for the default capabilities) changed by
// SpecOpts in containerd's style (WithProcessArgs, WithUser, WithCapAdd,
// WithPrivileged, WithMemoryLimit, WithImageConfig, ...).
// ValidateSecurity checks a spec's seccomp profile and labels as a runtime
// does at create time.
package oci

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/oci/runspec"
)

// ExampleCaps is the capability set of the example spec: the minimum a
// shell in a container needs, as runc's example has.
var ExampleCaps = runspec.ExampleCaps

// DefaultMaskedPaths are hidden from the container (bind-mounted over with
// /dev/null or an empty read-only tmpfs).
var DefaultMaskedPaths = runspec.DefaultMaskedPaths

// DefaultReadonlyPaths are remounted read-only inside the container.
var DefaultReadonlyPaths = runspec.DefaultReadonlyPaths

// DefaultMounts are the filesystems every container gets.
func DefaultMounts() []specs.Mount { return runspec.DefaultMounts() }

// Example returns the spec `hull-runtime spec` writes (runspec.Example).
func Example() *specs.Spec { return runspec.Example() }
