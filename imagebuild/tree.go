package imagebuild

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// entry is one file of the image.
type entry struct {
	typ      byte // tar.TypeReg, tar.TypeDir, tar.TypeSymlink
	mode     int64
	uid, gid int
	src      string // regular file: where its content is (staging tree or host)
	data     []byte // regular file: content, when src is ""
	link     string // symlink target
	mtime    time.Time
	origin   string // package name, "recipe" or "host"
}

// tree is the image's file set, keyed by clean absolute path.
type tree struct {
	stage   string
	owner   map[string]string // staged path → package that shipped it
	entries map[string]*entry
}

func newTree(stage string) *tree {
	return &tree{stage: stage, owner: map[string]string{}, entries: map[string]*entry{}}
}

// put adds or replaces p, creating its missing parent directories (with
// the staged directory's mode, or 0755).
func (t *tree) put(p string, e *entry) {
	p = path.Clean(p)
	t.parents(p)
	t.entries[p] = e
}

func (t *tree) parents(p string) {
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if _, ok := t.entries[d]; ok {
			continue
		}
		e := &entry{typ: tar.TypeDir, mode: 0o755, origin: "recipe"}
		if fi, err := os.Lstat(filepath.Join(t.stage, d)); err == nil && fi.IsDir() {
			e.mode, e.mtime, e.origin = int64(fi.Mode().Perm()|specialBits(fi.Mode())), fi.ModTime(), t.owner[d]
		}
		t.entries[d] = e
	}
}

func specialBits(m fs.FileMode) fs.FileMode {
	var out fs.FileMode
	if m&fs.ModeSetuid != 0 {
		out |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		out |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		out |= 0o1000
	}
	return out
}

// errLoop: too many symbolic links while resolving a staged path.
var errLoop = errors.New("too many levels of symbolic links")

// link is one symbolic link met while resolving a path.
type link struct{ path, target string }

// resolve follows p through the tree rooted at root the way the kernel
// would inside the image: absolute link targets are taken from root, ".."
// never climbs above it. It returns the final path (in image terms) and
// the links met on the way, which the image must hold too for p to work.
// The final path need not exist.
func resolve(root, p string) (string, []link, error) {
	var links []link
	todo := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			if err != nil && len(todo) > 0 {
				return "", links, err
			}
			continue
		}
		if hops++; hops > 40 {
			return "", links, fmt.Errorf("%s: %w", p, errLoop)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", links, err
		}
		links = append(links, link{next, target})
		rest := strings.Split(target, "/")
		if path.IsAbs(target) {
			cur = "/"
		}
		todo = append(rest, todo...)
	}
	return cur, links, nil
}

// addStaged adds the staged file or directory p (whole), with the links
// on its way. It returns the regular files it added, for the ELF scan.
func (t *tree) addStaged(p string) ([]string, error) {
	final, links, err := resolve(t.stage, p)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(filepath.Join(t.stage, final))
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		t.put(l.path, t.stagedEntry(l.path, nil))
	}
	var files []string
	if !fi.IsDir() {
		e := t.stagedEntry(final, fi)
		if e == nil {
			return nil, fmt.Errorf("%s: not a regular file, directory or symbolic link (%s)", final, fi.Mode().Type())
		}
		t.put(final, e)
		if e.typ == tar.TypeReg {
			files = append(files, final)
		}
		return files, nil
	}
	err = filepath.WalkDir(filepath.Join(t.stage, final), func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(t.stage, hp)
		ip := "/" + filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := t.stagedEntry(ip, fi)
		if e == nil {
			return nil // devices, fifos: packages ship none worth taking
		}
		t.put(ip, e)
		if e.typ == tar.TypeReg {
			files = append(files, ip)
		}
		return nil
	})
	return files, err
}

// stagedEntry describes staged path p (fi may be nil: it is looked up).
func (t *tree) stagedEntry(p string, fi fs.FileInfo) *entry {
	hp := filepath.Join(t.stage, p)
	if fi == nil {
		var err error
		if fi, err = os.Lstat(hp); err != nil {
			return nil
		}
	}
	e := &entry{mode: int64(fi.Mode().Perm() | specialBits(fi.Mode())), mtime: fi.ModTime(), origin: t.owner[p]}
	switch {
	case fi.Mode().IsRegular():
		e.typ, e.src = tar.TypeReg, hp
	case fi.IsDir():
		e.typ = tar.TypeDir
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(hp)
		if err != nil {
			return nil
		}
		e.typ, e.link, e.mode = tar.TypeSymlink, target, 0o777
	default:
		return nil
	}
	return e
}

// check refuses a tree where some entry's parent is not a directory
// (a recipe file under a packaged symlink, say).
func (t *tree) check() error {
	for p := range t.entries {
		d := path.Dir(p)
		if d == "/" {
			continue
		}
		if pe := t.entries[d]; pe == nil || pe.typ != tar.TypeDir {
			return fmt.Errorf("%s: its parent %s is not a directory in the image: %w", p, d, ErrInvalidRecipe)
		}
	}
	return nil
}

// writeTar writes the tree as a layer: entries sorted by path, owned by
// their uid/gid with no names, every time set to mtime.
func (t *tree) writeTar(w io.Writer, mtime time.Time) (files int, size int64, err error) {
	if err := t.check(); err != nil {
		return 0, 0, err
	}
	paths := make([]string, 0, len(t.entries))
	for p := range t.entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		e := t.entries[p]
		h := &tar.Header{
			Name: strings.TrimPrefix(p, "/"), Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: mtime, Linkname: e.link, Format: tar.FormatPAX,
		}
		var body io.ReadCloser
		switch e.typ {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeReg:
			if e.src != "" {
				f, err := os.Open(e.src)
				if err != nil {
					return 0, 0, err
				}
				fi, err := f.Stat()
				if err != nil {
					f.Close()
					return 0, 0, err
				}
				h.Size, body = fi.Size(), f
			} else {
				h.Size, body = int64(len(e.data)), io.NopCloser(bytes.NewReader(e.data))
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			if body != nil {
				body.Close()
			}
			return 0, 0, fmt.Errorf("%s: %w", p, err)
		}
		if body != nil {
			n, err := io.Copy(tw, body)
			body.Close()
			if err != nil {
				return 0, 0, fmt.Errorf("%s: %w", p, err)
			}
			size += n
			files++
		}
	}
	return files, size, tw.Close()
}

// newest is the latest modification time of the packaged files and links
// in the tree (directories made while staging do not count): the build's
// timestamp, the same for the same packages.
func (t *tree) newest() time.Time {
	var m time.Time
	for _, e := range t.entries {
		if e.typ != tar.TypeDir && e.origin != "" && e.origin != "recipe" && e.origin != "host" && e.mtime.After(m) {
			m = e.mtime
		}
	}
	return m
}
