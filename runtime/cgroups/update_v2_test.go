package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestUpdateMergesV2 is TestUpdateMerges for a cgroup v2 host (it runs in
// the test VM): partial updates keep what they leave out, swap stays
// memory+swap in the spec and becomes memory.swap.max = swap - memory.
func TestUpdateMergesV2(t *testing.T) {
	needRoot(t)
	needLayout(t, Unified)
	m := newTestManager(t, testParent(t)+"/u", "u", nil)
	p := startProc(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatal(err)
	}
	dir := m.Paths()[""]
	if err := m.Set(&specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(100 << 20)), Swap: ptr(int64(200 << 20))},
		CPU:    &specs.LinuxCPU{Shares: ptr(uint64(1024))},
		Pids:   &specs.LinuxPids{Limit: ptr(int64(50))},
	}); err != nil {
		t.Fatal(err)
	}
	if !p.run(t, "x=$(head -c 2000000 /dev/zero | tr '\\0' a)") {
		t.Fatal("shell in cgroup did not run")
	}
	steps := []struct {
		name    string
		upd     specs.LinuxResources
		wantErr string
		files   map[string]string
	}{
		{"cpu only", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(2))}}, "", map[string]string{
			"cpu.weight": "1", "memory.max": "104857600", "memory.swap.max": "104857600", "pids.max": "50"}},
		{"memory only keeps swap total", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(150 << 20))}}, "", map[string]string{
			"memory.max": "157286400", "memory.swap.max": "52428800", "cpu.weight": "1"}},
		{"memory above swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(300 << 20))}}, "linux.resources.memory.swap", map[string]string{
			"memory.max": "157286400"}},
		{"no swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(120 << 20)), Swap: ptr(int64(120 << 20))}}, "", map[string]string{
			"memory.max": "125829120", "memory.swap.max": "0"}},
		{"no swap follows memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(240 << 20))}}, "", map[string]string{
			"memory.max": "251658240", "memory.swap.max": "0"}},
		{"below usage with check", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(4096)), CheckBeforeUpdate: ptr(true)}}, "linux.resources.memory.limit", map[string]string{
			"memory.max": "251658240"}},
		{"pids only", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(-1))}}, "", map[string]string{
			"pids.max": "max", "memory.max": "251658240", "cpu.weight": "1"}},
	}
	for _, s := range steps {
		err := m.Set(&s.upd)
		switch {
		case s.wantErr == "" && err != nil:
			t.Fatalf("%s: Set: %v", s.name, err)
		case s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr) || !errors.Is(err, ErrInvalid)):
			t.Fatalf("%s: Set error = %v, want ErrInvalid naming %s", s.name, err, s.wantErr)
		}
		for f, want := range s.files {
			if got := readFile(t, dir, f); got != want {
				t.Errorf("%s: %s = %q, want %q", s.name, f, got, want)
			}
		}
	}
	// a manager loaded from saved state, without the merged base, reads
	// "no swap" from disk
	l, err := Load(m.Paths())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(200 << 20))}}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dir, "memory.swap.max"); got != "0" {
		t.Errorf("after loaded update memory.swap.max = %q, want 0", got)
	}
}

// TestPathResolutionV2 applies real processes on a cgroup v2 host (the
// test VM) and reads back /proc/<pid>/cgroup.
func TestPathResolutionV2(t *testing.T) {
	needRoot(t)
	needLayout(t, Unified)
	own, err := ownV2Cgroup()
	if err != nil {
		t.Fatal(err)
	}
	parent := testParent(t)
	rel := strings.TrimPrefix(parent, "/")
	tests := []struct{ name, path, id, want string }{
		{"absolute", parent + "/abs", "x", parent + "/abs"},
		{"relative", rel + "/rel", "x", filepath.Join(filepath.Dir(own), rel, "rel")},
		{"relative cannot climb out", "../../" + rel + "/up", "x", filepath.Join(filepath.Dir(own), rel, "up")},
		{"empty", "", "hull-cgtest-empty-v2", DefaultParent + "/hull-cgtest-empty-v2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m Manager
			t.Cleanup(func() {
				if m != nil && tc.path == "" {
					os.Remove(filepath.Dir(m.Paths()[""])) // DefaultParent, if empty
				}
			})
			m = newTestManager(t, tc.path, tc.id, nil)
			if got, want := m.Paths()[""], filepath.Join(Root, tc.want); got != want {
				t.Fatalf("path = %q, want %q", got, want)
			}
			p := startProc(t)
			if err := m.Apply(p.pid()); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile("/proc/" + itoa(p.pid()) + "/cgroup")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(b)); got != "0::"+tc.want {
				t.Errorf("/proc/pid/cgroup = %q, want 0::%s", got, tc.want)
			}
		})
	}
}
