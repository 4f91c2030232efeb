package guest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInfo(t *testing.T) {
	dir := t.TempDir()
	ks := Info(dir)
	if len(ks) != 2 || ks[0].Built || !strings.Contains(ks[0].Problem, "make guest-kernel") || !strings.Contains(ks[1].Problem, "make guest-cloud-kernel") {
		t.Fatalf("Info of an empty dir = %+v", ks)
	}
	if err := os.WriteFile(filepath.Join(dir, "bzImage"), []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte("CONFIG_X=y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Kind: KindMinimal, Release: "6.1.0-hull", SourcePackage: "linux-source-6.1", SourceVersion: "1",
		BzImage: Artifact{Path: "bzImage", Size: 6}, Config: Artifact{Path: "config", Size: 11}, ConfigSHA256: "abc"}
	if err := m.write(dir); err != nil {
		t.Fatal(err)
	}
	ki := Info(dir)[0]
	if !ki.Built || ki.Release != "6.1.0-hull" || ki.KernelSize != 6 || ki.Problem != "" {
		t.Errorf("Info = %+v", ki)
	}
	// A damaged kernel file is a problem, not a built kernel.
	if err := os.WriteFile(filepath.Join(dir, "bzImage"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ki := Info(dir)[0]; ki.Built || !strings.Contains(ki.Problem, "size 1") {
		t.Errorf("Info of a damaged kernel = %+v", ki)
	}
}
