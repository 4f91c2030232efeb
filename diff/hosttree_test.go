package diff_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/diff"
)

// TestApplyHostTreeTar packs part of the host's own tree (/usr/sbin, zoneinfo
// and some setuid and hardlinked files of /usr/bin) with GNU tar in GNU and
// PAX formats, gzip-compressed, applies it, and compares every path with
// the original: type, mode, owner, size, content, symlink target,
// hardlinks. This checks Apply against the tar writer most layers come from.
func TestApplyHostTreeTar(t *testing.T) {
	needRoot(t)
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("GNU tar not installed")
	}
	paths := []string{"usr/sbin", "usr/share/zoneinfo"}
	for _, p := range []string{"usr/bin/chfn", "usr/bin/gpasswd", "usr/bin/perl", "usr/bin/perl5.36.0"} {
		if _, err := os.Lstat("/" + p); err == nil {
			paths = append(paths, p)
		}
	}
	for _, format := range []string{"gnu", "posix"} {
		t.Run(format, func(t *testing.T) {
			var before []string
			for _, p := range paths {
				before = append(before, hostDescribe(t, "/", p))
			}
			layer := filepath.Join(t.TempDir(), "layer.tar.gz")
			args := append([]string{"-C", "/", "--format=" + format, "--xattrs", "-czpf", layer}, paths...)
			if out, err := exec.Command(tarBin, args...).CombinedOutput(); err != nil {
				t.Skipf("tar of the host tree failed (files changing?): %v: %s", err, out)
			}
			dst := t.TempDir()
			f, err := os.Open(layer)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := diff.Apply(context.Background(), bindMounts(dst), f, "application/vnd.docker.image.rootfs.diff.tar.gzip"); err != nil {
				t.Fatal(err)
			}
			for i, p := range paths {
				want, got := hostDescribe(t, "/", p), hostDescribe(t, dst, p)
				if want != before[i] {
					t.Skipf("the host changed /%s during the test (a package install?)", p)
				}
				if want != got {
					t.Errorf("%s differs:\n%s", p, firstDiff(want, got))
				}
			}
		})
	}
}

func hostDescribe(t *testing.T, root, sub string) string {
	t.Helper()
	var b strings.Builder
	first := map[uint64]string{}
	err := filepath.WalkDir(filepath.Join(root, sub), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(&b, "%s %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			fmt.Fprintf(&b, " %d %s mtime=%d", fi.Size(), hashFile(t, p), fi.ModTime().Unix())
			if st.Nlink > 1 {
				if f, ok := first[st.Ino]; ok {
					fmt.Fprintf(&b, " =%s", f)
				} else {
					first[st.Ino] = rel
				}
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", l)
		case fi.Mode()&fs.ModeDevice != 0:
			fmt.Fprintf(&b, " %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func hashFile(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		return "unreadable"
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			return "host:  " + al[i] + "\napply: " + bl[i]
		}
	}
	return fmt.Sprintf("%d lines vs %d", len(al), len(bl))
}
