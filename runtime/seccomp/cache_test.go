//go:build cgo

package seccomp

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCache(t *testing.T) {
	c := &Cache{Dir: filepath.Join(t.TempDir(), "cache")}
	s := Default()
	p1, err := c.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := c.Key(s)
	path := filepath.Join(c.Dir, key+".json")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("entry not stored: %v", err)
	}
	p2, err := c.Compile(s)
	if err != nil || !reflect.DeepEqual(p1, p2) {
		t.Fatalf("hit differs: %v", err)
	}
	fresh, _ := Compile(s)
	if !reflect.DeepEqual(p1, fresh) {
		t.Error("cached program differs from a fresh compile")
	}
	// A damaged entry is recompiled and replaced.
	os.WriteFile(path, []byte(`{"filter":"AAAA"}`), 0o600)
	p3, err := c.Compile(s)
	if err != nil || !reflect.DeepEqual(p1, p3) {
		t.Fatalf("damaged entry: %v", err)
	}
	// Another profile, another key; invalid profiles fail even when cached
	// entries exist.
	other := DefaultFor([]string{"CAP_SYS_ADMIN"})
	if k2, _ := c.Key(other); k2 == key {
		t.Error("different profiles share a key")
	}
	if _, err := c.Compile(&specs.LinuxSeccomp{DefaultAction: "nope"}); err == nil {
		t.Error("invalid profile compiled")
	}
	// An unwritable directory only costs time.
	ro := &Cache{Dir: "/proc/hull-no-such-dir"}
	if _, err := ro.Compile(s); err != nil {
		t.Errorf("unwritable cache: %v", err)
	}
}

func BenchmarkCacheHitDefault(b *testing.B) {
	c := &Cache{Dir: b.TempDir()}
	s := DefaultFor([]string{"CAP_CHOWN", "CAP_SYS_CHROOT", "CAP_KILL"})
	if _, err := c.Compile(s); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := c.Compile(s); err != nil {
			b.Fatal(err)
		}
	}
}
