package image

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/hullproject/hull/content"
)

func blobSet(t *testing.T, s *Service) map[digest.Digest]bool {
	t.Helper()
	m := map[digest.Digest]bool{}
	s.Content.Walk(context.Background(), func(i content.Info) error { m[i.Digest] = true; return nil })
	return m
}

func TestGC(t *testing.T) {
	_, std := standard(t)
	ctx := context.Background()
	s := newService(t)
	pull := func(ns, ref string) Image {
		img, err := s.Pull(ctx, ns, ref, PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	bb := pull("default", std.Busybox)
	many := pull("default", std.ManyLayers)
	pull("other", std.Busybox)
	bbMan, _, _, _ := s.Resolve(ctx, bb.Target, "")
	manyMan, _, _, _ := s.Resolve(ctx, many.Target, "")
	shared := bbMan.Layers[0].Digest
	if manyMan.Layers[0].Digest != shared {
		t.Fatalf("test images should share the busybox layer")
	}
	// A blob held only by a lease, one by an expired lease.
	leased, expired := []byte("in flight"), []byte("abandoned")
	s.Meta.CreateLease("default", "live", time.Hour)
	s.Meta.CreateLease("default", "old", -time.Second)
	s.Meta.LeaseAdd("default", "live", []digest.Digest{digest.FromBytes(leased)}, nil)
	s.Meta.LeaseAdd("default", "old", []digest.Digest{digest.FromBytes(expired)}, nil)
	s.Content.WriteBlob(ctx, digest.FromBytes(leased), leased)
	s.Content.WriteBlob(ctx, digest.FromBytes(expired), expired)

	steps := []struct {
		name      string
		ns, image string
		present   []digest.Digest
		absent    []digest.Digest
	}{
		{"prune keeps referenced", "", "", []digest.Digest{shared, many.Target.Digest, digest.FromBytes(leased)}, []digest.Digest{digest.FromBytes(expired)}},
		{"remove many", "default", many.Name, []digest.Digest{shared, bb.Target.Digest}, []digest.Digest{many.Target.Digest, manyMan.Layers[len(manyMan.Layers)-1].Digest, manyMan.Config.Digest}},
		{"remove busybox in default", "default", bb.Name, []digest.Digest{shared, bb.Target.Digest, bbMan.Config.Digest}, nil},
		{"remove busybox in other", "other", std.Busybox, nil, []digest.Digest{shared, bb.Target.Digest}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.image != "" {
				if err := s.Remove(ctx, st.ns, st.image, RemoveOptions{Sync: true}); err != nil {
					t.Fatal(err)
				}
			} else if _, err := s.Prune(ctx); err != nil {
				t.Fatal(err)
			}
			have := blobSet(t, s)
			for _, d := range st.present {
				if !have[d] {
					t.Errorf("%s was collected", d)
				}
			}
			for _, d := range st.absent {
				if have[d] {
					t.Errorf("%s was kept", d)
				}
			}
		})
	}
	// Only the leased blob is left; dropping the lease frees it.
	if have := blobSet(t, s); len(have) != 1 {
		t.Fatalf("blobs left: %v", have)
	}
	s.Meta.DeleteLease("default", "live")
	st, err := s.GC(ctx)
	if err != nil || st.Blobs != 1 || len(blobSet(t, s)) != 0 {
		t.Fatalf("after lease drop: %+v %v %v", st, err, blobSet(t, s))
	}
	if refs, _ := s.Meta.ListContent("default"); len(refs) != 0 {
		t.Fatalf("stale content refs: %v", refs)
	}
	if err := s.Remove(ctx, "default", "docker.io/library/nope:latest", RemoveOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("removing unknown image: %v", err)
	}
}
