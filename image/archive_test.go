package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/hullproject/hull/internal/testimages"
)

func TestExportSkopeoImport(t *testing.T) {
	_, std := standard(t)
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo is not installed")
	}
	ctx := context.Background()
	s := newService(t)
	refs := []string{std.Busybox, std.MultiArch, std.ManyLayers}
	want := map[string]Image{}
	for _, r := range refs {
		img, err := s.Pull(ctx, "default", r, PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want[img.Name] = img
	}
	out := filepath.Join(t.TempDir(), "images.tar")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Export(ctx, "default", refs, f, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	for _, r := range refs {
		t.Run("skopeo "+r, func(t *testing.T) {
			cmd := exec.Command("skopeo", "inspect", "oci-archive:"+out+":"+r)
			b, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("skopeo inspect: %v\n%s", err, b)
			}
			var info struct {
				Digest       string
				Architecture string
				Layers       []string
			}
			if err := json.Unmarshal(b, &info); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			// Docker-typed images are converted to OCI media types, so
			// compare what the manifest points at.
			man, cfg, _, err := s.Resolve(ctx, want[r].Target, "")
			if err != nil {
				t.Fatal(err)
			}
			var layers []string
			for _, l := range man.Layers {
				layers = append(layers, l.Digest.String())
			}
			if strings.Join(info.Layers, ",") != strings.Join(layers, ",") || info.Architecture != cfg.Architecture {
				t.Fatalf("skopeo sees %v %s, want %v %s", info.Layers, info.Architecture, layers, cfg.Architecture)
			}
		})
	}

	t.Run("import round trip", func(t *testing.T) {
		s2 := newService(t)
		withSnapshotter(t, s2, "")
		imgs, err := s2.Import(ctx, "default", out, ImportOptions{Unpack: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(imgs) != len(refs) {
			t.Fatalf("imported %d images, want %d", len(imgs), len(refs))
		}
		for _, img := range imgs {
			if _, ok := want[img.Name]; !ok {
				t.Fatalf("unexpected image %s", img.Name)
			}
			if img.Labels["hull.io/unpacked."+s2.SnapshotterName] == "" {
				t.Fatalf("%s not unpacked: %v", img.Name, img.Labels)
			}
		}
	})
}

func TestImportFormats(t *testing.T) {
	ctx := context.Background()
	img, err := testimages.Busybox(testimages.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	// OCI layout directory, named by tag only (as `skopeo copy ... oci:dir:v1` does).
	ociDir := filepath.Join(dir, "layout")
	lp, err := layout.Write(ociDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	ociTar := filepath.Join(dir, "layout.tar")
	tarDir(t, ociDir, ociTar)

	// docker save style, gzip layers (go-containerregistry's tarball).
	dockerGz := filepath.Join(dir, "docker-gz.tar")
	tag, _ := name.NewTag("example.com/app:1.0")
	if err := tarball.WriteToFile(dockerGz, tag, img); err != nil {
		t.Fatal(err)
	}
	// docker save style with uncompressed layer.tar files, as docker writes.
	dockerRaw := filepath.Join(dir, "docker-raw.tar")
	writeDockerSave(t, dockerRaw, img, "busybox:saved")

	notArchive := filepath.Join(dir, "junk")
	os.WriteFile(notArchive, []byte("this is not a tar"), 0o644)
	escape := filepath.Join(dir, "escape.tar")
	writeTar(t, escape, map[string]string{"../evil": "x"})
	empty := filepath.Join(dir, "empty.tar")
	writeTar(t, empty, map[string]string{"readme": "x"})

	tests := []struct {
		name, src, as string
		want          []string
		wantErr       error
	}{
		{"oci dir", ociDir, "example.com/app", []string{"example.com/app:v1"}, nil},
		{"oci tar", ociTar, "example.com/app", []string{"example.com/app:v1"}, nil},
		{"oci unnamed", ociDir, "", nil, errdefs.ErrInvalidArgument},
		{"docker save gzip", dockerGz, "", []string{"example.com/app:1.0"}, nil},
		{"docker save raw", dockerRaw, "", []string{"docker.io/library/busybox:saved"}, nil},
		{"not an archive", notArchive, "", nil, ErrMalformed},
		{"path escape", escape, "", nil, ErrMalformed},
		{"no image", empty, "", nil, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newService(t)
			withSnapshotter(t, s, "")
			imgs, err := s.Import(ctx, "default", tc.src, ImportOptions{Name: tc.as, Unpack: true})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.src) {
					t.Fatalf("error %q does not name %s", err, tc.src)
				}
				if l, _ := s.Meta.ListImages("default"); len(l) != 0 {
					t.Fatalf("registered %v", l)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, i := range imgs {
				got = append(got, i.Name)
				if _, _, _, err := s.Resolve(ctx, i.Target, ""); err != nil {
					t.Fatal(err)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("imported %v, want %v", got, tc.want)
			}
		})
	}
}

func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	files := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			files[rel] = string(b)
		}
		return nil
	})
	writeTar(t, out, files)
}

func writeTar(t *testing.T, out string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, c := range files {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg})
		tw.Write([]byte(c))
	}
	tw.Close()
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeDockerSave writes the layout `docker save` produces: uncompressed
// <id>/layer.tar files, a config json and manifest.json.
func writeDockerSave(t *testing.T, out string, img v1.Image, repoTag string) {
	t.Helper()
	files := map[string]string{}
	cfg, _ := img.RawConfigFile()
	cn, _ := img.ConfigName()
	files[cn.Hex+".json"] = string(cfg)
	layers, _ := img.Layers()
	var lnames []string
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		n := filepath.Join("layer"+string(rune('a'+i)), "layer.tar")
		files[n] = string(b)
		lnames = append(lnames, n)
	}
	m, _ := json.Marshal([]map[string]any{{"Config": cn.Hex + ".json", "RepoTags": []string{repoTag}, "Layers": lnames}})
	files["manifest.json"] = string(m)
	writeTar(t, out, files)
}
