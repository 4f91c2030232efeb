package imagebuild

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// annotationImageName is the name containerd (and hull images import)
// give an image of a layout.
const annotationImageName = "io.containerd.image.name"

// WriteLayout writes img as an OCI image layout tar at out, the image
// named ref (normalized: "localhost/nginx:latest") in the index through
// io.containerd.image.name and, as its tag, org.opencontainers.image.ref.name.
// The file appears whole or not at all.
func WriteLayout(img v1.Image, ref, out string) error {
	full, err := NormalizeName(ref)
	if err != nil {
		return err
	}
	tag := full[strings.LastIndex(full, ":")+1:]
	dir, err := os.MkdirTemp(filepath.Dir(out), ".layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
		annotationImageName:       full,
		ocispec.AnnotationRefName: tag,
	})); err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(out), ".layout-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	mtime := time.Unix(0, 0)
	if cf, err := img.ConfigFile(); err == nil && !cf.Created.IsZero() {
		mtime = cf.Created.Time
	}
	if err := tarDir(f, dir, mtime); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), out)
}

// tarDir writes dir's files (regular files and directories) as a tar,
// every entry owned by root and dated mtime (the same image gives the same
// bytes).
func tarDir(w io.Writer, dir string, mtime time.Time) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.ModTime, h.AccessTime, h.ChangeTime, h.Format = mtime, time.Time{}, time.Time{}, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// Push sends img to a registry as ref. insecure allows plain HTTP (a
// local registry such as 127.0.0.1:5000).
func Push(ctx context.Context, img v1.Image, ref string, insecure bool) error {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return fmt.Errorf("push %s: %v: %w", ref, err, ErrInvalidRecipe)
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}
