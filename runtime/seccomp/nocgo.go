//go:build !cgo

package seccomp

import (
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// Without cgo there is no libseccomp: profiles are checked statically and
// nothing can be loaded. This keeps packages that only build specs (oci,
// the CLI) free of cgo.

func buildCheck(*specs.LinuxSeccomp) error { return nil }

// Load fails: this binary was built without cgo and libseccomp.
func Load(s *specs.LinuxSeccomp) error {
	if s == nil {
		return nil
	}
	return unsupported("built without cgo: libseccomp is not linked")
}

// LoadNotify fails: this binary was built without cgo and libseccomp.
func LoadNotify(s *specs.LinuxSeccomp) (*os.File, error) { return nil, Load(s) }

// UnknownSyscalls cannot tell without libseccomp and returns nil.
func UnknownSyscalls(*specs.LinuxSeccomp) []string { return nil }

// Features reports seccomp as disabled in a binary built without cgo.
func Features() *features.Seccomp {
	f := false
	return &features.Seccomp{Enabled: &f}
}

// Compile fails: this binary was built without cgo and libseccomp.
// Program.Load still works for programs compiled elsewhere.
func Compile(s *specs.LinuxSeccomp) (*Program, error) {
	if s == nil {
		return nil, nil
	}
	return nil, unsupported("built without cgo: libseccomp is not linked")
}

func libVersionString() string { return "no libseccomp" }

// Linked reports whether this binary holds libseccomp (built with cgo):
// without it, Compile, Features and UnknownSyscalls cannot do their work
// here (see Cache.Compiler).
const Linked = false
