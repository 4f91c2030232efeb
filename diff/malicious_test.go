package diff_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hullproject/hull/diff"
)

// TestMaliciousLayers applies hostile layers and checks that nothing
// outside the snapshot changes (a sentinel directory, and the host's /etc)
// and that each is either rejected with a clear error or neutralised as
// containerd does: followed as if the snapshot were "/".
func TestMaliciousLayers(t *testing.T) {
	needRoot(t)
	outside := t.TempDir() // the sentinel
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(outside, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "etc", "passwd"), []byte("root:x:0:0"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := outside[1:] // relative form, for "../" climbs
	climb := strings.Repeat("../", 30)

	tests := []struct {
		name    string
		base    []e // a lower layer, if any
		layer   []e
		opts    []diff.ApplyOpt
		wantErr error  // nil: neutralised
		inside  string // with wantErr nil: a path that must now exist inside the snapshot
		absent  string // a path that must not exist inside the snapshot
	}{
		{name: "dotdot name", layer: []e{file(climb+out+"/pwned", "x", 0o644)}, wantErr: diff.ErrUnsafeEntry},
		{name: "dotdot in the middle", layer: []e{dir("a/", 0o755), file("a/../../"+out+"/pwned", "x", 0o644)}, wantErr: diff.ErrUnsafeEntry},
		{name: "absolute name", layer: []e{file(outside+"/pwned", "x", 0o644)}, inside: out + "/pwned"},
		{name: "absolute /etc name", layer: []e{file("/etc/hull-test-x", "x", 0o644)}, inside: "etc/hull-test-x"},
		{name: "absolute symlink then file through it",
			layer: []e{sym("evil", outside), file("evil/pwned", "x", 0o644)}, inside: out + "/pwned"},
		{name: "symlink to /etc then evil/passwd",
			layer: []e{sym("evil", "/etc"), file("evil/passwd", "x", 0o644)}, inside: "etc/passwd"},
		{name: "relative symlink escape then file",
			layer: []e{sym("evil", climb+out), file("evil/pwned", "x", 0o644)}, inside: out + "/pwned"},
		{name: "symlink to ../../.. then file",
			layer: []e{dir("d/", 0o755), sym("d/evil", "../../.."), file("d/evil/"+out+"/pwned", "x", 0o644)}, inside: out + "/pwned"},
		{name: "symlink chain",
			layer: []e{sym("a", "b"), sym("b", outside), file("a/pwned", "x", 0o644)}, inside: out + "/pwned"},
		{name: "symlink in the lower layer",
			base: []e{sym("evil", outside)}, layer: []e{file("evil/pwned", "x", 0o644)}, inside: out + "/pwned"},
		{name: "relative symlink in the lower layer",
			base: []e{dir("x/", 0o755), sym("x/evil", "../"+climb+out)}, layer: []e{file("x/evil/etc/passwd", "x", 0o644)}, inside: out + "/etc/passwd"},
		{name: "file replaces a symlink, not its target",
			layer: []e{sym("evil", outside+"/secret"), file("evil", "x", 0o644)}, inside: "evil"},
		{name: "hardlink to an absolute outside path",
			layer: []e{link("stolen", outside+"/secret")}, wantErr: diff.ErrUnsafeEntry, absent: "stolen"},
		{name: "hardlink to /etc/shadow",
			layer: []e{link("shadow", "/etc/shadow")}, wantErr: diff.ErrUnsafeEntry, absent: "shadow"},
		{name: "hardlink climbing out",
			layer: []e{link("stolen", climb+out+"/secret")}, wantErr: diff.ErrUnsafeEntry, absent: "stolen"},
		{name: "hardlink through a symlink",
			layer: []e{sym("evil", outside), link("stolen", "evil/secret")}, wantErr: diff.ErrUnsafeEntry, absent: "stolen"},
		{name: "hardlink through a lower symlink",
			base: []e{sym("evil", outside)}, layer: []e{link("stolen", "evil/secret")}, wantErr: diff.ErrUnsafeEntry, absent: "stolen"},
		{name: "whiteout through a symlink",
			layer: []e{sym("evil", outside), whiteout("evil/.wh.secret")}},
		{name: "opaque whiteout through a symlink",
			layer: []e{sym("evil", outside), whiteout("evil/.wh..wh..opq")}},
		{name: "whiteout of ..",
			layer: []e{dir("d/", 0o755), whiteout("d/.wh..."), file("x", "x", 0o644)}, wantErr: diff.ErrUnsafeEntry},
		{name: "device node skipped when devices are off",
			layer: []e{dir("dev/", 0o755), {Typeflag: tar.TypeBlock, Name: "dev/sda", Mode: 0o600, Devmajor: 8, ModTime: mtime}},
			opts:  []diff.ApplyOpt{diff.WithoutDevices()}, inside: "dev", absent: "dev/sda"},
		{name: "overlay xattr in a layer is dropped",
			base:  []e{dir("d/", 0o755), file("d/keep", "k", 0o644)},
			layer: []e{withXattr(dir("d/", 0o755), "trusted.overlay.opaque", "y")}, inside: "d/keep"},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := openBackend(t, b)
			for i, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					before := treeDigest(t, outside)
					parent := ""
					if tc.base != nil {
						parent = fmt.Sprintf("base-%d", i)
						ms, err := s.Prepare(ctx, parent+"-x", "")
						if err != nil {
							t.Fatal(err)
						}
						if _, err := diff.Apply(ctx, ms, bytes.NewReader(mkTar(t, tc.base...)), ""); err != nil {
							t.Fatalf("base layer: %v", err)
						}
						if err := s.Commit(ctx, parent, parent+"-x"); err != nil {
							t.Fatal(err)
						}
					}
					key := fmt.Sprintf("evil-%d", i)
					ms, err := s.Prepare(ctx, key, parent)
					if err != nil {
						t.Fatal(err)
					}
					opts := append([]diff.ApplyOpt{diff.WithLayerName("sha256:evil")}, tc.opts...)
					_, err = diff.Apply(ctx, ms, bytes.NewReader(mkTar(t, tc.layer...)), "application/vnd.oci.image.layer.v1.tar", opts...)
					if tc.wantErr != nil {
						if !errors.Is(err, tc.wantErr) {
							t.Errorf("err = %v, want %v", err, tc.wantErr)
						} else if !strings.Contains(err.Error(), "sha256:evil") {
							t.Errorf("error does not name the layer: %v", err)
						} else {
							t.Logf("rejected: %v", err)
						}
					} else if err != nil {
						t.Errorf("err = %v, want the entry neutralised", err)
					}
					if after := treeDigest(t, outside); after != before {
						t.Fatalf("SENTINEL CHANGED:\nbefore:\n%s\nafter:\n%s", before, after)
					}
					withMounted(t, ms, func(root string) {
						if tc.inside != "" {
							if _, err := os.Lstat(filepath.Join(root, tc.inside)); err != nil {
								t.Errorf("neutralised entry not inside the snapshot: %v", err)
							}
						}
						if tc.absent != "" {
							if _, err := os.Lstat(filepath.Join(root, tc.absent)); err == nil {
								t.Errorf("%s exists", tc.absent)
							}
						}
					})
					// A failed apply leaves the snapshot removable.
					if err := s.Remove(ctx, key); err != nil {
						t.Errorf("remove after apply: %v", err)
					}
				})
			}
		})
	}
	// The host's /etc: other work on this machine may legitimately edit
	// passwd, so look for what these layers would have done to it.
	if _, err := os.Lstat("/etc/hull-test-x"); err == nil {
		t.Errorf("/etc/hull-test-x was created on the host")
	}
	for _, p := range []string{"/etc/passwd", "/etc/shadow"} {
		if b, err := os.ReadFile(p); err != nil || string(b) == "x" || !strings.Contains(string(b), "root:") {
			t.Errorf("host %s damaged: %q %v", p, b, err)
		}
	}
}

