package overlay_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/snapshot"
	"github.com/hullproject/hull/snapshot/overlay"
	"github.com/hullproject/hull/snapshot/testsuite"
)

func newOverlay(t *testing.T, root string) snapshot.Snapshotter {
	s, err := overlay.New(root)
	if err != nil {
		t.Skipf("overlay unusable on this host: %v", err)
	}
	return s
}

func TestOverlay(t *testing.T) {
	testsuite.Run(t, newOverlay)
}

// TestOverlayMountShapes checks the mounts of each kind of snapshot.
func TestOverlayMountShapes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ctx := t.Context()
	root := t.TempDir()
	s := newOverlay(t, root).(*overlay.Snapshotter)
	defer s.Close()
	ms, err := s.Prepare(ctx, "base-a", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Type != "bind" || ms[0].ReadOnly() {
		t.Errorf("parentless active = %+v, want rw bind", ms)
	}
	if err := s.Commit(ctx, "base", "base-a"); err != nil {
		t.Fatal(err)
	}
	ms, err = s.Prepare(ctx, "c", "base")
	if err != nil {
		t.Fatal(err)
	}
	upper, lowers, ok := overlay.UpperDir(ms)
	if !ok || len(lowers) != 1 || !strings.HasPrefix(upper, root) || filepath.Base(upper) != "fs" {
		t.Errorf("active on base = %+v", ms)
	}
	ms, err = s.View(ctx, "v", "base")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || !ms[0].IsBind() || !ms[0].ReadOnly() || ms[0].Source != lowers[0] {
		t.Errorf("view of one layer = %+v, want ro bind of %s", ms, lowers[0])
	}
	testsuite.AssertNoMounts(t, root)
	_ = mount.UnmountAll(root, 0)
}

// TestCheckRejectsOverlayOnOverlay probes a root that is itself on an
// overlay mount: the kernel refuses an overlay upper dir there, and Check
// must say so instead of failing later.
func TestCheckRejectsOverlayOnOverlay(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := overlay.Check(dir); err != nil {
		t.Skipf("overlay unusable on this host at all: %v", err)
	}
	m := mount.Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + filepath.Join(dir, "l"), "upperdir=" + filepath.Join(dir, "u"), "workdir=" + filepath.Join(dir, "w")}}
	merged := filepath.Join(dir, "m")
	if err := m.Mount(merged); err != nil {
		t.Fatal(err)
	}
	defer mount.UnmountAll(merged, 0)
	_, err := overlay.Check(merged)
	if err == nil {
		t.Fatal("overlay on overlay accepted")
	}
	if !strings.Contains(err.Error(), "overlayfs unusable") {
		t.Errorf("error = %v", err)
	}
	t.Logf("probe on overlay: %v", err)
}

func TestOverlayReopen(t *testing.T) {
	testsuite.CheckReopen(t, t.TempDir(), newOverlay)
}

func TestRootWithSeparatorRefused(t *testing.T) {
	_, err := overlay.New(filepath.Join(t.TempDir(), "a:b"))
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("err = %v", err)
	}
}
