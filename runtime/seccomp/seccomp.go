package seccomp

import (
	"errors"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/runtime/seccomp/bpf"
)

// Errors returned by this package; test with errors.Is.
var (
	// ErrInvalid marks a profile that is wrong whatever the host.
	ErrInvalid = bpf.ErrInvalid
	// ErrUnsupported marks a valid profile that the linked libseccomp or
	// the running kernel cannot honour.
	ErrUnsupported = errors.New("seccomp feature not supported on this host")
	// ErrNotifyNeedsListener is returned by Load for a profile that uses
	// SCMP_ACT_NOTIFY: use LoadNotify and SendListener instead.
	ErrNotifyNeedsListener = errors.New("profile uses SCMP_ACT_NOTIFY: load it with LoadNotify and pass the fd to SendListener")
)

// maxArgs is the number of syscall arguments a condition can test.
const maxArgs = 6

// maxErrno bounds errnoRet: the kernel's MAX_ERRNO is 4095 and libseccomp
// refuses that value itself (negative returns up to -4095 are its errors).
const maxErrno = 4095

// The names the runtime spec defines, independent of libseccomp.
var (
	knownActions = map[specs.LinuxSeccompAction]bool{
		specs.ActKill: true, specs.ActKillProcess: true, specs.ActKillThread: true, specs.ActTrap: true,
		specs.ActErrno: true, specs.ActTrace: true, specs.ActAllow: true, specs.ActLog: true, specs.ActNotify: true,
	}
	knownOperators = map[specs.LinuxSeccompOperator]bool{
		specs.OpNotEqual: true, specs.OpLessThan: true, specs.OpLessEqual: true, specs.OpEqualTo: true,
		specs.OpGreaterEqual: true, specs.OpGreaterThan: true, specs.OpMaskedEqual: true,
	}
	knownArchs = map[specs.Arch]bool{
		specs.ArchX86: true, specs.ArchX86_64: true, specs.ArchX32: true, specs.ArchARM: true,
		specs.ArchAARCH64: true, specs.ArchMIPS: true, specs.ArchMIPS64: true, specs.ArchMIPS64N32: true,
		specs.ArchMIPSEL: true, specs.ArchMIPSEL64: true, specs.ArchMIPSEL64N32: true, specs.ArchPPC: true,
		specs.ArchPPC64: true, specs.ArchPPC64LE: true, specs.ArchS390: true, specs.ArchS390X: true,
		specs.ArchPARISC: true, specs.ArchPARISC64: true, specs.ArchRISCV64: true,
		specs.ArchLOONGARCH64: true, specs.ArchM68K: true, specs.ArchSH: true, specs.ArchSHEB: true,
	}
)

// Flag names of the runtime spec (TSYNC is not among the specs-go
// constants but is a documented value).
const (
	FlagTsync            specs.LinuxSeccompFlag = "SECCOMP_FILTER_FLAG_TSYNC"
	FlagLog                                     = specs.LinuxSeccompFlagLog
	FlagSpecAllow                               = specs.LinuxSeccompFlagSpecAllow
	FlagWaitKillableRecv                        = specs.LinuxSeccompFlagWaitKillableRecv
)

// knownFlags are the flags this package understands, in features order.
var knownFlags = []specs.LinuxSeccompFlag{FlagTsync, FlagLog, FlagSpecAllow, FlagWaitKillableRecv}

// notifyForbidden are syscalls the init itself makes after the filter is
// loaded; a NOTIFY rule on them would block the init on its own listener.
var notifyForbidden = map[string]bool{"write": true, "sendmsg": true}

// Validate checks s before any process exists: every action, errno,
// architecture, flag, operator and argument index, the listenerPath rules,
// and finally that libseccomp accepts the whole filter (built, not loaded).
// A nil profile is valid (no seccomp). The error names the offending field
// or syscall and wraps ErrInvalid or ErrUnsupported.
func Validate(s *specs.LinuxSeccomp) error {
	if s == nil {
		return nil
	}
	if err := check(s); err != nil {
		return err
	}
	return buildCheck(s)
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("linux.seccomp: %s: %w", fmt.Sprintf(format, a...), ErrInvalid)
}

