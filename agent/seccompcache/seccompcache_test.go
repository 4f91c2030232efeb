package seccompcache

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hullproject/hull/oci"
	"github.com/hullproject/hull/runtime/seccomp"
)

// TestEmbeddedMatchesCompile fails when the embedded entry is stale: the
// default profile or libseccomp changed (run make agent-seccomp).
func TestEmbeddedMatchesCompile(t *testing.T) {
	profile := oci.DefaultSpec("default", "x").Linux.Seccomp
	fresh, err := seccomp.Compile(profile)
	if err != nil {
		t.Skipf("no libseccomp to compile with: %v", err)
	}
	c := &seccomp.Cache{Dir: t.TempDir()}
	key, err := c.Key(profile)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(Names(), key+".json") {
		t.Fatalf("no embedded entry %s.json (have %v): regenerate with make agent-seccomp", key, Names())
	}
	dir := filepath.Join(t.TempDir(), "seccomp")
	n, err := Install(dir)
	if err != nil || n != len(Names()) {
		t.Fatalf("Install: %d, %v", n, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, key+".json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(b), want) {
		t.Fatalf("embedded entry differs from a fresh compile: regenerate with make agent-seccomp")
	}
	// The runtime's cache takes it as a hit.
	got, err := (&seccomp.Cache{Dir: dir}).Compile(profile)
	if err != nil || !bytes.Equal(got.Filter, fresh.Filter) {
		t.Fatalf("cache hit: %v", err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir mode: %v %v", st.Mode(), err)
	}
}
