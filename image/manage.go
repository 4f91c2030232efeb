package image

import (
	"context"
	"fmt"
	"maps"

	"github.com/containerd/errdefs"

	"github.com/hullproject/hull/metadata"
)

// Tag gives an existing image another name (replacing what that name
// pointed at).
func (s *Service) Tag(ctx context.Context, ns, src, dst string) (Image, error) {
	img, err := s.Get(ctx, ns, src)
	if err != nil {
		return Image{}, err
	}
	r, err := ParseReference(dst)
	if err != nil {
		return Image{}, err
	}
	s.Meta.GCLock.RLock()
	defer s.Meta.GCLock.RUnlock()
	return s.Meta.PutImage(ns, metadata.Image{Name: r.String(), Target: img.Target, Labels: maps.Clone(img.Labels)})
}

// Unpack unpacks a registered image for a platform ("" for the host) into
// the snapshotter, if not already, and records it on the image. It returns
// the top snapshot's name (the parent for a container's rw snapshot).
func (s *Service) Unpack(ctx context.Context, ns, name, platform string) (string, error) {
	if s.Snapshotter == nil || s.Applier == nil {
		return "", fmt.Errorf("image %q: no snapshotter configured: %w", name, errdefs.ErrFailedPrecondition)
	}
	img, err := s.Get(ctx, ns, name)
	if err != nil {
		return "", err
	}
	man, cfg, _, err := s.Resolve(ctx, img.Target, platform)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", img.Name, err)
	}
	lease := newID("unpack-")
	if _, err := s.Meta.CreateLease(ns, lease, s.leaseTTL()); err != nil {
		return "", err
	}
	defer s.Meta.DeleteLease(ns, lease)
	p := &pullState{s: s, ns: ns, ref: img.Name, lease: lease}
	chain, err := s.unpack(ctx, p, man, cfg, nil)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", img.Name, err)
	}
	if len(chain) == 0 {
		return "", fmt.Errorf("image %q has no layers: %w", img.Name, ErrMalformed)
	}
	labels := maps.Clone(img.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if _, err := s.register(ns, img.Name, img.Target, labels, nil, man, chain); err != nil {
		return "", err
	}
	return chain[len(chain)-1], nil
}
