// Package blockimage turns a root filesystem tree into a filesystem image
// that a VM can use as a block device: ext4 (writable, built with
// e2fsprogs' `mkfs.ext4 -d`) or erofs (read-only and compact, built with
// erofs-utils' `mkfs.erofs`). Both tools copy ownership, modes, xattrs,
// hardlinks, device nodes and holes from the tree, so no mount or root-only
// step is needed to fill the image.
//
// The image is written to a temporary file beside dst and renamed into place
// only when the tool succeeded, so dst is either the old file or a complete
// new image.
package blockimage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"

	"github.com/hullproject/hull/mount"
)

// Filesystems Build can make.
const (
	Ext4  = "ext4"
	Erofs = "erofs"
)

// ErrToolMissing is returned when the mkfs tool for the filesystem is not
// installed.
var ErrToolMissing = fmt.Errorf("filesystem image tool not installed: %w", errdefs.ErrUnavailable)

// ErrTool is returned when the mkfs tool fails; the error carries the tail of
// its output.
var ErrTool = errors.New("filesystem image tool failed")

// Build makes an image of the tree srcDir at dst. fsType is "ext4" or
// "erofs". For ext4, extraSize bytes of free space are added to what the
// tree needs (the image is sparse: unused space costs no disk); erofs is
// read-only and sized by its tool, so extraSize must be 0.
func Build(ctx context.Context, srcDir, dst, fsType string, extraSize int64) (retErr error) {
	fi, err := os.Stat(srcDir)
	if err != nil {
		return fmt.Errorf("block image source: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("block image source %s is not a directory: %w", srcDir, errdefs.ErrInvalidArgument)
	}
	if extraSize < 0 {
		return fmt.Errorf("block image extra size %d is negative: %w", extraSize, errdefs.ErrInvalidArgument)
	}
	var tool string
	switch fsType {
	case Ext4:
		tool = "mkfs.ext4"
	case Erofs:
		tool = "mkfs.erofs"
		if extraSize != 0 {
			return fmt.Errorf("erofs images are read-only; extra size %d makes no sense: %w", extraSize, errdefs.ErrInvalidArgument)
		}
	default:
		return fmt.Errorf("block image filesystem %q (want ext4 or erofs): %w", fsType, errdefs.ErrInvalidArgument)
	}
	toolPath, err := lookTool(tool)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return fmt.Errorf("block image: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer func() {
		if retErr != nil {
			os.Remove(tmpName)
		}
	}()

	switch fsType {
	case Ext4:
		err = buildExt4(ctx, toolPath, srcDir, tmpName, extraSize)
	case Erofs:
		// Chunk-based files keep holes as holes (erofs has no other way
		// to represent them uncompressed); needs Linux 5.15 in the guest.
		err = run(ctx, toolPath, "--chunksize=4096", tmpName, srcDir)
	}
	if err != nil {
		return err
	}
	f, err := os.OpenFile(tmpName, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync block image: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if err := os.Rename(tmpName, dst); err != nil {
		return fmt.Errorf("block image: %w", err)
	}
	return nil
}

// lookTool finds an mkfs tool in PATH or the sbin directories, which are
// often missing from a non-login PATH.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	pkg := map[string]string{"mkfs.ext4": "e2fsprogs", "mkfs.erofs": "erofs-utils"}[name]
	return "", fmt.Errorf("%s (package %s): %w", name, pkg, ErrToolMissing)
}

// TreeSize is what a tree needs on a 4 KiB-block filesystem.
type TreeSize struct {
	Blocks int64 // data and directory blocks
	Inodes int64
}

// Measure walks dir: each inode once (hardlinks share), allocated blocks of
// files (holes are free), a block per directory and per long symlink.
func Measure(ctx context.Context, dir string) (TreeSize, error) {
	var ts TreeSize
	seen := map[uint64]struct{}{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if _, dup := seen[st.Ino]; dup {
			return nil
		}
		seen[st.Ino] = struct{}{}
		ts.Inodes++
		switch {
		case fi.IsDir():
			// A directory entry is ~ 8 bytes plus its name.
			ts.Blocks += 1 + int64(st.Size)/4096
		case fi.Mode().IsRegular():
			alloc := (st.Blocks*512 + 4095) / 4096
			apparent := (fi.Size() + 4095) / 4096
			ts.Blocks += min(alloc, apparent)
			// Extent tree blocks of large fragmented files.
			ts.Blocks += apparent / 32768
		case fi.Mode()&fs.ModeSymlink != 0 && fi.Size() >= 60:
			ts.Blocks++
		}
		return nil
	})
	return ts, err
}

func buildExt4(ctx context.Context, tool, src, img string, extra int64) error {
	ts, err := Measure(ctx, src)
	if err != nil {
		return fmt.Errorf("measure %s: %w", src, err)
	}
	inodes := ts.Inodes + ts.Inodes/5 + 128
	data := ts.Blocks * 4096
	// Inode tables, bitmaps and group descriptors, the journal, and slack
	// for the allocator.
	size := data + data/10 + inodes*256 + journalSize(data) + 8<<20 + extra
	size = (size + 4095) &^ 4095
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if err := os.Truncate(img, 0); err != nil {
			return err
		}
		if err := os.Truncate(img, size); err != nil {
			return fmt.Errorf("size block image: %w", err)
		}
		lastErr = run(ctx, tool,
			"-F", "-q",
			"-t", "ext4",
			"-b", "4096",
			"-I", "256",
			"-m", "0",
			"-N", strconv.FormatInt(inodes, 10),
			"-L", "hull-rootfs",
			"-E", "lazy_itable_init=0,lazy_journal_init=0",
			"-d", src,
			img)
		if lastErr == nil {
			return nil
		}
		// The estimate was short: mkfs reports running out of blocks or
		// inodes. Grow and retry.
		if !strings.Contains(lastErr.Error(), "No space left") && !strings.Contains(lastErr.Error(), "Could not allocate") &&
			!strings.Contains(lastErr.Error(), "while populating") {
			return lastErr
		}
		size += size/2 + 16<<20
		inodes += inodes / 2
	}
	return lastErr
}

// journalSize mirrors mke2fs's default journal size for a filesystem of
// about this much data.
func journalSize(data int64) int64 {
	switch {
	case data < 128<<20:
		return 4 << 20
	case data < 1<<30:
		return 16 << 20
	case data < 16<<30:
		return 64 << 20
	}
	return 256 << 20
}

func run(ctx context.Context, tool string, args ...string) error {
	cmd := exec.CommandContext(ctx, tool, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.Env = append(os.Environ(), "LC_ALL=C") // messages in English, for the retry check
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %s %s: %v: %s", ErrTool, filepath.Base(tool), strings.Join(args, " "), err, tail(out.String(), 1500))
	}
	return nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// BuildFromMounts builds an image of the filesystem the mounts present (a
// snapshot's View, say): they are mounted on a temporary directory for the
// duration of the build, so overlay whiteouts and opaque directories are
// already resolved in what the tool reads.
func BuildFromMounts(ctx context.Context, mounts []mount.Mount, dst, fsType string, extraSize int64) error {
	if len(mounts) == 1 && mounts[0].IsBind() {
		// Nothing to resolve: read the directory itself.
		return Build(ctx, mounts[0].Source, dst, fsType, extraSize)
	}
	return mount.WithTempMount(mounts, func(root string) error {
		return Build(ctx, root, dst, fsType, extraSize)
	})
}
