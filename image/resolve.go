package image

import (
	"context"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Resolve reads an image's manifest and config for a platform ("" for the
// host) from the content store. It returns the chosen manifest descriptor.
func (s *Service) Resolve(ctx context.Context, target ocispec.Descriptor, platform string) (ocispec.Manifest, ocispec.Image, ocispec.Descriptor, error) {
	plat, err := ParsePlatform(platform)
	if err != nil {
		return ocispec.Manifest{}, ocispec.Image{}, ocispec.Descriptor{}, err
	}
	desc := target
	b, err := s.Content.ReadBlob(ctx, target.Digest)
	if err != nil {
		return ocispec.Manifest{}, ocispec.Image{}, desc, err
	}
	mt := target.MediaType
	if mt == "" {
		mt = sniff(b)
	}
	if isIndex(mt) {
		idx, err := parseIndex(b)
		if err != nil {
			return ocispec.Manifest{}, ocispec.Image{}, desc, err
		}
		if desc, err = choose(idx, plat); err != nil {
			return ocispec.Manifest{}, ocispec.Image{}, desc, err
		}
		if b, err = s.Content.ReadBlob(ctx, desc.Digest); err != nil {
			return ocispec.Manifest{}, ocispec.Image{}, desc, fmt.Errorf("manifest for %s: %w", plat, err)
		}
	}
	man, err := parseManifest(b)
	if err != nil {
		return man, ocispec.Image{}, desc, err
	}
	cb, err := s.Content.ReadBlob(ctx, man.Config.Digest)
	if err != nil {
		return man, ocispec.Image{}, desc, fmt.Errorf("config: %w", err)
	}
	cfg, err := parseConfig(cb, man)
	return man, cfg, desc, err
}

// Get returns a registered image.
func (s *Service) Get(ctx context.Context, ns, name string) (Image, error) {
	if r, err := ParseReference(name); err == nil {
		name = r.String()
	}
	return s.Meta.GetImage(ns, name)
}

// List returns a namespace's images.
func (s *Service) List(ctx context.Context, ns string) ([]Image, error) {
	return s.Meta.ListImages(ns)
}
