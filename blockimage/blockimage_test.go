package blockimage_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/blockimage"
)

// makeTree builds a small rootfs with every kind of thing an image layer can
// hold.
func makeTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "etc/empty"), 0o700))
	must(os.MkdirAll(filepath.Join(root, "tmp"), 0o755))
	must(os.Chmod(filepath.Join(root, "tmp"), 0o1777))
	must(os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("hull\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "bin/su"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(filepath.Join(root, "bin/su"), 0o4755))
	must(os.WriteFile(filepath.Join(root, "bin/owned"), []byte("mine"), 0o640))
	must(os.Chown(filepath.Join(root, "bin/owned"), 1000, 2000))
	must(unix.Lsetxattr(filepath.Join(root, "bin/owned"), "user.hull", []byte("yes"), 0))
	must(os.Link(filepath.Join(root, "bin/su"), filepath.Join(root, "bin/su-link")))
	must(os.Symlink("../etc/hostname", filepath.Join(root, "bin/host")))
	must(os.Symlink(strings.Repeat("long/", 30)+"target", filepath.Join(root, "bin/longlink")))
	must(os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	must(unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mkfifo(filepath.Join(root, "dev/fifo"), 0o600))
	// A sparse 64 MiB file with data at both ends.
	f, err := os.Create(filepath.Join(root, "sparse"))
	must(err)
	_, err = f.WriteString("start")
	must(err)
	_, err = f.WriteAt([]byte("end"), 64<<20-3)
	must(err)
	must(f.Close())
	// Many small files.
	must(os.MkdirAll(filepath.Join(root, "many"), 0o755))
	for i := 0; i < 300; i++ {
		must(os.WriteFile(filepath.Join(root, "many", fmt.Sprintf("f%03d", i)), []byte(strings.Repeat("x", i*13)), 0o644))
	}
	return root
}

// describe lists every path under dir with what must survive into an image.
func describe(t *testing.T, dir string) []string {
	t.Helper()
	var lines []string
	inodes := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "lost+found" || strings.HasPrefix(rel, "lost+found/") {
			if d.IsDir() && rel == "lost+found" {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d:%d mtime=%d", rel, fi.Mode(), st.Uid, st.Gid, fi.ModTime().Unix())
		switch {
		case fi.Mode().IsRegular():
			line += fmt.Sprintf(" size=%d sha=%s", fi.Size(), fileSHA(t, p))
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					line += " linkof=" + first
				} else {
					inodes[st.Ino] = rel
				}
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		case fi.Mode()&fs.ModeDevice != 0:
			line += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			buf := make([]byte, 64)
			if n, err := unix.Lgetxattr(p, "user.hull", buf); err == nil {
				line += " user.hull=" + string(buf[:n])
			}
		}
		if rel == "." {
			// mkfs.ext4 creates lost+found in the root after copying the
			// tree, which moves the root's mtime to the build time.
			line = fmt.Sprintf(". %v %d:%d", fi.Mode(), st.Uid, st.Gid)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return lines
}

func fileSHA(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func needTool(t *testing.T, name string) {
	if _, err := exec.LookPath(name); err != nil {
		for _, d := range []string{"/usr/sbin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(d, name)); err == nil {
				return
			}
		}
		t.Skipf("%s not installed", name)
	}
}

// loopMount mounts img read-only through a loop device (mount(8) sets the
// loop device to clear itself on unmount) and returns the directory.
func loopMount(t *testing.T, img, fsType string) string {
	t.Helper()
	dir := t.TempDir()
	opts := "loop,ro"
	if fsType == "ext4" {
		opts += ",noload"
	}
	if out, err := exec.Command("mount", "-t", fsType, "-o", opts, img, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v: %s", img, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
		if out, _ := exec.Command("losetup", "-j", img).CombinedOutput(); len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("loop device left: %s", out)
		}
	})
	return dir
}

func TestBuild(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("makes device nodes and loop-mounts images: needs root")
	}
	src := makeTree(t)
	want := describe(t, src)
	tests := []struct {
		fs    string
		tool  string
		check []string // a checking command; IMG is replaced
		extra int64
	}{
		{fs: "ext4", tool: "mkfs.ext4", check: []string{"e2fsck", "-fn", "IMG"}, extra: 32 << 20},
		{fs: "erofs", tool: "mkfs.erofs", check: []string{"fsck.erofs", "IMG"}},
	}
	for _, tc := range tests {
		t.Run(tc.fs, func(t *testing.T) {
			needTool(t, tc.tool)
			out := t.TempDir()
			img := filepath.Join(out, "rootfs."+tc.fs)
			if err := blockimage.Build(context.Background(), src, img, tc.fs, tc.extra); err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(out)
			if len(ents) != 1 {
				t.Errorf("temp files left beside the image: %v", ents)
			}
			var st syscall.Stat_t
			if err := syscall.Stat(img, &st); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s image: %d bytes apparent, %d allocated", tc.fs, st.Size, st.Blocks*512)
			if st.Blocks*512 > 48<<20 {
				t.Errorf("image allocates %d bytes: the sparse file was not kept sparse", st.Blocks*512)
			}
			args := append([]string(nil), tc.check...)
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], "IMG", img)
			}
			if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
				t.Errorf("%s: %v\n%s", args, err, out)
			}
			if tc.fs == "ext4" {
				out, err := exec.Command("debugfs", "-R", "ls -l /bin", img).CombinedOutput()
				if err != nil || !strings.Contains(string(out), "su-link") {
					t.Errorf("debugfs ls -l /bin: %v\n%s", err, out)
				}
			}
			mnt := loopMount(t, img, tc.fs)
			got := describe(t, mnt)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("image differs from the tree:\n%s", lineDiff(want, got))
			}
			if tc.fs == "ext4" {
				var sfs unix.Statfs_t
				if err := unix.Statfs(mnt, &sfs); err != nil {
					t.Fatal(err)
				}
				if free := int64(sfs.Bfree) * int64(sfs.Bsize); free < tc.extra {
					t.Errorf("ext4 image has %d bytes free, asked for %d extra", free, tc.extra)
				}
			}
		})
	}
}

