// Package metadata keeps Hull's records in one bbolt database: namespaces,
// the images of each namespace (name → target descriptor, labels, times),
// the blobs and snapshots each namespace references, and leases that protect
// content in flight (a pull registers what it fetches in a lease before it
// writes it, so garbage collection never removes it underneath).
//
// Layout (bucket path → key → JSON value):
//
//	v1/<ns>/images/<name>     Image
//	v1/<ns>/content/<digest>  BlobRef
//	v1/<ns>/snapshots/<key>   SnapshotRef
//	v1/<ns>/leases/<id>       Lease
package metadata

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// DefaultNamespace is the namespace used when a caller names none.
const DefaultNamespace = "default"

var (
	bucketV1        = []byte("v1")
	bucketImages    = []byte("images")
	bucketContent   = []byte("content")
	bucketSnapshots = []byte("snapshots")
	bucketLeases    = []byte("leases")

	nsRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,75}[A-Za-z0-9])?$`)
)

// Image is an image record.
type Image struct {
	Name      string             `json:"name"`
	Target    ocispec.Descriptor `json:"target"`
	Labels    map[string]string  `json:"labels,omitempty"`
	CreatedAt time.Time          `json:"createdAt"`
	UpdatedAt time.Time          `json:"updatedAt"`
}

// BlobRef records that a namespace references a blob.
type BlobRef struct {
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	CreatedAt time.Time     `json:"createdAt"`
}

// SnapshotRef records that a namespace references a snapshot. Layer
// snapshots (unpacked image layers, named by chain ID) live as long as an
// image needs them; Root snapshots (a container's rw layer) are kept until
// removed explicitly, and keep their parent chain alive.
type SnapshotRef struct {
	Key       string    `json:"key"`
	Parent    string    `json:"parent,omitempty"`
	Root      bool      `json:"root,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Lease protects content and snapshots in flight (for example a running
// pull) from garbage collection until it is deleted or expires.
type Lease struct {
	ID        string          `json:"id"`
	CreatedAt time.Time       `json:"createdAt"`
	ExpiresAt time.Time       `json:"expiresAt"`
	Content   []digest.Digest `json:"content,omitempty"`
	Snapshots []string        `json:"snapshots,omitempty"`
}

// DB is the metadata database.
type DB struct {
	db *bolt.DB
	// GCLock is held for writing by garbage collection and for reading by
	// anything that creates references (so a sweep never races a mark).
	GCLock sync.RWMutex
}

// Open opens (creating if needed) the database file.
func Open(path string) (*DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("metadata %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketV1)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("metadata %s: %w", path, err)
	}
	return &DB{db: db}, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// ValidateNamespace checks a namespace name.
func ValidateNamespace(ns string) error {
	if !nsRE.MatchString(ns) {
		return fmt.Errorf("namespace %q: must be 1-77 letters, digits, '_', '.' or '-': %w", ns, errdefs.ErrInvalidArgument)
	}
	return nil
}

// nsBucket returns the bucket of a namespace's sub-bucket, creating it in a
// writable transaction; nil if it does not exist in a read-only one.
func nsBucket(tx *bolt.Tx, ns string, sub []byte) (*bolt.Bucket, error) {
	if err := ValidateNamespace(ns); err != nil {
		return nil, err
	}
	v1 := tx.Bucket(bucketV1)
	if !tx.Writable() {
		nb := v1.Bucket([]byte(ns))
		if nb == nil {
			return nil, nil
		}
		return nb.Bucket(sub), nil
	}
	nb, err := v1.CreateBucketIfNotExists([]byte(ns))
	if err != nil {
		return nil, err
	}
	return nb.CreateBucketIfNotExists(sub)
}

// CreateNamespace creates a namespace (no error if it exists).
func (d *DB) CreateNamespace(ns string) error {
	if err := ValidateNamespace(ns); err != nil {
		return err
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.Bucket(bucketV1).CreateBucketIfNotExists([]byte(ns))
		return err
	})
}

// Namespaces lists the namespaces.
func (d *DB) Namespaces() ([]string, error) {
	var out []string
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketV1).ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// DeleteNamespace removes an empty namespace (no images, leases or root snapshots).
func (d *DB) DeleteNamespace(ns string) error {
	if err := ValidateNamespace(ns); err != nil {
		return err
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		nb := tx.Bucket(bucketV1).Bucket([]byte(ns))
		if nb == nil {
			return fmt.Errorf("namespace %q: %w", ns, errdefs.ErrNotFound)
		}
		for _, sub := range [][]byte{bucketImages, bucketLeases} {
			if b := nb.Bucket(sub); b != nil && b.Stats().KeyN > 0 {
				return fmt.Errorf("namespace %q is not empty (%s): %w", ns, sub, errdefs.ErrFailedPrecondition)
			}
		}
		return tx.Bucket(bucketV1).DeleteBucket([]byte(ns))
	})
}

