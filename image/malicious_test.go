package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hullproject/hull/diff"
	"github.com/hullproject/hull/internal/testimages"
	"github.com/hullproject/hull/mount"
)

// Malicious layers pulled for real: refused, or contained in the snapshot.
func TestPullMaliciousLayers(t *testing.T) {
	reg := testimages.Registry(t)
	ctx := context.Background()
	marker := fmt.Sprintf("/tmp/hull-evil-%d", os.Getpid())
	defer os.RemoveAll(marker)
	tests := []struct {
		kind    string
		wantErr error  // refused
		inside  string // else: where the write must land inside the rootfs
	}{
		{testimages.EscapeDotDot, diff.ErrUnsafeEntry, ""},
		{testimages.EscapeHardlink, diff.ErrUnsafeEntry, ""},
		{testimages.EscapeAbsSymlink, nil, marker + "/pwned"},
		{testimages.EscapeRelSymlink, nil, marker + "/pwned"},
		{testimages.EscapeLayerSymlink, nil, marker + "/pwned"},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			img, err := testimages.Malicious(tc.kind, marker)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := testimages.Push(ctx, reg, fmt.Sprintf("hulltest%d/evil:%s", os.Getpid(), tc.kind), img)
			if err != nil {
				t.Fatal(err)
			}
			s := newService(t)
			withSnapshotter(t, s, "")
			got, err := s.Pull(ctx, "default", ref, PullOptions{Unpack: true})
			t.Logf("pull: %v", err)
			if _, serr := os.Lstat(marker); !errors.Is(serr, os.ErrNotExist) {
				t.Fatalf("%s appeared on the host", marker)
			}
			if _, serr := os.Lstat("/pwned"); serr == nil {
				t.Fatal("/pwned appeared on the host")
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), ref) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				if imgs, _ := s.Meta.ListImages("default"); len(imgs) != 0 {
					t.Fatalf("registered %v", imgs)
				}
				if n := countSnapshots(t, s.Snapshotter); n > 1 {
					t.Fatalf("%d snapshots left after a refused layer (only busybox may stay)", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, cfg, _, _ := s.Resolve(ctx, got.Target, "")
			chain := ChainIDs(cfg.RootFS.DiffIDs)
			mounts, err := s.Snapshotter.View(ctx, "check", chain[len(chain)-1].String())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Snapshotter.Remove(ctx, "check")
			if err := mount.WithTempMount(mounts, func(root string) error {
				_, err := os.Stat(filepath.Join(root, tc.inside))
				return err
			}); err != nil {
				t.Fatalf("write through the symlink should land in the rootfs at %s: %v", tc.inside, err)
			}
		})
	}
}
