package image

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hullproject/hull/content"
)

func TestParseReference(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"busybox", "docker.io/library/busybox:latest", false},
		{"busybox:1.36", "docker.io/library/busybox:1.36", false},
		{"library/busybox", "docker.io/library/busybox:latest", false},
		{"docker.io/busybox", "docker.io/library/busybox:latest", false},
		{"index.docker.io/busybox", "docker.io/library/busybox:latest", false},
		{"user/app:v1", "docker.io/user/app:v1", false},
		{"quay.io/org/app", "quay.io/org/app:latest", false},
		{"127.0.0.1:5000/x/y:t", "127.0.0.1:5000/x/y:t", false},
		{"localhost/x", "localhost/x:latest", false},
		{"busybox@" + d, "docker.io/library/busybox@" + d, false},
		{"busybox:1.36@" + d, "docker.io/library/busybox@" + d, false},
		{"busybox@1.36@" + d, "", true},
		{"BusyBox", "", true},
		{"", "", true},
		{"busybox:bad tag", "", true},
		{"busybox@sha256:short", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseReference(tc.in)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("got %v, %v; want invalid argument", r, err)
				}
				return
			}
			if err != nil || r.String() != tc.want {
				t.Fatalf("got %q, %v; want %q", r.String(), err, tc.want)
			}
		})
	}
}

