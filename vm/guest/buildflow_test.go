package guest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeKernelTree writes a kernel "tree" whose Makefile imitates Kbuild: allnoconfig
// copies the fragment into $(O)/.config (dropping CONFIG_DROPME), bzImage
// writes the artifacts, or fails when FAIL is in the fragment.
func fakeKernelTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	mk := `allnoconfig:
	@echo "fake kconfig"
	@grep -v CONFIG_DROPME "$(KCONFIG_ALLCONFIG)" > $(O)/.config
bzImage:
	@echo "fake compile"
	@if grep -q FAIL $(O)/.config; then echo "error: the compiler said no" >&2; exit 2; fi
	@mkdir -p $(O)/arch/x86/boot $(O)/include/config
	@echo bz > $(O)/arch/x86/boot/bzImage
	@echo elf > $(O)/vmlinux
	@echo 6.1.0-fake > $(O)/include/config/kernel.release
`
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBuildKernelFlow(t *testing.T) {
	tree := fakeKernelTree(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "linux-fake.tar.xz")
	if err := os.WriteFile(src, []byte("stand-in"), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	opts := func(frag, out string) BuildOptions {
		return BuildOptions{Source: src, SourcePackage: "no-such-package", SourceTree: tree, Fragment: frag, OutDir: out, Nice: -1}
	}
	ctx := context.Background()

	t.Run("build then cache", func(t *testing.T) {
		out := filepath.Join(dir, "ok")
		frag := write("ok.config", "# the X option\nCONFIG_X=y\n")
		m, built, err := BuildKernel(ctx, opts(frag, out))
		if err != nil || !built {
			t.Fatalf("BuildKernel = built %v, %v", built, err)
		}
		if m.Release != "6.1.0-fake" || m.BzImage.Size != 3 || m.Vmlinux.Size != 4 || !strings.HasPrefix(m.SourceVersion, "file:") {
			t.Errorf("manifest = %+v", m)
		}
		got, err := ReadManifest(out)
		if err != nil || got.CacheKey != m.CacheKey || got.Check() != nil {
			t.Fatalf("ReadManifest = %+v, %v", got, err)
		}
		if _, built, err := BuildKernel(ctx, opts(frag, out)); err != nil || built {
			t.Errorf("second BuildKernel = built %v, %v; want a cache hit", built, err)
		}
		// A changed fragment is a new key: it builds again.
		frag2 := write("ok2.config", "# the X option\nCONFIG_X=y\n# and Y\nCONFIG_Y=y\n")
		if _, built, err := BuildKernel(ctx, opts(frag2, out)); err != nil || !built {
			t.Errorf("BuildKernel with a changed fragment = built %v, %v; want a build", built, err)
		}
		// A damaged artifact is rebuilt.
		if err := os.WriteFile(filepath.Join(out, "bzImage"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, built, err := BuildKernel(ctx, opts(frag2, out)); err != nil || !built {
			t.Errorf("BuildKernel over a damaged bzImage = built %v, %v; want a build", built, err)
		}
	})
	t.Run("dropped option", func(t *testing.T) {
		frag := write("drop.config", "CONFIG_X=y\nCONFIG_DROPME=y\n")
		_, _, err := BuildKernel(ctx, opts(frag, filepath.Join(dir, "drop")))
		if !errors.Is(err, ErrOptionDropped) || !strings.Contains(err.Error(), "CONFIG_DROPME=y") || !strings.Contains(err.Error(), "drop.config") {
			t.Fatalf("err = %v, want ErrOptionDropped naming CONFIG_DROPME=y and the fragment", err)
		}
	})
	t.Run("failed build", func(t *testing.T) {
		out := filepath.Join(dir, "fail")
		frag := write("fail.config", "CONFIG_FAIL=y\n")
		_, _, err := BuildKernel(ctx, opts(frag, out))
		if !errors.Is(err, ErrBuildFailed) {
			t.Fatalf("err = %v, want ErrBuildFailed", err)
		}
		for _, w := range []string{filepath.Join(out, "build.log"), "the compiler said no", "make -j"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error lacks %q: %v", w, err)
			}
		}
		if _, err := ReadManifest(out); !errors.Is(err, ErrNoManifest) {
			t.Errorf("a failed build left a manifest: %v", err)
		}
	})
}
