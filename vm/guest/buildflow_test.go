package guest

import (
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
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
	@cp /bin/true $(O)/vmlinux
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
		if m.Release != "6.1.0-fake" || m.BzImage.Size != 3 || m.Vmlinux.Size == 0 || !strings.HasPrefix(m.SourceVersion, "file:") {
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

// TestBuildKernelPatches builds from a tarball with source patches: they are
// applied before configuring, named in the manifest, part of the cache key,
// and a patch that does not apply fails the build naming it.
func TestBuildKernelPatches(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("patch(1) is not installed")
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree", "linux-fake")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	// bzImage puts the (patched) source file into vmlinux, an ELF file
	// (BuildKernel strips the installed copy), as an allocated section.
	mk := "allnoconfig:\n\t@cp \"$(KCONFIG_ALLCONFIG)\" $(O)/.config\n" +
		"bzImage:\n\t@mkdir -p $(O)/arch/x86/boot $(O)/include/config\n\t@echo bz > $(O)/arch/x86/boot/bzImage\n" +
		"\t@objcopy --add-section .hullsrc=$(CURDIR)/timer.c --set-section-flags .hullsrc=alloc,readonly /bin/true $(O)/vmlinux\n" +
		"\t@echo 6.1.0-fake > $(O)/include/config/kernel.release\n"
	write := func(p, body string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write(filepath.Join(tree, "Makefile"), mk)
	write(filepath.Join(tree, "timer.c"), "calibrate();\n")
	src := filepath.Join(dir, "linux-fake.tar.gz")
	if out, err := exec.Command("tar", "-czf", src, "-C", filepath.Join(dir, "tree"), "linux-fake").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	frag := write(filepath.Join(dir, "k.config"), "CONFIG_X=y\n")
	patches := filepath.Join(dir, "patches")
	skip := "--- a/timer.c\n+++ b/timer.c\n@@ -1 +1 @@\n-calibrate();\n+skip_calibration();\n"
	write(filepath.Join(patches, "0001-skip.patch"), "Skip the calibration.\n\n"+skip)
	write(filepath.Join(patches, "README"), "not a patch\n")
	opts := func(out string) BuildOptions {
		return BuildOptions{Source: src, SourcePackage: "no-such-package", Fragment: frag, Patches: patches, OutDir: out, Nice: -1}
	}
	ctx := context.Background()
	out := filepath.Join(dir, "out")

	m, built, err := BuildKernel(ctx, opts(out))
	if err != nil || !built {
		t.Fatalf("BuildKernel = built %v, %v", built, err)
	}
	got := installedSource(t, filepath.Join(out, "vmlinux"))
	if string(got) != "skip_calibration();\n" {
		t.Errorf("vmlinux built from %q, want the patched source", got)
	}
	if len(m.Patches) != 1 || m.Patches[0] != "0001-skip.patch" || m.PatchesSHA256 == "" {
		t.Errorf("manifest patches = %v %q", m.Patches, m.PatchesSHA256)
	}
	if _, built, err := BuildKernel(ctx, opts(out)); err != nil || built {
		t.Errorf("second BuildKernel = built %v, %v; want a cache hit", built, err)
	}
	// Without the patches the key differs: the source is unpacked afresh
	// (not left patched) and built again.
	noPatches := opts(out)
	noPatches.Patches = ""
	m2, built, err := BuildKernel(ctx, noPatches)
	if err != nil || !built || m2.CacheKey == m.CacheKey || len(m2.Patches) != 0 {
		t.Fatalf("BuildKernel without patches = built %v, key changed %v, patches %v, %v", built, m2 != nil && m2.CacheKey != m.CacheKey, m2, err)
	}
	if got := installedSource(t, filepath.Join(out, "vmlinux")); string(got) != "calibrate();\n" {
		t.Errorf("vmlinux built from %q, want the unpatched source", got)
	}

	t.Run("patch does not apply", func(t *testing.T) {
		bad := filepath.Join(dir, "bad")
		write(filepath.Join(bad, "0001-other.patch"), strings.ReplaceAll(skip, "-calibrate();", "-something_else();"))
		o := opts(filepath.Join(dir, "badout"))
		o.Patches = bad
		_, _, err := BuildKernel(ctx, o)
		if !errors.Is(err, ErrBuildFailed) || !strings.Contains(err.Error(), "0001-other.patch") {
			t.Fatalf("err = %v, want ErrBuildFailed naming the patch", err)
		}
	})
	t.Run("missing patch directory", func(t *testing.T) {
		o := opts(filepath.Join(dir, "noout"))
		o.Patches = filepath.Join(dir, "no-such-dir")
		if _, _, err := BuildKernel(ctx, o); err == nil || !strings.Contains(err.Error(), "no-such-dir") {
			t.Fatalf("err = %v, want one naming the missing directory", err)
		}
	})
	t.Run("patches with a given tree", func(t *testing.T) {
		o := opts(filepath.Join(dir, "treeout"))
		o.SourceTree = tree
		if _, _, err := BuildKernel(ctx, o); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("err = %v, want ErrInvalidArgument", err)
		}
	})
}

// installedSource returns the .hullsrc section of the fake kernel tree's
// installed vmlinux, checking that it was installed without symbols.
func installedSource(t *testing.T, path string) []byte {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Errorf("installed vmlinux: %v", err)
		return nil
	}
	defer f.Close()
	if f.Section(".symtab") != nil {
		t.Errorf("installed vmlinux keeps its symbol table")
	}
	sec := f.Section(".hullsrc")
	if sec == nil {
		t.Errorf("installed vmlinux has no .hullsrc section")
		return nil
	}
	b, _ := sec.Data()
	return b
}
