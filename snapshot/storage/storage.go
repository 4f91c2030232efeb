// Package storage keeps a snapshotter's own metadata in a bbolt file under
// its root: for each snapshot its key, numeric id (which names its directory),
// kind, parent, labels, times and, once committed, its disk usage.
//
// Callers run their filesystem work inside Update so that a failure of either
// side leaves both unchanged: the bbolt transaction is rolled back when the
// function returns an error, and the caller removes the directory it made.
package storage

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"

	"github.com/hullproject/hull/snapshot"
)

var (
	bucketSnapshots = []byte("snapshots")
	bucketChildren  = []byte("children") // key: parent + "\x00" + child
)

// Store is an open metadata file.
type Store struct {
	db *bolt.DB
}

// Open opens (creating if needed) the metadata file at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open snapshot metadata %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSnapshots, bucketChildren} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init snapshot metadata %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Update runs fn in a read-write transaction, committed only if fn returns
// nil.
func (s *Store) Update(fn func(*Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Tx is a metadata transaction.
type Tx struct {
	tx *bolt.Tx
}

type record struct {
	ID      uint64            `json:"id"`
	Kind    snapshot.Kind     `json:"kind"`
	Parent  string            `json:"parent,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
	Updated time.Time         `json:"updated"`
	Inodes  int64             `json:"inodes,omitempty"`
	Size    int64             `json:"size,omitempty"`
}

// Snapshot is what a snapshotter needs to build mounts.
type Snapshot struct {
	ID        string
	Kind      snapshot.Kind
	ParentIDs []string // nearest parent first
}

func (t *Tx) get(key string) (*record, error) {
	v := t.tx.Bucket(bucketSnapshots).Get([]byte(key))
	if v == nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("snapshot %q: corrupt metadata: %w", key, err)
	}
	return &r, nil
}

func (t *Tx) put(key string, r *record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketSnapshots).Put([]byte(key), v)
}

func childKey(parent, child string) []byte { return []byte(parent + "\x00" + child) }

func id(n uint64) string { return strconv.FormatUint(n, 10) }

// Create records a new active snapshot or view named key on parent.
func (t *Tx) Create(kind snapshot.Kind, key, parent string, opts ...snapshot.Opt) (Snapshot, error) {
	if key == "" {
		return Snapshot{}, fmt.Errorf("empty snapshot key: %w", errdefs.ErrInvalidArgument)
	}
	if kind != snapshot.KindActive && kind != snapshot.KindView {
		return Snapshot{}, fmt.Errorf("snapshot %q: cannot create a %s snapshot: %w", key, kind, errdefs.ErrInvalidArgument)
	}
	if t.tx.Bucket(bucketSnapshots).Get([]byte(key)) != nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
	}
	info := snapshot.Info{}
	for _, o := range opts {
		if err := o(&info); err != nil {
			return Snapshot{}, err
		}
	}
	s := Snapshot{Kind: kind}
	if parent != "" {
		pr, err := t.get(parent)
		if err != nil {
			return Snapshot{}, fmt.Errorf("parent of %q: %w", key, err)
		}
		if pr.Kind != snapshot.KindCommitted {
			return Snapshot{}, fmt.Errorf("parent %q of %q is %s, not committed: %w", parent, key, pr.Kind, errdefs.ErrFailedPrecondition)
		}
		ids, err := t.parentIDs(parent)
		if err != nil {
			return Snapshot{}, err
		}
		s.ParentIDs = ids
		if err := t.tx.Bucket(bucketChildren).Put(childKey(parent, key), nil); err != nil {
			return Snapshot{}, err
		}
	}
	n, err := t.tx.Bucket(bucketSnapshots).NextSequence()
	if err != nil {
		return Snapshot{}, err
	}
	now := time.Now().UTC()
	r := &record{ID: n, Kind: kind, Parent: parent, Labels: info.Labels, Created: now, Updated: now}
	if err := t.put(key, r); err != nil {
		return Snapshot{}, err
	}
	s.ID = id(n)
	return s, nil
}

// parentIDs returns the ids of name and its ancestors, nearest first.
func (t *Tx) parentIDs(name string) ([]string, error) {
	var ids []string
	for name != "" {
		r, err := t.get(name)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id(r.ID))
		name = r.Parent
		if len(ids) > 10000 {
			return nil, fmt.Errorf("snapshot parent chain loops at %q", name)
		}
	}
	return ids, nil
}

// Get returns the id, kind and parent ids of key.
func (t *Tx) Get(key string) (Snapshot, error) {
	r, err := t.get(key)
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{ID: id(r.ID), Kind: r.Kind}
	if r.Parent != "" {
		if s.ParentIDs, err = t.parentIDs(r.Parent); err != nil {
			return Snapshot{}, err
		}
	}
	return s, nil
}

// Info returns the id, info and recorded usage of key.
func (t *Tx) Info(key string) (string, snapshot.Info, snapshot.Usage, error) {
	r, err := t.get(key)
	if err != nil {
		return "", snapshot.Info{}, snapshot.Usage{}, err
	}
	return id(r.ID), r.info(key), snapshot.Usage{Inodes: r.Inodes, Size: r.Size}, nil
}

func (r *record) info(key string) snapshot.Info {
	labels := make(map[string]string, len(r.Labels))
	for k, v := range r.Labels {
		labels[k] = v
	}
	return snapshot.Info{Kind: r.Kind, Name: key, Parent: r.Parent, Labels: labels, Created: r.Created, Updated: r.Updated}
}

// Commit renames the active snapshot key to the committed snapshot name,
// recording its usage. It returns the snapshot's id.
func (t *Tx) Commit(key, name string, usage snapshot.Usage, opts ...snapshot.Opt) (string, error) {
	if name == "" {
		return "", fmt.Errorf("empty snapshot name: %w", errdefs.ErrInvalidArgument)
	}
	r, err := t.get(key)
	if err != nil {
		return "", err
	}
	if r.Kind != snapshot.KindActive {
		return "", fmt.Errorf("snapshot %q is %s, only active snapshots can be committed: %w", key, r.Kind, errdefs.ErrFailedPrecondition)
	}
	if t.tx.Bucket(bucketSnapshots).Get([]byte(name)) != nil {
		return "", fmt.Errorf("commit %q as %q: %w", key, name, errdefs.ErrAlreadyExists)
	}
	info := snapshot.Info{Labels: r.Labels}
	for _, o := range opts {
		if err := o(&info); err != nil {
			return "", err
		}
	}
	r.Labels = info.Labels
	r.Kind = snapshot.KindCommitted
	r.Updated = time.Now().UTC()
	r.Inodes, r.Size = usage.Inodes, usage.Size
	if err := t.tx.Bucket(bucketSnapshots).Delete([]byte(key)); err != nil {
		return "", err
	}
	if err := t.put(name, r); err != nil {
		return "", err
	}
	if r.Parent != "" {
		ch := t.tx.Bucket(bucketChildren)
		if err := ch.Delete(childKey(r.Parent, key)); err != nil {
			return "", err
		}
		if err := ch.Put(childKey(r.Parent, name), nil); err != nil {
			return "", err
		}
	}
	return id(r.ID), nil
}

// Remove deletes the record of key and returns its id and kind. A snapshot
// with children is refused.
func (t *Tx) Remove(key string) (string, snapshot.Kind, error) {
	r, err := t.get(key)
	if err != nil {
		return "", snapshot.KindUnknown, err
	}
	c := t.tx.Bucket(bucketChildren).Cursor()
	prefix := []byte(key + "\x00")
	if k, _ := c.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix) {
		return "", snapshot.KindUnknown, fmt.Errorf("snapshot %q has children (%q): %w", key, string(k[len(prefix):]), errdefs.ErrFailedPrecondition)
	}
	if r.Parent != "" {
		if err := t.tx.Bucket(bucketChildren).Delete(childKey(r.Parent, key)); err != nil {
			return "", snapshot.KindUnknown, err
		}
	}
	if err := t.tx.Bucket(bucketSnapshots).Delete([]byte(key)); err != nil {
		return "", snapshot.KindUnknown, err
	}
	return id(r.ID), r.Kind, nil
}

// Walk calls fn with the id and info of every snapshot.
func (t *Tx) Walk(fn func(id string, info snapshot.Info) error) error {
	return t.tx.Bucket(bucketSnapshots).ForEach(func(k, v []byte) error {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("snapshot %q: corrupt metadata: %w", k, err)
		}
		return fn(id(r.ID), r.info(string(k)))
	})
}

// IDs returns the set of ids in use, for removing orphaned directories.
func (t *Tx) IDs() (map[string]string, error) {
	ids := map[string]string{}
	err := t.Walk(func(id string, info snapshot.Info) error {
		ids[id] = info.Name
		return nil
	})
	return ids, err
}
