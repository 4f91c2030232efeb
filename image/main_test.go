package image

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hullproject/hull/content"
	"github.com/hullproject/hull/internal/testimages"
	"github.com/hullproject/hull/metadata"
)

// TestMain doubles as the pull process that TestPullKilled kills with -9.
func TestMain(m *testing.M) {
	if root := os.Getenv("HULL_TEST_CHILD_ROOT"); root != "" {
		s, _, err := openServiceAt(root)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		s.Concurrency = 1
		_, err = s.Pull(context.Background(), "default", os.Getenv("HULL_TEST_CHILD_REF"), PullOptions{})
		fmt.Fprintln(os.Stderr, "the pull was meant to be killed; it ended with", err)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

var (
	stdOnce sync.Once
	stdImgs testimages.Standard
	stdErr  error
)

// standard pushes the standard test images once per test binary.
func standard(t *testing.T) (string, testimages.Standard) {
	t.Helper()
	reg := testimages.Registry(t)
	stdOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		stdImgs, stdErr = testimages.PushStandard(ctx, reg, fmt.Sprintf("hulltest%d", os.Getpid()))
	})
	if stdErr != nil {
		t.Fatalf("pushing test images: %v", stdErr)
	}
	return reg, stdImgs
}

// newService opens a fresh content store and metadata DB under a temp root.
func newService(t *testing.T) *Service {
	t.Helper()
	root := t.TempDir()
	cs, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := metadata.Open(filepath.Join(root, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &Service{Content: cs, Meta: db, Registry: RegistryConfig{ConfigPath: filepath.Join(root, "no-config.json")}}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRegistry runs a docker-registry of its own (with htpasswd basic auth
// when user != "") and returns its host:port.
func startRegistry(t *testing.T, user, pass string) string {
	t.Helper()
	return startRegistryOpts(t, regOpts{user: user, pass: pass})
}

type regOpts struct {
	user, pass string
	host       string // listen address; 127.0.0.1 by default
	cert, key  string // PEM files: serve HTTPS
}

func startRegistryOpts(t *testing.T, o regOpts) string {
	t.Helper()
	user, pass := o.user, o.pass
	if o.host == "" {
		o.host = "127.0.0.1"
	}
	if _, err := os.Stat("/usr/bin/docker-registry"); err != nil {
		t.Skip("docker-registry is not installed")
	}
	dir := t.TempDir()
	port := freePort(t)
	auth := ""
	if user != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(user+":"+string(h)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: hull-test\n    path: %s/htpasswd\n", dir)
	}
	tlsCfg := ""
	if o.cert != "" {
		tlsCfg = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", o.cert, o.key)
	}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: %s:%d\n%s%s", dir, o.host, port, tlsCfg, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/docker-registry", "serve", filepath.Join(dir, "config.yml"))
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("%s:%d", o.host, port)
	scheme := "http"
	if o.cert != "" {
		scheme = "https"
	}
	client := &http.Client{Transport: insecureTransport}
	for i := 0; i < 100; i++ {
		resp, err := client.Get(scheme + "://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("registry on %s did not start: %s", addr, log.String())
	return ""
}
