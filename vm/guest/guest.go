// Package guest builds and describes the kernels Hull boots its VMs with.
//
//   - Hull's minimal guest kernel: built from Debian's linux-source-6.1
//     package as `allnoconfig` plus the project's fragment (kernel.config,
//     documented option by option), 64-bit, no modules, LZ4 bzImage and a
//     vmlinux for PVH boot. BuildKernel caches by source package version and
//     fragment hash.
//   - Debian's stock cloud kernel, the fallback: FetchCloudKernel downloads
//     the pinned package with `apt-get download` and unpacks it with
//     `dpkg -x` into the build directory (the host is not touched), and
//     selects the modules the agent needs in dependency order.
//
// Each writes a manifest (kernel.json) that ReadManifest / ReadCloudManifest
// read back, for `hull info` and for the vm runtime.
package guest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// TestInitMarker is what the test init (vm/guest/testinit) prints on the
// console once it runs as PID 1.
const TestInitMarker = "HULL-TESTINIT-OK"

// TestInitPowerButtonMarker is what the test init prints when the ACPI
// power button (QMP system_powerdown) was pressed while it idled.
const TestInitPowerButtonMarker = "HULL-TESTINIT-POWERBUTTON"

// ManifestName is the manifest's file name inside a kernel's directory.
const ManifestName = "kernel.json"

// Kinds of kernel.
const (
	KindMinimal = "minimal"
	KindCloud   = "cloud"
)

// ErrNoManifest wraps errdefs.ErrNotFound: the kernel was not built or
// fetched yet.
var ErrNoManifest = fmt.Errorf("guest kernel manifest: %w", errdefs.ErrNotFound)

// Artifact is one file of a kernel, relative to the manifest's directory.
type Artifact struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest describes a built (or fetched) guest kernel.
type Manifest struct {
	Kind string `json:"kind"`
	// Release is the kernel's `uname -r`.
	Release string `json:"release"`
	// SourcePackage and SourceVersion name the Debian package the kernel
	// came from (linux-source-6.1 for the minimal kernel, the
	// linux-image-*-cloud-amd64 package for the cloud kernel).
	SourcePackage string `json:"source_package"`
	SourceVersion string `json:"source_version"`
	// FragmentSHA256 is the hash of the config fragment (minimal kernel).
	FragmentSHA256 string `json:"fragment_sha256,omitempty"`
	// Patches are the source patches applied (file names, in order), and
	// PatchesSHA256 their combined hash (minimal kernel).
	Patches       []string `json:"patches,omitempty"`
	PatchesSHA256 string   `json:"patches_sha256,omitempty"`
	// ConfigSHA256 is the hash of the final .config.
	ConfigSHA256 string `json:"config_sha256"`
	// CacheKey decides whether a build can be skipped.
	CacheKey string `json:"cache_key,omitempty"`
	// BzImage is the compressed kernel (for the cloud kernel, vmlinuz).
	BzImage Artifact `json:"bzimage"`
	// Vmlinux is the uncompressed ELF kernel with a PVH entry point.
	Vmlinux *Artifact `json:"vmlinux,omitempty"`
	// Config is the kernel's .config.
	Config Artifact `json:"config"`
	// Modules are the modules the agent loads, in load order (cloud kernel).
	Modules []ModuleFile `json:"modules,omitempty"`
	// BuiltAt and BuildSeconds describe the last real build.
	BuiltAt      time.Time `json:"built_at"`
	BuildSeconds float64   `json:"build_seconds"`

	dir string
}

// ModuleFile is a kernel module selected for the initramfs.
type ModuleFile struct {
	Name string `json:"name"`
	Path string `json:"path"` // relative to the manifest's directory
	Size int64  `json:"size"`
}

// Dir returns the directory the manifest was read from.
func (m *Manifest) Dir() string { return m.dir }

// Path resolves an artifact path of the manifest to an absolute path.
func (m *Manifest) Path(rel string) string {
	if filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(m.dir, rel)
}

// ReadManifest reads dir/kernel.json. A missing manifest wraps
// ErrNoManifest (and errdefs.ErrNotFound).
func ReadManifest(dir string) (*Manifest, error) {
	p := filepath.Join(dir, ManifestName)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", p, ErrNoManifest)
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", p, errdefs.ErrDataLoss, err)
	}
	m.dir = dir
	return &m, nil
}

// Check verifies that the manifest's files exist with their recorded sizes.
func (m *Manifest) Check() error {
	arts := []Artifact{m.BzImage, m.Config}
	if m.Vmlinux != nil {
		arts = append(arts, *m.Vmlinux)
	}
	for _, mod := range m.Modules {
		arts = append(arts, Artifact{Path: mod.Path, Size: mod.Size})
	}
	for _, a := range arts {
		st, err := os.Stat(m.Path(a.Path))
		if err != nil {
			return fmt.Errorf("guest kernel file: %w", err)
		}
		if st.Size() != a.Size {
			return fmt.Errorf("guest kernel file %s: size %d, manifest says %d: %w", m.Path(a.Path), st.Size(), a.Size, errdefs.ErrDataLoss)
		}
	}
	return nil
}

func (m *Manifest) write(dir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ManifestName+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	m.dir = dir
	return os.Rename(tmp, filepath.Join(dir, ManifestName))
}

// DefaultDir is where Hull's guest assets live: $HULL_GUEST_DIR when set,
// else build/guest of the source tree holding the working directory (found
// by walking up to go.mod), else /var/lib/hull/guest.
func DefaultDir() string {
	if d := os.Getenv("HULL_GUEST_DIR"); d != "" {
		return d
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				if _, err := os.Stat(filepath.Join(d, "vm", "guest", "kernel.config")); err == nil {
					return filepath.Join(d, "build", "guest")
				}
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return "/var/lib/hull/guest"
}

// CloudDir is where the cloud kernel lives below a guest directory.
func CloudDir(guestDir string) string { return filepath.Join(guestDir, "cloud") }

func fileArtifact(dir, rel string) (Artifact, error) {
	f, err := os.Open(filepath.Join(dir, rel))
	if err != nil {
		return Artifact{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{Path: rel, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// lockDir takes an exclusive lock on dir/.lock, so that two builds (two
// `make build` runs at once) never work in the same directory together.
// It waits until the lock is free or ctx ends.
func lockDir(ctx context.Context, dir string, log *slog.Logger) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	logged := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if !logged {
			log.Info("waiting for another build in the same directory", "dir", dir)
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
