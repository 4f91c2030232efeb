package diff_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/diff"
	"github.com/hullproject/hull/snapshot/overlay"
)

func withXattr(h e, k, v string) e {
	if h.PAXRecords == nil {
		h.PAXRecords = map[string]string{}
	}
	h.PAXRecords["SCHILY.xattr."+k] = v
	return h
}

func owned(h e, uid, gid int) e { h.Uid, h.Gid = uid, gid; return h }

func chainLayers(t *testing.T) [][]byte {
	l0 := mkTar(t,
		dir("etc/", 0o755),
		file("etc/a", "a0", 0o644),
		owned(dir("etc/sub/", 0o700), 5, 6),
		file("etc/sub/x", "x", 0o644),
		dir("usr/", 0o755), dir("usr/bin/", 0o755), dir("usr/lib/", 0o755),
		file("usr/bin/su", "su", 0o4755),
		withXattr(owned(file("usr/bin/sg", "sg", 0o2755), 1000, 2000), "user.hull", "yes"),
		file("usr/bin/tool", "tool", 0o755),
		dir("tmp/", 0o1777),
		sym("lib", "usr/lib"),
		file("usr/lib/libc.so", "libc", 0o644),
		link("etc/hl", "etc/a"),
		dir("opq/", 0o755), file("opq/old", "old", 0o644), dir("opq/olddir/", 0o755), file("opq/olddir/deep", "deep", 0o644),
		dir("dev/", 0o755),
		e{Typeflag: tar.TypeFifo, Name: "dev/fifo", Mode: 0o600, ModTime: mtime},
		e{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mtime},
		owned(dir("keep/", 0o750), 7, 7), file("keep/gone", "x", 0o644), file("keep/stays", "y", 0o644),
	)
	l1 := mkTar(t,
		withXattr(dir("etc/", 0o755), "trusted.overlay.opaque", "y"), // must not hide lower entries
		whiteout("etc/.wh.a"),
		dir("opq/", 0o755), whiteout("opq/.wh..wh..opq"), file("opq/new", "new", 0o644),
		file("lib/added", "added", 0o644), // through the lower layer's symlink
		whiteout("keep/.wh.gone"),         // parent only in the lower layer
		file("etc/sub", "now a file", 0o600),
		link("etc/toolcopy", "usr/bin/tool"), // target only in the lower layer
	)
	l2 := mkTar(t,
		dir("etc/a/", 0o711), file("etc/a/inner", "inner", 0o644),
		whiteout("usr/.wh.lib"),
		file("opq/new2", "new2", 0o644), // parent made from the opaque lower opq/
	)
	return [][]byte{l0, l1, l2}
}

type want struct {
	path    string
	content string      // for files; "" skips
	mode    os.FileMode // full mode incl. type; 0 skips
	uid     int         // -1 skips
	gone    bool
	link    string
}

func TestApplyLayerChain(t *testing.T) {
	needRoot(t)
	wants := []want{
		{path: "etc/a", mode: os.ModeDir | 0o711, uid: 0},
		{path: "etc/a/inner", content: "inner", mode: 0o644, uid: 0},
		{path: "etc/hl", content: "a0", uid: -1},
		{path: "etc/sub", content: "now a file", mode: 0o600, uid: 0},
		{path: "etc/sub/x", gone: true},
		{path: "etc/toolcopy", content: "tool", mode: 0o755, uid: -1},
		{path: "usr/bin/su", content: "su", mode: os.ModeSetuid | 0o755, uid: 0},
		{path: "usr/bin/sg", content: "sg", mode: os.ModeSetgid | 0o755, uid: 1000},
		{path: "tmp", mode: os.ModeDir | os.ModeSticky | 0o777, uid: 0},
		{path: "lib", link: "usr/lib", uid: -1},
		{path: "usr/lib", gone: true},
		{path: "opq/old", gone: true},
		{path: "opq/olddir", gone: true},
		{path: "opq/new", content: "new", uid: -1},
		{path: "opq/new2", content: "new2", uid: -1},
		{path: "keep", mode: os.ModeDir | 0o750, uid: 7},
		{path: "keep/gone", gone: true},
		{path: "keep/stays", content: "y", uid: -1},
		{path: "dev/fifo", mode: os.ModeNamedPipe | 0o600, uid: 0},
		{path: "dev/null", mode: os.ModeDevice | os.ModeCharDevice | 0o666, uid: 0},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := openBackend(t, b)
			top := unpack(t, ctx, s, chainLayers(t)...)
			ms, err := s.Prepare(ctx, "container", top)
			if err != nil {
				t.Fatal(err)
			}
			withMounted(t, ms, func(root string) {
				for _, w := range wants {
					checkWant(t, root, w)
				}
				if v := getxattr(filepath.Join(root, "usr/bin/sg"), "user.hull"); v != "yes" {
					t.Errorf("usr/bin/sg xattr user.hull = %q", v)
				}
				fi, err := os.Lstat(filepath.Join(root, "usr/bin/su"))
				if err == nil && !fi.ModTime().Equal(mtime) {
					t.Errorf("usr/bin/su mtime %v, want %v", fi.ModTime(), mtime)
				}
				fi, err = os.Lstat(filepath.Join(root, "tmp"))
				if err == nil && !fi.ModTime().Equal(mtime) {
					t.Errorf("tmp mtime %v, want %v", fi.ModTime(), mtime)
				}
				st := statOf(t, filepath.Join(root, "dev/null"))
				if st != nil && (unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3) {
					t.Errorf("dev/null is %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
				}
			})
			if b.name == "overlay" {
				checkOverlayFormat(t, ctx, s)
			}
			if b.name == "native" {
				// In the native copy the first layer's hardlink is kept.
				vms, err := s.View(ctx, "v0", "layer-0")
				if err != nil {
					t.Fatal(err)
				}
				withMounted(t, vms, func(root string) {
					x, y := statOf(t, filepath.Join(root, "etc/a")), statOf(t, filepath.Join(root, "etc/hl"))
					if x == nil || y == nil || x.Ino != y.Ino {
						t.Errorf("etc/hl is not a hardlink of etc/a")
					}
				})
			}
		})
	}
}

