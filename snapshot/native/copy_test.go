package native

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestCopyDirPreserves(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for ownership and devices")
	}
	src, dst := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(n string) string { return filepath.Join(src, n) }
	must(os.Mkdir(p("d"), 0o750))
	must(os.Chown(p("d"), 11, 12))
	must(os.WriteFile(p("d/suid"), []byte("x"), 0o755))
	must(os.Chown(p("d/suid"), 0, 0))
	must(unix.Chmod(p("d/suid"), 0o4755))
	must(os.Link(p("d/suid"), p("hl")))
	must(unix.Lsetxattr(p("d"), "user.k", []byte("v"), 0))
	must(os.Symlink("d/suid", p("sl")))
	must(unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mkfifo(p("fifo"), 0o600))
	f, err := os.Create(p("sparse"))
	must(err)
	_, err = f.WriteAt([]byte("end"), 100<<20)
	must(err)
	must(f.Close())
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	must(os.Chtimes(p("d"), old, old))

	must(CopyDir(context.Background(), src, dst))

	st := func(root, n string) *syscall.Stat_t {
		var s syscall.Stat_t
		must(syscall.Lstat(filepath.Join(root, n), &s))
		return &s
	}
	for _, n := range []string{"d", "d/suid", "hl", "sl", "null", "fifo", "sparse"} {
		a, b := st(src, n), st(dst, n)
		if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Rdev != b.Rdev || a.Size != b.Size || a.Mtim != b.Mtim {
			t.Errorf("%s: src mode %o %d:%d rdev %d size %d mtime %v, dst mode %o %d:%d rdev %d size %d mtime %v",
				n, a.Mode, a.Uid, a.Gid, a.Rdev, a.Size, a.Mtim, b.Mode, b.Uid, b.Gid, b.Rdev, b.Size, b.Mtim)
		}
	}
	if st(dst, "hl").Ino != st(dst, "d/suid").Ino {
		t.Error("hardlink not kept")
	}
	if b := st(dst, "sparse").Blocks * 512; b > 1<<20 {
		t.Errorf("sparse file copy allocates %d bytes", b)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(dst, "d"), "user.k", buf); err != nil || string(buf[:n]) != "v" {
		t.Errorf("xattr: %q %v", buf[:n], err)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "sl")); l != "d/suid" {
		t.Errorf("symlink -> %q", l)
	}
}
