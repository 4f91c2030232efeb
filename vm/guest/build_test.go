package guest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestBuildKernelBadInput(t *testing.T) {
	dir := t.TempDir()
	frag := filepath.Join(dir, "frag.config")
	if err := os.WriteFile(frag, []byte("CONFIG_64BIT=y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "linux-garbage.tar.xz")
	if err := os.WriteFile(garbage, []byte("this is no tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	badFrag := filepath.Join(dir, "bad.config")
	if err := os.WriteFile(badFrag, []byte("CONFIG_64BIT=y\nbogus line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		opts  BuildOptions
		is    error
		names string
	}{
		{"missing source package", BuildOptions{Source: filepath.Join(dir, "linux-source-9.9.tar.xz"), SourcePackage: "linux-source-9.9", Fragment: frag, OutDir: dir},
			ErrSourceMissing, "linux-source-9.9.tar.xz"},
		{"source is not a tarball", BuildOptions{Source: garbage, SourcePackage: "none", Fragment: frag, OutDir: filepath.Join(dir, "out")},
			ErrBuildFailed, "linux-garbage.tar.xz"},
		{"missing fragment", BuildOptions{Fragment: filepath.Join(dir, "nope.config"), OutDir: dir},
			os.ErrNotExist, "nope.config"},
		{"malformed fragment", BuildOptions{Fragment: badFrag, OutDir: dir},
			errdefs.ErrInvalidArgument, "bad.config"},
		{"no fragment", BuildOptions{OutDir: dir}, errdefs.ErrInvalidArgument, "fragment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := BuildKernel(context.Background(), tc.opts)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("err = %v, want %v naming %q", err, tc.is, tc.names)
			}
		})
	}
}

// unpackedTree returns the kernel tree `make guest-kernel` unpacked, or
// skips.
func unpackedTree(t *testing.T) string {
	t.Helper()
	tree := filepath.Join(DefaultDir(), "src", "linux-source-6.1")
	if _, err := os.Stat(filepath.Join(tree, "Makefile")); err != nil {
		t.Skipf("no unpacked kernel source at %s: run `make guest-kernel`", tree)
	}
	return tree
}

// TestBuildKernelDroppedOption: an option Kconfig cannot set is a build
// error naming it (a real `make allnoconfig`, no compile).
func TestBuildKernelDroppedOption(t *testing.T) {
	tree := unpackedTree(t)
	dir := t.TempDir()
	frag := filepath.Join(dir, "frag.config")
	// DRM_I915 needs DRM, which stays off in allnoconfig.
	if err := os.WriteFile(frag, []byte("CONFIG_64BIT=y\nCONFIG_DRM_I915=y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, built, err := BuildKernel(context.Background(), BuildOptions{SourceTree: tree, Fragment: frag, OutDir: dir})
	if !errors.Is(err, ErrOptionDropped) || !strings.Contains(err.Error(), "CONFIG_DRM_I915=y") {
		t.Fatalf("err = %v, want ErrOptionDropped naming CONFIG_DRM_I915=y", err)
	}
	if built {
		t.Error("built = true after a config error")
	}
	if strings.Contains(err.Error(), "CONFIG_64BIT") {
		t.Errorf("error names CONFIG_64BIT, which was kept: %v", err)
	}
}

// TestBuildKernelCached: with the built kernel in place, BuildKernel with
// the project's fragment is a cache hit and returns the manifest at once.
func TestBuildKernelCached(t *testing.T) {
	dir := DefaultDir()
	old, err := ReadManifest(dir)
	if err != nil {
		t.Skipf("guest kernel not built (%v): run `make guest-kernel`", err)
	}
	fragBytes, err := os.ReadFile("kernel.config")
	if err != nil {
		t.Fatal(err)
	}
	if old.FragmentSHA256 != sha256Hex(fragBytes) {
		t.Skip("kernel.config changed since the last build: run `make guest-kernel`")
	}
	// The project's source patches, as mk/guest.mk applies them.
	_, patchesSHA, err := readPatches("patches")
	if err != nil {
		t.Fatal(err)
	}
	if old.PatchesSHA256 != patchesSHA {
		t.Skip("vm/guest/patches changed since the last build: run `make guest-kernel`")
	}
	start := time.Now()
	m, built, err := BuildKernel(context.Background(), BuildOptions{Fragment: "kernel.config", Patches: "patches", OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if built {
		t.Fatal("BuildKernel rebuilt an up-to-date kernel")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cache hit took %v", d)
	}
	if m.Kind != KindMinimal || m.SourcePackage != DefaultSourcePackage || m.SourceVersion == "" ||
		m.BzImage.Size == 0 || m.Vmlinux == nil || m.Vmlinux.Size == 0 || len(m.ConfigSHA256) != 64 {
		t.Errorf("manifest incomplete: %+v", m)
	}
	// The kernel holds every fragment option (verified again from the
	// shipped config).
	cfg, err := os.ReadFile(m.Path(m.Config.Path))
	if err != nil {
		t.Fatal(err)
	}
	frag, _ := ParseFragment(strings.NewReader(string(fragBytes)))
	if err := VerifyConfig(frag, cfg); err != nil {
		t.Error(err)
	}
	if strings.Contains(string(cfg), "\nCONFIG_MODULES=y") {
		t.Error("the minimal kernel has modules enabled")
	}
}
