package image

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hullproject/hull/diff"
	"github.com/hullproject/hull/mount"
)

// DiffApplier applies layers with the diff package (safe extraction onto
// overlay upper directories or plain trees).
type DiffApplier struct{}

// Apply implements Applier.
func (DiffApplier) Apply(ctx context.Context, mounts []mount.Mount, r io.Reader, layer ocispec.Descriptor) (digest.Digest, error) {
	desc, err := diff.Apply(ctx, mounts, r, layer.MediaType, diff.WithLayerName(layer.Digest.String()))
	if err != nil {
		return "", err
	}
	return desc.Digest, nil
}
