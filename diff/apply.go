// Package diff applies image layers (tar streams, possibly gzip or zstd
// compressed) onto snapshot mounts.
//
// Apply never writes outside the snapshot. Every entry's parent directory is
// resolved inside the root with github.com/cyphar/filepath-securejoin, over a
// view of the layer stack (the upper dir, then each lower dir, honouring
// whiteouts and opaque directories), so a symlink anywhere in the stack that
// points outside - absolute or through "../" - is followed as if the root were
// "/" (as containerd does); entry names and hardlink targets that climb out
// with "../" are rejected; the final component is never followed.
//
// For an overlay snapshot the layer is written straight into the upper
// directory, with whiteouts turned into overlay's own format (a 0/0
// character device, trusted.overlay.opaque=y): no mount is needed. For a
// bind-mounted snapshot (native, or a first overlay layer) covered paths are
// deleted. Any other mount list is mounted on a temporary directory and the
// layer applied through it.
//
// The tar walker is written here rather than taken from containerd's archive
// package because that package comes with containerd's core module; moby's
// equivalent comes with the docker module.
package diff

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/containerd/errdefs"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/snapshot/overlay"
)

// Errors returned by Apply, wrapped with the layer and entry names.
var (
	// ErrUnsafeEntry is a tar entry that would escape the snapshot.
	ErrUnsafeEntry = fmt.Errorf("unsafe layer entry: %w", errdefs.ErrInvalidArgument)
	// ErrCorrupt is a stream that cannot be decompressed or read as tar.
	ErrCorrupt = fmt.Errorf("corrupt or truncated layer: %w", errdefs.ErrDataLoss)
	// ErrMediaType is a media type that is not a layer.
	ErrMediaType = fmt.Errorf("unsupported layer media type: %w", errdefs.ErrNotImplemented)
)

// Compression of a layer stream.
type Compression int

// The compressions Apply understands.
const (
	Uncompressed Compression = iota
	Gzip
	Zstd
	Unknown // decided from the stream's first bytes
)

func (c Compression) String() string {
	return [...]string{"uncompressed", "gzip", "zstd", "unknown"}[c]
}

// CompressionOf maps a layer media type to its compression. The empty
// string and application/octet-stream give Unknown.
func CompressionOf(mediaType string) (Compression, error) {
	mt := strings.ToLower(mediaType)
	switch {
	case mt == "", mt == "application/octet-stream":
		return Unknown, nil
	case strings.HasSuffix(mt, "+gzip"), strings.HasSuffix(mt, ".tar.gzip"), strings.HasSuffix(mt, ".tar.gz"):
		return Gzip, nil
	case strings.HasSuffix(mt, "+zstd"), strings.HasSuffix(mt, ".tar.zstd"):
		return Zstd, nil
	case strings.HasSuffix(mt, ".tar"), strings.HasSuffix(mt, ".rootfs.diff.tar"), mt == "application/x-tar":
		return Uncompressed, nil
	}
	return Unknown, fmt.Errorf("%q: %w", mediaType, ErrMediaType)
}

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

func sniff(b []byte) Compression {
	switch {
	case bytes.HasPrefix(b, magicGzip):
		return Gzip
	case bytes.HasPrefix(b, magicZstd):
		return Zstd
	}
	return Uncompressed
}

// ApplyOpt changes how Apply works.
type ApplyOpt func(*config)

type config struct {
	layer     string
	noDevices bool
}

// WithLayerName names the layer (its digest, say) in errors and logs.
func WithLayerName(name string) ApplyOpt { return func(c *config) { c.layer = name } }

// WithoutDevices skips device nodes even where they could be created.
func WithoutDevices() ApplyOpt { return func(c *config) { c.noDevices = true } }

// Apply decompresses r (gzip, zstd or none, from mediaType or, when that is
// empty or generic, from the stream's magic bytes), applies the tar onto the
// snapshot mounts and returns the uncompressed stream's descriptor: its
// digest is the layer's diffID, which the caller verifies against the image
// config. A corrupt or truncated stream fails with ErrCorrupt; the snapshot
// is then half-written but can be removed.
func Apply(ctx context.Context, mounts []mount.Mount, r io.Reader, mediaType string, opts ...ApplyOpt) (ocispec.Descriptor, error) {
	cfg := config{layer: "<unnamed>"}
	for _, o := range opts {
		o(&cfg)
	}
	desc, err := apply(ctx, mounts, r, mediaType, &cfg)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("apply layer %s (%s): %w", cfg.layer, mediaType, err)
	}
	return desc, nil
}

func apply(ctx context.Context, mounts []mount.Mount, r io.Reader, mediaType string, cfg *config) (ocispec.Descriptor, error) {
	comp, err := CompressionOf(mediaType)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return ocispec.Descriptor{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	got := sniff(head)
	if comp == Unknown {
		comp = got
	} else if comp != Uncompressed && got != comp {
		return ocispec.Descriptor{}, fmt.Errorf("%w: media type says %s but the stream starts with % x", ErrCorrupt, comp, head)
	}
	plain, closeFn, err := decompress(br, comp)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, comp, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stream hashedReader
	if useReadahead {
		// The goroutine closes the decompressor when it stops, so Close
		// never waits on a stalled source.
		ra := newReadahead(ctx, plain, sha256.New(), closeFn)
		defer ra.Close()
		stream = ra
	} else {
		defer closeFn()
		stream = &inline{r: plain, h: sha256.New()}
	}

	if err := applyTo(ctx, mounts, stream, cfg); err != nil {
		return ocispec.Descriptor{}, err
	}
	// Hash what follows the tar's end blocks too: the diffID covers the
	// whole stream.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		if isCanceled(err) || errors.Is(err, ErrCorrupt) {
			return ocispec.Descriptor{}, err
		}
		return ocispec.Descriptor{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	sum, n := stream.Sum()
	return ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayer,
		Digest:    digest.NewDigestFromBytes(digest.SHA256, sum),
		Size:      n,
	}, nil
}

