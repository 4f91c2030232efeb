package seccomp

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// Errors returned by this package; test with errors.Is.
var (
	// ErrInvalid marks a profile that is wrong whatever the host.
	ErrInvalid = errors.New("invalid seccomp profile")
	// ErrUnsupported marks a valid profile that the linked libseccomp or
	// the running kernel cannot honour.
	ErrUnsupported = errors.New("seccomp feature not supported on this host")
	// ErrNotifyNeedsListener is returned by Load for a profile that uses
	// SCMP_ACT_NOTIFY: use LoadNotify and SendListener instead.
	ErrNotifyNeedsListener = errors.New("profile uses SCMP_ACT_NOTIFY: load it with LoadNotify and pass the fd to SendListener")
)

// maxArgs is the number of syscall arguments a condition can test.
const maxArgs = 6

// actions maps runtime-spec action names to libseccomp actions, without
// their errno.
var actions = map[specs.LinuxSeccompAction]libseccomp.ScmpAction{
	specs.ActKill:        libseccomp.ActKillThread,
	specs.ActKillThread:  libseccomp.ActKillThread,
	specs.ActKillProcess: libseccomp.ActKillProcess,
	specs.ActTrap:        libseccomp.ActTrap,
	specs.ActErrno:       libseccomp.ActErrno,
	specs.ActTrace:       libseccomp.ActTrace,
	specs.ActAllow:       libseccomp.ActAllow,
	specs.ActLog:         libseccomp.ActLog,
	specs.ActNotify:      libseccomp.ActNotify,
}

// operators maps runtime-spec comparison operators to libseccomp's.
var operators = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual:     libseccomp.CompareNotEqual,
	specs.OpLessThan:     libseccomp.CompareLess,
	specs.OpLessEqual:    libseccomp.CompareLessOrEqual,
	specs.OpEqualTo:      libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual,
	specs.OpGreaterThan:  libseccomp.CompareGreater,
	specs.OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

