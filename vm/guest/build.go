package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// Defaults for the minimal kernel.
const (
	DefaultSourcePackage = "linux-source-6.1"
	DefaultSourceTarball = "/usr/src/linux-source-6.1.tar.xz"
)

// builderVersion is part of the cache key: bump it when BuildKernel changes
// what it produces.
const builderVersion = "1"

// installVersion is part of the minimal kernel's cache key only: bump it
// when what BuildKernel installs changes but the kernel build does not (a
// rebuild then only relinks nothing and installs again). 2: vmlinux is
// installed without its symbol table.
const installVersion = "2"

// ErrSourceMissing wraps errdefs.ErrNotFound: the kernel source is not
// installed.
var ErrSourceMissing = fmt.Errorf("kernel source: %w", errdefs.ErrNotFound)

// ErrBuildFailed is returned when a make step fails; the error names the
// log file and carries its tail.
var ErrBuildFailed = errors.New("kernel build failed")

// BuildOptions configure BuildKernel. Zero values take the defaults.
type BuildOptions struct {
	// Source is the kernel source tarball (DefaultSourceTarball).
	Source string
	// SourcePackage is the Debian package that installs Source; its version
	// is part of the cache key (DefaultSourcePackage). If dpkg does not know
	// it, the tarball's size and mtime stand in for the version.
	SourcePackage string
	// SourceTree, when set, is an already unpacked kernel tree to build
	// from (out of tree, O=OutDir/obj); Source is then only used for the
	// cache key.
	SourceTree string
	// Fragment is the config fragment file (required).
	Fragment string
	// Patches is a directory of source patches (*.patch, unified diffs
	// applied with patch -p1 in name order) applied to the unpacked source
	// before it is configured; their names and contents are part of the
	// cache key. Empty: none. Patches need the tarball (not SourceTree),
	// since a given tree is never modified.
	Patches string
	// OutDir receives src/, obj/, build.log, bzImage, vmlinux, config and
	// kernel.json (required).
	OutDir string
	// Jobs for make -j (runtime.NumCPU()).
	Jobs int
	// Nice runs make under nice(1) with this increment (0: 10; <0: no nice).
	Nice int
	// Force rebuilds even when the cache matches.
	Force  bool
	Logger *slog.Logger
}

func (o *BuildOptions) defaults() error {
	if o.Source == "" {
		o.Source = DefaultSourceTarball
	}
	if o.SourcePackage == "" {
		o.SourcePackage = DefaultSourcePackage
	}
	if o.Fragment == "" {
		return fmt.Errorf("kernel build: no config fragment given: %w", errdefs.ErrInvalidArgument)
	}
	if o.OutDir == "" {
		return fmt.Errorf("kernel build: no output directory given: %w", errdefs.ErrInvalidArgument)
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	if o.Nice == 0 {
		o.Nice = 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var err error
	if o.Fragment, err = filepath.Abs(o.Fragment); err != nil {
		return err
	}
	if o.Patches != "" {
		if o.SourceTree != "" {
			return fmt.Errorf("kernel build: patches (%s) are applied to the unpacked tarball, not to a given source tree: %w", o.Patches, errdefs.ErrInvalidArgument)
		}
		if o.Patches, err = filepath.Abs(o.Patches); err != nil {
			return err
		}
	}
	o.OutDir, err = filepath.Abs(o.OutDir)
	return err
}

// sourcePatch is one file of BuildOptions.Patches.
type sourcePatch struct {
	name, path string
	sha        string
}

// readPatches lists dir's *.patch files in name order and hashes them
// together (name and content of each). A missing directory is an error.
func readPatches(dir string) ([]sourcePatch, string, error) {
	if dir == "" {
		return nil, "", nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.patch"))
	if err != nil {
		return nil, "", err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, "", fmt.Errorf("kernel source patches: %w", err)
	}
	sort.Strings(files)
	var ps []sourcePatch
	var all bytes.Buffer
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, "", fmt.Errorf("kernel source patch: %w", err)
		}
		p := sourcePatch{name: filepath.Base(f), path: f, sha: sha256Hex(b)}
		fmt.Fprintf(&all, "%s %s\n", p.sha, p.name)
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil, "", nil
	}
	return ps, sha256Hex(all.Bytes()), nil
}

// sourceVersion returns the Debian version of the source package, or a
// stand-in derived from the tarball when dpkg does not know it.
func sourceVersion(ctx context.Context, pkg, tarball string) (string, error) {
	st, err := os.Stat(tarball)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s: %w (install the Debian package %s: make deps)", tarball, ErrSourceMissing, pkg)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", tarball, err)
	}
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err == nil && len(bytes.TrimSpace(out)) > 0 {
		return string(bytes.TrimSpace(out)), nil
	}
	return fmt.Sprintf("file:%d:%d", st.Size(), st.ModTime().Unix()), nil
}

