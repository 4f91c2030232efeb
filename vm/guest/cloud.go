package guest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// The pinned Debian cloud kernel: the same 6.1.192 source as the minimal
// kernel, from bookworm-security. Change both together.
const (
	CloudPackage = "linux-image-6.1.0-56-cloud-amd64"
	CloudVersion = "6.1.192-2"
)

// ErrFetchFailed is returned when apt-get download or dpkg -x fails.
var ErrFetchFailed = fmt.Errorf("cloud kernel fetch failed: %w", errdefs.ErrUnavailable)

// CloudOptions configure FetchCloudKernel.
type CloudOptions struct {
	Package string // CloudPackage
	Version string // CloudVersion
	// OutDir receives root/ (the unpacked package), vmlinuz, config,
	// modules.dep, and kernel.json (required).
	OutDir string
	// Modules the initramfs must hold (AgentModules); dependencies are added.
	Modules []string
	Logger  *slog.Logger
}

// FetchCloudKernel downloads the pinned cloud kernel package with
// `apt-get download` and unpacks it with `dpkg -x` into OutDir/root (nothing
// is installed on the host), then selects the agent's modules with their
// dependencies in load order. A manifest with the same package and version
// and intact files is reused.
func FetchCloudKernel(ctx context.Context, o CloudOptions) (*Manifest, bool, error) {
	if o.Package == "" {
		o.Package = CloudPackage
	}
	if o.Version == "" {
		o.Version = CloudVersion
	}
	if o.Modules == nil {
		o.Modules = AgentModules
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.OutDir == "" {
		return nil, false, fmt.Errorf("cloud kernel: no output directory: %w", errdefs.ErrInvalidArgument)
	}
	out, err := filepath.Abs(o.OutDir)
	if err != nil {
		return nil, false, err
	}
	unlock, err := lockDir(ctx, out, o.Logger)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	key := sha256Hex([]byte("hull-cloud-kernel\n" + builderVersion + "\n" + o.Package + "=" + o.Version + "\n" + strings.Join(o.Modules, ",")))
	if old, err := ReadManifest(out); err == nil && old.CacheKey == key && old.Check() == nil {
		o.Logger.Info("cloud kernel is up to date", "package", o.Package, "version", o.Version)
		return old, false, nil
	}
	start := time.Now()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, false, err
	}
	dl, err := os.MkdirTemp(out, ".download-")
	if err != nil {
		return nil, false, err
	}
	defer os.RemoveAll(dl)
	// apt drops privileges to _apt for downloads; let it write here.
	_ = os.Chmod(dl, 0o777)

	o.Logger.Info("downloading cloud kernel", "package", o.Package, "version", o.Version)
	cmd := exec.CommandContext(ctx, "apt-get", "download", o.Package+"="+o.Version)
	cmd.Dir = dl
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, false, fmt.Errorf("%w: apt-get download %s=%s: %w: %s", ErrFetchFailed, o.Package, o.Version, err, lastLines(string(b), 10))
	}
	debs, _ := filepath.Glob(filepath.Join(dl, "*.deb"))
	if len(debs) != 1 {
		return nil, false, fmt.Errorf("%w: apt-get download left %d .deb files in %s", ErrFetchFailed, len(debs), dl)
	}
	root := filepath.Join(out, "root")
	if err := os.RemoveAll(root); err != nil {
		return nil, false, err
	}
	if b, err := exec.CommandContext(ctx, "dpkg", "-x", debs[0], root).CombinedOutput(); err != nil {
		return nil, false, fmt.Errorf("%w: dpkg -x %s: %w: %s", ErrFetchFailed, debs[0], err, lastLines(string(b), 10))
	}

	vmlinuz, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		return nil, false, fmt.Errorf("%w: %s holds %d boot/vmlinuz-* files", ErrFetchFailed, debs[0], len(vmlinuz))
	}
	release := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	modDir := filepath.Join(root, "lib", "modules", release)
	tree, err := ReadModuleTree(modDir)
	if err != nil {
		return nil, false, err
	}
	order, err := tree.Order(o.Modules)
	if err != nil {
		return nil, false, err
	}
	if err := os.WriteFile(filepath.Join(modDir, "modules.dep"), tree.ModulesDep(), 0o644); err != nil {
		return nil, false, err
	}
	for _, c := range []struct{ from, to string }{
		{vmlinuz[0], "vmlinuz"},
		{filepath.Join(root, "boot", "config-"+release), "config"},
	} {
		if err := copyFile(c.from, filepath.Join(out, c.to)); err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrFetchFailed, err)
		}
	}
	m := &Manifest{
		Kind:          KindCloud,
		Release:       release,
		SourcePackage: o.Package,
		SourceVersion: o.Version,
		CacheKey:      key,
		BuiltAt:       time.Now().UTC(),
		BuildSeconds:  time.Since(start).Seconds(),
	}
	if m.BzImage, err = fileArtifact(out, "vmlinuz"); err != nil {
		return nil, false, err
	}
	if m.Config, err = fileArtifact(out, "config"); err != nil {
		return nil, false, err
	}
	m.ConfigSHA256 = m.Config.SHA256
	for _, n := range order {
		rel := filepath.Join("root", "lib", "modules", release, tree.Path[n])
		st, err := os.Stat(filepath.Join(out, rel))
		if err != nil {
			return nil, false, err
		}
		m.Modules = append(m.Modules, ModuleFile{Name: n, Path: rel, Size: st.Size()})
	}
	if err := m.write(out); err != nil {
		return nil, false, err
	}
	o.Logger.Info("cloud kernel ready", "release", release, "modules", len(order))
	return m, true, nil
}

// IsNotBuilt reports whether err means a kernel was not built or fetched.
func IsNotBuilt(err error) bool { return errors.Is(err, ErrNoManifest) }
