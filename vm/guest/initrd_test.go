package guest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

func TestInitrdManifest(t *testing.T) {
	dir := t.TempDir()
	rd, init := filepath.Join(dir, "agent.cpio"), filepath.Join(dir, "hull-agent")
	if err := os.WriteFile(init, []byte("agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rd, []byte("an archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadInitrdManifest(rd); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("no manifest yet: %v, want not found", err)
	}
	if _, err := WriteInitrdManifest(rd, init, "v1.2.3", "none", 0); err != nil {
		t.Fatal(err)
	}
	m, err := ReadInitrdManifest(rd)
	if err != nil {
		t.Fatal(err)
	}
	if m.HullVersion != "v1.2.3" || m.Size != 10 || m.InitSize != 5 || len(m.InitSHA256) != 64 || m.Compression != "none" {
		t.Errorf("manifest = %+v", m)
	}
	// Rebuilt without a new manifest: the manifest no longer describes it.
	if err := os.WriteFile(rd, []byte("another archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadInitrdManifest(rd); !errors.Is(err, errdefs.ErrDataLoss) {
		t.Errorf("stale manifest: %v, want data loss", err)
	}
	// A missing init is an error naming it.
	if _, err := WriteInitrdManifest(rd, filepath.Join(dir, "nope"), "", "none", 0); err == nil {
		t.Error("manifest for a missing init: no error")
	}
}
