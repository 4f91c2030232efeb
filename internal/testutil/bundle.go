// Package testutil builds the fixtures Hull's tests run real containers
// on: OCI bundles whose rootfs is Debian's busybox-static.
package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/oci"
)

// Busybox is where Debian's busybox-static installs its binary.
const Busybox = "/bin/busybox"

var (
	appletsOnce sync.Once
	applets     []string
	appletsErr  error
)

// busyboxApplets lists the applets busybox was built with.
func busyboxApplets() ([]string, error) {
	appletsOnce.Do(func() {
		out, err := exec.Command(Busybox, "--list-full").Output()
		if err != nil {
			appletsErr = fmt.Errorf("list busybox applets: %w", err)
			return
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				applets = append(applets, l)
			}
		}
	})
	return applets, appletsErr
}

// RequireRoot skips the test when it does not run as root, saying why.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs real containers")
	}
}

// RequireBusybox skips when busybox-static is not installed.
func RequireBusybox(t testing.TB) {
	t.Helper()
	if fi, err := os.Stat(Busybox); err != nil || fi.Mode()&0o111 == 0 {
		t.Skipf("needs %s (Debian package busybox-static; make deps installs it)", Busybox)
	}
}

// MakeBusyboxRootfs fills dir with a minimal rootfs: busybox at /bin/busybox,
// a symlink for every applet (/bin/sh, /bin/true, ...), /etc/passwd and
// /etc/group with root and nobody, and empty /proc, /sys, /dev, /tmp.
func MakeBusyboxRootfs(dir string) error {
	list, err := busyboxApplets()
	if err != nil {
		return err
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home", "var", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	data, err := os.ReadFile(Busybox)
	if err != nil {
		return fmt.Errorf("read busybox: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), data, 0o755); err != nil {
		return err
	}
	for _, a := range list {
		a = strings.TrimPrefix(a, "/")
		if a == "bin/busybox" {
			continue
		}
		p := filepath.Join(dir, a)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Dir(p), filepath.Join(dir, "bin/busybox"))
		if err := os.Symlink(rel, p); err != nil && !os.IsExist(err) {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nuser:x:1000:1000:user:/home:/bin/sh\n",
		"etc/group":  "root:x:0:\ntty:x:5:\nnogroup:x:65534:\nuser:x:1000:\nextra:x:1001:user\n",
		"etc/hosts":  "127.0.0.1 localhost\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Bundle is an OCI bundle on disk: Dir/config.json and Dir/rootfs.
type Bundle struct {
	Dir  string
	Spec *specs.Spec
}

// Rootfs is the bundle's root filesystem directory.
func (b *Bundle) Rootfs() string { return filepath.Join(b.Dir, "rootfs") }

// Save writes b.Spec to config.json.
func (b *Bundle) Save() error {
	data, err := json.MarshalIndent(b.Spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.Dir, "config.json"), data, 0o644)
}

// NewBundle makes a busybox bundle in a fresh temporary directory that the
// test removes when it ends. The spec is oci.Example with no terminal, a
// writable rootfs and args as the process (sh when none are given); edit
// b.Spec and call Save to change it.
func NewBundle(t testing.TB, args ...string) *Bundle {
	t.Helper()
	RequireRoot(t)
	RequireBusybox(t)
	dir := t.TempDir()
	b, err := MakeBundle(dir, args...)
	if err != nil {
		t.Fatalf("make bundle: %v", err)
	}
	return b
}

// MakeBundle is NewBundle for code without a testing.TB (benchmarks, tools).
func MakeBundle(dir string, args ...string) (*Bundle, error) {
	if err := MakeBusyboxRootfs(filepath.Join(dir, "rootfs")); err != nil {
		return nil, err
	}
	s := oci.Example()
	s.Process.Terminal = false
	s.Root.Readonly = false
	if len(args) > 0 {
		s.Process.Args = args
	}
	b := &Bundle{Dir: dir, Spec: s}
	if err := b.Save(); err != nil {
		return nil, err
	}
	return b, nil
}

// RuntimeBinary is the OCI runtime the tests drive: $HULL_RUNTIME when set
// (a path or a name on PATH, such as runc or crun), else bin/hull-runtime
// of this checkout ($HULL_BIN/hull-runtime).
func RuntimeBinary(t testing.TB) string {
	t.Helper()
	if r := os.Getenv("HULL_RUNTIME"); r != "" {
		p, err := exec.LookPath(r)
		if err != nil {
			t.Fatalf("HULL_RUNTIME=%s: %v", r, err)
		}
		return p
	}
	p := filepath.Join(BinDir(t), "hull-runtime")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not built: run make build (%v)", p, err)
	}
	return p
}

// BinDir is the directory holding this checkout's built binaries:
// $HULL_BIN, else <module root>/bin.
func BinDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("HULL_BIN"); d != "" {
		return d
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("cannot find the module root (set HULL_BIN): %v", err)
	}
	return filepath.Join(filepath.Dir(string(bytes.TrimSpace(out))), "bin")
}
