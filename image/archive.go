package image

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hullproject/hull/content"
)

const (
	annotationRefName     = ocispec.AnnotationRefName // org.opencontainers.image.ref.name
	annotationImageName   = "io.containerd.image.name"
	maxArchiveMetadata    = content.MaxInMemory
	dockerArchiveManifest = "manifest.json"
)

// ImportOptions tune Import.
type ImportOptions struct {
	// Name names images the archive leaves unnamed or names only by tag
	// (an OCI ref.name of "v1" becomes Name:v1).
	Name string
	// Unpack the imported images for Platform ("" for the host).
	Unpack   bool
	Platform string
}

// Import reads an OCI image layout (a directory, or a tar of one) or a
// `docker save` archive (tar, optionally gzip-compressed), verifies every
// blob into the content store and registers the images it names.
func (s *Service) Import(ctx context.Context, ns, src string, opts ImportOptions) ([]Image, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src, err)
	}
	dir := src
	if !st.IsDir() {
		tmp, err := os.MkdirTemp(s.Content.Root(), "import-")
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", src, err)
		}
		defer os.RemoveAll(tmp)
		if err := extractArchive(ctx, src, tmp); err != nil {
			return nil, fmt.Errorf("import %s: %w", src, err)
		}
		dir = tmp
	}
	lease := newID("import-")
	if _, err := s.Meta.CreateLease(ns, lease, s.leaseTTL()); err != nil {
		return nil, fmt.Errorf("import %s: %w", src, err)
	}
	defer s.Meta.DeleteLease(ns, lease)
	p := &pullState{s: s, ns: ns, ref: src, lease: lease}

	type named struct {
		name string
		desc ocispec.Descriptor
	}
	var todo []named
	switch {
	case exists(filepath.Join(dir, ocispec.ImageLayoutFile)):
		idx, err := readIndexFile(filepath.Join(dir, ocispec.ImageIndexFile))
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", src, err)
		}
		for _, m := range idx.Manifests {
			name, err := importName(m.Annotations, opts.Name)
			if err != nil {
				return nil, fmt.Errorf("import %s: manifest %s: %w", src, m.Digest, err)
			}
			if err := p.copyLayoutGraph(ctx, dir, m); err != nil {
				return nil, fmt.Errorf("import %s: %w", src, err)
			}
			todo = append(todo, named{name, ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size, Platform: m.Platform}})
		}
	case exists(filepath.Join(dir, dockerArchiveManifest)):
		ds, err := p.importDocker(ctx, dir, opts.Name)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", src, err)
		}
		for _, d := range ds {
			todo = append(todo, named{d.name, d.desc})
		}
	default:
		return nil, fmt.Errorf("import %s: neither an OCI layout (no %s) nor a docker save archive (no %s): %w",
			src, ocispec.ImageLayoutFile, dockerArchiveManifest, ErrMalformed)
	}
	if len(todo) == 0 {
		return nil, fmt.Errorf("import %s: no images in the archive: %w", src, ErrMalformed)
	}

	var out []Image
	for _, n := range todo {
		man, cfg, _, err := s.Resolve(ctx, n.desc, opts.Platform)
		if err != nil && (opts.Unpack || !errors.Is(err, ErrPlatform)) {
			return nil, fmt.Errorf("import %s: image %q: %w", src, n.name, err)
		}
		var chain []string
		if opts.Unpack {
			if s.Snapshotter == nil || s.Applier == nil {
				return nil, fmt.Errorf("import %s: unpack requested but no snapshotter configured: %w", src, errdefs.ErrFailedPrecondition)
			}
			if chain, err = s.unpack(ctx, p, man, cfg, nil); err != nil {
				return nil, fmt.Errorf("import %s: image %q: %w", src, n.name, err)
			}
		}
		blobs := []digest.Digest{n.desc.Digest}
		if err == nil {
			blobs = append(blobs, man.Config.Digest)
			for _, l := range man.Layers {
				blobs = append(blobs, l.Digest)
			}
		}
		img, err := s.register(ns, n.name, n.desc, map[string]string{}, blobs, man, chain)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// importName works out an image's name from layout annotations.
func importName(ann map[string]string, fallback string) (string, error) {
	if n := ann[annotationImageName]; n != "" {
		r, err := ParseReference(n)
		if err != nil {
			return "", err
		}
		return r.String(), nil
	}
	ref := ann[annotationRefName]
	if strings.Contains(ref, "/") {
		if r, err := ParseReference(ref); err == nil {
			return r.String(), nil
		}
	}
	if fallback == "" {
		return "", fmt.Errorf("no image name in the archive (ref.name %q): give one: %w", ref, errdefs.ErrInvalidArgument)
	}
	full := fallback
	if ref != "" {
		full = fallback + ":" + ref
	}
	r, err := ParseReference(full)
	if err != nil {
		return "", err
	}
	return r.String(), nil
}

func readIndexFile(p string) (ocispec.Index, error) {
	b, err := readLimited(p)
	if err != nil {
		return ocispec.Index{}, err
	}
	return parseIndex(b)
}

func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxArchiveMetadata+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxArchiveMetadata {
		return nil, fmt.Errorf("%s exceeds %d bytes: %w", filepath.Base(p), maxArchiveMetadata, ErrMalformed)
	}
	return b, nil
}