// CacheKey is the key a build is cached by: the source version, the
// fragment's hash, the source patches' hash (empty without patches) and
// the builder's own version.
func CacheKey(sourceVersion, fragmentSHA, patchesSHA string) string {
	k := "hull-guest-kernel\n" + builderVersion + "\n" + installVersion + "\n" + sourceVersion + "\n" + fragmentSHA
	if patchesSHA != "" {
		k += "\npatches " + patchesSHA
	}
	return sha256Hex([]byte(k))
}

// BuildKernel builds the minimal guest kernel, or returns the cached one
// when the manifest in OutDir has the same cache key and its files are
// intact. built reports whether a build ran.
func BuildKernel(ctx context.Context, o BuildOptions) (m *Manifest, built bool, err error) {
	if err := o.defaults(); err != nil {
		return nil, false, err
	}
	log := o.Logger
	fragBytes, err := os.ReadFile(o.Fragment)
	if err != nil {
		return nil, false, fmt.Errorf("kernel config fragment: %w", err)
	}
	frag, err := ParseFragment(bytes.NewReader(fragBytes))
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", o.Fragment, err)
	}
	ver, err := sourceVersion(ctx, o.SourcePackage, o.Source)
	if err != nil {
		return nil, false, err
	}
	patches, patchesSHA, err := readPatches(o.Patches)
	if err != nil {
		return nil, false, err
	}
	fragSHA := sha256Hex(fragBytes)
	key := CacheKey(ver, fragSHA, patchesSHA)
	unlock, err := lockDir(ctx, o.OutDir, log)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if !o.Force {
		if old, err := ReadManifest(o.OutDir); err == nil && old.CacheKey == key && old.Check() == nil {
			log.Info("guest kernel is up to date", "release", old.Release, "dir", o.OutDir)
			return old, false, nil
		}
	}

	start := time.Now()
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, false, err
	}
	srcTree := o.SourceTree
	if srcTree == "" {
		if srcTree, err = extractSource(ctx, o, ver, patches, patchesSHA); err != nil {
			return nil, false, err
		}
	}
	obj := filepath.Join(o.OutDir, "obj")
	if err := os.MkdirAll(obj, 0o755); err != nil {
		return nil, false, err
	}
	logPath := filepath.Join(o.OutDir, "build.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, false, err
	}
	defer logFile.Close()

	mk := func(args ...string) error {
		argv := append([]string{"make", "-C", srcTree, "O=" + obj, "ARCH=x86_64"}, args...)
		if o.Nice > 0 {
			argv = append([]string{"nice", "-n", strconv.Itoa(o.Nice)}, argv...)
		}
		fmt.Fprintf(logFile, "+ %s\n", strings.Join(argv, " "))
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.Env = append(os.Environ(), "KCONFIG_ALLCONFIG="+o.Fragment, "LC_ALL=C")
		if err := cmd.Run(); err != nil {
			logFile.Sync()
			return fmt.Errorf("%w: make %s: %w; log %s ends:\n%s", ErrBuildFailed, strings.Join(args, " "), err, logPath, tail(logPath, 25))
		}
		return nil
	}

	log.Info("configuring guest kernel", "fragment", o.Fragment, "source", ver)
	if err := mk("allnoconfig"); err != nil {
		return nil, false, err
	}
	config, err := os.ReadFile(filepath.Join(obj, ".config"))
	if err != nil {
		return nil, false, err
	}
	if err := VerifyConfig(frag, config); err != nil {
		return nil, false, fmt.Errorf("%s: %w", o.Fragment, err)
	}
	log.Info("building guest kernel (a few minutes)", "jobs", o.Jobs, "log", logPath)
	if err := mk("-j"+strconv.Itoa(o.Jobs), "bzImage"); err != nil {
		return nil, false, err
	}
	release, err := os.ReadFile(filepath.Join(obj, "include", "config", "kernel.release"))
	if err != nil {
		return nil, false, fmt.Errorf("kernel release: %w", err)
	}

	for _, c := range []struct{ from, to string }{
		{filepath.Join(obj, "arch", "x86", "boot", "bzImage"), "bzImage"},
		{filepath.Join(obj, "vmlinux"), "vmlinux"},
		{filepath.Join(obj, ".config"), "config"},
	} {
		if err := copyFile(c.from, filepath.Join(o.OutDir, c.to)); err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrBuildFailed, err)
		}
	}
	// The installed vmlinux goes without its symbol table (obj/vmlinux
	// keeps it, for debugging): QEMU's ELF loader reads it at every start
	// and keeps it in its heap for the VM's life (~1.5 MiB per VM). The
	// PVH note and every loaded section stay; the kernel's own symbol
	// names (kallsyms, in oopses) are in its data.
	if out, err := exec.CommandContext(ctx, "objcopy", "--strip-all", filepath.Join(o.OutDir, "vmlinux")).CombinedOutput(); err != nil {
		return nil, false, fmt.Errorf("%w: objcopy --strip-all %s: %w: %s", ErrBuildFailed, filepath.Join(o.OutDir, "vmlinux"), err, lastLines(string(out), 10))
	}
	m = &Manifest{
		Kind:           KindMinimal,
		Release:        strings.TrimSpace(string(release)),
		SourcePackage:  o.SourcePackage,
		SourceVersion:  ver,
		FragmentSHA256: fragSHA,
		PatchesSHA256:  patchesSHA,
		ConfigSHA256:   sha256Hex(config),
		CacheKey:       key,
		BuiltAt:        time.Now().UTC(),
		BuildSeconds:   time.Since(start).Seconds(),
	}
	for _, p := range patches {
		m.Patches = append(m.Patches, p.name)
	}
	if m.BzImage, err = fileArtifact(o.OutDir, "bzImage"); err != nil {
		return nil, false, err
	}
	vml, err := fileArtifact(o.OutDir, "vmlinux")
	if err != nil {
		return nil, false, err
	}
	m.Vmlinux = &vml
	if m.Config, err = fileArtifact(o.OutDir, "config"); err != nil {
		return nil, false, err
	}
	if err := m.write(o.OutDir); err != nil {
		return nil, false, err
	}
	log.Info("guest kernel built", "release", m.Release, "bzImage", m.BzImage.Size, "vmlinux", vml.Size, "seconds", int(m.BuildSeconds))
	return m, true, nil
}

