// Package native is the copy-based snapshotter, for hosts where overlayfs
// cannot be used (overlay on overlay, no overlay module, no trusted xattrs).
// Each Prepare copies the parent's whole tree into the new snapshot's
// directory (a View is a read-only bind of the parent instead), preserving ownership, modes, xattrs, hardlinks,
// device nodes and holes, and reflinking where the filesystem can; mounts are
// bind mounts of that directory. It costs disk and time per container, which
// is why overlay is preferred when the probe allows it.
package native

import (
	"context"
	"path/filepath"

	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/snapshot"
	"github.com/hullproject/hull/snapshot/internal/base"
)

// Snapshotter is the native (copying) snapshotter.
type Snapshotter struct {
	*base.Base
}

var _ snapshot.Snapshotter = (*Snapshotter)(nil)

// New opens the native snapshotter rooted at root.
func New(root string) (*Snapshotter, error) {
	b, err := base.New(root, driver{})
	if err != nil {
		return nil, err
	}
	return &Snapshotter{Base: b}, nil
}

type driver struct{}

func (driver) Populate(ctx context.Context, dir string, kind snapshot.Kind, parents []string) error {
	if len(parents) == 0 || kind == snapshot.KindView {
		// A view is a read-only bind of its parent, which cannot be
		// removed while the view exists: no copy needed.
		return nil
	}
	return CopyDir(ctx, filepath.Join(parents[0], "fs"), filepath.Join(dir, "fs"))
}

func (driver) Mounts(dir string, kind snapshot.Kind, parents []string) []mount.Mount {
	if kind == snapshot.KindView {
		src := filepath.Join(dir, "fs")
		if len(parents) > 0 {
			src = filepath.Join(parents[0], "fs")
		}
		return []mount.Mount{{Type: "bind", Source: src, Options: []string{"ro", "rbind"}}}
	}
	return []mount.Mount{{Type: "bind", Source: filepath.Join(dir, "fs"), Options: []string{"rw", "rbind"}}}
}
