package auto_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/snapshot/auto"
	"github.com/hullproject/hull/snapshot/overlay"
)

func TestPicksOverlayWhereItWorks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	root := t.TempDir()
	if _, err := overlay.Check(root); err != nil {
		t.Skipf("overlay unusable on this host: %v", err)
	}
	s, name, err := auto.New(root, "")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if name != auto.Overlay {
		t.Fatalf("picked %s", name)
	}
	// The root stays overlay: asking for native is refused.
	if _, _, err := auto.New(root, auto.Native); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("reopen as native: %v", err)
	}
	s, name, err = auto.New(root, "")
	if err != nil || name != auto.Overlay {
		t.Fatalf("reopen: %s %v", name, err)
	}
	s.Close()
}

// TestFallsBackOnOverlay puts the root on an overlay mount, where the
// kernel refuses an overlay upper dir, and expects the native snapshotter.
func TestFallsBackOnOverlay(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	if _, err := overlay.Check(dir); err != nil {
		t.Skipf("overlay unusable on this host at all: %v", err)
	}
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	merged := filepath.Join(dir, "m")
	m := mount.Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + filepath.Join(dir, "l"), "upperdir=" + filepath.Join(dir, "u"), "workdir=" + filepath.Join(dir, "w")}}
	if err := m.Mount(merged); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := mount.UnmountAll(merged, 0); err != nil {
			t.Error(err)
		}
	}()
	root := filepath.Join(merged, "snapshots")
	s, name, err := auto.New(root, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if name != auto.Native {
		t.Fatalf("on overlay picked %s, want native", name)
	}
	if _, err := s.Prepare(t.Context(), "k", ""); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownName(t *testing.T) {
	if _, _, err := auto.New(t.TempDir(), "zfs"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("err = %v", err)
	}
}
