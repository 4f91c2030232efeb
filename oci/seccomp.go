package oci

import (
	"fmt"
	"os"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/runtime/seccomp"
)

// WithSeccompProfileJSON sets the seccomp profile from JSON in Docker's
// profile format (defaultAction, archMap, syscalls with includes/excludes
// by capability, architecture and kernel version) or in the runtime-spec's
// own format, which is a subset of it. The conditional rules are resolved
// for the spec's current capabilities and this host, so apply capability
// options first. The conversion is github.com/moby/profiles/seccomp's, the
// one Docker uses; the result is checked with seccomp.Validate.
func WithSeccompProfileJSON(data []byte) SpecOpt {
	return func(s *specs.Spec) error {
		ensureProcess(s)
		p, err := mobyseccomp.LoadProfile(string(data), s)
		if err != nil {
			return optErr("seccomp profile: %v", err)
		}
		if err := seccomp.Validate(p); err != nil {
			return err
		}
		ensureLinux(s).Seccomp = p
		return nil
	}
}

// WithSeccompProfileFile is WithSeccompProfileJSON with the profile read
// from path.
func WithSeccompProfileFile(path string) SpecOpt {
	return func(s *specs.Spec) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return optErr("seccomp profile: %v", err)
		}
		if err := WithSeccompProfileJSON(data)(s); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}
}

// WithDockerDefaultSeccomp sets Docker's current default seccomp profile
// (from github.com/moby/profiles/seccomp) resolved for the spec's
// capabilities, instead of Hull's default (seccomp.DefaultFor, containerd's
// rules). Docker's is stricter on socket address families and looser on a
// few syscalls (process_vm_readv/writev and name_to_handle_at without
// CAP_SYS_PTRACE or CAP_SYS_ADMIN).
func WithDockerDefaultSeccomp(s *specs.Spec) error {
	ensureProcess(s)
	p, err := mobyseccomp.GetDefaultProfile(s)
	if err != nil {
		return optErr("docker default seccomp profile: %v", err)
	}
	if err := seccomp.Validate(p); err != nil {
		return err
	}
	ensureLinux(s).Seccomp = p
	return nil
}
