package daemon

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"

	"github.com/hullproject/hull/network"
)

// Container is a container record.
type Container struct {
	ID          string            `json:"id"`
	Image       string            `json:"image"`
	Runtime     string            `json:"runtime"`
	Labels      map[string]string `json:"labels,omitempty"`
	Spec        json.RawMessage   `json:"spec"`
	SnapshotKey string            `json:"snapshotKey"`
	Snapshotter string            `json:"snapshotter"`
	Stdin       bool              `json:"stdin,omitempty"`
	CreatedAt   time.Time         `json:"createdAt"`
	// Network is "none", "host" or a network's name; Ports are published
	// on the host while the task runs.
	Network string                `json:"network,omitempty"`
	Ports   []network.PortMapping `json:"ports,omitempty"`
}

// store keeps container records: v1/<ns>/<id> → JSON.
type store struct{ db *bolt.DB }

var bucketV1 = []byte("v1")

func openStore(path string) (*store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("container store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketV1)
		return err
	}); err != nil {
		db.Close()
		return nil, err
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

func (s *store) create(ns string, c Container) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketV1).CreateBucketIfNotExists([]byte(ns))
		if err != nil {
			return err
		}
		if b.Get([]byte(c.ID)) != nil {
			return fmt.Errorf("container %q in namespace %q: %w", c.ID, ns, errdefs.ErrAlreadyExists)
		}
		data, err := json.Marshal(c)
		if err != nil {
			return err
		}
		return b.Put([]byte(c.ID), data)
	})
}

func (s *store) get(ns, id string) (Container, error) {
	var c Container
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketV1).Bucket([]byte(ns))
		var data []byte
		if b != nil {
			data = b.Get([]byte(id))
		}
		if data == nil {
			return fmt.Errorf("container %q in namespace %q: %w", id, ns, errdefs.ErrNotFound)
		}
		return json.Unmarshal(data, &c)
	})
	return c, err
}

func (s *store) list(ns string) ([]Container, error) {
	var out []Container
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketV1).Bucket([]byte(ns))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var c Container
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("container %q: %w", k, err)
			}
			out = append(out, c)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

func (s *store) delete(ns, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketV1).Bucket([]byte(ns))
		if b == nil || b.Get([]byte(id)) == nil {
			return fmt.Errorf("container %q in namespace %q: %w", id, ns, errdefs.ErrNotFound)
		}
		return b.Delete([]byte(id))
	})
}

// count is the number of containers in ns.
func (s *store) count(ns string) int {
	n := 0
	_ = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketV1).Bucket([]byte(ns)); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n
}

// usersOf lists the containers ("<ns>/<id>") of every namespace that use
// network name.
func (s *store) usersOf(name string) ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketV1).ForEachBucket(func(ns []byte) error {
			return tx.Bucket(bucketV1).Bucket(ns).ForEach(func(k, v []byte) error {
				var c struct {
					Network string `json:"network"`
				}
				if err := json.Unmarshal(v, &c); err != nil {
					return fmt.Errorf("container %q: %w", k, err)
				}
				if c.Network == name {
					out = append(out, string(ns)+"/"+string(k))
				}
				return nil
			})
		})
	})
	return out, err
}
