package blockimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hullproject/hull/blockimage"
	"github.com/hullproject/hull/diff"
	"github.com/hullproject/hull/snapshot"
	"github.com/hullproject/hull/snapshot/auto"
)

func layerTar(t *testing.T, entries map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		content := entries[name]
		h := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(content))}
		if name[len(name)-1] == '/' {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(content))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// TestBuildFromSnapshot unpacks two layers (the second deletes and opaques
// things) into the host's snapshotter and builds an ext4 image of a view of
// the result: the image holds the merged tree, without whiteouts.
func TestBuildFromSnapshot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	needTool(t, "mkfs.ext4")
	ctx := context.Background()
	s, name, err := auto.New(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	layers := [][]byte{
		layerTar(t, map[string]string{"etc/": "", "etc/keep": "k", "etc/gone": "g", "opq/": "", "opq/old": "o"}),
		layerTar(t, map[string]string{"etc/.wh.gone": "", "opq/": "", "opq/.wh..wh..opq": "", "opq/new": "n"}),
	}
	parent := ""
	for i, l := range layers {
		key := "x" + string(rune('0'+i))
		ms, err := s.Prepare(ctx, key, parent)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := diff.Apply(ctx, ms, bytes.NewReader(l), ""); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, "l"+key, key); err != nil {
			t.Fatal(err)
		}
		parent = "l" + key
	}
	ms, err := s.View(ctx, "view", parent, snapshot.WithLabels(map[string]string{"purpose": "vm-disk"}))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "rootfs.ext4")
	if err := blockimage.BuildFromMounts(ctx, ms, img, "ext4", 0); err != nil {
		t.Fatal(err)
	}
	mnt := loopMount(t, img, "ext4")
	for p, want := range map[string]string{"etc/keep": "k", "opq/new": "n"} {
		if b, err := os.ReadFile(filepath.Join(mnt, p)); err != nil || string(b) != want {
			t.Errorf("%s (%s snapshotter) = %q %v", p, name, b, err)
		}
	}
	for _, p := range []string{"etc/gone", "opq/old"} {
		if _, err := os.Lstat(filepath.Join(mnt, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is in the image: %v", p, err)
		}
	}
}
