package metadata

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func openDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestImages(t *testing.T) {
	db := openDB(t)
	target := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 1}
	tests := []struct {
		name    string
		ns      string
		img     Image
		op      string
		wantErr error
	}{
		{"create", "default", Image{Name: "docker.io/library/a:latest", Target: target}, "create", nil},
		{"create again", "default", Image{Name: "docker.io/library/a:latest", Target: target}, "create", errdefs.ErrAlreadyExists},
		{"put updates", "default", Image{Name: "docker.io/library/a:latest", Target: target}, "put", nil},
		{"other namespace", "k8s.io", Image{Name: "docker.io/library/a:latest", Target: target}, "create", nil},
		{"bad namespace", "../x", Image{Name: "a", Target: target}, "create", errdefs.ErrInvalidArgument},
		{"empty name", "default", Image{Target: target}, "create", errdefs.ErrInvalidArgument},
		{"bad digest", "default", Image{Name: "b"}, "create", errdefs.ErrInvalidArgument},
		{"delete", "default", Image{Name: "docker.io/library/a:latest"}, "delete", nil},
		{"delete missing", "default", Image{Name: "docker.io/library/a:latest"}, "delete", errdefs.ErrNotFound},
		{"get missing", "nosuchns", Image{Name: "x"}, "get", errdefs.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			switch tc.op {
			case "create":
				_, err = db.CreateImage(tc.ns, tc.img)
			case "put":
				_, err = db.PutImage(tc.ns, tc.img)
			case "delete":
				err = db.DeleteImage(tc.ns, tc.img.Name)
			case "get":
				_, err = db.GetImage(tc.ns, tc.img.Name)
			}
			if (tc.wantErr == nil) != (err == nil) || (err != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
	imgs, err := db.ListImages("k8s.io")
	if err != nil || len(imgs) != 1 {
		t.Fatalf("k8s.io images: %v %v", imgs, err)
	}
	if imgs, _ := db.ListImages("default"); len(imgs) != 0 {
		t.Fatalf("default images after delete: %v", imgs)
	}
	ns, _ := db.Namespaces()
	if len(ns) != 2 {
		t.Fatalf("namespaces %v", ns)
	}
	if err := db.DeleteNamespace("k8s.io"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("delete non-empty namespace: %v", err)
	}
	if err := db.DeleteNamespace("default"); err != nil {
		t.Fatal(err)
	}
}

func TestRefsAndLeases(t *testing.T) {
	db := openDB(t)
	d1, d2 := digest.FromString("1"), digest.FromString("2")
	if err := db.AddContent("default", BlobRef{Digest: d1, Size: 1}, BlobRef{Digest: d2, Size: 1}); err != nil {
		t.Fatal(err)
	}
	if err := db.RemoveContent("default", d1); err != nil {
		t.Fatal(err)
	}
	refs, _ := db.ListContent("default")
	if len(refs) != 1 || refs[0].Digest != d2 {
		t.Fatalf("content refs %v", refs)
	}
	if err := db.AddSnapshot("default", SnapshotRef{Key: "sha256:c", Parent: "sha256:p"}); err != nil {
		t.Fatal(err)
	}
	snaps, _ := db.ListSnapshots("default")
	if len(snaps) != 1 || snaps[0].Parent != "sha256:p" {
		t.Fatalf("snapshots %v", snaps)
	}
	if _, err := db.CreateLease("default", "pull-1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateLease("default", "pull-1", time.Hour); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("duplicate lease: %v", err)
	}
	if err := db.LeaseAdd("default", "pull-1", []digest.Digest{d1}, []string{"s"}); err != nil {
		t.Fatal(err)
	}
	if err := db.LeaseAdd("default", "nope", nil, nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing lease: %v", err)
	}
	ls, _ := db.ListLeases("default")
	if len(ls) != 1 || len(ls[0].Content) != 1 || ls[0].Snapshots[0] != "s" {
		t.Fatalf("leases %v", ls)
	}
	db.DeleteLease("default", "pull-1")
	if ls, _ := db.ListLeases("default"); len(ls) != 0 {
		t.Fatalf("lease kept: %v", ls)
	}
}
