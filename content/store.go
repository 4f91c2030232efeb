// Package content is Hull's content-addressed blob store: every blob lives
// at <root>/blobs/sha256/<hex> and is reached only by its digest.
//
// Blobs arrive through a Writer that streams into <root>/ingest/<hex>/data,
// hashing as it goes. Commit checks the expected size and digest, fsyncs the
// data and renames it into place, so a blob path either holds verified bytes
// or does not exist. A partial ingest survives a crash (even kill -9): the
// next Writer for the same digest re-hashes what is there and continues from
// that offset, which is what lets an interrupted pull resume with an HTTP
// Range request. Content that fails verification is removed.
//
// Written by hand rather than taken from containerd's content store because
// that package drags in containerd's whole plugin and metadata graph; the
// behaviour needed here fits in one small file.
package content

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// MaxInMemory is the largest blob ReadBlob reads into memory: manifests,
// indexes and image configs are limited to this size.
const MaxInMemory = 4 << 20

var (
	// ErrDigestMismatch means the bytes written do not hash to the expected digest.
	ErrDigestMismatch = fmt.Errorf("digest mismatch: %w", errdefs.ErrFailedPrecondition)
	// ErrSizeMismatch means more or fewer bytes were written than expected.
	ErrSizeMismatch = fmt.Errorf("size mismatch: %w", errdefs.ErrFailedPrecondition)
	// ErrTooLarge means a blob exceeds the limit for reading it into memory.
	ErrTooLarge = fmt.Errorf("blob too large to read into memory: %w", errdefs.ErrInvalidArgument)
)

// Info describes a committed blob.
type Info struct {
	Digest    digest.Digest
	Size      int64
	CreatedAt time.Time
}

// ReaderAt reads a committed blob.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Store is a blob store rooted at a directory.
type Store struct {
	root string

	mu      sync.Mutex
	writing map[digest.Digest]bool // ingests open in this process
}

// Open creates (if needed) and opens the store at root.
func Open(root string) (*Store, error) {
	for _, d := range []string{"blobs/sha256", "ingest"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("content store %s: %w", root, err)
		}
	}
	return &Store{root: root, writing: map[digest.Digest]bool{}}, nil
}

// Root returns the directory the store lives in.
func (s *Store) Root() string { return s.root }

func validate(dgst digest.Digest) error {
	if err := dgst.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v: %w", dgst, err, errdefs.ErrInvalidArgument)
	}
	if dgst.Algorithm() != digest.SHA256 {
		return fmt.Errorf("digest %q: only sha256 is supported: %w", dgst, errdefs.ErrNotImplemented)
	}
	return nil
}

// BlobPath returns where the blob with this digest lives (whether or not it exists).
func (s *Store) BlobPath(dgst digest.Digest) (string, error) {
	if err := validate(dgst); err != nil {
		return "", err
	}
	return filepath.Join(s.root, "blobs", "sha256", dgst.Encoded()), nil
}

// Info returns the blob's size and creation time, or errdefs.ErrNotFound.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (Info, error) {
	p, err := s.BlobPath(dgst)
	if err != nil {
		return Info{}, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
	}
	if err != nil {
		return Info{}, fmt.Errorf("blob %s: %w", dgst, err)
	}
	return Info{Digest: dgst, Size: st.Size(), CreatedAt: st.ModTime()}, nil
}

type fileReader struct {
	*os.File
	size int64
}

func (r fileReader) Size() int64 { return r.size }

// ReaderAt opens a committed blob.
func (s *Store) ReaderAt(ctx context.Context, dgst digest.Digest) (ReaderAt, error) {
	p, err := s.BlobPath(dgst)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", dgst, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob %s: %w", dgst, err)
	}
	return fileReader{File: f, size: st.Size()}, nil
}

// ReadBlob reads a whole blob into memory, refusing blobs over MaxInMemory.
func (s *Store) ReadBlob(ctx context.Context, dgst digest.Digest) ([]byte, error) {
	r, err := s.ReaderAt(ctx, dgst)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if r.Size() > MaxInMemory {
		return nil, fmt.Errorf("blob %s is %d bytes, limit %d: %w", dgst, r.Size(), MaxInMemory, ErrTooLarge)
	}
	b := make([]byte, r.Size())
	if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("blob %s: %w", dgst, err)
	}
	if digest.SHA256.FromBytes(b) != dgst {
		// Corrupted on disk: remove it so the next pull fetches it again.
		os.Remove(r.(fileReader).Name())
		return nil, fmt.Errorf("blob %s on disk (removed): %w", dgst, ErrDigestMismatch)
	}
	return b, nil
}