func TestPlatform(t *testing.T) {
	tests := []struct {
		in      string
		entry   ocispec.Platform
		match   bool
		wantErr bool
	}{
		{"linux/amd64", ocispec.Platform{OS: "linux", Architecture: "amd64"}, true, false},
		{"linux/arm64", ocispec.Platform{OS: "linux", Architecture: "arm64"}, true, false},
		{"linux/arm64/v8", ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, true, false},
		{"linux/arm/v7", ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, false, false},
		{"linux/amd64", ocispec.Platform{OS: "windows", Architecture: "amd64"}, false, false},
		{"linux", ocispec.Platform{}, false, true},
		{"a/b/c/d", ocispec.Platform{}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePlatform(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if err == nil && p.Match(&tc.entry) != tc.match {
				t.Fatalf("%s matching %+v: want %v", p, tc.entry, tc.match)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	c := RegistryConfig{
		Mirrors:  map[string][]string{"docker.io": {"http://10.0.0.1:5000", "mirror.example.com"}},
		Insecure: []string{"reg.internal:5000"},
	}
	tests := []struct {
		domain string
		want   []endpoint
	}{
		{"docker.io", []endpoint{{"10.0.0.1:5000", true, true}, {"mirror.example.com", false, true}, {"docker.io", false, false}}},
		{"reg.internal:5000", []endpoint{{"reg.internal:5000", true, false}}},
		{"127.0.0.1:5000", []endpoint{{"127.0.0.1:5000", true, false}}},
		{"localhost:1", []endpoint{{"localhost:1", true, false}}},
		{"quay.io", []endpoint{{"quay.io", false, false}}},
	}
	for _, tc := range tests {
		t.Run(tc.domain, func(t *testing.T) {
			got, err := c.endpoints(tc.domain)
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v %v, want %v", got, err, tc.want)
			}
		})
	}
}

// checkPulled verifies an image record and that its blobs are all present.
func checkPulled(t *testing.T, s *Service, ns string, img Image, wantArch string) {
	checkPulledLeases(t, s, ns, img, wantArch, 0)
}

func checkPulledLeases(t *testing.T, s *Service, ns string, img Image, wantArch string, wantLeases int) {
	t.Helper()
	ctx := context.Background()
	got, err := s.Meta.GetImage(ns, img.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Target.Digest != img.Target.Digest {
		t.Fatalf("registered target %s, returned %s", got.Target.Digest, img.Target.Digest)
	}
	man, cfg, _, err := s.Resolve(ctx, img.Target, "")
	if wantArch != "" {
		man, cfg, _, err = s.Resolve(ctx, img.Target, "linux/"+wantArch)
	}
	if err != nil {
		t.Fatal(err)
	}
	if wantArch != "" && cfg.Architecture != wantArch {
		t.Fatalf("config arch %s, want %s", cfg.Architecture, wantArch)
	}
	for _, l := range man.Layers {
		if _, err := s.Content.Info(ctx, l.Digest); err != nil {
			t.Fatalf("layer %s: %v", l.Digest, err)
		}
	}
	leases, _ := s.Meta.ListLeases(ns)
	if len(leases) != wantLeases {
		t.Fatalf("leases left after pull: %v", leases)
	}
}

func TestPull(t *testing.T) {
	reg, std := standard(t)
	_ = reg
	byDigest := func(ref string) string {
		s := newService(t)
		img, err := s.Pull(context.Background(), "default", ref, PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return img.Target.Digest.String()
	}
	bbDigest := byDigest(std.Busybox)
	tests := []struct {
		name, ref, platform, wantName, wantMT, wantArch string
	}{
		{"docker schema2", std.Busybox, "", std.Busybox, mediaTypeDockerManifest, ""},
		{"oci manifest", std.BusyboxOCI, "", std.BusyboxOCI, ocispec.MediaTypeImageManifest, ""},
		{"manifest list host", std.MultiArch, "", std.MultiArch, mediaTypeDockerManifestList, ""},
		{"oci index arm64", std.MultiArchOCI, "linux/arm64", std.MultiArchOCI, ocispec.MediaTypeImageIndex, "arm64"},
		{"oci index amd64", std.MultiArchOCI, "linux/amd64", std.MultiArchOCI, ocispec.MediaTypeImageIndex, "amd64"},
		{"many layers", std.ManyLayers, "", std.ManyLayers, ocispec.MediaTypeImageManifest, ""},
		{"by digest", strings.TrimSuffix(std.Busybox, ":latest") + "@" + bbDigest, "", strings.TrimSuffix(std.Busybox, ":latest") + "@" + bbDigest, mediaTypeDockerManifest, ""},
		{"tag and digest", std.Busybox + "@" + bbDigest, "", strings.TrimSuffix(std.Busybox, ":latest") + "@" + bbDigest, mediaTypeDockerManifest, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newService(t)
			var mu sync.Mutex
			statuses := map[ProgressStatus]int{}
			img, err := s.Pull(context.Background(), "default", tc.ref, PullOptions{Platform: tc.platform, Progress: func(p Progress) {
				mu.Lock()
				statuses[p.Status]++
				mu.Unlock()
			}})
			if err != nil {
				t.Fatal(err)
			}
			if img.Name != tc.wantName || img.Target.MediaType != tc.wantMT {
				t.Fatalf("got %s %s, want %s %s", img.Name, img.Target.MediaType, tc.wantName, tc.wantMT)
			}
			checkPulled(t, s, "default", img, tc.wantArch)
			if statuses[StatusVerified] == 0 || statuses[StatusWaiting] == 0 {
				t.Fatalf("progress states %v", statuses)
			}
			refs, _ := s.Meta.ListContent("default")
			if len(refs) < 3 {
				t.Fatalf("content refs %v", refs)
			}
		})
	}
}

// countingProxy forwards to the registry and counts blob GETs and Range requests.
type countingProxy struct {
	*httptest.Server
	blobGets, ranges atomic.Int64
	slow             atomic.Bool
}

func newCountingProxy(t *testing.T, reg string) *countingProxy {
	t.Helper()
	u, _ := url.Parse("http://" + reg)
	rp := httputil.NewSingleHostReverseProxy(u)
	cp := &countingProxy{}
	cp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
			cp.blobGets.Add(1)
			if r.Header.Get("Range") != "" {
				cp.ranges.Add(1)
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(cp.Close)
	return cp
}

func TestPullReusesAndResumes(t *testing.T) {
	reg, std := standard(t)
	ctx := context.Background()
	proxy := newCountingProxy(t, reg)
	host := strings.TrimPrefix(proxy.URL, "http://")
	ref := host + strings.TrimPrefix(std.ManyLayers, reg)
	s := newService(t)

	// Make a partial ingest of the busybox layer, as a killed pull would.
	man, _, err := s.remoteManifest(ctx, ref, "")
	if err != nil {
		t.Fatal(err)
	}
	big := man.Layers[0]
	for _, l := range man.Layers {
		if l.Size > big.Size {
			big = l
		}
	}
	full := fetchBlob(t, ref, big.Digest)
	w, err := s.Content.Writer(ctx, big.Digest, big.Size)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(full[:len(full)/2])
	w.Close()
	proxy.blobGets.Store(0)

	var resumed atomic.Int64
	img, err := s.Pull(ctx, "default", ref, PullOptions{Progress: func(p Progress) {
		if p.Digest == big.Digest && p.Resumed > 0 {
			resumed.Store(p.Resumed)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	checkPulled(t, s, "default", img, "")
	if resumed.Load() != int64(len(full)/2) || proxy.ranges.Load() != 1 {
		t.Fatalf("resume: resumed %d bytes with %d range requests; want %d and 1", resumed.Load(), proxy.ranges.Load(), len(full)/2)
	}
	if ing, _ := s.Content.ListIngests(ctx); len(ing) != 0 {
		t.Fatalf("ingests left: %v", ing)
	}

	// A second pull (same store, another name) fetches no blob again.
	proxy.blobGets.Store(0)
	var exists atomic.Int64
	if _, err := s.Pull(ctx, "other", ref, PullOptions{Progress: func(p Progress) {
		if p.Status == StatusExists {
			exists.Add(1)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	if proxy.blobGets.Load() != 0 || exists.Load() != int64(len(man.Layers)) {
		t.Fatalf("re-pull fetched %d blobs, %d layers reported present of %d", proxy.blobGets.Load(), exists.Load(), len(man.Layers))
	}
}

func fetchBlob(t *testing.T, ref string, d digest.Digest) []byte {
	t.Helper()
	r, _ := ParseReference(ref)
	c, err := newRepoClient(context.Background(), RegistryConfig{}, endpoint{host: r.Domain, insecure: true}, r.Path, ref)
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := c.blob(context.Background(), d, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	var b strings.Builder
	if _, err := copyAll(&b, body); err != nil {
		t.Fatal(err)
	}
	return []byte(b.String())
}

func TestPullErrors(t *testing.T) {
	reg, std := standard(t)
	authReg := startRegistry(t, "hull", "s3cret")
	// A fake registry serving a malformed manifest and an oversize one.
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.HasSuffix(r.URL.Path, "/manifests/broken"):
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Write([]byte(`{"schemaVersion":2,"config":{"digest":"sha256:nothex","size":"x"`))
		case strings.HasSuffix(r.URL.Path, "/manifests/nolayertype"):
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			fmt.Fprintf(w, `{"schemaVersion":2,"config":{"mediaType":"%s","digest":"%s","size":2},"layers":[{"mediaType":"text/html","digest":"%s","size":1}]}`,
				ocispec.MediaTypeImageConfig, digest.FromString("{}"), digest.FromString("x"))
		case strings.HasSuffix(r.URL.Path, "/manifests/huge"):
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Write([]byte(`{"schemaVersion":2,"annotations":{"a":"`))
			w.Write([]byte(strings.Repeat("x", content.MaxInMemory)))
			w.Write([]byte(`"}}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
		}
	}))
	defer fake.Close()
	fakeHost := strings.TrimPrefix(fake.URL, "http://")
	down := fmt.Sprintf("127.0.0.1:%d", freePort(t))

	tests := []struct {
		name, ref, platform string
		cfg                 *RegistryConfig
		want                error
		wantText            string
	}{
		{"unknown repository", reg + "/no/such/image:latest", "", nil, ErrNotFound, "not found"},
		{"unknown tag", strings.TrimSuffix(std.Busybox, ":latest") + ":nope", "", nil, ErrNotFound, "not found"},
		{"registry down", down + "/x/y:latest", "", nil, ErrRegistryUnavailable, "unavailable"},
		{"no credentials", authReg + "/x/y:latest", "", nil, ErrAuth, "denied"},
		{"wrong credentials", authReg + "/x/y:latest", "", &RegistryConfig{}, ErrAuth, "denied"},
		{"other platform only", std.ForeignOnly, "", nil, ErrPlatform, "linux/"},
		{"platform not in index", std.MultiArch, "linux/riscv64", nil, ErrPlatform, "linux/riscv64"},
		{"single-arch wrong platform", std.Busybox, "linux/s390x", nil, ErrPlatform, "s390x"},
		{"malformed manifest", fakeHost + "/x/y:broken", "", nil, ErrMalformed, "malformed"},
		{"unsupported layer type", fakeHost + "/x/y:nolayertype", "", nil, ErrUnsupported, "text/html"},
		{"oversize manifest", fakeHost + "/x/y:huge", "", nil, ErrMalformed, "bytes"},
		{"bad reference", "UPPER/case", "", nil, ErrInvalidReference, "UPPER"},
		{"bad platform", std.Busybox, "linux", nil, errdefs.ErrInvalidArgument, "platform"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newService(t)
			if tc.name == "wrong credentials" {
				s.Registry.ConfigPath = writeDockerConfig(t, authReg, "hull", "wrong")
			}
			_, err := s.Pull(context.Background(), "default", tc.ref, PullOptions{Platform: tc.platform})
			t.Logf("error: %v", err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.ref) || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("error %q should name %q and say %q", err, tc.ref, tc.wantText)
			}
			imgs, _ := s.Meta.ListImages("default")
			leases, _ := s.Meta.ListLeases("default")
			if len(imgs) != 0 || len(leases) != 0 {
				t.Fatalf("after failure: images %v leases %v", imgs, leases)
			}
		})
	}
}

func writeDockerConfig(t *testing.T, host, user, pass string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, b64(user+":"+pass))
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func copyAll(b *strings.Builder, r interface{ Read([]byte) (int, error) }) (int64, error) {
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := r.Read(buf)
		b.Write(buf[:k])
		n += int64(k)
		if err != nil {
			if err.Error() == "EOF" {
				return n, nil
			}
			return n, err
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// remoteManifest fetches the manifest for the host platform from the registry.
func (s *Service) remoteManifest(ctx context.Context, ref, platform string) (ocispec.Manifest, ocispec.Descriptor, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return ocispec.Manifest{}, ocispec.Descriptor{}, err
	}
	c, err := newRepoClient(ctx, s.Registry, endpoint{host: r.Domain, insecure: true}, r.Path, ref)
	if err != nil {
		return ocispec.Manifest{}, ocispec.Descriptor{}, err
	}
	b, mt, err := c.manifest(ctx, r.Object())
	if err != nil {
		return ocispec.Manifest{}, ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if isIndex(mt) {
		idx, _ := parseIndex(b)
		p, _ := ParsePlatform(platform)
		if desc, err = choose(idx, p); err != nil {
			return ocispec.Manifest{}, desc, err
		}
		if b, _, err = c.manifest(ctx, desc.Digest.String()); err != nil {
			return ocispec.Manifest{}, desc, err
		}
	}
	m, err := parseManifest(b)
	return m, desc, err
}

func TestBadMirrors(t *testing.T) {
	for _, m := range []string{"http://", "ftp://x", "https://mirror.example.com/prefix", "http://[::1"} {
		t.Run(m, func(t *testing.T) {
			c := RegistryConfig{Mirrors: map[string][]string{"docker.io": {m}}}
			if _, err := c.endpoints("docker.io"); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("mirror %q: %v", m, err)
			}
		})
	}
}
