// Package testimages builds Hull's test images from the host's busybox-static
// binary with go-containerregistry, and pushes them to the local test
// registry (HULL_TEST_REGISTRY, started by scripts/test-env.d/registry.sh).
//
// The images:
//   - Busybox: one layer (/bin/busybox and a few applet links), Docker schema2
//     or OCI media types, any architecture in its config.
//   - MultiArch: an index with linux/amd64 and linux/arm64 entries (same files).
//   - ForeignOnly: an index with only linux/arm64 and linux/s390x entries.
//   - ManyLayers: busybox plus layers that add, overwrite, delete (whiteouts)
//     and replace directories (opaque whiteouts), optionally padded with
//     incompressible data for the pull benchmark.
//   - MixedCompression: gzip, zstd and uncompressed layers.
//   - Malicious: layers that try to write outside the snapshot ("../"
//     names, hardlinks out, absolute, relative and cross-layer symlinks).
package testimages

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxPath is where Debian's busybox-static puts the binary.
const BusyboxPath = "/bin/busybox"

var applets = []string{"sh", "ls", "cat", "echo", "true", "sleep", "env", "id"}

// Entry is one tar entry of a test layer.
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg, TypeDir, TypeSymlink, TypeLink
	Body     []byte
	Linkname string
	Mode     int64
}

// Layer builds a gzip layer from entries.
func Layer(entries []Entry) (v1.Layer, error) {
	data, err := TarBytes(entries)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}

