package seccomp

import (
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/runtime/seccomp/bpf"
)

// Program is a compiled seccomp filter; see package bpf, which loads it
// without cgo (the container init links only that package).
type Program = bpf.Program

// sockFilterSize and bpfMaxInsns: see bpf.SockFilterSize, bpf.MaxInsns.
const (
	sockFilterSize = bpf.SockFilterSize
	bpfMaxInsns    = bpf.MaxInsns
)

// flagBits maps the spec's flags to seccomp(2)'s.
var flagBits = map[specs.LinuxSeccompFlag]uint{
	FlagTsync:            unix.SECCOMP_FILTER_FLAG_TSYNC,
	FlagLog:              unix.SECCOMP_FILTER_FLAG_LOG,
	FlagSpecAllow:        unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
	FlagWaitKillableRecv: unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
}

// FlagSupported returns nil when the running kernel accepts fl, else an
// error wrapping ErrUnsupported (ErrInvalid for an unknown flag). It asks
// the kernel with a filter-less seccomp(2) call, which checks the flags
// and then fails with EFAULT without installing anything.
func FlagSupported(fl specs.LinuxSeccompFlag) error {
	bit, ok := flagBits[fl]
	if !ok {
		return invalid("unknown flag %q", fl)
	}
	if fl == FlagWaitKillableRecv {
		bit |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
	}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(bit), 0)
	switch {
	case errors.Is(errno, unix.EFAULT):
		return nil
	case errno == 0:
		return unsupported("%s: the kernel installed a NULL filter?", fl)
	default:
		return unsupported("%s: the kernel refuses it: %v", fl, errno)
	}
}

// programFlags turns the profile's flags into seccomp(2) bits, checking
// that the kernel knows each.
func programFlags(s *specs.LinuxSeccomp) (uint, error) {
	var bits uint
	for i, fl := range s.Flags {
		if err := FlagSupported(fl); err != nil {
			return 0, fmt.Errorf("flags[%d]: %w", i, err)
		}
		bits |= flagBits[fl]
	}
	return bits, nil
}
