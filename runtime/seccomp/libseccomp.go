//go:build cgo

package seccomp

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

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

// buildCheck builds the filter for s without loading it.
func buildCheck(s *specs.LinuxSeccomp) error {
	f, _, err := build(s)
	if err != nil {
		return err
	}
	f.Release()
	return nil
}

// action converts a spec action and its optional errno to libseccomp's.
func action(a specs.LinuxSeccompAction, errno *uint) libseccomp.ScmpAction {
	act := actions[a]
	if takesErrno(a) {
		code := int16(unix.EPERM)
		if errno != nil {
			code = int16(*errno) // check keeps it below maxErrno
		}
		act = act.SetReturnCode(code)
	}
	return act
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
			if errors.Is(err, syscall.EDOM) {
				// runc fails the same way ("numerical argument out of domain").
				return nil, false, unsupported("architectures[%d]: %s cannot share a filter with this host's architecture (another byte order)", i, a)
			}
			return nil, false, unsupported("architectures[%d]: %s is not supported by libseccomp %s: %v", i, a, libVersion(), err)
		}
	}
	// Flags are seccomp(2) flags of the load (see Program), not filter
	// content; only check them here.
	if _, err := programFlags(s); err != nil {
		return nil, false, fmt.Errorf("linux.seccomp: %w", err)
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
	p, err := Compile(s)
	if err != nil {
		return nil, err
	}
	return p.Load()
}

// Compile validates s and compiles it with libseccomp into a Program that
// Program.Load installs. A nil profile gives a nil Program.
func Compile(s *specs.LinuxSeccomp) (*Program, error) {
	if s == nil {
		return nil, nil
	}
	if err := check(s); err != nil {
		return nil, err
	}
	flags, err := programFlags(s)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: %w", err)
	}
	f, notify, err := build(s)
	if err != nil {
		return nil, err
	}
	defer f.Release()
	bpf, err := exportBPF(f)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: export the filter: %w", err)
	}
	native, err := libseccomp.GetNativeArch()
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: native architecture: %w", err)
	}
	list := []libseccomp.ScmpArch{native}
	for _, a := range s.Architectures {
		if sa := archs[a]; sa != native {
			list = append(list, sa)
		}
	}
	if stub := enosysStub(s, list); stub != nil {
		bpf = append(stub, bpf...)
	}
	return &Program{Filter: bpf, Flags: flags, Notify: notify}, nil
}

// exportBPF returns the filter's BPF instructions (libseccomp 2.5 can only
// write them to a file descriptor).
func exportBPF(f *libseccomp.ScmpFilter) ([]byte, error) {
	fd, err := unix.MemfdCreate("seccomp-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	file := os.NewFile(uintptr(fd), "seccomp-bpf")
	defer file.Close()
	if err := f.ExportBPF(file); err != nil {
		return nil, err
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(file)
}

func libVersion() string {
	major, minor, micro := libseccomp.GetLibraryVersion()
	return fmt.Sprintf("%d.%d.%d", major, minor, micro)
}

func libVersionString() string { return "libseccomp " + libVersion() }

// Linked reports whether this binary holds libseccomp (built with cgo):
// without it, Compile, Features and UnknownSyscalls cannot do their work
// here (see Cache.Compiler).
const Linked = true
