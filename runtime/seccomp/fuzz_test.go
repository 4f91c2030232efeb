//go:build cgo

package seccomp

import (
	"encoding/json"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// FuzzValidate feeds arbitrary profiles to Validate and Compile: they may
// refuse them, never panic, and a profile Validate accepts must compile.
func FuzzValidate(f *testing.F) {
	for _, s := range []*specs.LinuxSeccomp{Default(), DefaultFor([]string{"CAP_SYS_ADMIN"}),
		{DefaultAction: specs.ActAllow, ListenerPath: "/x", Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}},
		{DefaultAction: specs.ActKillProcess, Architectures: []specs.Arch{specs.ArchX86, specs.ArchS390X}, Flags: []specs.LinuxSeccompFlag{FlagLog}},
	} {
		data, _ := json.Marshal(s)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s specs.LinuxSeccomp
		if json.Unmarshal(data, &s) != nil {
			return
		}
		if err := Validate(&s); err != nil {
			return
		}
		p, err := Compile(&s)
		if err != nil {
			t.Fatalf("Validate accepted a profile Compile refuses: %v\n%s", err, data)
		}
		if _, err := p.Instructions(); err != nil {
			t.Fatalf("compiled program: %v", err)
		}
	})
}

// FuzzCheck runs only the static checks, which must never panic.
func FuzzCheck(f *testing.F) {
	data, _ := json.Marshal(Default())
	f.Add(data)
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":4095,"syscalls":[{"names":[""],"action":"SCMP_ACT_TRACE","args":[{"index":9,"op":"SCMP_CMP_EQ"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s specs.LinuxSeccomp
		if json.Unmarshal(data, &s) != nil {
			return
		}
		_ = check(&s)
		_ = UsesNotify(&s)
	})
}
