package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/hullproject/hull/content"
	"github.com/hullproject/hull/metadata"
)

// PullOptions tune a pull.
type PullOptions struct {
	// Platform selects the manifest of an index: "" for the host, or "os/arch[/variant]".
	Platform string
	// Unpack layers into snapshots (needs Service.Snapshotter and Applier).
	Unpack bool
	// Progress, if set, is called for every state change and periodically
	// while downloading. Calls are serialized.
	Progress func(Progress)
	// Labels are added to the image record.
	Labels map[string]string
}

// Pull fetches ref into namespace ns and registers it. Nothing is registered
// unless every blob is present and verified (and unpacked, if asked).
func (s *Service) Pull(ctx context.Context, ns, ref string, opts PullOptions) (Image, error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return Image{}, err
	}
	r, err := ParseReference(ref)
	if err != nil {
		return Image{}, err
	}
	plat, err := ParsePlatform(opts.Platform)
	if err != nil {
		return Image{}, fmt.Errorf("image %q: %w", ref, err)
	}
	if opts.Unpack && (s.Snapshotter == nil || s.Applier == nil) {
		return Image{}, fmt.Errorf("image %q: unpack requested but no snapshotter configured: %w", ref, errdefs.ErrFailedPrecondition)
	}
	eps, err := s.Registry.endpoints(r.Domain)
	if err != nil {
		return Image{}, err
	}
	var firstErr error
	for _, ep := range eps {
		img, err := s.pullFrom(ctx, ns, r, ref, ep, plat, opts)
		if err == nil {
			return img, nil
		}
		if ctx.Err() != nil {
			return Image{}, err
		}
		if ep.mirror {
			slog.Debug("mirror failed, trying next endpoint", "ref", ref, "mirror", ep.host, "err", err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		return Image{}, err
	}
	return Image{}, firstErr
}

// pullState is one pull in flight.
type pullState struct {
	s      *Service
	ns     string
	ref    string
	lease  string
	client *repoClient
	mu     sync.Mutex
	prog   func(Progress)
}

func (p *pullState) report(pr Progress) {
	if p.prog == nil {
		return
	}
	pr.Ref = p.ref
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prog(pr)
}

// protect adds digests to the pull's lease before they are written, under
// the GC read lock, so a concurrent GC keeps them.
func (p *pullState) protect(dgsts ...digest.Digest) error {
	p.s.Meta.GCLock.RLock()
	defer p.s.Meta.GCLock.RUnlock()
	return p.s.Meta.LeaseAdd(p.ns, p.lease, dgsts, nil)
}

func (p *pullState) protectSnapshots(keys ...string) error {
	p.s.Meta.GCLock.RLock()
	defer p.s.Meta.GCLock.RUnlock()
	return p.s.Meta.LeaseAdd(p.ns, p.lease, nil, keys)
}

// small fetches a manifest/index/config blob: from the store if present,
// else from the registry, verified and stored.
func (p *pullState) small(ctx context.Context, d ocispec.Descriptor, manifest bool) ([]byte, error) {
	if b, err := p.s.Content.ReadBlob(ctx, d.Digest); err == nil {
		return b, nil
	} else if errors.Is(err, content.ErrTooLarge) {
		return nil, fmt.Errorf("image %q: %w", p.ref, err)
	}
	if d.Size > content.MaxInMemory {
		return nil, fmt.Errorf("image %q: %s is %d bytes, limit %d: %w", p.ref, d.Digest, d.Size, content.MaxInMemory, ErrMalformed)
	}
	var b []byte
	var err error
	if manifest {
		b, _, err = p.client.manifest(ctx, d.Digest.String())
	} else {
		var rc io.ReadCloser
		rc, _, err = p.client.blob(ctx, d.Digest, 0)
		if err == nil {
			b, err = io.ReadAll(io.LimitReader(rc, content.MaxInMemory+1))
			rc.Close()
			if err == nil && len(b) > content.MaxInMemory {
				err = fmt.Errorf("%s exceeds %d bytes: %w", d.Digest, content.MaxInMemory, ErrMalformed)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if got := digest.FromBytes(b); got != d.Digest || (d.Size > 0 && int64(len(b)) != d.Size) {
		return nil, fmt.Errorf("image %q: %s: registry sent %d bytes hashing to %s: %w", p.ref, d.Digest, len(b), got, content.ErrDigestMismatch)
	}
	if err := p.protect(d.Digest); err != nil {
		return nil, err
	}
	if err := p.s.Content.WriteBlob(ctx, d.Digest, b); err != nil {
		return nil, fmt.Errorf("image %q: %w", p.ref, err)
	}
	return b, nil
}

func (s *Service) pullFrom(ctx context.Context, ns string, r Reference, ref string, ep endpoint, plat Platform, opts PullOptions) (Image, error) {
	client, err := newRepoClient(ctx, s.Registry, ep, r.Path, ref)
	if err != nil {
		return Image{}, err
	}
	// Resolve the tag or digest to the top-level descriptor.
	top, mt, err := client.manifest(ctx, r.Object())
	if err != nil {
		return Image{}, err
	}
	if mt == "" || mt == "application/json" || mt == "text/plain" {
		mt = sniff(top)
	}
	if mt == mediaTypeDockerSchema1 || mt == "application/vnd.docker.distribution.manifest.v1+json" {
		return Image{}, fmt.Errorf("image %q: Docker schema1 manifests: %w", ref, ErrUnsupported)
	}
	if !isIndex(mt) && !isManifest(mt) {
		return Image{}, fmt.Errorf("image %q: manifest media type %q: %w", ref, mt, ErrMalformed)
	}
	target := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(top), Size: int64(len(top))}
	if r.Digest != "" && target.Digest != r.Digest {
		return Image{}, fmt.Errorf("image %q: registry sent manifest %s: %w", ref, target.Digest, content.ErrDigestMismatch)
	}

	lease := newID("pull-")
	if _, err := s.Meta.CreateLease(ns, lease, s.leaseTTL()); err != nil {
		return Image{}, fmt.Errorf("image %q: %w", ref, err)
	}
	defer func() {
		if err := s.Meta.DeleteLease(ns, lease); err != nil {
			slog.Warn("pull: dropping lease", "lease", lease, "err", err)
		}
	}()
	p := &pullState{s: s, ns: ns, ref: ref, lease: lease, client: client, prog: opts.Progress}

	// Verify the top-level manifest parses before anything is stored.
	manDesc := target
	manBytes := top
	if isIndex(mt) {
		idx, err := parseIndex(top)
		if err != nil {
			return Image{}, fmt.Errorf("image %q: %w", ref, err)
		}
		manDesc, err = choose(idx, plat)
		if err != nil {
			return Image{}, fmt.Errorf("image %q: %w", ref, err)
		}
		if manDesc.MediaType == "" {
			manDesc.MediaType = ocispec.MediaTypeImageManifest
		}
		if manBytes, err = p.small(ctx, manDesc, true); err != nil {
			return Image{}, err
		}
	}
	man, err := parseManifest(manBytes)
	if err != nil {
		return Image{}, fmt.Errorf("image %q: %w", ref, err)
	}
	if err := p.protect(target.Digest); err != nil {
		return Image{}, err
	}
	if err := s.Content.WriteBlob(ctx, target.Digest, top); err != nil {
		return Image{}, fmt.Errorf("image %q: %w", ref, err)
	}
	cfgBytes, err := p.small(ctx, man.Config, false)
	if err != nil {
		return Image{}, err
	}
	cfg, err := parseConfig(cfgBytes, man)
	if err != nil {
		return Image{}, fmt.Errorf("image %q: %w", ref, err)
	}
	if !isIndex(mt) && opts.Platform != "" && (cfg.OS != plat.OS || cfg.Architecture != plat.Architecture) {
		return Image{}, fmt.Errorf("image %q is %s/%s, not %s: %w", ref, cfg.OS, cfg.Architecture, plat, ErrPlatform)
	}

	// Layers: download concurrently; unpack in order as they complete.
	dgsts := make([]digest.Digest, len(man.Layers))
	for i, l := range man.Layers {
		dgsts[i] = l.Digest
	}
	if err := p.protect(dgsts...); err != nil {
		return Image{}, err
	}
	done := make([]chan struct{}, len(man.Layers))
	for i := range done {
		done[i] = make(chan struct{})
	}
	g, gctx := errgroup.WithContext(ctx)
	sem := make(chan struct{}, s.concurrency())
	for i, l := range man.Layers {
		p.report(Progress{Digest: l.Digest, MediaType: l.MediaType, Status: StatusWaiting, Total: l.Size})
		g.Go(func() error {
			select {
			case sem <- struct{}{}:
			case <-gctx.Done():
				return gctx.Err()
			}
			defer func() { <-sem }()
			if err := p.fetchLayer(gctx, l); err != nil {
				p.report(Progress{Digest: l.Digest, MediaType: l.MediaType, Status: StatusFailed, Total: l.Size, Err: err})
				return err
			}
			close(done[i])
			return nil
		})
	}
	var chain []string
	if opts.Unpack {
		g.Go(func() error {
			var err error
			chain, err = s.unpack(gctx, p, man, cfg, done)
			if err != nil && gctx.Err() == nil {
				return fmt.Errorf("image %q: %w", ref, err)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return Image{}, err
	}

	// Everything is present: register, in one transaction, under the GC lock.
	labels := map[string]string{}
	for k, v := range opts.Labels {
		labels[k] = v
	}
	return s.register(ns, r.String(), target, labels, append([]digest.Digest{target.Digest, manDesc.Digest, man.Config.Digest}, dgsts...), man, chain)
}

func (s *Service) register(ns, name string, target ocispec.Descriptor, labels map[string]string, blobs []digest.Digest, man ocispec.Manifest, chain []string) (Image, error) {
	s.Meta.GCLock.RLock()
	defer s.Meta.GCLock.RUnlock()
	sizes := map[digest.Digest]int64{man.Config.Digest: man.Config.Size, target.Digest: target.Size}
	for _, l := range man.Layers {
		sizes[l.Digest] = l.Size
	}
	var refs []metadata.BlobRef
	seen := map[digest.Digest]bool{}
	for _, d := range blobs {
		if seen[d] {
			continue
		}
		seen[d] = true
		refs = append(refs, metadata.BlobRef{Digest: d, Size: sizes[d]})
	}
	if err := s.Meta.AddContent(ns, refs...); err != nil {
		return Image{}, fmt.Errorf("image %q: %w", name, err)
	}
	parent := ""
	for _, c := range chain {
		if err := s.Meta.AddSnapshot(ns, metadata.SnapshotRef{Key: c, Parent: parent}); err != nil {
			return Image{}, fmt.Errorf("image %q: %w", name, err)
		}
		parent = c
	}
	// A re-pull of the same content keeps what was recorded before (the
	// unpacked label of another snapshotter, labels set by the user).
	if prev, err := s.Meta.GetImage(ns, name); err == nil && prev.Target.Digest == target.Digest {
		for k, v := range prev.Labels {
			if _, ok := labels[k]; !ok {
				labels[k] = v
			}
		}
	}
	if len(chain) > 0 && s.SnapshotterName != "" {
		labels["hull.io/unpacked."+s.SnapshotterName] = chain[len(chain)-1]
	}
	img, err := s.Meta.PutImage(ns, metadata.Image{Name: name, Target: target, Labels: labels})
	if err != nil {
		return Image{}, fmt.Errorf("image %q: %w", name, err)
	}
	return img, nil
}

// fetchLayer makes sure one layer blob is in the store, resuming a partial
// ingest with a Range request and retrying transient failures.
func (p *pullState) fetchLayer(ctx context.Context, l ocispec.Descriptor) error {
	const attempts = 3
	var err error
	for a := 0; a < attempts; a++ {
		var retry bool
		retry, err = p.fetchOnce(ctx, l)
		if err == nil || !retry || ctx.Err() != nil {
			return err
		}
		slog.Debug("pull: retrying layer", "ref", p.ref, "digest", l.Digest, "err", err)
		time.Sleep(time.Duration(a+1) * 200 * time.Millisecond)
	}
	return err
}

func (p *pullState) fetchOnce(ctx context.Context, l ocispec.Descriptor) (retry bool, err error) {
	if info, err := p.s.Content.Info(ctx, l.Digest); err == nil {
		if info.Size == l.Size {
			p.report(Progress{Digest: l.Digest, MediaType: l.MediaType, Status: StatusExists, Offset: l.Size, Total: l.Size})
			return false, nil
		}
		return false, fmt.Errorf("image %q: layer %s in the store is %d bytes, manifest says %d: %w", p.ref, l.Digest, info.Size, l.Size, ErrMalformed)
	}
	w, err := p.s.Content.Writer(ctx, l.Digest, l.Size)
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return true, nil // committed meanwhile: next attempt sees it
	}
	if errors.Is(err, errdefs.ErrUnavailable) {
		// Another pull is fetching this blob: wait for it.
		for {
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := p.s.Content.Info(ctx, l.Digest); err == nil {
				return true, nil
			}
			w, err = p.s.Content.Writer(ctx, l.Digest, l.Size)
			if err == nil {
				break
			}
			if errors.Is(err, errdefs.ErrAlreadyExists) {
				return true, nil
			}
			if !errors.Is(err, errdefs.ErrUnavailable) {
				return false, err
			}
		}
	}
	if err != nil {
		return false, fmt.Errorf("image %q: %w", p.ref, err)
	}
	defer w.Close()
	resumed := w.Offset()
	if resumed < l.Size {
		body, partial, err := p.client.blob(ctx, l.Digest, resumed)
		if err != nil {
			return !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrAuth), err
		}
		defer body.Close()
		if !partial && resumed > 0 {
			if err := w.Truncate(); err != nil {
				return false, err
			}
			resumed = 0
		}
		p.report(Progress{Digest: l.Digest, MediaType: l.MediaType, Status: StatusDownloading, Offset: w.Offset(), Total: l.Size, Resumed: resumed})
		buf := make([]byte, 256<<10)
		last := time.Now()
		for {
			n, rerr := body.Read(buf)
			if n > 0 {
				if _, err := w.Write(buf[:n]); err != nil {
					return false, fmt.Errorf("image %q: layer %s: %w", p.ref, l.Digest, err)
				}
				if time.Since(last) > 100*time.Millisecond {
					last = time.Now()
					p.report(Progress{Digest: l.Digest, MediaType: l.MediaType, Status: StatusDownloading, Offset: w.Offset(), Total: l.Size, Resumed: resumed})
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				// Keep the partial data: the retry resumes from here.
				return ctx.Err() == nil, fmt.Errorf("image %q: layer %s: %w", p.ref, l.Digest, classify(p.ref, p.client.ep.host, rerr))
			}
		}
	}
	if err := w.Commit(ctx); err != nil {
		// Commit removed the bad ingest; a retry downloads afresh.
		return true, fmt.Errorf("image %q: layer %s: %w", p.ref, l.Digest, err)
	}
	p.report(Progress{Digest: l.Digest, MediaType: l.MediaType, Status: StatusVerified, Offset: l.Size, Total: l.Size, Resumed: resumed})
	return false, nil
}