// checkOverlayFormat looks into the committed layer directories: whiteouts
// are overlay's 0/0 devices and opaque directories carry the xattr.
func checkOverlayFormat(t *testing.T, ctx context.Context, s any) {
	t.Helper()
	sn := s.(*overlay.Snapshotter)
	ms, err := sn.Prepare(ctx, "v1", "layer-1")
	if err != nil {
		t.Fatal(err)
	}
	_, lowers, ok := overlay.UpperDir(ms)
	if !ok {
		t.Fatalf("mounts %+v", ms)
	}
	upper := lowers[0] // layer-1's own directory
	st := statOf(t, filepath.Join(upper, "etc/a"))
	if st == nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/a in layer 1 is not an overlay whiteout: %+v", st)
	}
	if v := getxattr(filepath.Join(upper, "opq"), "trusted.overlay.opaque"); v != "y" {
		t.Errorf("opq in layer 1 opaque xattr = %q", v)
	}
	if v := getxattr(filepath.Join(upper, "etc"), "trusted.overlay.opaque"); v != "" {
		t.Errorf("a layer's own trusted.overlay xattr was applied to etc: %q", v)
	}
	if _, err := os.Lstat(filepath.Join(upper, "usr/lib/added")); err != nil {
		t.Errorf("lib/added did not follow the lower symlink into usr/lib: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(upper, "lib")); err == nil {
		t.Errorf("layer 1 shadowed the lower symlink lib")
	}
	if err := sn.Remove(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
}

func statOf(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Errorf("lstat %s: %v", p, err)
		return nil
	}
	return &st
}

func getxattr(p, name string) string {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func checkWant(t *testing.T, root string, w want) {
	t.Helper()
	p := filepath.Join(root, w.path)
	fi, err := os.Lstat(p)
	if w.gone {
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("%s should be gone: %v", w.path, err)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: %v", w.path, err)
		return
	}
	if w.mode != 0 && fi.Mode() != w.mode {
		t.Errorf("%s mode %v, want %v", w.path, fi.Mode(), w.mode)
	}
	if w.uid >= 0 {
		if uid := int(fi.Sys().(*syscall.Stat_t).Uid); uid != w.uid {
			t.Errorf("%s uid %d, want %d", w.path, uid, w.uid)
		}
	}
	if w.content != "" {
		b, err := os.ReadFile(p)
		if err != nil || string(b) != w.content {
			t.Errorf("%s = %q (%v), want %q", w.path, b, err, w.content)
		}
	}
	if w.link != "" {
		if l, err := os.Readlink(p); err != nil || l != w.link {
			t.Errorf("%s -> %q (%v), want %q", w.path, l, err, w.link)
		}
	}
}

// TestApplyCompressions applies the same layer uncompressed, gzip and zstd,
// by media type and by magic, and gets the same diffID.
func TestApplyCompressions(t *testing.T) {
	needRoot(t)
	raw := mkTar(t, dir("d/", 0o755), file("d/f", strings.Repeat("hull ", 10000), 0o644))
	tests := []struct {
		name, mediaType string
		data            []byte
		wantErr         error
	}{
		{"tar by type", "application/vnd.oci.image.layer.v1.tar", raw, nil},
		{"gzip by type", "application/vnd.oci.image.layer.v1.tar+gzip", gz(t, raw), nil},
		{"docker gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip", gz(t, raw), nil},
		{"zstd by type", "application/vnd.oci.image.layer.v1.tar+zstd", zst(t, raw), nil},
		{"gzip by magic", "", gz(t, raw), nil},
		{"zstd by magic", "application/octet-stream", zst(t, raw), nil},
		{"gzip declared, zstd given", "application/vnd.oci.image.layer.v1.tar+gzip", zst(t, raw), diff.ErrCorrupt},
		{"not a layer", "application/vnd.oci.image.config.v1+json", raw, diff.ErrMediaType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			ms := bindMounts(dst)
			desc, err := diff.Apply(context.Background(), ms, bytes.NewReader(tc.data), tc.mediaType)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if desc.Digest.String() != sha(raw) || desc.Size != int64(len(raw)) {
				t.Errorf("diffID %s size %d, want %s %d", desc.Digest, desc.Size, sha(raw), len(raw))
			}
			if b, _ := os.ReadFile(filepath.Join(dst, "d/f")); len(b) != 50000 {
				t.Errorf("d/f has %d bytes", len(b))
			}
		})
	}
}

