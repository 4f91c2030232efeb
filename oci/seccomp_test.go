package oci

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/runtime/seccomp"
)

func TestWithSeccompProfileJSON(t *testing.T) {
	// A runtime-spec profile passes through unchanged.
	plain := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"read", "write"}, Action: specs.ActAllow}}}
	data, _ := json.Marshal(plain)
	s, err := NewSpec("ns", "id", WithSeccompProfileJSON(data))
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp.DefaultAction != specs.ActErrno || !slices.Contains(s.Linux.Seccomp.Syscalls[0].Names, "read") {
		t.Errorf("profile %+v", s.Linux.Seccomp)
	}

	// Docker's format: a rule included only with CAP_SYS_ADMIN.
	docker := `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
		{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
		{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}`
	path := filepath.Join(t.TempDir(), "profile.json")
	os.WriteFile(path, []byte(docker), 0o644)
	names := func(s *specs.Spec) []string {
		var out []string
		for _, r := range s.Linux.Seccomp.Syscalls {
			out = append(out, r.Names...)
		}
		return out
	}
	without, err := NewSpec("ns", "id", WithSeccompProfileFile(path))
	if err != nil {
		t.Fatal(err)
	}
	with, err := NewSpec("ns", "id", WithCapAdd("CAP_SYS_ADMIN"), WithSeccompProfileFile(path))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names(without), "mount") || !slices.Contains(names(with), "mount") {
		t.Errorf("includes.caps not resolved: without %v, with %v", names(without), names(with))
	}

	for _, bad := range []struct{ data, want string }{
		{`{"defaultAction": "SCMP_ACT_NOPE"}`, "defaultAction"},
		{`{not json`, "seccomp profile"},
	} {
		if _, err := NewSpec("ns", "id", WithSeccompProfileJSON([]byte(bad.data))); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("profile %s: %v, want %q", bad.data, err, bad.want)
		}
	}
	if _, err := NewSpec("ns", "id", WithSeccompProfileFile("/no/such/profile.json")); err == nil {
		t.Error("missing profile file accepted")
	}
}

// allowedAlways lists the syscalls a profile allows without conditions.
func allowedAlways(p *specs.LinuxSeccomp) map[string]bool {
	out := map[string]bool{}
	for _, r := range p.Syscalls {
		if r.Action == specs.ActAllow && len(r.Args) == 0 {
			for _, n := range r.Names {
				out[n] = true
			}
		}
	}
	return out
}

// TestDefaultNoLooserThanDocker compares Hull's default profile with
// Docker's for the same capabilities: every syscall Hull allows without
// conditions, Docker allows too, except socket(2): Docker allows only a
// list of address families, Hull (like containerd) every one.
func TestDefaultNoLooserThanDocker(t *testing.T) {
	for _, capsSet := range [][]string{DefaultCaps(), append(DefaultCaps(), "CAP_SYS_ADMIN", "CAP_SYS_PTRACE")} {
		s := DefaultSpec("ns", "id")
		s.Process.Capabilities.Bounding = capsSet
		docker, err := mobyseccomp.GetDefaultProfile(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := seccomp.Validate(docker); err != nil {
			t.Fatalf("Docker's default profile does not validate: %v", err)
		}
		ours, theirs := allowedAlways(seccomp.DefaultFor(capsSet)), allowedAlways(docker)
		var looser, stricter []string
		for n := range ours {
			if !theirs[n] && n != "socket" {
				looser = append(looser, n)
			}
		}
		for n := range theirs {
			if !ours[n] {
				stricter = append(stricter, n)
			}
		}
		sort.Strings(looser)
		sort.Strings(stricter)
		if len(looser) > 0 {
			t.Errorf("caps %d: Hull allows what Docker denies: %v", len(capsSet), looser)
		}
		t.Logf("caps %d: Docker allows, Hull does not: %v", len(capsSet), stricter)
	}
}

func TestWithDockerDefaultSeccomp(t *testing.T) {
	s, err := NewSpec("ns", "id", WithDockerDefaultSeccomp)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := mobyseccomp.GetDefaultProfile(s)
	if !reflect.DeepEqual(s.Linux.Seccomp, want) {
		t.Error("not Docker's default profile")
	}
}