func lineDiff(want, got []string) string {
	w, g := map[string]bool{}, map[string]bool{}
	for _, l := range want {
		w[l] = true
	}
	for _, l := range got {
		g[l] = true
	}
	var b strings.Builder
	for _, l := range want {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range got {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// TestBuildExt4ManyInodes builds a tree of many tiny files and
// directories, where per-inode overhead dominates, and checks Build still
// fits it.
func TestBuildExt4ManyInodes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a faithful tree")
	}
	needTool(t, "mkfs.ext4")
	src := t.TempDir()
	for i := 0; i < 40; i++ {
		d := filepath.Join(src, fmt.Sprintf("d%02d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 100; j++ {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("a-rather-long-file-name-%04d", j)), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	img := filepath.Join(t.TempDir(), "many.ext4")
	if err := blockimage.Build(context.Background(), src, img, "ext4", 0); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("debugfs", "-R", "ls /d39", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "a-rather-long-file-name-0099") {
		t.Errorf("debugfs: %v\n%s", err, out)
	}
}

func TestBuildErrors(t *testing.T) {
	src := t.TempDir()
	dstDir := t.TempDir()
	fake := t.TempDir()
	script := "#!/bin/sh\necho 'mkfs.erofs: simulated failure: bad superblock' >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(fake, "mkfs.erofs"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		src, fs    string
		extra      int64
		path       string // PATH override
		wantErr    error
		wantSubstr string
	}{
		{name: "unknown fs", src: src, fs: "xfs", wantErr: errdefs.ErrInvalidArgument, wantSubstr: `"xfs"`},
		{name: "missing source", src: filepath.Join(src, "nope"), fs: "ext4", wantErr: os.ErrNotExist},
		{name: "extra size for erofs", src: src, fs: "erofs", extra: 1, wantErr: errdefs.ErrInvalidArgument},
		{name: "negative extra", src: src, fs: "ext4", extra: -1, wantErr: errdefs.ErrInvalidArgument},
		{name: "tool fails", src: src, fs: "erofs", path: fake, wantErr: blockimage.ErrTool, wantSubstr: "simulated failure"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.path != "" {
				t.Setenv("PATH", tc.path)
			}
			dst := filepath.Join(dstDir, "img")
			err := blockimage.Build(context.Background(), tc.src, dst, tc.fs, tc.extra)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantSubstr != "" && !strings.Contains(err.Error(), tc.wantSubstr) {
				t.Errorf("error %q lacks %q", err, tc.wantSubstr)
			}
			if ents, _ := os.ReadDir(dstDir); len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
}
