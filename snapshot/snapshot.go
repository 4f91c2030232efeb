// Package snapshot defines Hull's snapshotter interface: the layered
// filesystems that image layers are unpacked into and containers run on.
//
// The model is containerd's. A snapshot is Active (writable, created by
// Prepare), a View (read-only, created by View) or Committed (immutable,
// created by Commit from an Active snapshot; only committed snapshots can be
// parents). Image unpacking prepares an active snapshot on top of the
// previous layer's committed one, applies the layer (package diff) and
// commits it under the layer's chain ID, so the same layer is stored once
// whatever image uses it.
//
// Implementations: snapshot/overlay (overlayfs, one directory per layer) and
// snapshot/native (a copy of the parent per snapshot, for hosts where overlay
// cannot be used). snapshot/auto picks one with a real probe.
package snapshot

import (
	"context"
	"fmt"
	"time"

	"github.com/hullproject/hull/mount"
)

// Kind is the state of a snapshot.
type Kind uint8

// The kinds of snapshot.
const (
	KindUnknown Kind = iota
	KindView
	KindActive
	KindCommitted
)

// String names the kind as containerd does.
func (k Kind) String() string {
	switch k {
	case KindView:
		return "View"
	case KindActive:
		return "Active"
	case KindCommitted:
		return "Committed"
	}
	return "Unknown"
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) {
	for _, k := range []Kind{KindView, KindActive, KindCommitted} {
		if k.String() == s {
			return k, nil
		}
	}
	return KindUnknown, fmt.Errorf("unknown snapshot kind %q", s)
}

// Info describes a snapshot.
type Info struct {
	Kind    Kind
	Name    string // the key (active, view) or name (committed)
	Parent  string // the parent's name, "" for none
	Labels  map[string]string
	Created time.Time
	Updated time.Time
}

// Usage is the disk usage of a snapshot's own layer (not its parents).
type Usage struct {
	Inodes int64
	Size   int64 // bytes of disk used
}

// Add adds u2 to u.
func (u *Usage) Add(u2 Usage) {
	u.Inodes += u2.Inodes
	u.Size += u2.Size
}

// Opt sets optional properties of a snapshot.
type Opt func(*Info) error

// WithLabels sets labels on the snapshot being created or committed.
func WithLabels(labels map[string]string) Opt {
	return func(i *Info) error {
		if i.Labels == nil {
			i.Labels = map[string]string{}
		}
		for k, v := range labels {
			i.Labels[k] = v
		}
		return nil
	}
}

// Snapshotter manages snapshots. Errors wrap errdefs kinds: ErrNotFound for
// an unknown key, ErrAlreadyExists for a key or name in use,
// ErrFailedPrecondition for a snapshot in the wrong state or with children,
// ErrInvalidArgument for bad input.
type Snapshotter interface {
	// Stat returns the info of the snapshot named key.
	Stat(ctx context.Context, key string) (Info, error)
	// Usage returns the disk usage of the snapshot's own layer. For an
	// active snapshot it is computed now; for a committed one it was
	// recorded at commit.
	Usage(ctx context.Context, key string) (Usage, error)
	// Mounts returns the mounts of an active snapshot or view again.
	Mounts(ctx context.Context, key string) ([]mount.Mount, error)
	// Prepare creates a writable snapshot on top of the committed parent
	// ("" for none) and returns its mounts.
	Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]mount.Mount, error)
	// View creates a read-only snapshot of parent and returns its mounts.
	View(ctx context.Context, key, parent string, opts ...Opt) ([]mount.Mount, error)
	// Commit turns the active snapshot key into the committed snapshot name.
	// The caller must have unmounted its mounts.
	Commit(ctx context.Context, name, key string, opts ...Opt) error
	// Remove deletes a snapshot. A snapshot that is the parent of others is
	// refused with errdefs.ErrFailedPrecondition. The caller must have
	// unmounted it.
	Remove(ctx context.Context, key string) error
	// Walk calls fn for every snapshot.
	Walk(ctx context.Context, fn func(context.Context, Info) error) error
	// Close releases the snapshotter's metadata store.
	Close() error
}
