package diff_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/hullproject/hull/diff"
	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/snapshot"
	"github.com/hullproject/hull/snapshot/native"
	"github.com/hullproject/hull/snapshot/overlay"
)

var mtime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// e builds tar headers tersely.
type e = tar.Header

func dir(name string, mode int64) e {
	return e{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: mtime}
}
func file(name, content string, mode int64) e {
	return e{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(content)), Linkname: content, ModTime: mtime}
}
func sym(name, target string) e {
	return e{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: mtime}
}
func link(name, target string) e {
	return e{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: mtime}
}
func whiteout(name string) e {
	return e{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: mtime}
}

// mkTar writes the headers; a regular file's content is carried in Linkname
// (cleared before writing).
func mkTar(t testing.TB, hdrs ...e) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		content := ""
		if h.Typeflag == tar.TypeReg {
			content, h.Linkname = h.Linkname, ""
			h.Size = int64(len(content))
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %s: %v", h.Name, err)
		}
		if content != "" {
			if _, err := tw.Write([]byte(content)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return w.EncodeAll(b, nil)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// backend is a snapshotter under test.
type backend struct {
	name string
	open func(root string) (snapshot.Snapshotter, error)
}

var backends = []backend{
	{"overlay", func(root string) (snapshot.Snapshotter, error) { return overlay.New(root) }},
	{"native", func(root string) (snapshot.Snapshotter, error) { return native.New(root) }},
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("applies layers with ownership and mounts: needs root")
	}
}

func openBackend(t *testing.T, b backend) (snapshot.Snapshotter, string) {
	t.Helper()
	root := t.TempDir()
	s, err := b.open(root)
	if err != nil {
		if b.name == "overlay" {
			t.Skipf("overlay unusable here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		assertNoMounts(t, root)
	})
	return s, root
}

// unpack applies layers as an image unpack does: prepare on the previous
// layer, apply, commit under the layer's name.
func unpack(t *testing.T, ctx context.Context, s snapshot.Snapshotter, layers ...[]byte) string {
	t.Helper()
	parent := ""
	for i, l := range layers {
		name := "layer-" + string(rune('0'+i))
		key := name + "-extract"
		ms, err := s.Prepare(ctx, key, parent)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := diff.Apply(ctx, ms, bytes.NewReader(l), "", diff.WithLayerName(name))
		if err != nil {
			t.Fatalf("apply %s: %v", name, err)
		}
		if desc.Digest.String() != sha(l) || desc.Size != int64(len(l)) {
			t.Errorf("%s: diffID %s/%d, want %s/%d", name, desc.Digest, desc.Size, sha(l), len(l))
		}
		if err := s.Commit(ctx, name, key); err != nil {
			t.Fatal(err)
		}
		parent = name
	}
	return parent
}

func withMounted(t *testing.T, ms []mount.Mount, fn func(dir string)) {
	t.Helper()
	dir := t.TempDir()
	if err := mount.All(ms, dir); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := mount.UnmountAll(dir, 0); err != nil {
			t.Error(err)
		}
	}()
	fn(dir)
}

func assertNoMounts(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			t.Errorf("left mounted: %s", line)
		}
	}
}

// treeDigest summarises every path, type, mode, owner and content under
// dir, to tell whether anything changed.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := p + " " + fi.Mode().String() + " " + strconv.Itoa(int(st.Uid)) + ":" + strconv.Itoa(int(st.Gid)) + " " + fi.ModTime().String()
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			line += " " + sha(b)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func bindMounts(dir string) []mount.Mount {
	return []mount.Mount{{Type: "bind", Source: dir, Options: []string{"rw", "rbind"}}}
}

// newEndlessTar returns a function that writes entry i of an endless tar
// stream (one directory per 100 files).
func newEndlessTar(w io.Writer) func(i int) {
	tw := tar.NewWriter(w)
	return func(i int) {
		if i%100 == 0 {
			_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: fmt.Sprintf("d%d/", i/100), Mode: 0o755})
		}
		data := strings.Repeat("x", 1000)
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("d%d/f%d", i/100, i), Mode: 0o644, Size: int64(len(data))})
		_, _ = tw.Write([]byte(data))
		_ = tw.Flush()
	}
}
