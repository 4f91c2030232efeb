package image

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker media types (the OCI ones come from image-spec).
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

var (
	// ErrMalformed: a manifest, index or config that cannot be used.
	ErrMalformed = fmt.Errorf("malformed image: %w", errdefs.ErrInvalidArgument)
	// ErrPlatform: no manifest for the wanted platform.
	ErrPlatform = fmt.Errorf("no matching platform: %w", errdefs.ErrNotFound)
	// ErrUnsupported: a media type Hull does not handle (e.g. schema1).
	ErrUnsupported = fmt.Errorf("unsupported: %w", errdefs.ErrNotImplemented)
)

func isIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == mediaTypeDockerManifestList
}

func isManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == mediaTypeDockerManifest
}

// IsLayer reports whether a media type is a layer Hull can unpack.
func IsLayer(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		ocispec.MediaTypeImageLayerNonDistributable, ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck // still seen in the wild
		ocispec.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck
		mediaTypeDockerLayerGzip, mediaTypeDockerLayer, mediaTypeDockerForeignLayer:
		return true
	}
	return false
}

// sniff works out a manifest's media type from its body when the registry
// or layout did not say.
func sniff(b []byte) string {
	var probe struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     json.RawMessage   `json:"manifests"`
		Config        json.RawMessage   `json:"config"`
		FSLayers      []json.RawMessage `json:"fsLayers"`
	}
	if json.Unmarshal(b, &probe) != nil {
		return ""
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case probe.SchemaVersion == 1 || probe.FSLayers != nil:
		return mediaTypeDockerSchema1
	case probe.Manifests != nil:
		return ocispec.MediaTypeImageIndex
	case probe.Config != nil:
		return ocispec.MediaTypeImageManifest
	}
	return ""
}

func checkDesc(what string, d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("%s digest %q: %v: %w", what, d.Digest, err, ErrMalformed)
	}
	if d.Digest.Algorithm() != digest.SHA256 {
		return fmt.Errorf("%s digest %q: only sha256: %w", what, d.Digest, ErrUnsupported)
	}
	if d.Size < 0 {
		return fmt.Errorf("%s %s: negative size: %w", what, d.Digest, ErrMalformed)
	}
	return nil
}

// parseIndex decodes and validates an index or manifest list.
func parseIndex(b []byte) (ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("index: %v: %w", err, ErrMalformed)
	}
	if idx.SchemaVersion != 2 {
		return idx, fmt.Errorf("index: schemaVersion %d: %w", idx.SchemaVersion, ErrMalformed)
	}
	for _, m := range idx.Manifests {
		if err := checkDesc("index entry", m); err != nil {
			return idx, err
		}
	}
	return idx, nil
}

// parseManifest decodes and validates an image manifest.
func parseManifest(b []byte) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest: %v: %w", err, ErrMalformed)
	}
	if m.SchemaVersion != 2 {
		return m, fmt.Errorf("manifest: schemaVersion %d: %w", m.SchemaVersion, ErrMalformed)
	}
	if err := checkDesc("config", m.Config); err != nil {
		return m, err
	}
	if m.Config.Size > 4<<20 {
		return m, fmt.Errorf("config %s: %d bytes exceeds the 4 MiB limit: %w", m.Config.Digest, m.Config.Size, ErrMalformed)
	}
	for _, l := range m.Layers {
		if err := checkDesc("layer", l); err != nil {
			return m, err
		}
		if !IsLayer(l.MediaType) {
			return m, fmt.Errorf("layer %s: media type %q: %w", l.Digest, l.MediaType, ErrUnsupported)
		}
	}
	return m, nil
}

// parseConfig decodes an image config and checks it matches the manifest.
func parseConfig(b []byte, m ocispec.Manifest) (ocispec.Image, error) {
	var c ocispec.Image
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("config %s: %v: %w", m.Config.Digest, err, ErrMalformed)
	}
	if len(c.RootFS.DiffIDs) != len(m.Layers) {
		return c, fmt.Errorf("config %s: %d diff_ids for %d layers: %w", m.Config.Digest, len(c.RootFS.DiffIDs), len(m.Layers), ErrMalformed)
	}
	for _, d := range c.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return c, fmt.Errorf("config %s: diff_id %q: %v: %w", m.Config.Digest, d, err, ErrMalformed)
		}
	}
	return c, nil
}

// Platform is what an index entry is matched against.
type Platform struct {
	OS, Architecture, Variant string
}

// HostPlatform is the platform Hull runs on.
func HostPlatform() Platform {
	p := Platform{OS: "linux", Architecture: runtime.GOARCH}
	if p.Architecture == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// ParsePlatform reads "os/arch[/variant]" (or "" for the host).
func ParsePlatform(s string) (Platform, error) {
	if s == "" {
		return HostPlatform(), nil
	}
	var parts []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '/' {
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]: %w", s, errdefs.ErrInvalidArgument)
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	if p.Architecture == "arm64" && p.Variant == "" {
		p.Variant = "v8"
	}
	return p, nil
}

func (p Platform) String() string {
	if p.Variant != "" {
		return p.OS + "/" + p.Architecture + "/" + p.Variant
	}
	return p.OS + "/" + p.Architecture
}

// Match reports whether an index entry's platform is p.
func (p Platform) Match(o *ocispec.Platform) bool {
	if o == nil || o.OS != p.OS || o.Architecture != p.Architecture {
		return false
	}
	v := o.Variant
	if o.Architecture == "arm64" && v == "" {
		v = "v8"
	}
	return p.Variant == "" || v == p.Variant
}

// choose picks the first index entry for platform p.
func choose(idx ocispec.Index, p Platform) (ocispec.Descriptor, error) {
	var have []string
	for _, m := range idx.Manifests {
		if !isManifest(m.MediaType) && m.MediaType != "" {
			continue
		}
		if p.Match(m.Platform) {
			return m, nil
		}
		if m.Platform != nil {
			have = append(have, Platform{m.Platform.OS, m.Platform.Architecture, m.Platform.Variant}.String())
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("%s not among %v: %w", p, have, ErrPlatform)
}