// Delete removes a committed blob.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	p, err := s.BlobPath(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
		}
		return fmt.Errorf("blob %s: %w", dgst, err)
	}
	return nil
}

// Walk calls fn for every committed blob.
func (s *Store) Walk(ctx context.Context, fn func(Info) error) error {
	dir := filepath.Join(s.root, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("content store %s: %w", s.root, err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		dgst := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if dgst.Validate() != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if err := fn(Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// Ingest describes a partial ingest left on disk.
type Ingest struct {
	Digest    digest.Digest
	Offset    int64
	UpdatedAt time.Time
}

// ListIngests returns the partial ingests on disk.
func (s *Store) ListIngests(ctx context.Context) ([]Ingest, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "ingest"))
	if err != nil {
		return nil, fmt.Errorf("content store %s: %w", s.root, err)
	}
	var out []Ingest
	for _, e := range ents {
		dgst := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if dgst.Validate() != nil {
			continue
		}
		st, err := os.Stat(filepath.Join(s.root, "ingest", e.Name(), "data"))
		if err != nil {
			continue
		}
		out = append(out, Ingest{Digest: dgst, Offset: st.Size(), UpdatedAt: st.ModTime()})
	}
	return out, nil
}

// AbortIngest removes a partial ingest.
func (s *Store) AbortIngest(ctx context.Context, dgst digest.Digest) error {
	if err := validate(dgst); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writing[dgst] {
		return fmt.Errorf("ingest %s is being written: %w", dgst, errdefs.ErrUnavailable)
	}
	return os.RemoveAll(filepath.Join(s.root, "ingest", dgst.Encoded()))
}

// Writer ingests one blob whose digest (and, if size >= 0, size) is known in
// advance. If a partial ingest for the digest exists, the Writer continues it:
// Offset reports how many bytes are already there. If the blob is already
// committed, Writer returns an error wrapping errdefs.ErrAlreadyExists.
// Only one Writer per digest may be open at a time (in this process and,
// through flock, across processes): others get errdefs.ErrUnavailable.
func (s *Store) Writer(ctx context.Context, dgst digest.Digest, size int64) (*Writer, error) {
	p, err := s.BlobPath(dgst)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(p); err == nil {
		return nil, fmt.Errorf("blob %s: %w", dgst, errdefs.ErrAlreadyExists)
	}
	s.mu.Lock()
	if s.writing[dgst] {
		s.mu.Unlock()
		return nil, fmt.Errorf("ingest %s is being written: %w", dgst, errdefs.ErrUnavailable)
	}
	s.writing[dgst] = true
	s.mu.Unlock()

	w, err := s.openWriter(dgst, size, p)
	if err != nil {
		s.release(dgst)
		return nil, err
	}
	return w, nil
}

func (s *Store) release(dgst digest.Digest) {
	s.mu.Lock()
	delete(s.writing, dgst)
	s.mu.Unlock()
}

func (s *Store) openWriter(dgst digest.Digest, size int64, target string) (*Writer, error) {
	dir := filepath.Join(s.root, "ingest", dgst.Encoded())
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ingest %s: %w", dgst, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ingest %s: %w", dgst, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("ingest %s is locked by another process: %w", dgst, errdefs.ErrUnavailable)
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("ingest %s: %w", dgst, err)
	}
	w := &Writer{s: s, dgst: dgst, size: size, target: target, dir: dir, f: f, lock: lock, h: sha256.New()}
	// Re-hash what a previous attempt left behind, then append after it.
	n, err := io.Copy(w.h, f)
	if err != nil {
		w.close()
		return nil, fmt.Errorf("ingest %s: reading partial data: %w", dgst, err)
	}
	if size >= 0 && n > size {
		// Longer than the blob can be: start again.
		if err := f.Truncate(0); err != nil {
			w.close()
			return nil, fmt.Errorf("ingest %s: %w", dgst, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			w.close()
			return nil, fmt.Errorf("ingest %s: %w", dgst, err)
		}
		w.h.Reset()
		n = 0
	}
	w.offset = n
	return w, nil
}

// Writer streams one blob into the store; see Store.Writer.
type Writer struct {
	s      *Store
	dgst   digest.Digest
	size   int64
	target string
	dir    string
	f      *os.File
	lock   *os.File
	h      hash.Hash
	offset int64
	done   bool
}

// Offset is the number of bytes already ingested.
func (w *Writer) Offset() int64 { return w.offset }

// Digest is the digest the Writer was opened for.
func (w *Writer) Digest() digest.Digest { return w.dgst }

// Write appends to the ingest.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("blob %s: writer closed: %w", w.dgst, errdefs.ErrFailedPrecondition)
	}
	if w.size >= 0 && w.offset+int64(len(p)) > w.size {
		w.discard() // cannot be the right content
		return 0, fmt.Errorf("blob %s: more than the expected %d bytes: %w", w.dgst, w.size, ErrSizeMismatch)
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.offset += int64(n)
	return n, err
}

// Truncate discards the ingested bytes (used when a server ignores a Range
// request and sends the blob from the start).
func (w *Writer) Truncate() error {
	if err := w.f.Truncate(0); err != nil {
		return err
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	w.h.Reset()
	w.offset = 0
	return nil
}

// Commit verifies size and digest, syncs the data and moves it into place.
// On a mismatch the ingest is removed, so the next attempt starts clean.
func (w *Writer) Commit(ctx context.Context) error {
	if w.done {
		return fmt.Errorf("blob %s: writer already closed: %w", w.dgst, errdefs.ErrFailedPrecondition)
	}
	if w.size >= 0 && w.offset != w.size {
		err := fmt.Errorf("blob %s: got %d bytes, expected %d: %w", w.dgst, w.offset, w.size, ErrSizeMismatch)
		w.discard()
		return err
	}
	got := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(w.h.Sum(nil)))
	if got != w.dgst {
		err := fmt.Errorf("blob %s: content hashes to %s: %w", w.dgst, got, ErrDigestMismatch)
		w.discard()
		return err
	}
	if err := w.f.Sync(); err != nil {
		w.close()
		return fmt.Errorf("blob %s: sync: %w", w.dgst, err)
	}
	if err := os.Chmod(w.f.Name(), 0o444); err != nil {
		w.close()
		return fmt.Errorf("blob %s: %w", w.dgst, err)
	}
	if err := os.Rename(w.f.Name(), w.target); err != nil {
		w.close()
		return fmt.Errorf("blob %s: commit: %w", w.dgst, err)
	}
	if d, err := os.Open(filepath.Dir(w.target)); err == nil {
		d.Sync()
		d.Close()
	}
	w.discard()
	return nil
}

// Close releases the Writer, keeping any partial data for a later resume.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.close()
	return nil
}

