package image

import (
	"context"
	"errors"
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

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hullproject/hull/content"
	"github.com/hullproject/hull/internal/testimages"
	"github.com/hullproject/hull/metadata"
)

// tokenProxy puts Docker-style bearer-token auth in front of a registry:
// /token trades basic credentials for a token, everything else wants it.
func tokenProxy(t *testing.T, reg, user, pass string) string {
	t.Helper()
	u, _ := url.Parse("http://" + reg)
	rp := httputil.NewSingleHostReverseProxy(u)
	const token = "hull-test-token"
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`))
				return
			}
			fmt.Fprintf(w, `{"token":%q,"access_token":%q,"expires_in":300}`, token, token)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="hull-test"`, srv.URL))
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}`))
			return
		}
		r.Header.Del("Authorization")
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestPullAuth(t *testing.T) {
	reg, std := standard(t)
	ctx := context.Background()
	basicReg := startRegistry(t, "hull", "s3cret")
	img, err := testimages.Busybox(testimages.Options{})
	if err != nil {
		t.Fatal(err)
	}
	basicRef, err := testimages.Push(ctx, basicReg, "auth/busybox:latest", img,
		remote.WithAuth(&authn.Basic{Username: "hull", Password: "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	tokenHost := tokenProxy(t, reg, "hull", "t0ken")
	tokenRef := tokenHost + strings.TrimPrefix(std.Busybox, reg)

	tests := []struct {
		name, ref, user, pass string
		want                  error
	}{
		{"basic ok", basicRef, "hull", "s3cret", nil},
		{"basic via DOCKER_CONFIG", basicRef, "hull", "s3cret", nil},
		{"basic wrong password", basicRef, "hull", "nope", ErrAuth},
		{"basic anonymous", basicRef, "", "", ErrAuth},
		{"bearer ok", tokenRef, "hull", "t0ken", nil},
		{"bearer wrong password", tokenRef, "hull", "nope", ErrAuth},
		{"bearer anonymous", tokenRef, "", "", ErrAuth},
		{"anonymous registry", std.Busybox, "", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newService(t)
			if tc.user != "" {
				r, _ := ParseReference(tc.ref)
				s.Registry.ConfigPath = writeDockerConfig(t, r.Domain, tc.user, tc.pass)
				if tc.name == "basic via DOCKER_CONFIG" {
					// No configured path: the default keychain reads $DOCKER_CONFIG/config.json.
					t.Setenv("DOCKER_CONFIG", filepath.Dir(s.Registry.ConfigPath))
					s.Registry.ConfigPath = ""
				}
			}
			img, err := s.Pull(ctx, "default", tc.ref, PullOptions{})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				checkPulled(t, s, "default", img, "")
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.ref) {
				t.Fatalf("got %v, want %v naming %s", err, tc.want, tc.ref)
			}
			if imgs, _ := s.Meta.ListImages("default"); len(imgs) != 0 {
				t.Fatalf("registered after auth failure: %v", imgs)
			}
		})
	}
}

func TestPullMirror(t *testing.T) {
	reg, std := standard(t)
	ctx := context.Background()
	down := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	path := strings.TrimPrefix(strings.TrimPrefix(std.Busybox, reg), "/")
	tests := []struct {
		name    string
		mirrors []string
	}{
		{"mirror", []string{"http://" + reg}},
		{"first mirror down", []string{"http://" + down, reg}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newService(t)
			s.Registry.Mirrors = map[string][]string{"docker.io": tc.mirrors}
			img, err := s.Pull(ctx, "default", "docker.io/"+path, PullOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if img.Name != "docker.io/"+path {
				t.Fatalf("image name %s", img.Name)
			}
			checkPulled(t, s, "default", img, "")
		})
	}
}

// TestPullChildProcess is the pull that TestPullKilled kills with -9.
func TestPullChildProcess(t *testing.T) {
	root, ref := os.Getenv("HULL_TEST_CHILD_ROOT"), os.Getenv("HULL_TEST_CHILD_REF")
	if root == "" {
		t.Skip("helper process for TestPullKilled")
	}
	s := openService(t, root)
	s.Concurrency = 1
	s.Pull(context.Background(), "default", ref, PullOptions{})
	t.Fatal("the pull was meant to be killed")
}

func openService(t *testing.T, root string) *Service {
	cs, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := metadata.Open(filepath.Join(root, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &Service{Content: cs, Meta: db, Registry: RegistryConfig{ConfigPath: filepath.Join(root, "none.json")}}
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
	cmd := exec.Command(os.Args[0], "-test.run", "^TestPullChildProcess$", "-test.count=1")
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
