package diff

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
	"unsafe"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/userns"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/snapshot/native"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	whiteoutMeta   = ".wh..wh."
	xattrPAXPrefix = "SCHILY.xattr."
)

type applier struct {
	ctx         context.Context
	cfg         *config
	root        string   // where files are written (the upper dir, or the tree)
	lowers      []string // overlay lower dirs, nearest first
	st          *stack
	overlay     bool // write overlay whiteouts instead of deleting
	opaqueXattr string
	canMknod    bool
	canChown    bool
	written     map[string]struct{} // rel paths written by this layer
	copied      map[string]struct{} // rel paths copied up for hardlinks (overlay)
	copying     bool                // mkdirs is making parents for a copy-up
	dirs        []dirTime
	parents     map[string]string // resolved parent dirs (rel -> rel)
	buf         []byte
	skipped     map[string]int
}

type dirTime struct {
	path         string
	atime, mtime time.Time
}

func newApplier(ctx context.Context, cfg *config, root string, lowers []string, overlay bool) *applier {
	root = filepath.Clean(root)
	inInit := !userns.RunningInUserNS()
	return &applier{
		ctx:         ctx,
		cfg:         cfg,
		root:        root,
		lowers:      lowers,
		overlay:     overlay,
		opaqueXattr: "trusted.overlay.opaque",
		canMknod:    os.Geteuid() == 0 && inInit && !cfg.noDevices,
		canChown:    os.Geteuid() == 0,
		written:     map[string]struct{}{},
		copied:      map[string]struct{}{},
		parents:     map[string]string{},
		buf:         make([]byte, 128<<10),
		skipped:     map[string]int{},
	}
}

func (a *applier) run(r io.Reader) error {
	a.st = newStack(a.root, a.lowers, a.overlay, a.opaqueXattr)
	return a.untar(r)
}

// cleanName turns a tar path into a root-relative path ("a/b", or "." for
// the root itself), rejecting paths that climb out with "..". A leading "/"
// is dropped, as tar does.
func cleanName(name string) (string, error) {
	c := path.Clean("/" + name)
	// path.Clean("/"+x) removes leading ".." silently; compare with a
	// relative clean to spot climbing.
	rel := path.Clean(strings.TrimLeft(name, "/"))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%w: %q climbs out of the root", ErrUnsafeEntry, name)
	}
	if c == "/" {
		return ".", nil
	}
	return c[1:], nil
}

func (a *applier) untar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if isCanceled(err) || errors.Is(err, ErrCorrupt) {
				return err
			}
			return fmt.Errorf("%w: tar header: %v", ErrCorrupt, err)
		}
		if err := a.entry(tr, hdr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	// Directory times last: writing their children changed them.
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		// A directory replaced later in the layer is gone, or now a
		// symlink (whose own times are then set: harmless).
		if err := lutimes(d.path, d.atime, d.mtime); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	for reason, n := range a.skipped {
		slog.Warn("layer entries skipped", "layer", a.cfg.layer, "reason", reason, "count", n)
	}
	return nil
}

func (a *applier) entry(tr *tar.Reader, hdr *tar.Header) error {
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeReg, tar.TypeRegA, tar.TypeDir, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo, tar.TypeGNUSparse:
	default:
		return fmt.Errorf("%w: unsupported tar entry type %q", ErrCorrupt, hdr.Typeflag)
	}
	dirRel, base := path.Split(rel)
	dirRel = strings.TrimSuffix(dirRel, "/")
	if rel == "." {
		dirRel, base = "", ""
	}
	parent, err := a.resolveDir(dirRel)
	if err != nil {
		return err
	}
	a.markWritten(parent)

	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(parent, base)
	}

	target := a.root
	relTarget := parent
	if base != "" {
		relTarget = path.Join(parent, base)
		target = filepath.Join(a.root, relTarget)
	}
	a.written[relTarget] = struct{}{}

	if isRegular(hdr) && target != a.root {
		return a.regular(target, tr, hdr)
	}
	wasWhiteout, err := a.replace(target, hdr)
	if err != nil {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if _, err := os.Lstat(target); err != nil {
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			if wasWhiteout {
				// A new directory over a whiteout: nothing of the old one
				// may show through.
				if err := a.setOpaque(target); err != nil {
					return err
				}
			}
		}
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
	case tar.TypeLink:
		return a.hardlink(target, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if hdr.Typeflag != tar.TypeFifo && !a.canMknod {
			delete(a.written, relTarget)
			a.skipped["device node: not root in the initial user namespace, or devices disabled"]++
			slog.Debug("skipping device node", "layer", a.cfg.layer, "name", hdr.Name)
			return nil
		}
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknod(target, mode, int(dev)); err != nil {
			return &os.PathError{Op: "mknod", Path: target, Err: err}
		}
	}
	return a.setMeta(target, hdr)
}