// copyLayoutGraph copies a descriptor and its children from a layout
// directory into the store, verifying each. Index entries whose manifests
// are not in the layout (other platforms) are skipped.
func (p *pullState) copyLayoutGraph(ctx context.Context, dir string, d ocispec.Descriptor) error {
	if err := checkDesc("blob", d); err != nil {
		return err
	}
	if err := p.copyLayoutBlob(ctx, dir, d); err != nil {
		return err
	}
	mt := d.MediaType
	if !isIndex(mt) && !isManifest(mt) && mt != "" {
		return nil
	}
	b, err := p.s.Content.ReadBlob(ctx, d.Digest)
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
			if !exists(layoutBlob(dir, m.Digest)) {
				continue
			}
			if err := p.copyLayoutGraph(ctx, dir, m); err != nil {
				return err
			}
		}
	case isManifest(mt):
		man, err := parseManifest(b)
		if err != nil {
			return err
		}
		if err := p.copyLayoutBlob(ctx, dir, man.Config); err != nil {
			return err
		}
		cb, err := p.s.Content.ReadBlob(ctx, man.Config.Digest)
		if err != nil {
			return err
		}
		if _, err := parseConfig(cb, man); err != nil {
			return err
		}
		for _, l := range man.Layers {
			if err := p.copyLayoutBlob(ctx, dir, l); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%s: media type %q: %w", d.Digest, mt, ErrUnsupported)
	}
	return nil
}

func layoutBlob(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func (p *pullState) copyLayoutBlob(ctx context.Context, dir string, d ocispec.Descriptor) error {
	if err := checkDesc("blob", d); err != nil {
		return err
	}
	if err := p.protect(d.Digest); err != nil {
		return err
	}
	if _, err := p.s.Content.Info(ctx, d.Digest); err == nil {
		return nil
	}
	f, err := os.Open(layoutBlob(dir, d.Digest))
	if err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	defer f.Close()
	return p.s.Content.Copy(ctx, d.Digest, d.Size, f)
}

type dockerEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

type namedDesc struct {
	name string
	desc ocispec.Descriptor
}

// importDocker converts a `docker save` archive: each entry becomes a
// Docker schema2 manifest over the archive's config and layer files (layers
// stay as they are: uncompressed tars, or gzip where the archive has it).
func (p *pullState) importDocker(ctx context.Context, dir, fallback string) ([]namedDesc, error) {
	b, err := readLimited(filepath.Join(dir, dockerArchiveManifest))
	if err != nil {
		return nil, err
	}
	var entries []dockerEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", dockerArchiveManifest, err, ErrMalformed)
	}
	var out []namedDesc
	for _, e := range entries {
		cfgPath, err := archivePath(dir, e.Config)
		if err != nil {
			return nil, err
		}
		cfg, err := readLimited(cfgPath)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", e.Config, err)
		}
		man := ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: mediaTypeDockerManifest,
			Config:    ocispec.Descriptor{MediaType: mediaTypeDockerConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		}
		for _, l := range e.Layers {
			lp, err := archivePath(dir, l)
			if err != nil {
				return nil, err
			}
			d, err := p.storeFile(ctx, lp)
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", l, err)
			}
			man.Layers = append(man.Layers, d)
		}
		if _, err := parseConfig(cfg, man); err != nil {
			return nil, err
		}
		if err := p.protect(man.Config.Digest); err != nil {
			return nil, err
		}
		if err := p.s.Content.WriteBlob(ctx, man.Config.Digest, cfg); err != nil {
			return nil, err
		}
		mb, err := json.Marshal(man)
		if err != nil {
			return nil, err
		}
		desc := ocispec.Descriptor{MediaType: mediaTypeDockerManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
		if err := p.protect(desc.Digest); err != nil {
			return nil, err
		}
		if err := p.s.Content.WriteBlob(ctx, desc.Digest, mb); err != nil {
			return nil, err
		}
		tags := e.RepoTags
		if len(tags) == 0 {
			if fallback == "" {
				return nil, fmt.Errorf("image with config %s has no RepoTags: give a name: %w", e.Config, errdefs.ErrInvalidArgument)
			}
			tags = []string{fallback}
		}
		for _, t := range tags {
			r, err := ParseReference(t)
			if err != nil {
				return nil, err
			}
			out = append(out, namedDesc{r.String(), desc})
		}
	}
	return out, nil
}

