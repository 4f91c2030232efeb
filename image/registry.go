package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hullproject/hull/content"
)

// RegistryConfig configures how registries are reached. The daemon's TOML
// embeds it as [registry].
type RegistryConfig struct {
	// Mirrors maps a registry host ("docker.io") to mirror endpoints tried
	// in order before it: "mirror.example.com", "http://127.0.0.1:5000".
	Mirrors map[string][]string `toml:"mirrors" json:"mirrors,omitempty"`
	// Insecure lists hosts reached over plain HTTP (or HTTPS without
	// certificate verification). localhost and 127.0.0.0/8 always are.
	Insecure []string `toml:"insecure" json:"insecure,omitempty"`
	// ConfigPath is a docker-style config.json with credentials. Empty means
	// $DOCKER_CONFIG/config.json or ~/.docker/config.json.
	ConfigPath string `toml:"config_path" json:"configPath,omitempty"`
}

var (
	// ErrRegistryUnavailable: the registry could not be reached.
	ErrRegistryUnavailable = fmt.Errorf("registry unavailable: %w", errdefs.ErrUnavailable)
	// ErrAuth: the registry refused the credentials (or their absence).
	ErrAuth = fmt.Errorf("authentication denied: %w", errdefs.ErrPermissionDenied)
	// ErrTLS: the registry's certificate could not be verified.
	ErrTLS = fmt.Errorf("TLS verification failed: %w", errdefs.ErrFailedPrecondition)
	// ErrNotFound: the repository, tag or digest does not exist.
	ErrNotFound = fmt.Errorf("unknown repository, tag or digest: %w", errdefs.ErrNotFound)
)

// endpoint is one place a repository can be fetched from.
type endpoint struct {
	host     string // host[:port] as ggcr wants it
	insecure bool
	mirror   bool
}

func isLocal(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (c RegistryConfig) endpoints(domain string) ([]endpoint, error) {
	var eps []endpoint
	for _, m := range c.Mirrors[domain] {
		ep := endpoint{mirror: true}
		if strings.Contains(m, "://") {
			u, err := url.Parse(m)
			if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || (u.Scheme != "http" && u.Scheme != "https") {
				return nil, fmt.Errorf("mirror %q for %s: %w", m, domain, errdefs.ErrInvalidArgument)
			}
			ep.host, ep.insecure = u.Host, u.Scheme == "http"
		} else {
			ep.host = strings.TrimSuffix(m, "/")
		}
		ep.insecure = ep.insecure || isLocal(ep.host) || slices.Contains(c.Insecure, ep.host)
		eps = append(eps, ep)
	}
	eps = append(eps, endpoint{host: domain, insecure: isLocal(domain) || slices.Contains(c.Insecure, domain)})
	return eps, nil
}

// keychain returns the credentials source for this config.
func (c RegistryConfig) keychain() (authn.Keychain, error) {
	if c.ConfigPath == "" {
		return authn.DefaultKeychain, nil
	}
	f, err := os.Open(c.ConfigPath)
	if errors.Is(err, os.ErrNotExist) {
		return authn.NewMultiKeychain(), nil // no credentials: anonymous
	}
	if err != nil {
		return nil, fmt.Errorf("registry credentials %s: %w", c.ConfigPath, err)
	}
	defer f.Close()
	cf, err := dockerconfig.LoadFromReader(f)
	if err != nil {
		return nil, fmt.Errorf("registry credentials %s: %v: %w", c.ConfigPath, err, errdefs.ErrInvalidArgument)
	}
	cf.Filename = c.ConfigPath
	return fileKeychain{cf}, nil
}

// fileKeychain reads credentials from one docker config file (the default
// keychain only reads $DOCKER_CONFIG or ~/.docker).
type fileKeychain struct{ cf *configfile.ConfigFile }

func (k fileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	key := r.RegistryStr()
	if key == name.DefaultRegistry {
		key = "https://index.docker.io/v1/"
	}
	ac, err := k.cf.GetAuthConfig(key)
	if err != nil {
		return nil, err
	}
	if ac.Username == "" && ac.Password == "" && ac.Auth == "" && ac.IdentityToken == "" && ac.RegistryToken == "" {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
	}), nil
}

// repoClient fetches manifests and blobs of one repository from one
// endpoint, through ggcr's transport (which does the ping and the basic or
// bearer-token handshake).
type repoClient struct {
	repo   name.Repository
	ep     endpoint
	scheme string // what the ping found working
	client *http.Client
	ref    string // the user's reference, for errors
}

var baseTransport = &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	ForceAttemptHTTP2:     true,
	MaxIdleConnsPerHost:   16,
	IdleConnTimeout:       90 * time.Second,
	TLSHandshakeTimeout:   10 * time.Second,
	ExpectContinueTimeout: time.Second,
}

