// Package overlay is the overlayfs snapshotter: one directory per layer,
// shared by every image that has the layer (committed snapshots are named by
// chain ID), and a container's writable layer on top.
//
//   - an active snapshot with parents mounts as overlay with upperdir=<id>/fs,
//     workdir=<id>/work and lowerdir= the parents' fs directories, nearest
//     first;
//   - an active snapshot without parent is a read-write bind mount of its fs;
//   - a view of one layer is a read-only bind mount, of several a read-only
//     overlay made of lowerdirs only.
//
// New probes the host by mounting a real overlay (with a whiteout and an
// opaque directory) under the root, so it fails cleanly where overlay cannot
// be used: overlay on overlay, no overlay module, a filesystem without
// trusted xattrs. snapshot/auto then falls back to snapshot/native.
package overlay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/userns"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/snapshot"
	"github.com/hullproject/hull/snapshot/internal/base"
)

// ErrUnsupported is returned by New and Check when overlay cannot be used
// under the root.
var ErrUnsupported = fmt.Errorf("overlayfs unusable: %w", errdefs.ErrNotImplemented)

// Snapshotter is the overlay snapshotter.
type Snapshotter struct {
	*base.Base
	d *driver
}

var _ snapshot.Snapshotter = (*Snapshotter)(nil)

type driver struct {
	opts []string // extra overlay options found by the probe
}

// New opens the overlay snapshotter rooted at root after checking that
// overlay works there.
func New(root string) (*Snapshotter, error) {
	if strings.ContainsAny(root, ":,") {
		// Both separate overlay mount options.
		return nil, fmt.Errorf("overlay snapshot root %q must not contain ':' or ',': %w", root, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	opts, err := Check(root)
	if err != nil {
		return nil, err
	}
	d := &driver{opts: opts}
	b, err := base.New(root, d)
	if err != nil {
		return nil, err
	}
	return &Snapshotter{Base: b, d: d}, nil
}

// Options returns the extra overlay mount options in use (index=off,
// userxattr).
func (s *Snapshotter) Options() []string { return append([]string(nil), s.d.opts...) }

// UpperDir returns the writable directory of an overlay mount list as
// returned by this snapshotter, and the lower directories (nearest first).
// ok is false for mounts that are not an overlay with an upper dir.
func UpperDir(ms []mount.Mount) (upper string, lowers []string, ok bool) {
	if len(ms) != 1 || ms[0].Type != "overlay" {
		return "", nil, false
	}
	for _, o := range ms[0].Options {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "upperdir":
			upper = v
		case "lowerdir":
			lowers = strings.Split(v, ":")
		}
	}
	return upper, lowers, upper != ""
}

func (d *driver) Populate(ctx context.Context, dir string, kind snapshot.Kind, parents []string) error {
	return os.Mkdir(filepath.Join(dir, "work"), 0o700)
}

func (d *driver) Mounts(dir string, kind snapshot.Kind, parents []string) []mount.Mount {
	fsDir := filepath.Join(dir, "fs")
	rw := "rw"
	if kind == snapshot.KindView {
		rw = "ro"
	}
	if len(parents) == 0 {
		return []mount.Mount{{Type: "bind", Source: fsDir, Options: []string{rw, "rbind"}}}
	}
	lowers := make([]string, len(parents))
	for i, p := range parents {
		lowers[i] = filepath.Join(p, "fs")
	}
	if kind == snapshot.KindView {
		if len(lowers) == 1 {
			return []mount.Mount{{Type: "bind", Source: lowers[0], Options: []string{"ro", "rbind"}}}
		}
		opts := append([]string{"ro"}, d.opts...)
		opts = append(opts, "lowerdir="+strings.Join(lowers, ":"))
		return []mount.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
	}
	opts := append([]string{}, d.opts...)
	opts = append(opts,
		"workdir="+filepath.Join(dir, "work"),
		"upperdir="+fsDir,
		"lowerdir="+strings.Join(lowers, ":"))
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
}

// Check mounts a small overlay under root and verifies that writes go to
// the upper dir, that a whiteout hides a lower file and that an opaque
// directory hides a lower directory's entries. It returns the extra mount
// options to use.
func Check(root string) ([]string, error) {
	tmp, err := os.MkdirTemp(root, "overlay-check-")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	defer func() {
		_ = mount.UnmountAll(filepath.Join(tmp, "merged"), unix.MNT_DETACH)
		os.RemoveAll(tmp)
	}()
	var base []string
	if _, err := os.Stat("/sys/module/overlay/parameters/index"); err == nil {
		// A layer directory is the lower of many mounts; the inodes index
		// would tie it to the first one.
		base = append(base, "index=off")
	}
	candidates := [][]string{base}
	if userns.RunningInUserNS() {
		candidates = [][]string{append(append([]string{}, base...), "userxattr"), base}
	}
	var errs []error
	for i, opts := range candidates {
		dir := filepath.Join(tmp, fmt.Sprint(i))
		if err := probe(dir, opts); err != nil {
			errs = append(errs, fmt.Errorf("options %q: %w", opts, err))
			continue
		}
		return opts, nil
	}
	return nil, fmt.Errorf("%w under %s: %w", ErrUnsupported, root, errors.Join(errs...))
}

func probe(dir string, opts []string) error {
	lower, upper, work, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, p := range []string{filepath.Join(lower, "d"), filepath.Join(upper, "d"), work, merged} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
	}
	for _, p := range []string{filepath.Join(lower, "a"), filepath.Join(lower, "d", "x")} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			return err
		}
	}
	xattr := "trusted.overlay.opaque"
	for _, o := range opts {
		if o == "userxattr" {
			xattr = "user.overlay.opaque"
		}
	}
	if err := unix.Mknod(filepath.Join(upper, "a"), unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout device: %w", err)
	}
	if err := unix.Lsetxattr(filepath.Join(upper, "d"), xattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("opaque xattr %s: %w", xattr, err)
	}
	m := mount.Mount{Type: "overlay", Source: "overlay", Options: append(append([]string{}, opts...),
		"lowerdir="+lower, "upperdir="+upper, "workdir="+work)}
	if err := m.Mount(merged); err != nil {
		return err
	}
	defer mount.UnmountAll(merged, unix.MNT_DETACH)
	if _, err := os.Lstat(filepath.Join(merged, "a")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("whiteout not honoured (lstat: %v)", err)
	}
	if _, err := os.Lstat(filepath.Join(merged, "d", "x")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("opaque directory not honoured (lstat: %v)", err)
	}
	if err := os.WriteFile(filepath.Join(merged, "new"), []byte("y"), 0o644); err != nil {
		return fmt.Errorf("write through overlay: %w", err)
	}
	if _, err := os.Stat(filepath.Join(upper, "new")); err != nil {
		return fmt.Errorf("write did not reach the upper dir: %w", err)
	}
	return nil
}