func (w *Writer) close() {
	w.done = true
	w.f.Close()
	w.lock.Close()
	w.s.release(w.dgst)
}

func (w *Writer) discard() {
	dir := w.dir
	w.close()
	os.RemoveAll(dir)
}

// waitWriter is Writer, waiting while another writer holds the digest.
func (s *Store) waitWriter(ctx context.Context, dgst digest.Digest, size int64) (*Writer, error) {
	for {
		w, err := s.Writer(ctx, dgst, size)
		if !errors.Is(err, errdefs.ErrUnavailable) {
			return w, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("blob %s: waiting for another writer: %w", dgst, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WriteBlob ingests a blob that is fully in memory (manifests, configs).
// A blob already present is left as it is; if another writer is ingesting
// it, WriteBlob waits for that one.
func (s *Store) WriteBlob(ctx context.Context, dgst digest.Digest, data []byte) error {
	w, err := s.waitWriter(ctx, dgst, int64(len(data)))
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if w.Offset() != 0 {
		if err := w.Truncate(); err != nil {
			return err
		}
	}
	if _, err := w.Write(data); err != nil {
		w.discard()
		return err
	}
	return w.Commit(ctx)
}

// Copy ingests a blob from r from its start (discarding any partial
// ingest), waiting if another writer holds the digest.
func (s *Store) Copy(ctx context.Context, dgst digest.Digest, size int64, r io.Reader) error {
	w, err := s.waitWriter(ctx, dgst, size)
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if w.Offset() != 0 {
		if err := w.Truncate(); err != nil {
			return err
		}
	}
	if _, err := io.Copy(w, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("blob %s: %w", dgst, err)
	}
	return w.Commit(ctx)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