var insecureTransport = func() *http.Transport {
	t := baseTransport.Clone()
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only for registries configured insecure
	return t
}()

func newRepoClient(ctx context.Context, cfg RegistryConfig, ep endpoint, path, userRef string) (*repoClient, error) {
	var opts []name.Option
	if ep.insecure {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(ep.host+"/"+path, opts...)
	if err != nil {
		return nil, fmt.Errorf("image %q: %v: %w", userRef, err, ErrInvalidReference)
	}
	kc, err := cfg.keychain()
	if err != nil {
		return nil, err
	}
	auth, err := kc.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("image %q: credentials for %s: %w", userRef, ep.host, err)
	}
	var base http.RoundTripper = baseTransport
	if ep.insecure {
		base = insecureTransport
	}
	// Ping to learn the scheme (https first; http too for insecure and
	// local hosts), then let ggcr's transport do the auth handshake.
	ch, err := transport.Ping(ctx, repo.Registry, base)
	if err != nil {
		return nil, classify(userRef, ep.host, err)
	}
	scheme := "https"
	if ch.Insecure {
		scheme = "http"
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, base, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, classify(userRef, ep.host, err)
	}
	return &repoClient{repo: repo, ep: ep, scheme: scheme, client: &http.Client{Transport: rt}, ref: userRef}, nil
}

// classify turns transport and HTTP errors into errdefs kinds.
func classify(ref, host string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("image %q: %w", ref, err)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return fmt.Errorf("image %q: registry %s: %v: %w", ref, host, te, ErrAuth)
		case te.StatusCode == http.StatusNotFound:
			return fmt.Errorf("image %q: registry %s: %v: %w", ref, host, te, ErrNotFound)
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return fmt.Errorf("image %q: registry %s: %v: %w", ref, host, te, ErrAuth)
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return fmt.Errorf("image %q: registry %s: %v: %w", ref, host, te, ErrNotFound)
			}
		}
		return fmt.Errorf("image %q: registry %s: %w", ref, host, err)
	}
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	if errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &hne) {
		return fmt.Errorf("image %q: registry %s: %v (list it in the registry config's insecure hosts to skip verification): %w", ref, host, err, ErrTLS)
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("image %q: registry %s speaks plain HTTP (list it in the registry config's insecure hosts to allow that): %w", ref, host, ErrRegistryUnavailable)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("image %q: registry %s: %v: %w", ref, host, err, ErrRegistryUnavailable)
	}
	// ggcr wraps token-endpoint refusals in plain errors.
	if strings.Contains(err.Error(), "UNAUTHORIZED") || strings.Contains(err.Error(), "401 Unauthorized") || strings.Contains(err.Error(), "403 Forbidden") {
		return fmt.Errorf("image %q: registry %s: %v: %w", ref, host, err, ErrAuth)
	}
	return fmt.Errorf("image %q: registry %s: %w", ref, host, err)
}

func (c *repoClient) url(kind, object string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", c.scheme, c.repo.RegistryStr(), c.repo.RepositoryStr(), kind, object)
}

var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
	mediaTypeDockerManifestList, mediaTypeDockerManifest,
}, ", ")

// manifest fetches a manifest or index by tag or digest, limited in size.
func (c *repoClient) manifest(ctx context.Context, object string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("manifests", object), nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, "", classify(c.ref, c.ep.host, err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, "", classify(c.ref, c.ep.host, err)
	}
	if resp.ContentLength > content.MaxInMemory {
		return nil, "", fmt.Errorf("image %q: manifest %s is %d bytes, limit %d: %w", c.ref, object, resp.ContentLength, content.MaxInMemory, ErrMalformed)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, content.MaxInMemory+1))
	if err != nil {
		return nil, "", classify(c.ref, c.ep.host, err)
	}
	if len(b) > content.MaxInMemory {
		return nil, "", fmt.Errorf("image %q: manifest %s exceeds %d bytes: %w", c.ref, object, content.MaxInMemory, ErrMalformed)
	}
	mt := resp.Header.Get("Content-Type")
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = strings.TrimSpace(mt[:i])
	}
	return b, mt, nil
}

// blob opens a blob, from offset if > 0. The bool reports whether the
// server honoured the range (a 206): if not, the body starts at 0.
func (c *repoClient) blob(ctx context.Context, dgst digest.Digest, offset int64) (io.ReadCloser, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("blobs", dgst.String()), nil)
	if err != nil {
		return nil, false, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, false, classify(c.ref, c.ep.host, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Body, false, nil
	case http.StatusPartialContent:
		return resp.Body, true, nil
	case http.StatusRequestedRangeNotSatisfiable:
		resp.Body.Close()
		return c.blob(ctx, dgst, 0)
	}
	defer resp.Body.Close()
	return nil, false, classify(c.ref, c.ep.host, transport.CheckError(resp, http.StatusOK))
}
