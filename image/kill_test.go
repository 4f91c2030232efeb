package image

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hullproject/hull/content"
	"github.com/hullproject/hull/internal/testimages"
	"github.com/hullproject/hull/metadata"
)

func openService(t *testing.T, root string) *Service {
	s, closeDB, err := openServiceAt(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeDB)
	return s
}

func openServiceAt(root string) (*Service, func(), error) {
	cs, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		return nil, nil, err
	}
	db, err := metadata.Open(filepath.Join(root, "meta.db"))
	if err != nil {
		return nil, nil, err
	}
	return &Service{Content: cs, Meta: db, Registry: RegistryConfig{ConfigPath: filepath.Join(root, "none.json")}}, func() { db.Close() }, nil
}

func TestPullKilled(t *testing.T) {
	reg := testimages.Registry(t)
	ctx := context.Background()
	img, _, err := testimages.ManyLayers(4, 4<<20, testimages.Options{OCI: true})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := testimages.Push(ctx, reg, fmt.Sprintf("hulltest%d/killme:latest", os.Getpid()), img)
	if err != nil {
		t.Fatal(err)
	}
	// A proxy that trickles blobs, so the child is killed mid-layer.
	u, _ := url.Parse("http://" + reg)
	rp := httputil.NewSingleHostReverseProxy(u)
	var served atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/blobs/") {
			rp.ServeHTTP(w, r)
			return
		}
		rp.ServeHTTP(&trickle{ResponseWriter: w, served: &served}, r)
	}))
	defer slow.Close()
	slowRef := strings.TrimPrefix(slow.URL, "http://") + strings.TrimPrefix(ref, reg)

	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), "HULL_TEST_CHILD_ROOT="+root, "HULL_TEST_CHILD_REF="+slowRef)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for served.Load() < 6<<20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()
	if served.Load() < 6<<20 {
		t.Fatalf("child pulled only %d bytes before the deadline", served.Load())
	}

	s := openService(t, root)
	if imgs, _ := s.Meta.ListImages("default"); len(imgs) != 0 {
		t.Fatalf("killed pull registered %v", imgs)
	}
	ingests, _ := s.Content.ListIngests(ctx)
	var partial int64
	for _, in := range ingests {
		partial += in.Offset
	}
	if partial == 0 {
		t.Fatalf("no partial ingest left to resume")
	}
	// Every committed blob is intact.
	s.Content.Walk(ctx, func(i content.Info) error {
		r, err := s.Content.ReaderAt(ctx, i.Digest)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		return nil
	})
	var resumed atomic.Int64
	got, err := s.Pull(ctx, "default", ref, PullOptions{Progress: func(p Progress) {
		if p.Status == StatusVerified {
			resumed.Add(p.Resumed)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Load() == 0 {
		t.Fatalf("the second pull resumed nothing (partial was %d bytes)", partial)
	}
	// The killed pull's lease stays until it expires (GC drops it then).
	checkPulledLeases(t, s, "default", got, "", 1)
	if ingests, _ := s.Content.ListIngests(ctx); len(ingests) != 0 {
		t.Fatalf("ingests left: %v", ingests)
	}
	t.Logf("killed after %d bytes served; resumed %d bytes", served.Load(), resumed.Load())
}

type trickle struct {
	http.ResponseWriter
	served *atomic.Int64
}

func (t *trickle) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 32<<10)
		m, err := t.ResponseWriter.Write(p[:k])
		n += m
		t.served.Add(int64(m))
		if f, ok := t.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		if err != nil {
			return n, err
		}
		p = p[k:]
		time.Sleep(5 * time.Millisecond)
	}
	return n, nil
}
