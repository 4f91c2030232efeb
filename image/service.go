// Package image ties references, registries, the content store, metadata
// and snapshots together: pulling an image from an OCI registry, unpacking
// it into snapshots, importing and exporting OCI layouts and docker-save
// archives, and garbage collection.
//
// The registry protocol (ping, basic and bearer-token auth, registry errors)
// is go-containerregistry's transport; the requests for manifests and blobs
// are built here so that blobs can be resumed with HTTP Range requests into
// the content store's partial ingests, and so that every manifest read into
// memory is size-limited. go-containerregistry's remote package reads blobs
// only from the start.
//
// Consistency: a pull first records everything it will write in a lease
// (metadata), then fetches and verifies each blob into the content store,
// unpacks if asked, and only then registers the image name, in one bbolt
// transaction, and drops the lease. A pull killed at any point leaves no
// image record, only verified blobs, partial ingests the next pull resumes,
// and an expiring lease.
//
// Garbage collection (GC, Remove with Sync, Prune) keeps what images, live
// leases and Root snapshot records reference. A caller that creates a
// container's rw snapshot on an image's top layer (the
// "hull.io/unpacked.<snapshotter>" label) records it first, under
// Meta.GCLock.RLock, with Meta.AddSnapshot(ns, SnapshotRef{Key, Parent,
// Root: true}); GC then keeps it and its parent chain, and never removes
// active snapshots or layers that still have children in any case.
package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hullproject/hull/content"
	"github.com/hullproject/hull/metadata"
	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/snapshot"
)

// Applier applies a (possibly compressed) layer stream, described by
// layer, onto mounts and returns the digest of the uncompressed tar (the
// diffID).
type Applier interface {
	Apply(ctx context.Context, mounts []mount.Mount, r io.Reader, layer ocispec.Descriptor) (digest.Digest, error)
}

// Service is the image service the daemon calls.
type Service struct {
	Content     *content.Store
	Meta        *metadata.DB
	Snapshotter snapshot.Snapshotter // nil: no unpacking
	// SnapshotterName is recorded in image labels ("overlayfs", "native").
	SnapshotterName string
	Applier         Applier
	Registry        RegistryConfig
	// Concurrency is the number of layers downloaded at once (default 3).
	Concurrency int
	// LeaseTTL bounds how long an abandoned pull protects its content (default 24h).
	LeaseTTL time.Duration
}

func (s *Service) concurrency() int {
	if s.Concurrency > 0 {
		return s.Concurrency
	}
	return 3
}

func (s *Service) leaseTTL() time.Duration {
	if s.LeaseTTL > 0 {
		return s.LeaseTTL
	}
	return 24 * time.Hour
}

func newID(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Image is a registered image with its resolved parts.
type Image = metadata.Image

// ProgressStatus is the state of one blob during a pull.
type ProgressStatus string

// Progress states.
const (
	StatusWaiting     ProgressStatus = "waiting"
	StatusExists      ProgressStatus = "exists"
	StatusDownloading ProgressStatus = "downloading"
	StatusVerified    ProgressStatus = "verified"
	StatusUnpacking   ProgressStatus = "unpacking"
	StatusUnpacked    ProgressStatus = "unpacked"
	StatusFailed      ProgressStatus = "failed"
)

// Progress reports one blob's state. Offset counts bytes present,
// including those resumed from an earlier attempt.
type Progress struct {
	Ref       string
	Digest    digest.Digest
	MediaType string
	Status    ProgressStatus
	Offset    int64
	Total     int64
	Resumed   int64 // bytes that were already on disk when this pull started
	Err       error
}

// LayerCount reports how many layers a descriptor list has (for bar setup).
func LayerCount(m ocispec.Manifest) int { return len(m.Layers) }