// extractSource unpacks the source tarball into OutDir/src once per source
// version and patch set, applies the patches, and returns the tree's top
// directory.
func extractSource(ctx context.Context, o BuildOptions, ver string, patches []sourcePatch, patchesSHA string) (string, error) {
	srcDir := filepath.Join(o.OutDir, "src")
	stamp := filepath.Join(srcDir, ".hull-extracted")
	// The stamp names the source version and the patch set the tree holds.
	want := ver
	if patchesSHA != "" {
		want += " patches " + patchesSHA
	}
	if b, err := os.ReadFile(stamp); err == nil {
		top := strings.TrimSpace(string(b))
		if lines := strings.SplitN(top, "\n", 2); len(lines) == 2 && lines[0] == want {
			if _, err := os.Stat(filepath.Join(srcDir, lines[1], "Makefile")); err == nil {
				return filepath.Join(srcDir, lines[1]), nil
			}
		}
	}
	o.Logger.Info("extracting kernel source", "tarball", o.Source)
	if err := os.RemoveAll(srcDir); err != nil {
		return "", err
	}
	// An old obj/ may hold objects of another source version.
	if err := os.RemoveAll(filepath.Join(o.OutDir, "obj")); err != nil {
		return "", err
	}
	if err := os.MkdirAll(srcDir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "tar", "-xf", o.Source, "-C", srcDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: extracting %s: %w: %s", ErrBuildFailed, o.Source, err, lastLines(string(out), 10))
	}
	ents, err := os.ReadDir(srcDir)
	if err != nil {
		return "", err
	}
	top := ""
	for _, e := range ents {
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join(srcDir, e.Name(), "Makefile")); err == nil {
				top = e.Name()
			}
		}
	}
	if top == "" {
		return "", fmt.Errorf("%w: %s holds no kernel tree (no top-level Makefile)", ErrBuildFailed, o.Source)
	}
	for _, p := range patches {
		o.Logger.Info("patching kernel source", "patch", p.name)
		cmd := exec.CommandContext(ctx, "patch", "-p1", "--forward", "--batch", "-d", filepath.Join(srcDir, top), "-i", p.path)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%w: applying %s to %s: %w: %s", ErrBuildFailed, p.path, o.Source, err, lastLines(string(out), 10))
		}
	}
	if err := os.WriteFile(stamp, []byte(want+"\n"+top+"\n"), 0o644); err != nil {
		return "", err
	}
	return filepath.Join(srcDir, top), nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := to + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, to)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
