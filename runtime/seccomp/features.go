//go:build cgo

package seccomp

import (
	"sort"

	"github.com/opencontainers/runtime-spec/specs-go/features"
	libseccomp "github.com/seccomp/libseccomp-golang"
)

// Features is the seccomp part of the runtime-spec features document: the
// actions, operators and architectures understood with the linked
// libseccomp, the flags this package knows, and the flags the linked
// libseccomp and the running kernel can apply.
func Features() *features.Seccomp {
	enabled := true
	api, err := libseccomp.GetAPI()
	if err != nil {
		api = 0
	}
	f := &features.Seccomp{Enabled: &enabled}
	for a := range actions {
		switch a {
		case "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_LOG":
			if api < 3 {
				continue
			}
		case "SCMP_ACT_NOTIFY":
			if api < 6 {
				continue
			}
		}
		f.Actions = append(f.Actions, string(a))
	}
	for o := range operators {
		f.Operators = append(f.Operators, string(o))
	}
	for a, sa := range archs {
		if archSupported(sa) {
			f.Archs = append(f.Archs, string(a))
		}
	}
	for _, fl := range knownFlags {
		f.KnownFlags = append(f.KnownFlags, string(fl))
		if FlagSupported(fl) == nil {
			f.SupportedFlags = append(f.SupportedFlags, string(fl))
		}
	}
	sort.Strings(f.Actions)
	sort.Strings(f.Operators)
	sort.Strings(f.Archs)
	return f
}

// archSupported reports whether the linked libseccomp knows arch (has its
// syscall table). Knowing it does not mean it can join a filter of this
// host: libseccomp cannot mix byte orders in one filter.
func archSupported(a libseccomp.ScmpArch) bool {
	_, err := libseccomp.GetSyscallFromNameByArch("close", a)
	return err == nil
}