// archivePath resolves a path named inside an archive, refusing escapes.
func archivePath(dir, name string) (string, error) {
	clean := path.Clean("/" + name)
	if name == "" || clean == "/" || strings.Contains(name, "\x00") {
		return "", fmt.Errorf("archive path %q: %w", name, ErrMalformed)
	}
	return filepath.Join(dir, filepath.FromSlash(clean)), nil
}

// storeFile hashes a layer file and ingests it, sniffing its compression.
func (p *pullState) storeFile(ctx context.Context, fp string) (ocispec.Descriptor, error) {
	f, err := os.Open(fp)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer f.Close()
	h := sha256.New()
	var magic [2]byte
	n, err := io.Copy(h, f)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	f.ReadAt(magic[:], 0)
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
	mt := mediaTypeDockerLayer
	if magic[0] == 0x1f && magic[1] == 0x8b {
		mt = mediaTypeDockerLayerGzip
	}
	if err := p.protect(d); err != nil {
		return ocispec.Descriptor{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := p.s.Content.Copy(ctx, d, n, f); err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: n}, nil
}

// extractArchive unpacks a (possibly gzip) tar of an image archive into
// dir. Only directories and regular files are taken, and no name may leave
// dir: this is image metadata and blobs, never a filesystem.
func extractArchive(ctx context.Context, src, dir string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if m, _ := br.Peek(2); len(m) == 2 && m[0] == 0x1f && m[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%v: %w", err, ErrMalformed)
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not a tar archive: %v: %w", err, ErrMalformed)
		}
		if clean := path.Clean(h.Name); path.IsAbs(h.Name) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("entry %q escapes the archive: %w", h.Name, ErrMalformed)
		}
		target, err := archivePath(dir, h.Name)
		if err != nil {
			continue // "." and the like
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			_, err = io.Copy(out, tr)
			out.Close()
			if err != nil {
				return fmt.Errorf("entry %q: %v: %w", h.Name, err, ErrMalformed)
			}
		default:
			// Links and devices have no place in an image archive.
		}
	}
}

// ExportOptions tune Export.
type ExportOptions struct {
	// Platform chosen when an image's index is only partly present ("" for host).
	Platform string
}