func put(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// CreateImage registers an image; errdefs.ErrAlreadyExists if the name is taken.
func (d *DB) CreateImage(ns string, img Image) (Image, error) {
	return d.putImage(ns, img, false)
}

// PutImage registers or updates an image (a re-pull moves the name to the new target).
func (d *DB) PutImage(ns string, img Image) (Image, error) {
	return d.putImage(ns, img, true)
}

func (d *DB) putImage(ns string, img Image, update bool) (Image, error) {
	if img.Name == "" {
		return Image{}, fmt.Errorf("image name is empty: %w", errdefs.ErrInvalidArgument)
	}
	if err := img.Target.Digest.Validate(); err != nil {
		return Image{}, fmt.Errorf("image %q: target digest: %v: %w", img.Name, err, errdefs.ErrInvalidArgument)
	}
	err := d.db.Update(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketImages)
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		img.CreatedAt, img.UpdatedAt = now, now
		if old := b.Get([]byte(img.Name)); old != nil {
			if !update {
				return fmt.Errorf("image %q in namespace %q: %w", img.Name, ns, errdefs.ErrAlreadyExists)
			}
			var prev Image
			if json.Unmarshal(old, &prev) == nil {
				img.CreatedAt = prev.CreatedAt
			}
		}
		return put(b, img.Name, img)
	})
	return img, err
}

// GetImage returns an image record.
func (d *DB) GetImage(ns, name string) (Image, error) {
	var img Image
	err := d.db.View(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketImages)
		if err != nil {
			return err
		}
		var v []byte
		if b != nil {
			v = b.Get([]byte(name))
		}
		if v == nil {
			return fmt.Errorf("image %q in namespace %q: %w", name, ns, errdefs.ErrNotFound)
		}
		return json.Unmarshal(v, &img)
	})
	return img, err
}

// ListImages returns a namespace's images sorted by name.
func (d *DB) ListImages(ns string) ([]Image, error) {
	var out []Image
	err := d.db.View(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketImages)
		if err != nil || b == nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var img Image
			if err := json.Unmarshal(v, &img); err != nil {
				return fmt.Errorf("image %q: corrupt record: %w", k, err)
			}
			out = append(out, img)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// DeleteImage removes an image record (its content stays until GC).
func (d *DB) DeleteImage(ns, name string) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketImages)
		if err != nil {
			return err
		}
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("image %q in namespace %q: %w", name, ns, errdefs.ErrNotFound)
		}
		return b.Delete([]byte(name))
	})
}

// AddContent records that ns references these blobs.
func (d *DB) AddContent(ns string, refs ...BlobRef) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketContent)
		if err != nil {
			return err
		}
		for _, r := range refs {
			if b.Get([]byte(r.Digest)) != nil {
				continue
			}
			if r.CreatedAt.IsZero() {
				r.CreatedAt = time.Now().UTC()
			}
			if err := put(b, string(r.Digest), r); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListContent returns the blobs ns references.
func (d *DB) ListContent(ns string) ([]BlobRef, error) {
	var out []BlobRef
	err := d.db.View(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketContent)
		if err != nil || b == nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var r BlobRef
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// RemoveContent drops ns's references to these blobs.
func (d *DB) RemoveContent(ns string, dgsts ...digest.Digest) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketContent)
		if err != nil {
			return err
		}
		for _, dg := range dgsts {
			if err := b.Delete([]byte(dg)); err != nil {
				return err
			}
		}
		return nil
	})
}

// AddSnapshot records that ns references a snapshot.
func (d *DB) AddSnapshot(ns string, ref SnapshotRef) error {
	if ref.Key == "" {
		return fmt.Errorf("snapshot key is empty: %w", errdefs.ErrInvalidArgument)
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketSnapshots)
		if err != nil {
			return err
		}
		if ref.CreatedAt.IsZero() {
			ref.CreatedAt = time.Now().UTC()
		}
		return put(b, ref.Key, ref)
	})
}

// ListSnapshots returns the snapshots ns references.
func (d *DB) ListSnapshots(ns string) ([]SnapshotRef, error) {
	var out []SnapshotRef
	err := d.db.View(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketSnapshots)
		if err != nil || b == nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var r SnapshotRef
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// RemoveSnapshot drops ns's reference to a snapshot.
func (d *DB) RemoveSnapshot(ns, key string) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketSnapshots)
		if err != nil {
			return err
		}
		return b.Delete([]byte(key))
	})
}

// CreateLease creates a lease that expires after ttl.
func (d *DB) CreateLease(ns, id string, ttl time.Duration) (Lease, error) {
	now := time.Now().UTC()
	l := Lease{ID: id, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	err := d.db.Update(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketLeases)
		if err != nil {
			return err
		}
		if b.Get([]byte(id)) != nil {
			return fmt.Errorf("lease %q: %w", id, errdefs.ErrAlreadyExists)
		}
		return put(b, id, l)
	})
	return l, err
}

// LeaseAdd adds content and snapshots to a lease. Call it before writing
// them, so that a concurrent GC keeps them.
func (d *DB) LeaseAdd(ns, id string, content []digest.Digest, snapshots []string) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketLeases)
		if err != nil {
			return err
		}
		v := b.Get([]byte(id))
		if v == nil {
			return fmt.Errorf("lease %q: %w", id, errdefs.ErrNotFound)
		}
		var l Lease
		if err := json.Unmarshal(v, &l); err != nil {
			return err
		}
		l.Content = append(l.Content, content...)
		l.Snapshots = append(l.Snapshots, snapshots...)
		return put(b, id, l)
	})
}

// DeleteLease removes a lease.
func (d *DB) DeleteLease(ns, id string) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketLeases)
		if err != nil {
			return err
		}
		return b.Delete([]byte(id))
	})
}

// ListLeases returns ns's leases, expired ones included.
func (d *DB) ListLeases(ns string) ([]Lease, error) {
	var out []Lease
	err := d.db.View(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, ns, bucketLeases)
		if err != nil || b == nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var l Lease
			if err := json.Unmarshal(v, &l); err != nil {
				return err
			}
			out = append(out, l)
			return nil
		})
	})
	return out, err
}
