package diff

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// stack is the merged view of an overlay snapshot being written: layers[0]
// is the upper (writable) dir, the rest the lower dirs, nearest first. For a
// plain directory there is one layer and no whiteout semantics.
//
// It implements securejoin.VFS for paths under layers[0], answering as the
// mounted overlay would: an entry is taken from the highest layer that has
// it, a 0/0 character device or a non-directory above hides everything
// below, and an opaque directory hides the lower layers' entries in it.
type stack struct {
	layers      []string
	overlay     bool
	opaqueXattr string
	// dirState of lower layers, which do not change during an apply.
	memo []map[string]dirState
}

type dirState uint8

const (
	stMissing dirState = iota // not in this layer: look below
	stDir                     // a directory: look inside it
	stOpaque                  // an opaque directory: nothing below shows through
	stHides                   // a non-directory or whiteout: nothing below shows through
)

func newStack(upper string, lowers []string, overlay bool, opaqueXattr string) *stack {
	s := &stack{layers: append([]string{upper}, lowers...), overlay: overlay, opaqueXattr: opaqueXattr}
	s.memo = make([]map[string]dirState, len(s.layers))
	for i := range s.memo {
		s.memo[i] = map[string]dirState{}
	}
	return s
}

func isWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

func (s *stack) state(i int, rel string) dirState {
	if i > 0 {
		if st, ok := s.memo[i][rel]; ok {
			return st
		}
	}
	st := stMissing
	fi, err := os.Lstat(s.layers[i] + rel)
	switch {
	case err != nil:
	case !fi.IsDir():
		st = stHides
	case s.overlay && s.opaque(s.layers[i]+rel):
		st = stOpaque
	default:
		st = stDir
	}
	if i > 0 {
		s.memo[i][rel] = st
	}
	return st
}

func (s *stack) opaque(p string) bool {
	var b [1]byte
	n, err := unix.Lgetxattr(p, s.opaqueXattr, b[:])
	return err == nil && n == 1 && b[0] == 'y'
}

// find returns the layer index and FileInfo of rel ("/a/b") in the merged
// view, or an fs.ErrNotExist error.
func (s *stack) find(rel string) (int, fs.FileInfo, error) {
	return s.findFrom(0, rel)
}

// findFrom is find over layers[from:] only; findFrom(1, rel) tells what
// the lower layers show at rel.
func (s *stack) findFrom(from int, rel string) (int, fs.FileInfo, error) {
	rel = "/" + strings.Trim(rel, "/")
	if !s.overlay {
		fi, err := os.Lstat(s.layers[0] + rel)
		return 0, fi, err
	}
	var parents []string
	if rel != "/" {
		for i := 1; i < len(rel); i++ {
			if rel[i] == '/' {
				parents = append(parents, rel[:i])
			}
		}
	}
layers:
	for i := from; i < len(s.layers); i++ {
		l := s.layers[i]
		stop := false
		for _, p := range parents {
			switch s.state(i, p) {
			case stMissing:
				continue layers
			case stHides:
				break layers
			case stOpaque:
				stop = true
			}
		}
		fi, err := os.Lstat(l + rel)
		if err == nil {
			if isWhiteout(fi) {
				break
			}
			return i, fi, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return 0, nil, err
		}
		if stop {
			break
		}
	}
	return 0, nil, &fs.PathError{Op: "lstat", Path: rel, Err: fs.ErrNotExist}
}

// vfs adapts the stack to securejoin.VFS, whose paths are layers[0]+rel.
type vfs struct{ s *stack }

func (v vfs) rel(name string) string { return strings.TrimPrefix(name, v.s.layers[0]) }

func (v vfs) Lstat(name string) (os.FileInfo, error) {
	_, fi, err := v.s.find(v.rel(name))
	return fi, err
}

func (v vfs) Readlink(name string) (string, error) {
	rel := v.rel(name)
	i, _, err := v.s.find(rel)
	if err != nil {
		return "", err
	}
	return os.Readlink(v.s.layers[i] + "/" + strings.Trim(rel, "/"))
}
