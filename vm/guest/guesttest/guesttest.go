// Package guesttest gives tests and benchmarks the guest pieces they boot:
// the test init (built here, static), initramfs images around it, and the
// built kernels (skipping, with the make target to run, when one is not
// built).
package guesttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hullproject/hull/vm/guest"
	"github.com/hullproject/hull/vm/guest/bootcheck"
	"github.com/hullproject/hull/vm/initramfs"
)

var (
	initOnce sync.Once
	initPath string
	initErr  error
	initDir  string
)

// TestInit builds vm/guest/testinit (CGO_ENABLED=0) once per test binary and
// returns its path.
func TestInit(tb testing.TB) string {
	tb.Helper()
	initOnce.Do(func() {
		initDir, initErr = os.MkdirTemp("", "hull-testinit-")
		if initErr != nil {
			return
		}
		initPath = filepath.Join(initDir, "testinit")
		cmd := exec.Command("go", "build", "-trimpath", "-o", initPath, "github.com/hullproject/hull/vm/guest/testinit")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			initErr = &buildError{err: err, out: string(out)}
		}
	})
	if initErr != nil {
		tb.Fatalf("building the test init: %v", initErr)
	}
	return initPath
}

// BuildTestInit builds the test init into dir (for callers that cannot run
// Cleanup, such as benchmarks under another TestMain) and returns its path.
func BuildTestInit(tb testing.TB, dir string) string {
	tb.Helper()
	p := filepath.Join(dir, "testinit")
	cmd := exec.Command("go", "build", "-trimpath", "-o", p, "github.com/hullproject/hull/vm/guest/testinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building the test init: %v: %s", err, out)
	}
	return p
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// Cleanup removes the test init; call it from TestMain after m.Run.
func Cleanup() {
	if initDir != "" {
		os.RemoveAll(initDir)
	}
}

// Initramfs writes an initramfs holding the test init (and modules) into a
// temp dir of tb and returns its path.
func Initramfs(tb testing.TB, modules []initramfs.Module, comp initramfs.Compression) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "initramfs.cpio")
	if err := initramfs.WriteFile(p, initramfs.Spec{Init: TestInit(tb), Modules: modules, Compression: comp}); err != nil {
		tb.Fatalf("initramfs: %v", err)
	}
	return p
}

// RequireQEMU skips when QEMU is not installed.
func RequireQEMU(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath(bootcheck.DefaultQEMU); err != nil {
		tb.Skipf("%s not installed (Debian package qemu-system-x86; make deps installs it)", bootcheck.DefaultQEMU)
	}
}

// MinimalKernel returns the manifest of Hull's built guest kernel, skipping
// when it is not built.
func MinimalKernel(tb testing.TB) *guest.Manifest {
	tb.Helper()
	dir := guest.DefaultDir()
	m, err := guest.ReadManifest(dir)
	if err != nil {
		tb.Skipf("Hull's guest kernel is not built (%v): run `make guest-kernel`", err)
	}
	if err := m.Check(); err != nil {
		tb.Fatalf("guest kernel in %s is damaged: %v", dir, err)
	}
	return m
}

// CloudKernel returns the manifest of the fetched cloud kernel, skipping
// when it is not fetched.
func CloudKernel(tb testing.TB) *guest.Manifest {
	tb.Helper()
	dir := guest.CloudDir(guest.DefaultDir())
	m, err := guest.ReadManifest(dir)
	if err != nil {
		tb.Skipf("the cloud kernel is not fetched (%v): run `make guest-cloud-kernel`", err)
	}
	if err := m.Check(); err != nil {
		tb.Fatalf("cloud kernel in %s is damaged: %v", dir, err)
	}
	return m
}

// CloudModules lists the cloud kernel's agent modules for an initramfs.
func CloudModules(m *guest.Manifest) []initramfs.Module {
	var mods []initramfs.Module
	for _, mod := range m.Modules {
		mods = append(mods, initramfs.Module{Name: mod.Name, Source: m.Path(mod.Path)})
	}
	return mods
}
