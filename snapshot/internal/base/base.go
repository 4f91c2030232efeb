// Package base is the part shared by Hull's directory-based snapshotters
// (overlay and native): the on-disk layout, the bbolt metadata, crash-safe
// creation and removal of snapshot directories, and usage accounting. A
// Driver supplies what differs: how a new snapshot's directory is filled and
// which mounts present it.
//
// Layout under the root:
//
//	metadata.db           bbolt: keys, ids, kinds, parents, labels
//	snapshots/<id>/fs     the snapshot's own files (an overlay upper or lower dir, or a full copy)
//	snapshots/<id>/work   overlay's work dir (overlay only)
//	snapshots/new-*       being created; removed at open
//	snapshots/rm-*        being removed; removed at open
package base

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/containerd/errdefs"

	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/snapshot"
	"github.com/hullproject/hull/snapshot/storage"
)

// Driver is what a concrete snapshotter adds to Base.
type Driver interface {
	// Populate fills dir (a new snapshot's directory, with dir/fs already
	// made) for a snapshot of the kind whose parents' directories are
	// parentDirs (nearest first).
	Populate(ctx context.Context, dir string, kind snapshot.Kind, parentDirs []string) error
	// Mounts returns the mounts of the snapshot stored in dir.
	Mounts(dir string, kind snapshot.Kind, parentDirs []string) []mount.Mount
}

// Base implements snapshot.Snapshotter on top of a Driver.
type Base struct {
	root   string
	store  *storage.Store
	driver Driver
}

// New opens (creating) the snapshotter rooted at root and removes
// directories left over by an interrupted create or remove.
func New(root string, d Driver) (*Base, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("snapshotter root: %w", err)
	}
	st, err := storage.Open(filepath.Join(root, "metadata.db"))
	if err != nil {
		return nil, err
	}
	b := &Base{root: root, store: st, driver: d}
	if err := b.cleanup(); err != nil {
		st.Close()
		return nil, err
	}
	return b, nil
}

// Root is the snapshotter's root directory.
func (b *Base) Root() string { return b.root }

func (b *Base) dir(id string) string { return filepath.Join(b.root, "snapshots", id) }

func (b *Base) dirs(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = b.dir(id)
	}
	return out
}

// cleanup removes snapshot directories that the metadata does not know.
func (b *Base) cleanup() error {
	var ids map[string]string
	if err := b.store.View(func(tx *storage.Tx) (err error) {
		ids, err = tx.IDs()
		return err
	}); err != nil {
		return err
	}
	ents, err := os.ReadDir(filepath.Join(b.root, "snapshots"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if _, ok := ids[e.Name()]; ok {
			continue
		}
		p := filepath.Join(b.root, "snapshots", e.Name())
		slog.Debug("snapshot: removing leftover directory", "path", p)
		if err := removeDir(p); err != nil {
			return fmt.Errorf("remove leftover snapshot directory: %w", err)
		}
	}
	return nil
}

// removeDir unmounts anything left below p (a crashed user may have left a
// mount) and removes it.
func removeDir(p string) error {
	_ = mount.UnmountAll(p, syscall.MNT_DETACH)
	return os.RemoveAll(p)
}

// Stat implements snapshot.Snapshotter.
func (b *Base) Stat(ctx context.Context, key string) (snapshot.Info, error) {
	var info snapshot.Info
	err := b.store.View(func(tx *storage.Tx) (err error) {
		_, info, _, err = tx.Info(key)
		return err
	})
	return info, err
}

// Usage implements snapshot.Snapshotter.
func (b *Base) Usage(ctx context.Context, key string) (snapshot.Usage, error) {
	var (
		id    string
		info  snapshot.Info
		usage snapshot.Usage
	)
	err := b.store.View(func(tx *storage.Tx) (err error) {
		id, info, usage, err = tx.Info(key)
		return err
	})
	if err != nil {
		return snapshot.Usage{}, err
	}
	if info.Kind == snapshot.KindCommitted {
		return usage, nil
	}
	return DiskUsage(ctx, filepath.Join(b.dir(id), "fs"))
}

// Mounts implements snapshot.Snapshotter.
func (b *Base) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	var s storage.Snapshot
	err := b.store.View(func(tx *storage.Tx) (err error) {
		s, err = tx.Get(key)
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.Kind == snapshot.KindCommitted {
		return nil, fmt.Errorf("snapshot %q is committed; use View to mount it: %w", key, errdefs.ErrFailedPrecondition)
	}
	return b.driver.Mounts(b.dir(s.ID), s.Kind, b.dirs(s.ParentIDs)), nil
}

// Prepare implements snapshot.Snapshotter.
func (b *Base) Prepare(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]mount.Mount, error) {
	return b.create(ctx, snapshot.KindActive, key, parent, opts)
}

// View implements snapshot.Snapshotter.
func (b *Base) View(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]mount.Mount, error) {
	return b.create(ctx, snapshot.KindView, key, parent, opts)
}

