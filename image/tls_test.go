package image

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hullproject/hull/internal/testimages"
)

// hostIP returns a non-loopback IPv4 address of this host: registries on
// it are neither local nor (unless configured) insecure.
func hostIP(t *testing.T) string {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			return ipn.IP.String()
		}
	}
	t.Skip("the host has no non-loopback IPv4 address to serve a non-local registry on")
	return ""
}

func selfSigned(t *testing.T, ips ...string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hull-test-registry"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	cert, keyf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, keyf
}

// HTTPS registries, and plain-HTTP or unverified ones only when configured
// insecure (or local).
func TestPullSchemes(t *testing.T) {
	ip := hostIP(t)
	ctx := context.Background()
	cert, key := selfSigned(t, ip, "127.0.0.1")
	tlsLocal := startRegistryOpts(t, regOpts{cert: cert, key: key})
	tlsRemote := startRegistryOpts(t, regOpts{host: ip, cert: cert, key: key})
	plainRemote := startRegistryOpts(t, regOpts{host: ip})
	img, err := testimages.Busybox(testimages.Options{})
	if err != nil {
		t.Fatal(err)
	}
	push := func(reg string) string {
		// The test pushes with verification off; only the pulls are under test.
		ref, err := testimages.Push(ctx, reg, "scheme/busybox:latest", img, remote.WithTransport(insecureTransport))
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	tests := []struct {
		name     string
		ref      string
		insecure bool
		want     error
	}{
		{"https local self-signed", push(tlsLocal), false, nil},
		{"https remote untrusted", push(tlsRemote), false, ErrTLS},
		{"https remote marked insecure", push(tlsRemote), true, nil},
		{"http remote not insecure", push(plainRemote), false, ErrRegistryUnavailable},
		{"http remote marked insecure", push(plainRemote), true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newService(t)
			if tc.insecure {
				r, _ := ParseReference(tc.ref)
				s.Registry.Insecure = []string{r.Domain}
			}
			got, err := s.Pull(ctx, "default", tc.ref, PullOptions{})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				checkPulled(t, s, "default", got, "")
				return
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.ref) {
				t.Fatalf("got %v, want %v naming %s", err, tc.want, tc.ref)
			}
		})
	}
}
