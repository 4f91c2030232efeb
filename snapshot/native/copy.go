package native

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// CopyDir copies the tree src into the existing directory dst, preserving
// ownership, modes (setuid, setgid, sticky), times, xattrs, hardlinks,
// symlinks, device nodes and fifos. Regular files are reflinked where the
// filesystem can, and sparse files keep their holes.
func CopyDir(ctx context.Context, src, dst string) error {
	c := &copier{ctx: ctx, links: map[inode]string{}}
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("copy %s: not a directory", src)
	}
	if err := c.copyDir(src, dst, fi, true); err != nil {
		return err
	}
	return nil
}

// CopyEntry copies one file, symlink, device node or fifo (not a
// directory) from src to dst with its metadata. dst must not exist.
func CopyEntry(ctx context.Context, src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("copy %s: is a directory", src)
	}
	c := &copier{ctx: ctx, links: map[inode]string{}}
	return c.copyEntry(src, dst, fi)
}

type inode struct{ dev, ino uint64 }

type copier struct {
	ctx   context.Context
	links map[inode]string
}

func (c *copier) copyDir(src, dst string, fi os.FileInfo, exists bool) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	if !exists {
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("read dir %s: %w", src, err)
	}
	for _, n := range names {
		s, d := filepath.Join(src, n), filepath.Join(dst, n)
		cfi, err := os.Lstat(s)
		if err != nil {
			return err
		}
		if cfi.IsDir() {
			if err := c.copyDir(s, d, cfi, false); err != nil {
				return err
			}
			continue
		}
		if err := c.copyEntry(s, d, cfi); err != nil {
			return err
		}
	}
	return copyMeta(src, dst, fi)
}

func (c *copier) copyEntry(src, dst string, fi os.FileInfo) error {
	st := fi.Sys().(*syscall.Stat_t)
	if st.Nlink > 1 {
		k := inode{uint64(st.Dev), st.Ino}
		if first, ok := c.links[k]; ok {
			if err := os.Link(first, dst); err != nil {
				return fmt.Errorf("hardlink %s: %w", dst, err)
			}
			return nil
		}
		c.links[k] = dst
	}
	switch mode := fi.Mode(); {
	case mode.IsRegular():
		if err := c.copyFile(src, dst, fi); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
	case mode&os.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case mode&(os.ModeDevice|os.ModeCharDevice|os.ModeNamedPipe|os.ModeSocket) != 0:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dst, Err: err}
		}
	default:
		return fmt.Errorf("copy %s: unsupported file type %v", src, mode.Type())
	}
	return copyMeta(src, dst, fi)
}

func (c *copier) copyFile(src, dst string, fi os.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	// A reflink shares the blocks (btrfs, xfs): cheapest of all.
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err == nil {
		return out.Close()
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Blocks*512 < fi.Size() {
		if err := c.copySparse(in, out, fi.Size()); err != nil {
			return err
		}
		return out.Close()
	}
	// io.Copy between two *os.File uses copy_file_range.
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	return out.Close()
}

// copySparse copies only the data extents of in (found with SEEK_DATA and
// SEEK_HOLE), leaving holes in out.
func (c *copier) copySparse(in, out *os.File, size int64) error {
	var off int64
	for off < size {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) { // no more data
				break
			}
			return err
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if _, err := in.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := out.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyN(out, in, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return out.Truncate(size)
}

// copyMeta copies ownership, mode bits, xattrs and times of src to dst (which
// may be a symlink: then mode is skipped and the rest applies to the link).
func copyMeta(src, dst string, fi os.FileInfo) error {
	st := fi.Sys().(*syscall.Stat_t)
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	isLink := fi.Mode()&os.ModeSymlink != 0
	if !isLink {
		// After chown, which clears setuid/setgid.
		if err := unix.Chmod(dst, st.Mode&07777); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	if err := CopyXattrs(src, dst); err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(syscall.TimespecToNsec(st.Atim)), unix.NsecToTimespec(syscall.TimespecToNsec(st.Mtim))}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: dst, Err: err}
	}
	return nil
}

// CopyXattrs copies every extended attribute of src to dst, neither
// followed if a symlink, except those whose names start with one of the
// skip prefixes. Filesystems without xattrs are not an error.
func CopyXattrs(src, dst string, skip ...string) error {
	names, err := listXattrs(src)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return &os.PathError{Op: "llistxattr", Path: src, Err: err}
	}
names:
	for _, n := range names {
		for _, p := range skip {
			if strings.HasPrefix(n, p) {
				continue names
			}
		}
		v, err := getXattr(src, n)
		if err != nil {
			return &os.PathError{Op: "lgetxattr " + n, Path: src, Err: err}
		}
		if err := unix.Lsetxattr(dst, n, v, 0); err != nil {
			return &os.PathError{Op: "lsetxattr " + n, Path: dst, Err: err}
		}
	}
	return nil
}

func listXattrs(p string) ([]string, error) {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return nil, err
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var names []string
	start := 0
	for i := 0; i < sz; i++ {
		if buf[i] == 0 {
			if i > start {
				names = append(names, string(buf[start:i]))
			}
			start = i + 1
		}
	}
	return names, nil
}

func getXattr(p, name string) ([]byte, error) {
	sz, err := unix.Lgetxattr(p, name, nil)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, sz)
	sz, err = unix.Lgetxattr(p, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:sz], nil
}