// archs maps runtime-spec architecture names to libseccomp's.
var archs = map[specs.Arch]libseccomp.ScmpArch{
	specs.ArchX86:         libseccomp.ArchX86,
	specs.ArchX86_64:      libseccomp.ArchAMD64,
	specs.ArchX32:         libseccomp.ArchX32,
	specs.ArchARM:         libseccomp.ArchARM,
	specs.ArchAARCH64:     libseccomp.ArchARM64,
	specs.ArchMIPS:        libseccomp.ArchMIPS,
	specs.ArchMIPS64:      libseccomp.ArchMIPS64,
	specs.ArchMIPS64N32:   libseccomp.ArchMIPS64N32,
	specs.ArchMIPSEL:      libseccomp.ArchMIPSEL,
	specs.ArchMIPSEL64:    libseccomp.ArchMIPSEL64,
	specs.ArchMIPSEL64N32: libseccomp.ArchMIPSEL64N32,
	specs.ArchPPC:         libseccomp.ArchPPC,
	specs.ArchPPC64:       libseccomp.ArchPPC64,
	specs.ArchPPC64LE:     libseccomp.ArchPPC64LE,
	specs.ArchS390:        libseccomp.ArchS390,
	specs.ArchS390X:       libseccomp.ArchS390X,
	specs.ArchPARISC:      libseccomp.ArchPARISC,
	specs.ArchPARISC64:    libseccomp.ArchPARISC64,
	specs.ArchRISCV64:     libseccomp.ArchRISCV64,
	specs.ArchLOONGARCH64: libseccomp.ArchLOONGARCH64,
	specs.ArchM68K:        libseccomp.ArchM68K,
	specs.ArchSH:          libseccomp.ArchSH,
	specs.ArchSHEB:        libseccomp.ArchSHEB,
}

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
	f, _, err := build(s)
	if err != nil {
		return err
	}
	f.Release()
	return nil
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
	if _, ok := actions[s.DefaultAction]; !ok {
		return invalid("defaultAction %q is not a seccomp action", s.DefaultAction)
	}
	if s.DefaultAction == specs.ActNotify {
		return invalid("defaultAction SCMP_ACT_NOTIFY would stop the runtime itself; use it on chosen syscalls only")
	}
	if s.DefaultErrnoRet != nil && !takesErrno(s.DefaultAction) {
		return invalid("defaultErrnoRet is set but defaultAction %s takes no errno", s.DefaultAction)
	}
	if s.DefaultErrnoRet != nil && *s.DefaultErrnoRet > 0xffff {
		return invalid("defaultErrnoRet %d is out of range", *s.DefaultErrnoRet)
	}
	for i, a := range s.Architectures {
		if _, ok := archs[a]; !ok {
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
		if _, ok := actions[sc.Action]; !ok {
			return invalid("%s: action %q is not a seccomp action", where, sc.Action)
		}
		if sc.ErrnoRet != nil && !takesErrno(sc.Action) {
			return invalid("%s: errnoRet is set but action %s takes no errno", where, sc.Action)
		}
		if sc.ErrnoRet != nil && *sc.ErrnoRet > 0xffff {
			return invalid("%s: errnoRet %d is out of range", where, *sc.ErrnoRet)
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
			if _, ok := operators[a.Op]; !ok {
				return invalid("%s: args[%d].op %q is not a comparison operator", where, j, a.Op)
			}
		}
	}
	if notify && s.ListenerPath == "" {
		return invalid("SCMP_ACT_NOTIFY is used but listenerPath is not set")
	}
	if !notify && s.ListenerPath != "" {
		return invalid("listenerPath %q is set but no syscall uses SCMP_ACT_NOTIFY", s.ListenerPath)
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

// action converts a spec action and its optional errno to libseccomp's.
func action(a specs.LinuxSeccompAction, errno *uint) libseccomp.ScmpAction {
	act := actions[a]
	if takesErrno(a) {
		code := int16(unix.EPERM)
		if errno != nil {
			code = int16(*errno)
		}
		act = act.SetReturnCode(code)
	}
	return act
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

// UnknownSyscalls lists the syscall names of s that libseccomp does not
// know; Load ignores them (see the package doc).
func UnknownSyscalls(s *specs.LinuxSeccomp) []string {
	if s == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, sc := range s.Syscalls {
		for _, n := range sc.Names {
			if seen[n] {
				continue
			}
			seen[n] = true
			if _, err := libseccomp.GetSyscallFromName(n); err != nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// build makes the libseccomp filter for s (checked by check) without
// loading it. The caller releases it.
func build(s *specs.LinuxSeccomp) (*libseccomp.ScmpFilter, bool, error) {
	def := action(s.DefaultAction, s.DefaultErrnoRet)
	f, err := libseccomp.NewFilter(def)
	if err != nil {
		return nil, false, unsupported("create filter with defaultAction %s: %v", s.DefaultAction, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Release()
		}
	}()
	// The filter must never set no_new_privs on its own: the runtime sets
	// it only when process.noNewPrivileges asks for it.
	if err := f.SetNoNewPrivsBit(false); err != nil {
		return nil, false, unsupported("clear the no_new_privs attribute: %v", err)
	}
	for i, a := range s.Architectures {
		if err := f.AddArch(archs[a]); err != nil {
			return nil, false, unsupported("architectures[%d]: %s is not supported by libseccomp %s: %v", i, a, libVersion(), err)
		}
	}
	for i, fl := range s.Flags {
		var err error
		switch fl {
		case FlagTsync:
			// Always on (NewFilter sets it).
		case FlagLog:
			err = f.SetLogBit(true)
		case FlagSpecAllow:
			err = f.SetSSB(true)
		case FlagWaitKillableRecv:
			err = f.SetWaitKill(true)
		}
		if err != nil {
			return nil, false, unsupported("flags[%d]: %s: %v", i, fl, err)
		}
	}
	notify := false
	for i, sc := range s.Syscalls {
		act := action(sc.Action, sc.ErrnoRet)
		if act == def {
			continue
		}
		if sc.Action == specs.ActNotify {
			notify = true
		}
		conds, separate, err := conditions(sc.Args)
		if err != nil {
			return nil, false, invalid("syscalls[%d]: %v", i, err)
		}
		for _, name := range sc.Names {
			nr, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				continue // unknown name: ignored, see the package doc
			}
			if err := addRule(f, nr, act, conds, separate); err != nil {
				return nil, false, fmt.Errorf("linux.seccomp: syscalls[%d]: add rule %s %s: %v: %w", i, name, sc.Action, err, ErrInvalid)
			}
		}
	}
	ok = true
	return f, notify, nil
}

// conditions converts the args of a rule. separate is true when one
// argument index repeats, so that each condition must be its own rule.
func conditions(args []specs.LinuxSeccompArg) ([]libseccomp.ScmpCondition, bool, error) {
	var out []libseccomp.ScmpCondition
	var count [maxArgs]int
	separate := false
	for j, a := range args {
		op := operators[a.Op]
		var c libseccomp.ScmpCondition
		var err error
		if op == libseccomp.CompareMaskedEqual {
			// (arg & value) == valueTwo: libseccomp takes the mask first.
			c, err = libseccomp.MakeCondition(a.Index, op, a.Value, a.ValueTwo)
		} else {
			c, err = libseccomp.MakeCondition(a.Index, op, a.Value)
		}
		if err != nil {
			return nil, false, fmt.Errorf("args[%d]: %v", j, err)
		}
		count[a.Index]++
		if count[a.Index] > 1 {
			separate = true
		}
		out = append(out, c)
	}
	return out, separate, nil
}

func addRule(f *libseccomp.ScmpFilter, nr libseccomp.ScmpSyscall, act libseccomp.ScmpAction, conds []libseccomp.ScmpCondition, separate bool) error {
	switch {
	case len(conds) == 0:
		return f.AddRule(nr, act)
	case separate:
		for _, c := range conds {
			if err := f.AddRuleConditional(nr, act, []libseccomp.ScmpCondition{c}); err != nil {
				return err
			}
		}
		return nil
	default:
		return f.AddRuleConditional(nr, act, conds)
	}
}

// Load builds the filter for s and installs it on every thread of the
// calling process (TSYNC). Call it in the container init just before
// execve, with the OS thread locked; see the package doc for where it goes
// relative to no_new_privs, setuid and the capability drop. A nil profile
// loads nothing. A profile with SCMP_ACT_NOTIFY rules is refused with
// ErrNotifyNeedsListener.
func Load(s *specs.LinuxSeccomp) error {
	if UsesNotify(s) {
		return fmt.Errorf("linux.seccomp: %w", ErrNotifyNeedsListener)
	}
	fd, err := LoadNotify(s)
	if fd != nil {
		fd.Close()
	}
	return err
}

// LoadNotify is Load for profiles that may use SCMP_ACT_NOTIFY: it returns
// the listener fd of the loaded filter (nil when no rule notifies). The
// caller passes the fd to the runtime process, which calls SendListener,
// and closes its own copy before execve.
func LoadNotify(s *specs.LinuxSeccomp) (*os.File, error) {
	if s == nil {
		return nil, nil
	}
	if err := check(s); err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, notify, err := build(s)
	if err != nil {
		return nil, err
	}
	defer f.Release()
	if err := f.Load(); err != nil {
		return nil, fmt.Errorf("linux.seccomp: load filter: %w", err)
	}
	if !notify {
		return nil, nil
	}
	fd, err := f.GetNotifFd()
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: get the listener fd: %w", err)
	}
	return os.NewFile(uintptr(fd), "seccomp-listener"), nil
}

func libVersion() string {
	major, minor, micro := libseccomp.GetLibraryVersion()
	return fmt.Sprintf("%d.%d.%d", major, minor, micro)
}