// TestCorruptStreams rejects truncated and damaged streams with an error
// naming the layer, and leaves the snapshot removable.
func TestCorruptStreams(t *testing.T) {
	needRoot(t)
	var hdrs []e
	for i := 0; i < 50; i++ {
		rnd := rand.New(rand.NewPCG(uint64(i), 1))
		data := make([]byte, 20000)
		for j := range data {
			data[j] = byte(rnd.IntN(256))
		}
		hdrs = append(hdrs, file(fmt.Sprintf("f%02d", i), string(data), 0o644))
	}
	raw := mkTar(t, hdrs...)
	gzipped := gz(t, raw)
	flipped := append([]byte(nil), gzipped...)
	flipped[len(flipped)/2] ^= 0xff
	badCRC := append([]byte(nil), gzipped...)
	badCRC[len(badCRC)-6] ^= 0xff
	tests := []struct {
		name, mediaType string
		data            []byte
	}{
		{"truncated gzip", "application/vnd.oci.image.layer.v1.tar+gzip", gzipped[:len(gzipped)/2]},
		{"gzip missing its trailer", "application/vnd.oci.image.layer.v1.tar+gzip", gzipped[:len(gzipped)-4]},
		{"damaged gzip", "application/vnd.oci.image.layer.v1.tar+gzip", flipped},
		{"gzip with a bad CRC", "application/vnd.oci.image.layer.v1.tar+gzip", badCRC},
		{"truncated zstd", "application/vnd.oci.image.layer.v1.tar+zstd", zst(t, raw)[:len(raw)/3]},
		{"truncated tar", "application/vnd.oci.image.layer.v1.tar", raw[:len(raw)/2+100]},
		{"garbage", "", []byte("this is not a layer at all, not even close, padding padding padding")},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s, root := openBackend(t, b)
			for i, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					key := fmt.Sprintf("bad-%d", i)
					ms, err := s.Prepare(ctx, key, "")
					if err != nil {
						t.Fatal(err)
					}
					_, err = diff.Apply(ctx, ms, bytes.NewReader(tc.data), tc.mediaType, diff.WithLayerName("sha256:broken"))
					if !errors.Is(err, diff.ErrCorrupt) {
						t.Fatalf("err = %v, want ErrCorrupt", err)
					}
					if !strings.Contains(err.Error(), "sha256:broken") {
						t.Errorf("error does not name the layer: %v", err)
					}
					t.Logf("rejected: %v", err)
					if err := s.Remove(ctx, key); err != nil {
						t.Errorf("remove: %v", err)
					}
				})
			}
			ents, _ := os.ReadDir(filepath.Join(root, "snapshots"))
			if len(ents) != 0 {
				t.Errorf("%d snapshot directories left", len(ents))
			}
		})
	}
}