// TarBytes builds an uncompressed tar of entries.
func TarBytes(entries []Entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Linkname: e.Linkname, Mode: e.Mode, ModTime: mtime, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Size > 0 {
			if _, err := tw.Write(e.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// BusyboxLayer is the base layer: /bin/busybox and applet symlinks.
func BusyboxLayer() (v1.Layer, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("test images need busybox-static: %w", err)
	}
	es := []Entry{
		{Name: "bin/", Type: tar.TypeDir},
		{Name: "bin/busybox", Body: bin, Mode: 0o755},
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/sh\n")},
		{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
	}
	for _, a := range applets {
		es = append(es, Entry{Name: "bin/" + a, Type: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	return Layer(es)
}

// Options select media types and platform of a built image.
type Options struct {
	OCI  bool   // OCI media types instead of Docker schema2
	Arch string // config architecture; default runtime.GOARCH
}

func finish(img v1.Image, o Options) (v1.Image, error) {
	arch := o.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	if arch == "arm64" {
		cf.Variant = "v8"
	}
	cf.Created = v1.Time{Time: time.Unix(1700000000, 0).UTC()}
	cf.Config.Cmd = []string{"/bin/sh"}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	if o.OCI {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	return img, nil
}

// Busybox builds the one-layer busybox image.
func Busybox(o Options) (v1.Image, error) {
	l, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: l, MediaType: layerType(o)})
	if err != nil {
		return nil, err
	}
	return finish(img, o)
}

func layerType(o Options) types.MediaType {
	if o.OCI {
		return types.OCILayer
	}
	return types.DockerLayer
}

// Index builds an index of busybox images, one per architecture.
func Index(oci bool, archs ...string) (v1.ImageIndex, error) {
	var idx v1.ImageIndex = empty.Index
	if oci {
		idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	} else {
		idx = mutate.IndexMediaType(idx, types.DockerManifestList)
	}
	for _, a := range archs {
		img, err := Busybox(Options{OCI: oci, Arch: a})
		if err != nil {
			return nil, err
		}
		p := &v1.Platform{OS: "linux", Architecture: a}
		if a == "arm64" {
			p.Variant = "v8"
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	return idx, nil
}

// ManyLayersExpect describes the merged filesystem of ManyLayers: paths that
// must exist (with their content, if a regular file) and paths that must not.
type ManyLayersExpect struct {
	Present map[string]string // path → content ("" for directories and links)
	Absent  []string
}

// ManyLayers builds busybox plus n ≥ 4 further layers. Each layer writes
// /data/layerN; the first ones also set up files and directories that later
// layers delete (whiteouts) or replace (opaque directories). pad bytes of
// incompressible data go into each extra layer (for benchmarks).
func ManyLayers(n, pad int, o Options) (v1.Image, ManyLayersExpect, error) {
	if n < 4 {
		n = 4
	}
	exp := ManyLayersExpect{Present: map[string]string{}}
	base, err := BusyboxLayer()
	if err != nil {
		return nil, exp, err
	}
	adds := []mutate.Addendum{{Layer: base, MediaType: layerType(o)}}
	rng := rand.New(rand.NewSource(42))
	for i := 1; i <= n; i++ {
		es := []Entry{{Name: "data/", Type: tar.TypeDir}}
		body := fmt.Sprintf("layer %d\n", i)
		es = append(es, Entry{Name: fmt.Sprintf("data/layer%d", i), Body: []byte(body)})
		exp.Present[fmt.Sprintf("/data/layer%d", i)] = body
		switch i {
		case 1:
			es = append(es,
				Entry{Name: "gone/", Type: tar.TypeDir},
				Entry{Name: "gone/file", Body: []byte("deleted later\n")},
				Entry{Name: "opaque/", Type: tar.TypeDir},
				Entry{Name: "opaque/old", Body: []byte("hidden by opaque\n")},
				Entry{Name: "keep/", Type: tar.TypeDir},
				Entry{Name: "keep/a", Body: []byte("a1\n")},
				Entry{Name: "keep/b", Body: []byte("b1\n")},
			)
		case 2:
			es = append(es,
				Entry{Name: "gone/.wh.file"},                // whiteout of a file
				Entry{Name: "keep/a", Body: []byte("a2\n")}, // overwrite
				Entry{Name: ".wh.gone-dir-later"},           // whiteout of nothing is harmless
			)
		case 3:
			es = append(es,
				Entry{Name: ".wh.gone"}, // whiteout of a whole directory
				Entry{Name: "opaque/", Type: tar.TypeDir},
				Entry{Name: "opaque/.wh..wh..opq"},
				Entry{Name: "opaque/new", Body: []byte("after opaque\n")},
				Entry{Name: "keep/.wh.b"},
			)
		}
		if pad > 0 {
			junk := make([]byte, pad)
			rng.Read(junk)
			es = append(es, Entry{Name: fmt.Sprintf("data/pad%d", i), Body: junk})
		}
		l, err := Layer(es)
		if err != nil {
			return nil, exp, err
		}
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: layerType(o)})
	}
	exp.Present["/keep/a"] = "a2\n"
	exp.Present["/opaque/new"] = "after opaque\n"
	exp.Present["/bin/busybox"] = ""
	exp.Absent = []string{"/gone", "/gone/file", "/opaque/old", "/keep/b", "/data/.wh.x"}
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		return nil, exp, err
	}
	img, err = finish(img, o)
	return img, exp, err
}

// MixedCompression builds busybox (gzip) plus a zstd layer adding
// /zstd/file and an uncompressed layer adding /plain/file (OCI types).
func MixedCompression() (v1.Image, error) {
	base, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	zdata, err := TarBytes([]Entry{{Name: "zstd/", Type: tar.TypeDir}, {Name: "zstd/file", Body: []byte("zstd layer\n")}})
	if err != nil {
		return nil, err
	}
	zl, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(zdata)), nil
	}, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	if err != nil {
		return nil, err
	}
	pdata, err := TarBytes([]Entry{{Name: "plain/", Type: tar.TypeDir}, {Name: "plain/file", Body: []byte("plain layer\n")}})
	if err != nil {
		return nil, err
	}
	pl := static.NewLayer(pdata, types.OCIUncompressedLayer)
	img, err := mutate.Append(empty.Image,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer},
		mutate.Addendum{Layer: zl, MediaType: types.OCILayerZStd},
		mutate.Addendum{Layer: pl, MediaType: types.OCIUncompressedLayer})
	if err != nil {
		return nil, err
	}
	return finish(img, Options{OCI: true})
}

// Registry returns HULL_TEST_REGISTRY, skipping the test when it is unset.
func Registry(t testing.TB) string {
	t.Helper()
	r := os.Getenv("HULL_TEST_REGISTRY")
	if r == "" {
		t.Skip("HULL_TEST_REGISTRY is not set: run through scripts/test.sh, which starts docker-registry")
	}
	return r
}

// Push pushes an image or index to registry/repo:tag (plain HTTP) and
// returns the pushed reference.
func Push(ctx context.Context, registry, repoTag string, x any, opts ...remote.Option) (string, error) {
	s := path.Join(registry, repoTag)
	ref, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		return "", err
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	switch v := x.(type) {
	case v1.Image:
		err = remote.Write(ref, v, opts...)
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, v, opts...)
	default:
		err = fmt.Errorf("push %s: unsupported %T", s, x)
	}
	if err != nil {
		return "", fmt.Errorf("push %s: %w", s, err)
	}
	return s, nil
}

