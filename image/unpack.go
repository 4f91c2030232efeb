package image

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ChainIDs returns the chain ID of each layer prefix: the names of the
// committed snapshots an unpacked image is made of.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	return identity.ChainIDs(append([]digest.Digest(nil), diffIDs...))
}

// unpack applies layers in order, each as soon as its blob is present
// (done[i] closed), skipping layers whose chain ID is already committed.
// It returns the chain IDs.
func (s *Service) unpack(ctx context.Context, p *pullState, man ocispec.Manifest, cfg ocispec.Image, done []chan struct{}) ([]string, error) {
	chain := ChainIDs(cfg.RootFS.DiffIDs)
	names := make([]string, len(chain))
	for i, c := range chain {
		names[i] = c.String()
	}
	if p != nil {
		if err := p.protectSnapshots(names...); err != nil {
			return nil, err
		}
	}
	parent := ""
	for i, l := range man.Layers {
		if done != nil {
			select {
			case <-done[i]:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		name := names[i]
		if _, err := s.Snapshotter.Stat(ctx, name); err == nil {
			parent = name
			if p != nil {
				p.report(Progress{Digest: l.Digest, MediaType: l.MediaType, Status: StatusUnpacked, Offset: l.Size, Total: l.Size})
			}
			continue
		}
		if p != nil {
			p.report(Progress{Digest: l.Digest, MediaType: l.MediaType, Status: StatusUnpacking, Offset: l.Size, Total: l.Size})
		}
		if err := s.applyLayer(ctx, p, l, cfg.RootFS.DiffIDs[i], name, parent); err != nil {
			return nil, err
		}
		if p != nil {
			p.report(Progress{Digest: l.Digest, MediaType: l.MediaType, Status: StatusUnpacked, Offset: l.Size, Total: l.Size})
		}
		parent = name
	}
	return names, nil
}

func (s *Service) applyLayer(ctx context.Context, p *pullState, l ocispec.Descriptor, diffID digest.Digest, name, parent string) (retErr error) {
	key := newID("extract-") + "-" + name
	if p != nil {
		if err := p.protectSnapshots(key); err != nil {
			return err
		}
	}
	mounts, err := s.Snapshotter.Prepare(ctx, key, parent)
	if err != nil {
		return fmt.Errorf("unpack layer %s: prepare snapshot: %w", l.Digest, err)
	}
	defer func() {
		if retErr != nil {
			s.Snapshotter.Remove(context.WithoutCancel(ctx), key)
		}
	}()
	ra, err := s.Content.ReaderAt(ctx, l.Digest)
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", l.Digest, err)
	}
	defer ra.Close()
	got, err := s.Applier.Apply(ctx, mounts, io.NewSectionReader(ra, 0, ra.Size()), l)
	if err != nil {
		return err // names the layer already
	}
	if got != diffID {
		return fmt.Errorf("unpack layer %s: uncompressed digest %s, config says %s: %w", l.Digest, got, diffID, ErrMalformed)
	}
	if err := s.Snapshotter.Commit(ctx, name, key); err != nil {
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			// Committed by a concurrent unpack of the same layer.
			return s.Snapshotter.Remove(ctx, key)
		}
		return fmt.Errorf("unpack layer %s: commit snapshot %s: %w", l.Digest, name, err)
	}
	return nil
}