// Export writes the named images of ns as an OCI image layout tar. Each
// image is listed in index.json with its full name as ref.name (and
// io.containerd.image.name), so `skopeo inspect oci-archive:FILE:NAME`
// finds it. An index whose platforms were not all pulled is exported as the
// manifest for the chosen platform.
func (s *Service) Export(ctx context.Context, ns string, names []string, w io.Writer, opts ExportOptions) error {
	if len(names) == 0 {
		return fmt.Errorf("export: no images named: %w", errdefs.ErrInvalidArgument)
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	blobs := map[digest.Digest]bool{}
	extra := map[digest.Digest][]byte{} // converted manifests
	for _, n := range names {
		img, err := s.Get(ctx, ns, n)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		desc := img.Target
		if complete, err := s.collect(ctx, desc, blobs); err != nil {
			return fmt.Errorf("export: image %q: %w", img.Name, err)
		} else if !complete {
			_, _, md, err := s.Resolve(ctx, desc, opts.Platform)
			if err != nil {
				return fmt.Errorf("export: image %q: %w", img.Name, err)
			}
			desc = md
			delete(blobs, img.Target.Digest)
		}
		if desc, err = s.toOCI(ctx, desc, blobs, extra); err != nil {
			return fmt.Errorf("export: image %q: %w", img.Name, err)
		}
		desc.Annotations = map[string]string{annotationRefName: img.Name, annotationImageName: img.Name}
		idx.Manifests = append(idx.Manifests, desc)
	}
	ib, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	writeFile := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o444, Size: int64(len(b)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := writeFile(ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"`+ocispec.ImageLayoutVersion+`"}`)); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := writeFile(ocispec.ImageIndexFile, ib); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	sorted := make([]digest.Digest, 0, len(blobs))
	for d := range blobs {
		sorted = append(sorted, d)
	}
	for d := range extra {
		if !blobs[d] {
			sorted = append(sorted, d)
		}
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	for _, d := range sorted {
		if err := ctx.Err(); err != nil {
			return err
		}
		if b, ok := extra[d]; ok {
			if err := writeFile("blobs/sha256/"+d.Encoded(), b); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			continue
		}
		r, err := s.Content.ReaderAt(ctx, d)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		err = tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + d.Encoded(), Mode: 0o444, Size: r.Size(), Typeflag: tar.TypeReg, Format: tar.FormatPAX})
		if err == nil {
			_, err = io.Copy(tw, io.NewSectionReader(r, 0, r.Size()))
		}
		r.Close()
		if err != nil {
			return fmt.Errorf("export: blob %s: %w", d, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// collect adds a descriptor's present graph to blobs and reports whether
// it was complete (every manifest of an index present).
func (s *Service) collect(ctx context.Context, d ocispec.Descriptor, blobs map[digest.Digest]bool) (bool, error) {
	if _, err := s.Content.Info(ctx, d.Digest); err != nil {
		return false, err
	}
	blobs[d.Digest] = true
	mt := d.MediaType
	if !isIndex(mt) && !isManifest(mt) && mt != "" {
		return true, nil
	}
	b, err := s.Content.ReadBlob(ctx, d.Digest)
	if err != nil {
		return false, err
	}
	if mt == "" {
		mt = sniff(b)
	}
	if isIndex(mt) {
		idx, err := parseIndex(b)
		if err != nil {
			return false, err
		}
		complete := true
		for _, m := range idx.Manifests {
			ok, err := s.collect(ctx, m, blobs)
			if errors.Is(err, errdefs.ErrNotFound) {
				complete = false
				continue
			}
			if err != nil {
				return false, err
			}
			complete = complete && ok
		}
		return complete, nil
	}
	man, err := parseManifest(b)
	if err != nil {
		return false, err
	}
	for _, c := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
		if _, err := s.Content.Info(ctx, c.Digest); err != nil {
			return false, err
		}
		blobs[c.Digest] = true
	}
	return true, nil
}

var ociLayerType = map[string]string{
	mediaTypeDockerLayerGzip:    ocispec.MediaTypeImageLayerGzip,
	mediaTypeDockerLayer:        ocispec.MediaTypeImageLayer,
	mediaTypeDockerForeignLayer: ocispec.MediaTypeImageLayerGzip,
}

// toOCI rewrites a Docker manifest or manifest list with OCI media types
// (config and layer bytes are the same), as `skopeo copy` to an OCI layout
// does; OCI tools look descriptors up by OCI media type. New manifests go in
// extra, replaced ones leave blobs.
func (s *Service) toOCI(ctx context.Context, d ocispec.Descriptor, blobs map[digest.Digest]bool, extra map[digest.Digest][]byte) (ocispec.Descriptor, error) {
	if d.MediaType != mediaTypeDockerManifest && d.MediaType != mediaTypeDockerManifestList {
		return d, nil
	}
	b, err := s.Content.ReadBlob(ctx, d.Digest)
	if err != nil {
		return d, err
	}
	var out []byte
	if d.MediaType == mediaTypeDockerManifest {
		man, err := parseManifest(b)
		if err != nil {
			return d, err
		}
		man.MediaType = ocispec.MediaTypeImageManifest
		man.Config.MediaType = ocispec.MediaTypeImageConfig
		for i, l := range man.Layers {
			if t, ok := ociLayerType[l.MediaType]; ok {
				man.Layers[i].MediaType = t
			}
		}
		if out, err = json.Marshal(man); err != nil {
			return d, err
		}
	} else {
		idx, err := parseIndex(b)
		if err != nil {
			return d, err
		}
		idx.MediaType = ocispec.MediaTypeImageIndex
		for i, m := range idx.Manifests {
			if idx.Manifests[i], err = s.toOCI(ctx, m, blobs, extra); err != nil {
				return d, err
			}
		}
		if out, err = json.Marshal(idx); err != nil {
			return d, err
		}
	}
	nd := d
	nd.MediaType = map[string]string{mediaTypeDockerManifest: ocispec.MediaTypeImageManifest, mediaTypeDockerManifestList: ocispec.MediaTypeImageIndex}[d.MediaType]
	nd.Digest, nd.Size = digest.FromBytes(out), int64(len(out))
	delete(blobs, d.Digest)
	extra[nd.Digest] = out
	return nd, nil
}