func (b *Base) create(ctx context.Context, kind snapshot.Kind, key, parent string, opts []snapshot.Opt) (_ []mount.Mount, retErr error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Check early, before a possibly long Populate.
	var parentIDs []string
	err := b.store.View(func(tx *storage.Tx) error {
		if _, _, _, err := tx.Info(key); err == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
		}
		if parent == "" {
			return nil
		}
		p, err := tx.Get(parent)
		if err != nil {
			return fmt.Errorf("parent of %q: %w", key, err)
		}
		parentIDs = append([]string{p.ID}, p.ParentIDs...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Join(b.root, "snapshots"), "new-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			if err := removeDir(tmp); err != nil {
				slog.Warn("snapshot: cleanup failed", "path", tmp, "err", err)
			}
		}
	}()
	if err := os.Chmod(tmp, 0o700); err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(tmp, "fs"), 0o755); err != nil {
		return nil, err
	}
	if err := b.driver.Populate(ctx, tmp, kind, b.dirs(parentIDs)); err != nil {
		return nil, fmt.Errorf("prepare snapshot %q: %w", key, err)
	}
	var s storage.Snapshot
	err = b.store.Update(func(tx *storage.Tx) error {
		var err error
		s, err = tx.Create(kind, key, parent, opts...)
		if err != nil {
			return err
		}
		if !equal(s.ParentIDs, parentIDs) {
			return fmt.Errorf("parent %q of %q changed while preparing: %w", parent, key, errdefs.ErrFailedPrecondition)
		}
		return os.Rename(tmp, b.dir(s.ID))
	})
	if err != nil {
		return nil, err
	}
	return b.driver.Mounts(b.dir(s.ID), kind, b.dirs(s.ParentIDs)), nil
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Commit implements snapshot.Snapshotter.
func (b *Base) Commit(ctx context.Context, name, key string, opts ...snapshot.Opt) error {
	var s storage.Snapshot
	if err := b.store.View(func(tx *storage.Tx) (err error) {
		s, err = tx.Get(key)
		return err
	}); err != nil {
		return err
	}
	usage, err := DiskUsage(ctx, filepath.Join(b.dir(s.ID), "fs"))
	if err != nil {
		return fmt.Errorf("commit %q: usage: %w", key, err)
	}
	return b.store.Update(func(tx *storage.Tx) error {
		_, err := tx.Commit(key, name, usage, opts...)
		return err
	})
}

// Remove implements snapshot.Snapshotter.
func (b *Base) Remove(ctx context.Context, key string) error {
	var gone, dir string
	err := b.store.Update(func(tx *storage.Tx) error {
		id, _, err := tx.Remove(key)
		if err != nil {
			return err
		}
		dir = b.dir(id)
		gone = filepath.Join(b.root, "snapshots", "rm-"+id)
		if err := os.Rename(b.dir(id), gone); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// Already gone from disk: drop the record anyway, or it
				// could never be removed.
				gone = ""
				return nil
			}
			return err
		}
		return nil
	})
	if err != nil {
		if gone != "" {
			// The record stays (the transaction failed): put the
			// directory back under its id.
			if _, serr := os.Stat(gone); serr == nil {
				_ = os.Rename(gone, dir)
			}
		}
		return err
	}
	if gone == "" {
		return nil
	}
	if err := removeDir(gone); err != nil {
		// The metadata is gone; the directory is removed at next open.
		slog.Warn("snapshot: remove directory failed", "key", key, "path", gone, "err", err)
	}
	return nil
}

// Walk implements snapshot.Snapshotter.
func (b *Base) Walk(ctx context.Context, fn func(context.Context, snapshot.Info) error) error {
	var infos []snapshot.Info
	if err := b.store.View(func(tx *storage.Tx) error {
		return tx.Walk(func(_ string, info snapshot.Info) error {
			infos = append(infos, info)
			return nil
		})
	}); err != nil {
		return err
	}
	// fn runs outside the transaction so it may call back into the
	// snapshotter.
	for _, info := range infos {
		if err := fn(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

// Close implements snapshot.Snapshotter.
func (b *Base) Close() error { return b.store.Close() }

// DiskUsage counts the inodes (hardlinks once) and allocated bytes below
// dir.
func DiskUsage(ctx context.Context, dir string) (snapshot.Usage, error) {
	var u snapshot.Usage
	type ino struct{ dev, ino uint64 }
	seen := map[ino]struct{}{}
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
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		k := ino{uint64(st.Dev), st.Ino}
		if _, dup := seen[k]; dup {
			return nil
		}
		seen[k] = struct{}{}
		u.Inodes++
		u.Size += st.Blocks * 512
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return u, err
	}
	return u, nil
}
