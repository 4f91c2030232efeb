package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hullproject/hull/internal/testimages"
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
