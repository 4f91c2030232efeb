package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hullproject/hull/content"
	"github.com/hullproject/hull/snapshot"
)

// GCStats reports what a collection removed.
type GCStats struct {
	Blobs     int
	Bytes     int64
	Snapshots int
	Leases    int // expired leases dropped
	Ingests   int // stale partial ingests dropped
	Duration  time.Duration
}

// GC removes every blob and snapshot no image and no live lease references,
// in any namespace. Roots: image targets (walked through indexes, manifests
// and configs to layers and their chain-ID snapshots), unexpired leases
// (pulls in flight), and snapshot records marked Root (container rw layers)
// with their parent chains. Expired leases and partial ingests older than
// the lease TTL go too.
func (s *Service) GC(ctx context.Context) (GCStats, error) {
	start := time.Now()
	s.Meta.GCLock.Lock()
	defer s.Meta.GCLock.Unlock()
	var st GCStats

	blobs := map[digest.Digest]bool{}
	snaps := map[string]bool{}
	nss, err := s.Meta.Namespaces()
	if err != nil {
		return st, err
	}
	now := time.Now()
	for _, ns := range nss {
		nsBlobs := map[digest.Digest]bool{}
		nsSnaps := map[string]bool{}
		imgs, err := s.Meta.ListImages(ns)
		if err != nil {
			return st, err
		}
		for _, img := range imgs {
			if err := s.mark(ctx, img.Target, nsBlobs, nsSnaps); err != nil {
				return st, fmt.Errorf("gc: image %q in %q: %w", img.Name, ns, err)
			}
		}
		leases, err := s.Meta.ListLeases(ns)
		if err != nil {
			return st, err
		}
		for _, l := range leases {
			if now.After(l.ExpiresAt) {
				if err := s.Meta.DeleteLease(ns, l.ID); err == nil {
					st.Leases++
				}
				continue
			}
			for _, d := range l.Content {
				nsBlobs[d] = true
			}
			for _, k := range l.Snapshots {
				nsSnaps[k] = true
			}
		}
		srefs, err := s.Meta.ListSnapshots(ns)
		if err != nil {
			return st, err
		}
		for _, r := range srefs {
			if r.Root {
				nsSnaps[r.Key] = true
			}
		}
		if s.Snapshotter != nil {
			s.markParents(ctx, nsSnaps)
		}
		// Drop this namespace's references to what it no longer uses.
		refs, err := s.Meta.ListContent(ns)
		if err != nil {
			return st, err
		}
		var stale []digest.Digest
		for _, r := range refs {
			if !nsBlobs[r.Digest] {
				stale = append(stale, r.Digest)
			}
		}
		if err := s.Meta.RemoveContent(ns, stale...); err != nil {
			return st, err
		}
		for _, r := range srefs {
			if !nsSnaps[r.Key] {
				if err := s.Meta.RemoveSnapshot(ns, r.Key); err != nil {
					return st, err
				}
			}
		}
		for d := range nsBlobs {
			blobs[d] = true
		}
		for k := range nsSnaps {
			snaps[k] = true
		}
	}

	// Sweep blobs.
	var dead []content.Info
	if err := s.Content.Walk(ctx, func(i content.Info) error {
		if !blobs[i.Digest] {
			dead = append(dead, i)
		}
		return nil
	}); err != nil {
		return st, err
	}
	for _, i := range dead {
		if err := s.Content.Delete(ctx, i.Digest); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return st, fmt.Errorf("gc: %w", err)
		}
		st.Blobs++
		st.Bytes += i.Size
	}
	// Stale partial ingests (abandoned pulls).
	if ings, err := s.Content.ListIngests(ctx); err == nil {
		for _, in := range ings {
			if now.Sub(in.UpdatedAt) > s.leaseTTL() && !blobs[in.Digest] {
				if s.Content.AbortIngest(ctx, in.Digest) == nil {
					st.Ingests++
				}
			}
		}
	}
	// Sweep snapshots, children before parents.
	if s.Snapshotter != nil {
		n, err := s.sweepSnapshots(ctx, snaps)
		st.Snapshots = n
		if err != nil {
			return st, err
		}
	}
	st.Duration = time.Since(start)
	slog.Debug("gc", "blobs", st.Blobs, "bytes", st.Bytes, "snapshots", st.Snapshots, "leases", st.Leases, "took", st.Duration)
	return st, nil
}