// Standard names the images PushStandard pushes.
type Standard struct {
	Busybox      string // docker schema2, host arch
	BusyboxOCI   string // OCI, host arch
	MultiArch    string // docker manifest list amd64+arm64
	MultiArchOCI string // OCI index amd64+arm64
	ForeignOnly  string // index with arm64 + s390x only
	ManyLayers   string // busybox + 6 layers with whiteouts and opaque dirs
	Mixed        string // gzip, zstd and uncompressed layers
	ManyExpect   ManyLayersExpect
}

// PushStandard builds and pushes the standard test images under prefix.
func PushStandard(ctx context.Context, registry, prefix string) (Standard, error) {
	var s Standard
	var err error
	push := func(dst *string, tag string, x any, e error) {
		if err != nil {
			return
		}
		if e != nil {
			err = e
			return
		}
		*dst, err = Push(ctx, registry, prefix+tag, x)
	}
	img, e := Busybox(Options{})
	push(&s.Busybox, "/busybox:latest", img, e)
	img, e = Busybox(Options{OCI: true})
	push(&s.BusyboxOCI, "/busybox:oci", img, e)
	idx, e := Index(false, "amd64", "arm64")
	push(&s.MultiArch, "/multi:latest", idx, e)
	idx, e = Index(true, "amd64", "arm64")
	push(&s.MultiArchOCI, "/multi:oci", idx, e)
	idx, e = Index(true, "arm64", "s390x")
	push(&s.ForeignOnly, "/foreign:latest", idx, e)
	img, exp, e := ManyLayers(6, 0, Options{OCI: true})
	s.ManyExpect = exp
	push(&s.ManyLayers, "/many:latest", img, e)
	img, e = MixedCompression()
	push(&s.Mixed, "/mixed:latest", img, e)
	return s, err
}

// Malicious kinds: layers that try to write outside the snapshot.
const (
	EscapeDotDot       = "dotdot"        // an entry named ../../..<marker>/pwned
	EscapeHardlink     = "hardlink"      // a hardlink to ../../../etc/passwd
	EscapeAbsSymlink   = "abs-symlink"   // a symlink to <marker>, then a file through it
	EscapeRelSymlink   = "rel-symlink"   // a symlink to ../../../<marker>, then a file through it
	EscapeLayerSymlink = "layer-symlink" // a symlink in one layer, a file through it in the next
)

// Malicious builds busybox plus a layer of the given kind aimed at the
// host directory marker (absolute path, e.g. /tmp/hull-evil-123). A safe
// unpack either refuses the layer or keeps every write inside the snapshot:
// marker must not appear on the host.
func Malicious(kind, marker string) (v1.Image, error) {
	base, err := BusyboxLayer()
	if err != nil {
		return nil, err
	}
	rel := "../../../../../../../../.." + marker
	var layers [][]Entry
	switch kind {
	case EscapeDotDot:
		layers = [][]Entry{{{Name: rel + "/pwned", Body: []byte("escaped\n")}}}
	case EscapeHardlink:
		layers = [][]Entry{{{Name: "passwd-link", Type: tar.TypeLink, Linkname: "../../../../../../etc/passwd"}}}
	case EscapeAbsSymlink:
		layers = [][]Entry{{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: marker, Mode: 0o777},
			{Name: "evil/pwned", Body: []byte("escaped\n")},
		}}
	case EscapeRelSymlink:
		layers = [][]Entry{{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: rel, Mode: 0o777},
			{Name: "evil/pwned", Body: []byte("escaped\n")},
		}}
	case EscapeLayerSymlink:
		layers = [][]Entry{
			{{Name: "evil", Type: tar.TypeSymlink, Linkname: marker, Mode: 0o777}},
			{{Name: "evil/pwned", Body: []byte("escaped\n")}},
		}
	default:
		return nil, fmt.Errorf("unknown malicious layer kind %q", kind)
	}
	adds := []mutate.Addendum{{Layer: base, MediaType: types.OCILayer}}
	for _, es := range layers {
		l, err := Layer(es)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: types.OCILayer})
	}
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		return nil, err
	}
	return finish(img, Options{OCI: true})
}