func unsupported(format string, a ...any) error {
	return fmt.Errorf("linux.seccomp: %s: %w", fmt.Sprintf(format, a...), ErrUnsupported)
}

// check does the static checks that need no libseccomp context.
func check(s *specs.LinuxSeccomp) error {
	if s.DefaultAction == "" {
		return invalid("defaultAction is empty")
	}
	if _, ok := knownActions[s.DefaultAction]; !ok {
		return invalid("defaultAction %q is not a seccomp action", s.DefaultAction)
	}
	if s.DefaultAction == specs.ActNotify {
		return invalid("defaultAction SCMP_ACT_NOTIFY would stop the runtime itself; use it on chosen syscalls only")
	}
	if s.DefaultErrnoRet != nil && !takesErrno(s.DefaultAction) {
		return invalid("defaultErrnoRet is set but defaultAction %s takes no errno", s.DefaultAction)
	}
	if s.DefaultErrnoRet != nil && *s.DefaultErrnoRet >= maxErrno {
		return invalid("defaultErrnoRet %d is out of range (0-%d)", *s.DefaultErrnoRet, maxErrno-1)
	}
	for i, a := range s.Architectures {
		if _, ok := knownArchs[a]; !ok {
			return invalid("architectures[%d]: unknown architecture %q", i, a)
		}
	}
	for i, fl := range s.Flags {
		if !knownFlag(fl) {
			return invalid("flags[%d]: unknown flag %q", i, fl)
		}
	}
	notify := false
	for i, sc := range s.Syscalls {
		where := fmt.Sprintf("syscalls[%d] (%s)", i, strings.Join(sc.Names, ","))
		if len(sc.Names) == 0 {
			return invalid("syscalls[%d]: names is empty", i)
		}
		for j, n := range sc.Names {
			if n == "" {
				return invalid("syscalls[%d].names[%d] is empty", i, j)
			}
		}
		if sc.Action == "" {
			return invalid("%s: action is empty", where)
		}
		if _, ok := knownActions[sc.Action]; !ok {
			return invalid("%s: action %q is not a seccomp action", where, sc.Action)
		}
		if sc.ErrnoRet != nil && !takesErrno(sc.Action) {
			return invalid("%s: errnoRet is set but action %s takes no errno", where, sc.Action)
		}
		if sc.ErrnoRet != nil && *sc.ErrnoRet >= maxErrno {
			return invalid("%s: errnoRet %d is out of range (0-%d)", where, *sc.ErrnoRet, maxErrno-1)
		}
		if sc.Action == specs.ActNotify {
			notify = true
			for _, n := range sc.Names {
				if notifyForbidden[n] {
					return invalid("%s: SCMP_ACT_NOTIFY cannot be used for %s, which the runtime needs after loading the filter", where, n)
				}
			}
		}
		for j, a := range sc.Args {
			if a.Index >= maxArgs {
				return invalid("%s: args[%d].index %d is out of range (0-%d)", where, j, a.Index, maxArgs-1)
			}
			if a.Op == "" {
				return invalid("%s: args[%d].op is empty", where, j)
			}
			if _, ok := knownOperators[a.Op]; !ok {
				return invalid("%s: args[%d].op %q is not a comparison operator", where, j, a.Op)
			}
		}
	}
	if notify && s.ListenerPath == "" {
		return invalid("SCMP_ACT_NOTIFY is used but listenerPath is not set")
	}
	// listenerPath without any SCMP_ACT_NOTIFY rule is ignored, as the
	// runtime spec says; listenerMetadata without listenerPath is an error.
	if s.ListenerMetadata != "" && s.ListenerPath == "" {
		return invalid("listenerMetadata is set but listenerPath is not")
	}
	return nil
}

func knownFlag(fl specs.LinuxSeccompFlag) bool {
	for _, k := range knownFlags {
		if k == fl {
			return true
		}
	}
	return false
}

func takesErrno(a specs.LinuxSeccompAction) bool {
	return a == specs.ActErrno || a == specs.ActTrace
}

// UsesNotify reports whether any rule of s has the SCMP_ACT_NOTIFY action.
func UsesNotify(s *specs.LinuxSeccomp) bool {
	if s == nil {
		return false
	}
	for _, sc := range s.Syscalls {
		if sc.Action == specs.ActNotify {
			return true
		}
	}
	return false
}
