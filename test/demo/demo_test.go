// Package demo runs scripts/demo.sh (make demo) end to end: the nginx
// image built from Debian's packages, a private hulld, the container run
// natively and in a VM with published ports, both pages fetched, the side
// by side table printed, and nothing left behind. Ports, bridge and subnet
// are chosen per run so it does not collide with a real make demo.
package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hullproject/hull/imagebuild"
	"github.com/hullproject/hull/internal/testutil"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// demoEnv is the environment of one demo run with its own ports, bridge
// and subnet.
func demoEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	n := os.Getpid()
	env := append(os.Environ(),
		"HULL_BIN="+testutil.BinDir(t),
		fmt.Sprintf("DEMO_BRIDGE=hdemo%x", n&0xffffff),
		fmt.Sprintf("DEMO_SUBNET=10.%d.%d.0/24", 160+n%32, (n/32)%256),
	)
	return append(env, extra...) // later entries win
}

func script(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "scripts", "demo.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, timeout time.Duration, env []string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script(t))
	cmd.Env = env
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func TestDemo(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("needs QEMU (qemu-system-x86) for the vm half")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("needs Debian's apt to build the nginx image")
	}
	for _, b := range []string{"hull", "hulld", "containerd-shim-hull-v2", "hull-runtime"} {
		if _, err := os.Stat(filepath.Join(testutil.BinDir(t), b)); err != nil {
			t.Fatalf("%v: run make build", err)
		}
	}
	r, err := imagebuild.LoadRecipe(filepath.Join("..", "..", "images", "nginx", "recipe.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cache, _ := filepath.Abs(filepath.Join("..", "..", "build", "debs"))
	b := &imagebuild.Builder{CacheDir: cache, WorkDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	res, err := b.Build(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "nginx.tar")
	if err := imagebuild.WriteLayout(res.Image, res.Name, tarball); err != nil {
		t.Fatal(err)
	}
	pn, pv := freePort(t), freePort(t)
	out, err := run(t, 5*time.Minute, demoEnv(t, "DEMO_IMAGE_TAR="+tarball, "DEMO_PORT_NATIVE="+pn, "DEMO_PORT_VM="+pv, "IMAGE="))
	t.Logf("make demo:\n%s", out)
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	for _, want := range []string{
		"http://127.0.0.1:" + pn + "/ -> 200", "http://127.0.0.1:" + pv + "/ -> 200",
		"nothing left behind",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if n := strings.Count(out, "Welcome to nginx on Hull"); n != 2 {
		t.Errorf("page title seen %d times, want 2 (one per runtime)", n)
	}
	m := regexp.MustCompile(`kernel \(uname -r\)\s+(\S+)\s+(\S+)`).FindStringSubmatch(out)
	host, _ := exec.Command("uname", "-r").Output()
	if m == nil || m[1] != strings.TrimSpace(string(host)) || m[2] == m[1] || m[2] == "?" {
		t.Errorf("kernel row %q: want the host's %s natively and another in the VM", m, host)
	}
	if !regexp.MustCompile(`host memory \(PSS\)\s+[0-9.]+ MiB\s+[0-9.]+ MiB`).MatchString(out) {
		t.Errorf("no memory row")
	}
}

// TestDemoPortInUse: a busy port stops the demo before it starts anything,
// naming the port.
func TestDemoPortInUse(t *testing.T) {
	testutil.RequireRoot(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	tmp := t.TempDir()
	out, err := run(t, time.Minute, demoEnv(t, "TMPDIR="+tmp, "DEMO_IMAGE_TAR="+filepath.Join(tmp, "none.tar"),
		"DEMO_PORT_NATIVE="+freePort(t), "DEMO_PORT_VM="+busy))
	if err == nil {
		t.Fatalf("demo ran with port %s busy:\n%s", busy, out)
	}
	if !strings.Contains(out, "port "+busy+" is already in use") {
		t.Errorf("output does not name the busy port %s:\n%s", busy, out)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("left in TMPDIR: %v", ents)
	}
}
