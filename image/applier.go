package image

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/hullproject/hull/diff"
	"github.com/hullproject/hull/mount"
)

// DiffApplier applies layers with the diff package (safe extraction onto
// overlay upper directories or plain trees).
type DiffApplier struct{}

// Apply implements Applier.
func (DiffApplier) Apply(ctx context.Context, mounts []mount.Mount, r io.Reader, mediaType string) (digest.Digest, error) {
	desc, err := diff.Apply(ctx, mounts, r, mediaType)
	if err != nil {
		return "", err
	}
	return desc.Digest, nil
}
