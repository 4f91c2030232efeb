package cgroups

import (
	"maps"
	"testing"

	lib "github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
)

// TestV1PathsMatchLibrary: the one-pass resolver places every hierarchy
// where the library's own resolver does.
func TestV1PathsMatchLibrary(t *testing.T) {
	needLayout(t, Legacy, Hybrid)
	for _, inner := range []string{"/hull-x/abs", "hull-x/rel", "/a", "b"} {
		lm, err := fs.NewManager(&lib.Cgroup{Path: inner, Resources: &lib.Resources{}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := maps.Clone(lm.GetPaths())
		delete(want, "") // the v2 tree is placed separately
		got, err := v1Paths(inner)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("%q:\n got %v\nwant %v", inner, got, want)
		}
	}
}