// mark adds a descriptor and everything below it to the sets.
func (s *Service) mark(ctx context.Context, d ocispec.Descriptor, blobs map[digest.Digest]bool, snaps map[string]bool) error {
	if blobs[d.Digest] {
		return nil
	}
	blobs[d.Digest] = true
	mt := d.MediaType
	if !isIndex(mt) && !isManifest(mt) && mt != "" {
		return nil
	}
	b, err := s.Content.ReadBlob(ctx, d.Digest)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil // e.g. an index entry for a platform never pulled
	}
	if err != nil {
		return err
	}
	if mt == "" {
		mt = sniff(b)
	}
	switch {
	case isIndex(mt):
		idx, err := parseIndex(b)
		if err != nil {
			return err
		}
		for _, m := range idx.Manifests {
			if err := s.mark(ctx, m, blobs, snaps); err != nil {
				return err
			}
		}
	case isManifest(mt):
		man, err := parseManifest(b)
		if err != nil {
			return err
		}
		blobs[man.Config.Digest] = true
		for _, l := range man.Layers {
			blobs[l.Digest] = true
		}
		cb, err := s.Content.ReadBlob(ctx, man.Config.Digest)
		if err != nil {
			return nil // config missing: nothing unpacked can be named
		}
		cfg, err := parseConfig(cb, man)
		if err != nil {
			return nil
		}
		for _, c := range ChainIDs(cfg.RootFS.DiffIDs) {
			snaps[c.String()] = true
		}
	}
	return nil
}

// markParents adds the parent chain of every marked snapshot.
func (s *Service) markParents(ctx context.Context, snaps map[string]bool) {
	var todo []string
	for k := range snaps {
		todo = append(todo, k)
	}
	for len(todo) > 0 {
		k := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		info, err := s.Snapshotter.Stat(ctx, k)
		if err != nil || info.Parent == "" || snaps[info.Parent] {
			continue
		}
		snaps[info.Parent] = true
		todo = append(todo, info.Parent)
	}
}

func (s *Service) sweepSnapshots(ctx context.Context, keep map[string]bool) (int, error) {
	var infos []snapshot.Info
	if err := s.Snapshotter.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		infos = append(infos, i)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("gc: walking snapshots: %w", err)
	}
	children := map[string]int{}
	for _, i := range infos {
		if i.Parent != "" {
			children[i.Parent]++
		}
	}
	removed := 0
	for {
		progress := false
		for _, i := range infos {
			if keep[i.Name] || children[i.Name] > 0 || i.Name == "" {
				continue
			}
			// Only layers and abandoned unpacks are collected: active
			// snapshots (container rw layers) belong to their owner.
			if i.Kind != snapshot.KindCommitted && !strings.HasPrefix(i.Name, "extract-") {
				continue
			}
			if err := s.Snapshotter.Remove(ctx, i.Name); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				slog.Warn("gc: removing snapshot", "key", i.Name, "err", err)
				keep[i.Name] = true
				continue
			}
			removed++
			progress = true
			if i.Parent != "" {
				children[i.Parent]--
			}
			keep[i.Name] = true // done with it
		}
		if !progress {
			return removed, nil
		}
	}
}

// RemoveOptions tune Remove.
type RemoveOptions struct {
	// Sync runs garbage collection before returning.
	Sync bool
}

// Remove deletes an image record; with Sync its now-unreferenced blobs and
// snapshots are collected before it returns.
func (s *Service) Remove(ctx context.Context, ns, name string, opts RemoveOptions) error {
	if r, err := ParseReference(name); err == nil {
		if _, gerr := s.Meta.GetImage(ns, r.String()); gerr == nil {
			name = r.String()
		}
	}
	if err := s.Meta.DeleteImage(ns, name); err != nil {
		return err
	}
	if opts.Sync {
		if _, err := s.GC(ctx); err != nil {
			return fmt.Errorf("image %q removed, but gc failed: %w", name, err)
		}
	}
	return nil
}

// Prune collects everything unreferenced (see GC).
func (s *Service) Prune(ctx context.Context) (GCStats, error) { return s.GC(ctx) }
