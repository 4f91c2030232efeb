package content

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

func TestIngest(t *testing.T) {
	ctx := context.Background()
	data := bytes.Repeat([]byte("hull"), 1000)
	good := digest.FromBytes(data)
	tests := []struct {
		name    string
		dgst    digest.Digest
		size    int64
		write   []byte
		wantErr error
	}{
		{"verified", good, int64(len(data)), data, nil},
		{"unknown size", good, -1, data, nil},
		{"truncated", good, int64(len(data)), data[:100], ErrSizeMismatch},
		{"too long", good, 10, data, ErrSizeMismatch},
		{"corrupt", good, int64(len(data)), append([]byte("X"), data[1:]...), ErrDigestMismatch},
		{"bad digest", digest.Digest("sha256:zz"), 1, []byte("z"), errdefs.ErrInvalidArgument},
		{"empty digest", digest.Digest(""), -1, data, errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			w, err := s.Writer(ctx, tc.dgst, tc.size)
			if err == nil {
				_, err = w.Write(tc.write)
				if err == nil {
					err = w.Commit(ctx)
				}
				w.Close()
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			_, infoErr := s.Info(ctx, tc.dgst)
			if tc.wantErr == nil {
				if infoErr != nil {
					t.Fatalf("committed blob: %v", infoErr)
				}
				got, err := s.ReadBlob(ctx, tc.dgst)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("ReadBlob: %v", err)
				}
				return
			}
			if tc.wantErr == errdefs.ErrInvalidArgument || tc.wantErr == errdefs.ErrNotImplemented {
				return
			}
			if !errors.Is(infoErr, errdefs.ErrNotFound) {
				t.Fatalf("rejected blob must not exist: %v", infoErr)
			}
			ing, _ := s.ListIngests(ctx)
			if len(ing) != 0 {
				t.Fatalf("rejected ingest left behind: %v", ing)
			}
		})
	}
}

func TestResume(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789"), 10000)
	dgst := digest.FromBytes(data)
	w, err := s.Writer(ctx, dgst, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:33333])
	w.Close() // interrupted

	if _, err := s.Writer(ctx, dgst, int64(len(data))); err != nil {
		t.Fatal(err) // reopen after Close must work
	}
	// The second writer above is still open: a third must be refused.
	if _, err := s.Writer(ctx, dgst, int64(len(data))); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("concurrent writer: %v", err)
	}
}

func TestResumeContinues(t *testing.T) {
	ctx := context.Background()
	s, _ := Open(t.TempDir())
	data := bytes.Repeat([]byte("abcdefgh"), 5000)
	dgst := digest.FromBytes(data)
	w, _ := s.Writer(ctx, dgst, int64(len(data)))
	w.Write(data[:1234])
	w.Close()
	w, err := s.Writer(ctx, dgst, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 1234 {
		t.Fatalf("offset %d, want 1234", w.Offset())
	}
	w.Write(data[1234:])
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Writer(ctx, dgst, int64(len(data))); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("writer for committed blob: %v", err)
	}
}

func TestReadBlobLimits(t *testing.T) {
	ctx := context.Background()
	s, _ := Open(t.TempDir())
	big := make([]byte, MaxInMemory+1)
	dgst := digest.FromBytes(big)
	if err := s.WriteBlob(ctx, dgst, big); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadBlob(ctx, dgst); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("big blob: %v", err)
	}
	// A blob corrupted on disk is detected and removed.
	small := []byte(`{"schemaVersion":2}`)
	sd := digest.FromBytes(small)
	if err := s.WriteBlob(ctx, sd, small); err != nil {
		t.Fatal(err)
	}
	p, _ := s.BlobPath(sd)
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte(`{"schemaVersion":3}`), 0o644)
	if _, err := s.ReadBlob(ctx, sd); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("corrupt blob: %v", err)
	}
	if _, err := s.Info(ctx, sd); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("corrupt blob kept: %v", err)
	}
	// Walk and Delete.
	n := 0
	s.Walk(ctx, func(Info) error { n++; return nil })
	if n != 1 {
		t.Fatalf("walk saw %d blobs, want 1", n)
	}
	if err := s.Delete(ctx, dgst); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, dgst); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("double delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "blobs")); err != nil {
		t.Fatal(err)
	}
}