// stallReader blocks until released, like a registry connection that hangs.
type stallReader struct{ release chan struct{} }

func (s stallReader) Read(p []byte) (int, error) {
	<-s.release
	return 0, io.ErrUnexpectedEOF
}

// TestApplyReturnsOnStalledSource rejects a bad entry at the start of a
// stream whose source then hangs: Apply must return without waiting for it.
func TestApplyReturnsOnStalledSource(t *testing.T) {
	needRoot(t)
	bad := mkTar(t, file("../escape", "x", 0o644))
	stall := stallReader{release: make(chan struct{})}
	defer close(stall.release)
	done := make(chan error, 1)
	go func() {
		_, err := diff.Apply(context.Background(), bindMounts(t.TempDir()),
			io.MultiReader(bytes.NewReader(bad[:1024]), stall), "application/vnd.oci.image.layer.v1.tar")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, diff.ErrUnsafeEntry) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Apply waited on a stalled source after failing")
	}
}

// TestApplyCanceled stops when the context is cancelled while the source
// hangs.
func TestApplyCanceled(t *testing.T) {
	needRoot(t)
	good := mkTar(t, dir("d/", 0o755), file("d/f", strings.Repeat("x", 4096), 0o644))
	stall := stallReader{release: make(chan struct{})}
	defer close(stall.release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// Only the first 1 KiB arrives: the tar reader waits for more.
		_, err := diff.Apply(ctx, bindMounts(t.TempDir()), io.MultiReader(bytes.NewReader(good[:1024]), stall), "")
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Apply ignored cancellation")
	}
}

// TestApplyRefusesReadOnly refuses to apply onto a view.
func TestApplyRefusesReadOnly(t *testing.T) {
	needRoot(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := openBackend(t, b)
			top := unpack(t, ctx, s, mkTar(t, file("a", "1", 0o644)), mkTar(t, file("b", "2", 0o644)))
			for _, parent := range []string{"layer-0", top} {
				ms, err := s.View(ctx, "v-"+parent, parent)
				if err != nil {
					t.Fatal(err)
				}
				_, err = diff.Apply(ctx, ms, bytes.NewReader(mkTar(t, file("c", "3", 0o644))), "")
				if !errors.Is(err, errdefs.ErrFailedPrecondition) {
					t.Errorf("apply onto a view of %s: %v", parent, err)
				}
			}
		})
	}
}

// TestWhiteoutSparesSameLayer: a whiteout only hides lower layers' entries
// (OCI image spec), even when it comes after the layer's own entry of the
// same name.
func TestWhiteoutSparesSameLayer(t *testing.T) {
	needRoot(t)
	lower := mkTar(t, file("bar", "old", 0o644), dir("foo/", 0o755), file("foo/a", "lower", 0o644))
	upper := mkTar(t,
		file("bar", "new", 0o644), whiteout(".wh.bar"),
		dir("foo/", 0o755), file("foo/b", "upper", 0o644), whiteout(".wh.foo"))
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := openBackend(t, b)
			top := unpack(t, ctx, s, lower, upper)
			ms, err := s.View(ctx, "v", top)
			if err != nil {
				t.Fatal(err)
			}
			withMounted(t, ms, func(root string) {
				checkWant(t, root, want{path: "bar", content: "new", uid: -1})
				checkWant(t, root, want{path: "foo/b", content: "upper", uid: -1})
				checkWant(t, root, want{path: "foo/a", gone: true})
			})
		})
	}
}