// gzipDecoder selects the gzip implementation ("pgzip" or "klauspost"); a
// variable so the benchmarks can compare them.
var gzipDecoder = "pgzip"

func decompress(r io.Reader, c Compression) (io.Reader, func(), error) {
	switch c {
	case Gzip:
		if gzipDecoder == "klauspost" {
			zr, err := kgzip.NewReader(r)
			if err != nil {
				return nil, nil, err
			}
			return zr, func() { zr.Close() }, nil
		}
		// pgzip decodes ahead of the reader in its own goroutine.
		zr, err := pgzip.NewReaderN(r, 1<<20, 4)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}
	return r, func() {}, nil
}

// overlayFastPath writes overlay layers straight into the upper directory;
// tests turn it off to compare with writing through a mounted overlay.
var overlayFastPath = true

// applyTo picks the fastest correct way to write into the mounts.
func applyTo(ctx context.Context, mounts []mount.Mount, r io.Reader, cfg *config) error {
	if upper, lowers, ok := overlay.UpperDir(mounts); ok && overlayFastPath {
		a := newApplier(ctx, cfg, upper, lowers, true)
		a.opaqueXattr = "trusted.overlay.opaque"
		for _, o := range mounts[0].Options {
			if o == "userxattr" {
				a.opaqueXattr = "user.overlay.opaque"
			}
		}
		return a.run(r)
	}
	if len(mounts) == 1 && mounts[0].IsBind() && !mounts[0].ReadOnly() {
		return newApplier(ctx, cfg, mounts[0].Source, nil, false).run(r)
	}
	for _, m := range mounts {
		if m.ReadOnly() || m.Type == "overlay" && !hasOption(m.Options, "upperdir=") {
			return fmt.Errorf("snapshot mounts are read-only: %w", errdefs.ErrFailedPrecondition)
		}
	}
	return mount.WithTempMount(mounts, func(root string) error {
		return newApplier(ctx, cfg, root, nil, false).run(r)
	})
}

// useReadahead runs decompression and hashing in their own goroutine.
var useReadahead = true

type hashedReader interface {
	io.Reader
	Sum() ([]byte, int64)
}

// inline hashes as the untar reads, in the same goroutine.
type inline struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (i *inline) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	i.h.Write(p[:n])
	i.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return n, err
}

func (i *inline) Sum() ([]byte, int64) { return i.h.Sum(nil), i.n }

// readahead reads its source (the decompressor) in a goroutine, hashing
// and counting as it goes, so decompression and hashing overlap with writing
// files.
type readahead struct {
	ch     chan []byte
	free   chan []byte
	cur    []byte
	whole  []byte
	err    error
	h      hash.Hash
	n      int64
	ctx    context.Context
	cancel context.CancelFunc
}

const chunkSize = 256 << 10

func newReadahead(ctx context.Context, src io.Reader, h hash.Hash, onDone func()) *readahead {
	ctx, cancel := context.WithCancel(ctx)
	ra := &readahead{ch: make(chan []byte, 8), free: make(chan []byte, 10), h: h, ctx: ctx, cancel: cancel}
	go func() {
		defer close(ra.ch)
		defer onDone()
		for {
			var buf []byte
			select {
			case buf = <-ra.free:
			default:
				buf = make([]byte, chunkSize)
			}
			// One Read, not a full chunk: what has arrived is passed on at
			// once, so a slow or stalled source does not hold back entries.
			n, err := src.Read(buf[:chunkSize])
			if n > 0 {
				ra.h.Write(buf[:n])
				ra.n += int64(n)
				select {
				case ra.ch <- buf[:n]:
				case <-ctx.Done():
					ra.err = ctx.Err()
					return
				}
			}
			if err != nil {
				ra.err = err
				return
			}
		}
	}()
	return ra
}

func (ra *readahead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		var buf []byte
		var ok bool
		select {
		case buf, ok = <-ra.ch:
		case <-ra.ctx.Done():
			return 0, ra.ctx.Err()
		}
		if !ok {
			if ra.err == nil || errors.Is(ra.err, io.EOF) {
				return 0, io.EOF
			}
			if isCanceled(ra.err) {
				return 0, ra.err
			}
			return 0, fmt.Errorf("%w: %v", ErrCorrupt, ra.err)
		}
		ra.cur, ra.whole = buf, buf
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	if len(ra.cur) == 0 {
		select {
		case ra.free <- ra.whole[:0]:
		default:
		}
	}
	return n, nil
}

// Sum returns the digest and length of everything read; call after EOF.
func (ra *readahead) Sum() ([]byte, int64) { return ra.h.Sum(nil), ra.n }

// Close tells the goroutine to stop; it does not wait for a Read in
// progress on the source.
func (ra *readahead) Close() { ra.cancel() }

func hasOption(opts []string, prefix string) bool {
	for _, o := range opts {
		if strings.HasPrefix(o, prefix) {
			return true
		}
	}
	return false
}