func isRegular(hdr *tar.Header) bool {
	return hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA || hdr.Typeflag == tar.TypeGNUSparse
}

// replace removes what is at target unless both it and the entry are
// directories. It reports whether it removed an overlay whiteout.
func (a *applier) replace(target string, hdr *tar.Header) (wasWhiteout bool, err error) {
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.IsDir() && hdr.Typeflag == tar.TypeDir {
		return false, nil
	}
	if target == a.root {
		return false, fmt.Errorf("%w: the root can only be a directory", ErrUnsafeEntry)
	}
	wasWhiteout = a.overlay && isWhiteout(fi)
	if err := os.RemoveAll(target); err != nil {
		return false, err
	}
	a.forget()
	return wasWhiteout, nil
}

// regular writes a regular file and sets its metadata through the open
// descriptor: the hot path of an unpack, kept to create, write, fchown,
// fchmod, futimens and close.
func (a *applier) regular(target string, tr io.Reader, hdr *tar.Header) error {
	f, err := openNew(target)
	if errors.Is(err, fs.ErrExist) {
		if _, err := a.replace(target, hdr); err != nil {
			return err
		}
		f, err = openNew(target)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := a.writeData(f, tr, hdr.Size); err != nil {
		return err
	}
	fd := int(f.Fd())
	if a.canChown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return &os.PathError{Op: "fchown", Path: target, Err: err}
		}
	}
	// After chown, which clears setuid and setgid.
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return &os.PathError{Op: "fchmod", Path: target, Err: err}
	}
	if err := a.setXattrs(hdr, func(name string, v []byte) error { return unix.Fsetxattr(fd, name, v, 0) }); err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	ts := [2]unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
	// utimensat(fd, NULL, ...) sets the times of fd itself.
	if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
		return &os.PathError{Op: "futimens", Path: target, Err: e}
	}
	return f.Close()
}

func openNew(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
}

func (a *applier) setOpaque(p string) error {
	if err := unix.Lsetxattr(p, a.opaqueXattr, []byte("y"), 0); err != nil {
		return &os.PathError{Op: "set opaque xattr", Path: p, Err: err}
	}
	return nil
}

// forget drops cached resolutions after the tree changed shape.
func (a *applier) forget() {
	if len(a.parents) > 0 {
		a.parents = map[string]string{}
	}
}

// resolveDir resolves the directory rel (no symlink followed out of the
// root) in the merged view and makes sure it exists as a directory under
// a.root, creating missing directories with the metadata the merged view
// shows for them. It returns the resolved root-relative path ("" for the
// root).
func (a *applier) resolveDir(rel string) (string, error) {
	if rel == "" || rel == "." {
		return "", nil
	}
	if r, ok := a.parents[rel]; ok {
		return r, nil
	}
	joined, err := securejoin.SecureJoinVFS(a.root, rel, vfs{a.st})
	if err != nil {
		return "", fmt.Errorf("resolve %q: %w", rel, err)
	}
	res := strings.TrimPrefix(strings.TrimPrefix(joined, a.root), "/")
	if err := a.mkdirs(res); err != nil {
		return "", err
	}
	a.parents[rel] = res
	return res, nil
}

