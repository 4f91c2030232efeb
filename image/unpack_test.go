package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/snapshot"
	"github.com/hullproject/hull/snapshot/auto"
)

func withSnapshotter(t *testing.T, s *Service, name string) {
	t.Helper()
	sn, got, err := auto.New(filepath.Join(t.TempDir(), "snapshots"), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	s.Snapshotter, s.SnapshotterName, s.Applier = sn, got, DiffApplier{}
}

func countSnapshots(t *testing.T, sn snapshot.Snapshotter) int {
	n := 0
	sn.Walk(context.Background(), func(context.Context, snapshot.Info) error { n++; return nil })
	return n
}

func TestPullUnpack(t *testing.T) {
	_, std := standard(t)
	ctx := context.Background()
	for _, snName := range []string{auto.Overlay, auto.Native} {
		t.Run(snName, func(t *testing.T) {
			s := newService(t)
			withSnapshotter(t, s, snName)
			img, err := s.Pull(ctx, "default", std.ManyLayers, PullOptions{Unpack: true})
			if err != nil {
				t.Fatal(err)
			}
			man, cfg, _, err := s.Resolve(ctx, img.Target, "")
			if err != nil {
				t.Fatal(err)
			}
			chain := ChainIDs(cfg.RootFS.DiffIDs)
			top := chain[len(chain)-1].String()
			if img.Labels["hull.io/unpacked."+s.SnapshotterName] != top {
				t.Fatalf("labels %v, top %s", img.Labels, top)
			}
			if n := countSnapshots(t, s.Snapshotter); n != len(man.Layers) {
				t.Fatalf("%d snapshots for %d layers", n, len(man.Layers))
			}
			// The merged view has what the layers say, whiteouts applied.
			mounts, err := s.Snapshotter.View(ctx, "check", top)
			if err != nil {
				t.Fatal(err)
			}
			err = mount.WithTempMount(mounts, func(root string) error {
				for p, want := range std.ManyExpect.Present {
					b, err := os.ReadFile(filepath.Join(root, p))
					if err != nil {
						if _, serr := os.Stat(filepath.Join(root, p)); serr != nil {
							t.Errorf("%s: %v", p, serr)
						}
						continue
					}
					if want != "" && string(b) != want {
						t.Errorf("%s = %q, want %q", p, b, want)
					}
				}
				for _, p := range std.ManyExpect.Absent {
					if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("%s should be gone: %v", p, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			s.Snapshotter.Remove(ctx, "check")

			// A second image sharing the busybox layer unpacks only its own.
			var unpacking int
			if _, err := s.Pull(ctx, "default", std.Busybox, PullOptions{Unpack: true, Progress: func(p Progress) {
				if p.Status == StatusUnpacking {
					unpacking++
				}
			}}); err != nil {
				t.Fatal(err)
			}
			if unpacking != 0 {
				t.Fatalf("busybox layer unpacked again (%d)", unpacking)
			}
			// Removing the image collects the layers only it used.
			if err := s.Remove(ctx, "default", img.Name, RemoveOptions{Sync: true}); err != nil {
				t.Fatal(err)
			}
			if n := countSnapshots(t, s.Snapshotter); n != 1 {
				t.Fatalf("%d snapshots after removing the many-layer image, want 1", n)
			}
			if err := s.Remove(ctx, "default", std.Busybox, RemoveOptions{Sync: true}); err != nil {
				t.Fatal(err)
			}
			if n := countSnapshots(t, s.Snapshotter); n != 0 {
				t.Fatalf("%d snapshots left", n)
			}
			if b := blobSet(t, s); len(b) != 0 {
				t.Fatalf("blobs left: %v", b)
			}
		})
	}
}

func TestTagAndLaterUnpack(t *testing.T) {
	_, std := standard(t)
	ctx := context.Background()
	s := newService(t)
	withSnapshotter(t, s, "")
	img, err := s.Pull(ctx, "default", std.Busybox, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := countSnapshots(t, s.Snapshotter); n != 0 {
		t.Fatalf("pull without unpack made %d snapshots", n)
	}
	tagged, err := s.Tag(ctx, "default", std.Busybox, "hull.test/mine")
	if err != nil || tagged.Name != "hull.test/mine:latest" || tagged.Target.Digest != img.Target.Digest {
		t.Fatalf("tag: %+v %v", tagged, err)
	}
	if _, err := s.Tag(ctx, "default", "nope", "x"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("tag of unknown image: %v", err)
	}
	top, err := s.Unpack(ctx, "default", "hull.test/mine", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshotter.Stat(ctx, top); err != nil {
		t.Fatal(err)
	}
	// The original name keeps the layers alive after the tag is removed.
	if err := s.Remove(ctx, "default", "hull.test/mine", RemoveOptions{Sync: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshotter.Stat(ctx, top); err != nil {
		t.Fatalf("snapshot collected while the image still exists: %v", err)
	}
	if err := s.Remove(ctx, "default", std.Busybox, RemoveOptions{Sync: true}); err != nil {
		t.Fatal(err)
	}
	if n := countSnapshots(t, s.Snapshotter); n != 0 {
		t.Fatalf("%d snapshots left", n)
	}
}

func TestPullCompressions(t *testing.T) {
	_, std := standard(t)
	ctx := context.Background()
	s := newService(t)
	withSnapshotter(t, s, "")
	img, err := s.Pull(ctx, "default", std.Mixed, PullOptions{Unpack: true})
	if err != nil {
		t.Fatal(err)
	}
	man, cfg, _, err := s.Resolve(ctx, img.Target, "")
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, l := range man.Layers {
		types = append(types, l.MediaType)
	}
	want := []string{"application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar"}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("layer types %v, want %v", types, want)
	}
	chain := ChainIDs(cfg.RootFS.DiffIDs)
	mounts, err := s.Snapshotter.View(ctx, "check", chain[len(chain)-1].String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Snapshotter.Remove(ctx, "check")
	err = mount.WithTempMount(mounts, func(root string) error {
		for p, c := range map[string]string{"zstd/file": "zstd layer\n", "plain/file": "plain layer\n"} {
			b, err := os.ReadFile(filepath.Join(root, p))
			if err != nil || string(b) != c {
				return fmt.Errorf("%s: %q %v", p, b, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
