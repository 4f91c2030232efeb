package seccomp

import (
	"errors"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/runtime/seccomp/bpf"
)

// TestCacheCompiler: a Cache with a Compiler (what a hull-runtime built
// without libseccomp uses, compiling in hull-runtime-helper) calls it on a
// miss only, keys its entries by CompilerID, and still refuses an invalid
// profile without asking it.
func TestCacheCompiler(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}}}
	want := &bpf.Program{Filter: make([]byte, bpf.SockFilterSize)}
	calls := 0
	compiler := func(*specs.LinuxSeccomp) (*Program, error) {
		calls++
		return want, nil
	}
	c := &Cache{Dir: dir, Compiler: compiler, CompilerID: "helper A"}
	for i := 0; i < 2; i++ {
		p, err := c.Compile(s)
		if err != nil {
			t.Fatal(err)
		}
		if string(p.Filter) != string(want.Filter) {
			t.Fatalf("compile %d: got another program", i)
		}
	}
	if calls != 1 {
		t.Errorf("compiler called %d times for one profile, want 1 (the second is a cache hit)", calls)
	}
	other := &Cache{Dir: dir, Compiler: compiler, CompilerID: "helper B"}
	ka, _ := c.Key(s)
	kb, _ := other.Key(s)
	kn, _ := (&Cache{Dir: dir}).Key(s)
	if ka == kb || ka == kn {
		t.Errorf("keys do not tell the compilers apart: %s %s %s", ka, kb, kn)
	}
	if _, err := other.Compile(s); err != nil || calls != 2 {
		t.Errorf("another compiler's entry was used (calls %d, err %v)", calls, err)
	}
	failing := &Cache{Dir: dir, CompilerID: "helper C", Compiler: func(*specs.LinuxSeccomp) (*Program, error) {
		return nil, errors.New("no helper")
	}}
	if _, err := failing.Compile(s); err == nil {
		t.Error("a failing compiler's error was lost")
	}
	calls = 0
	if _, err := c.Compile(&specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NOPE"}); !errors.Is(err, ErrInvalid) || calls != 0 {
		t.Errorf("invalid profile: err %v, compiler calls %d; want ErrInvalid before any compile", err, calls)
	}
}