// mkdirs creates each missing component of the resolved path res under
// a.root as a real directory.
func (a *applier) mkdirs(res string) error {
	if res == "" {
		return nil
	}
	cur := ""
	for _, c := range strings.Split(res, "/") {
		cur = path.Join(cur, c)
		p := filepath.Join(a.root, cur)
		fi, err := os.Lstat(p)
		if err == nil {
			if fi.IsDir() {
				continue
			}
			if a.overlay && isWhiteout(fi) {
				if err := os.Remove(p); err != nil {
					return err
				}
				if err := os.Mkdir(p, 0o755); err != nil {
					return err
				}
				if err := a.setOpaque(p); err != nil {
					return err
				}
				continue
			}
			return &os.PathError{Op: "mkdir", Path: cur, Err: syscall.ENOTDIR}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		// Copy the lower layer's directory metadata: in overlay the upper
		// directory's owner and mode are what the container sees.
		lower := -1
		var lfi fs.FileInfo
		if a.overlay {
			if i, fi, err := a.st.find(cur); err == nil && i > 0 {
				if !fi.IsDir() {
					// As on a plain tree: a file is not a directory.
					return &os.PathError{Op: "mkdir", Path: cur, Err: syscall.ENOTDIR}
				}
				lower, lfi = i, fi
			}
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
		if a.copying {
			a.copied[cur] = struct{}{}
		}
		if lower > 0 {
			if err := copyDirMeta(filepath.Join(a.st.layers[lower], cur), p, lfi); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyDirMeta(src, dst string, fi fs.FileInfo) error {
	st := fi.Sys().(*syscall.Stat_t)
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil && os.Geteuid() == 0 {
		return err
	}
	if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
		return err
	}
	// Not the overlay xattrs: an opaque lower directory must not make its
	// copy in the upper dir opaque too.
	if err := native.CopyXattrs(src, dst, "trusted.overlay.", "user.overlay."); err != nil {
		return err
	}
	return lutimes(dst, time.Unix(st.Atim.Unix()), time.Unix(st.Mtim.Unix()))
}

func (a *applier) whiteout(parent, base string) error {
	dir := filepath.Join(a.root, parent)
	if base == whiteoutOpaque {
		if a.overlay {
			if err := a.setOpaque(dir); err != nil {
				return err
			}
			// Whiteouts inside an opaque directory are not needed, and
			// overlayfs lists them in readdir while lookups fail.
			if err := a.dropWhiteouts(dir); err != nil {
				return err
			}
			// Copies made only to be hardlink targets stood for lower
			// files, which the opaque directory now hides.
			return a.dropCopies(parent)
		}
		// Delete what the lower layers put in the directory, at any depth;
		// keep what this layer wrote. (In overlay the opaque upper directory
		// hides the whole lower subtree, including below directories this
		// layer also has.)
		err := a.removeUnwritten(parent)
		a.forget()
		return err
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		// aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content.
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("%w: bad whiteout %q", ErrUnsafeEntry, base)
	}
	p := filepath.Join(dir, name)
	if _, ours := a.written[path.Join(parent, name)]; ours {
		// A whiteout hides only what lower layers had (OCI image spec):
		// this layer's own entry stays. Over a directory that means its
		// lower content goes, as with an opaque marker.
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() {
			return err
		}
		return a.whiteout(path.Join(parent, name), whiteoutOpaque)
	}
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	a.forget()
	if !a.overlay {
		return nil
	}
	if _, _, err := a.st.findFrom(1, path.Join(parent, name)); err != nil || a.underOpaque(parent) {
		// Nothing below to hide. (A whiteout in a directory that has no
		// lower counterpart, or under an opaque one, is listed by
		// overlayfs' readdir while lookups fail.)
		return nil
	}
	if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
		return &os.PathError{Op: "mknod whiteout", Path: p, Err: err}
	}
	return nil
}

// underOpaque reports whether the upper directory rel or one of its
// ancestors is opaque.
func (a *applier) underOpaque(rel string) bool {
	for {
		if a.st.opaque(filepath.Join(a.root, rel)) {
			return true
		}
		if rel == "" || rel == "." || rel == "/" {
			return false
		}
		rel = path.Dir(rel)
		if rel == "." {
			rel = ""
		}
	}
}

// dropCopies removes the copy-ups (and the directories made for them)
// below rel that this layer did not write itself; the hardlinks to them
// keep their data.
func (a *applier) dropCopies(rel string) error {
	var gone []string
	for p := range a.copied {
		if _, ours := a.written[p]; ours {
			continue
		}
		if rel == "" || strings.HasPrefix(p, rel+"/") {
			gone = append(gone, p)
		}
	}
	// Deepest first, so directories are empty when their turn comes.
	sort.Slice(gone, func(i, j int) bool { return len(gone[i]) > len(gone[j]) })
	for _, p := range gone {
		delete(a.copied, p)
		if err := os.Remove(filepath.Join(a.root, p)); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) {
			return err
		}
	}
	a.forget()
	return nil
}

// dropWhiteouts removes the overlay whiteouts anywhere below dir: under an
// opaque directory nothing of the lower layers shows, so they hide nothing.
func (a *applier) dropWhiteouts(dir string) error {
	names, err := readDirNames(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case isWhiteout(fi):
			if err := os.Remove(p); err != nil {
				return err
			}
		case fi.IsDir():
			if err := a.dropWhiteouts(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeUnwritten removes every entry below rel that this layer did not
// write, descending into the directories it did write.
func (a *applier) removeUnwritten(rel string) error {
	names, err := readDirNames(filepath.Join(a.root, rel))
	if err != nil {
		return err
	}
	for _, n := range names {
		child := path.Join(rel, n)
		p := filepath.Join(a.root, child)
		if _, ok := a.written[child]; !ok {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			continue
		}
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			if err := a.removeUnwritten(child); err != nil {
				return err
			}
		}
	}
	return nil
}

// markWritten records rel and its ancestors as present in this layer: an
// entry implies its parent directories (overlay makes them in the upper
// dir).
func (a *applier) markWritten(rel string) {
	for rel != "" && rel != "." && rel != "/" {
		if _, ok := a.written[rel]; ok {
			return
		}
		a.written[rel] = struct{}{}
		rel = path.Dir(rel)
	}
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// hardlink links target to the entry linkname names, resolved inside the
// root like any entry. In an overlay upper dir a target that only exists in
// a lower layer is copied up first.
func (a *applier) hardlink(target, linkname string) error {
	lrel, err := cleanName(linkname)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	if lrel == "." {
		return fmt.Errorf("%w: hardlink to the root", ErrUnsafeEntry)
	}
	ldir, lbase := path.Split(lrel)
	a.copying = a.overlay
	lparent, err := a.resolveDir(strings.TrimSuffix(ldir, "/"))
	a.copying = false
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", linkname, err)
	}
	lres := path.Join(lparent, lbase)
	src := filepath.Join(a.root, lres)
	fi, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) && a.overlay {
		i, lfi, ferr := a.st.find(lres)
		if ferr == nil && i > 0 && !lfi.IsDir() {
			if err := native.CopyEntry(a.ctx, filepath.Join(a.st.layers[i], lres), src); err != nil {
				return fmt.Errorf("copy up hardlink target %q: %w", linkname, err)
			}
			a.copied[lres] = struct{}{}
			fi, err = os.Lstat(src)
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("hardlink target %q not in the layer or below it: %w", linkname, ErrUnsafeEntry)
		}
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%w: hardlink to directory %q", ErrUnsafeEntry, linkname)
	}
	if a.overlay && isWhiteout(fi) {
		return fmt.Errorf("hardlink target %q was deleted: %w", linkname, ErrUnsafeEntry)
	}
	if err := os.Link(src, target); err != nil {
		return err
	}
	return nil
}

// writeData writes the entry's content to f, leaving holes where whole
// blocks of a large file are zero.
func (a *applier) writeData(f *os.File, r io.Reader, size int64) error {
	var off int64
	holes := false
	for {
		n, rerr := io.ReadFull(r, a.buf)
		if n > 0 {
			if size >= 1<<20 && isZero(a.buf[:n]) {
				holes = true
			} else {
				if _, err := f.WriteAt(a.buf[:n], off); err != nil {
					return err
				}
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF && off == size {
			break
		}
		if rerr != nil {
			if isCanceled(rerr) || errors.Is(rerr, ErrCorrupt) {
				return rerr
			}
			return fmt.Errorf("%w: file data: %v", ErrCorrupt, rerr)
		}
	}
	if off != size {
		return fmt.Errorf("%w: file data is %d bytes, header says %d", ErrCorrupt, off, size)
	}
	if holes {
		if err := f.Truncate(size); err != nil {
			return err
		}
	}
	return nil
}

var zeros = make([]byte, 128<<10)

func isZero(b []byte) bool { return bytes.Equal(b, zeros[:len(b)]) }

// setMeta applies ownership, mode, xattrs and times. Directory times are
// set at the end of the layer.
func (a *applier) setMeta(p string, hdr *tar.Header) error {
	if a.canChown {
		if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After chown, which clears setuid and setgid.
		mode := uint32(hdr.Mode & 0o7777)
		if err := unix.Chmod(p, mode); err != nil {
			return &os.PathError{Op: "chmod", Path: p, Err: err}
		}
	}
	if err := a.setXattrs(hdr, func(name string, v []byte) error { return unix.Lsetxattr(p, name, v, 0) }); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	if hdr.Typeflag == tar.TypeDir {
		a.dirs = append(a.dirs, dirTime{p, atime, hdr.ModTime})
		return nil
	}
	return lutimes(p, atime, hdr.ModTime)
}

// setXattrs applies the entry's PAX xattrs with set, except overlay's own.
func (a *applier) setXattrs(hdr *tar.Header, set func(name string, v []byte) error) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, xattrPAXPrefix)
		if !ok {
			continue
		}
		if strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			// Would steer overlayfs (redirects, opaque, metacopy).
			a.skipped["overlay xattr in layer"]++
			continue
		}
		if err := set(name, []byte(v)); err != nil {
			if errors.Is(err, unix.ENOTSUP) || (errors.Is(err, unix.EPERM) && hdr.Typeflag == tar.TypeSymlink) {
				a.skipped["xattr not supported here"]++
				continue
			}
			return fmt.Errorf("setxattr %s: %w", name, err)
		}
	}
	return nil
}

func lutimes(p string, atime, mtime time.Time) error {
	ts := []unix.Timespec{timespec(atime), timespec(mtime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: p, Err: err}
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return unix.Timespec{Sec: 0, Nsec: 0}
	}
	return unix.NsecToTimespec(t.UnixNano())
}

func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
