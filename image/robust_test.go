package image

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hullproject/hull/content"
)

// faultyProxy forwards to the registry but spoils blob bodies: "truncate"
// cuts the first response of each blob in half (so the pull must resume),
// "corrupt" flips a byte of every response.
func faultyProxy(t *testing.T, reg, mode string) string {
	t.Helper()
	u, _ := url.Parse("http://" + reg)
	rp := httputil.NewSingleHostReverseProxy(u)
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/blobs/") || r.Method != http.MethodGet {
			rp.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		mu.Lock()
		first := !seen[r.URL.Path]
		seen[r.URL.Path] = true
		mu.Unlock()
		switch {
		case mode == "truncate" && first && len(body) > 1000:
			// Promise the full length, send half, drop the connection.
			w.WriteHeader(rec.Code)
			w.Write(body[:len(body)/2])
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
				}
			}
			return
		case mode == "corrupt" && len(body) > 1000:
			body = append([]byte(nil), body...)
			body[len(body)/2] ^= 0xff
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestPullBadBlobs(t *testing.T) {
	reg, std := standard(t)
	ctx := context.Background()
	path := strings.TrimPrefix(std.ManyLayers, reg)
	tests := []struct {
		mode    string
		wantErr error
	}{
		{"truncate", nil},
		{"corrupt", content.ErrDigestMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			ref := faultyProxy(t, reg, tc.mode) + path
			s := newService(t)
			var resumed atomic.Int64
			img, err := s.Pull(ctx, "default", ref, PullOptions{Progress: func(p Progress) {
				if p.Status == StatusVerified {
					resumed.Add(p.Resumed)
				}
			}})
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				checkPulled(t, s, "default", img, "")
				if resumed.Load() == 0 {
					t.Fatal("truncated downloads were not resumed")
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), ref) {
				t.Fatalf("got %v, want %v naming %s", err, tc.wantErr, ref)
			}
			if imgs, _ := s.Meta.ListImages("default"); len(imgs) != 0 {
				t.Fatalf("registered %v", imgs)
			}
			if ing, _ := s.Content.ListIngests(ctx); len(ing) != 0 {
				t.Fatalf("corrupt ingests kept: %v", ing)
			}
		})
	}
}

// Concurrent pulls of one image into one store (and unpacks of the same
// layers) all succeed, and a GC running meanwhile removes nothing in use.
func TestPullConcurrentWithGC(t *testing.T) {
	_, std := standard(t)
	ctx := context.Background()
	s := newService(t)
	withSnapshotter(t, s, "")
	stop := make(chan struct{})
	var gcs atomic.Int64
	var gcErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.GC(ctx); err != nil {
				gcErr = err
				return
			}
			gcs.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	var pulls sync.WaitGroup
	errs := make([]error, 4)
	imgs := make([]Image, 4)
	for i := range errs {
		pulls.Add(1)
		go func() {
			defer pulls.Done()
			ns := []string{"a", "b", "c", "d"}[i]
			imgs[i], errs[i] = s.Pull(ctx, ns, std.ManyLayers, PullOptions{Unpack: true})
		}()
	}
	pulls.Wait()
	close(stop)
	wg.Wait()
	if gcErr != nil {
		t.Fatal(gcErr)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	for i, ns := range []string{"a", "b", "c", "d"} {
		checkPulled(t, s, ns, imgs[i], "")
	}
	_, cfg, _, _ := s.Resolve(ctx, imgs[0].Target, "")
	for _, c := range ChainIDs(cfg.RootFS.DiffIDs) {
		if _, err := s.Snapshotter.Stat(ctx, c.String()); err != nil {
			t.Fatalf("snapshot %s: %v", c, err)
		}
	}
	if n := countSnapshots(t, s.Snapshotter); n != len(cfg.RootFS.DiffIDs) {
		t.Fatalf("%d snapshots, want %d (no leftovers from racing unpacks)", n, len(cfg.RootFS.DiffIDs))
	}
	t.Logf("%d GC runs during the pulls", gcs.Load())
}
