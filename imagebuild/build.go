package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultPath is the PATH an image gets when its recipe sets none.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultDependsDepth is how many levels of Depends a build follows to
// find missing libraries when the recipe does not say.
const DefaultDependsDepth = 4

// LabelPackages is the image label listing the packages (name=version)
// whose files the image holds.
const LabelPackages = "io.hull.imagebuild.packages"

// Builder builds images from recipes.
type Builder struct {
	// CacheDir keeps downloaded .deb files between builds (default
	// DefaultCacheDir()).
	CacheDir string
	// WorkDir is where the staging tree is made (default os.TempDir()); it
	// is removed when Build returns.
	WorkDir string
	// HostRoot is the host tree searched when a recipe allows host
	// libraries (default "/").
	HostRoot string
	// Log receives progress (default slog.Default()).
	Log *slog.Logger
}

// DefaultCacheDir is $XDG_CACHE_HOME/hull/debs, else ~/.cache/hull/debs.
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "hull", "debs")
}

// Result is a built image and what went into it.
type Result struct {
	Image v1.Image
	// Name is the recipe's name, normalized ("localhost/nginx:latest").
	Name string
	// Packages are name=version of every package whose files the image holds.
	Packages []string
	// HostFiles are files taken from the host (HostLibraries).
	HostFiles []string
	// Files and Size count the regular files and their bytes.
	Files int
	Size  int64
}

// NormalizeName checks an image name and returns its full form.
func NormalizeName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("no image name (name = \"localhost/app:latest\" in a recipe, --name to hull-mkimage): %w", ErrInvalidRecipe)
	}
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("image name %q: %v: %w", name, err, ErrInvalidRecipe)
	}
	if _, ok := n.(reference.Digested); ok {
		return "", fmt.Errorf("image name %q: a built image is named by tag, not digest: %w", name, ErrInvalidRecipe)
	}
	return reference.TagNameOnly(n).String(), nil
}

type staging struct {
	b      *Builder
	apt    *apt
	dir    string
	tree   *tree
	staged map[string]*pkgInfo // by package name
	order  []*pkgInfo
}

// stage fetches and unpacks specs ("name" or "name=version"); unknown
// ones are an error when strict, else skipped (a Depends on a virtual
// package, say). It returns the packages it staged.
func (s *staging) stage(ctx context.Context, specs []string, strict bool) ([]*pkgInfo, error) {
	var out []*pkgInfo
	var todo []string
	for _, spec := range specs {
		name, _, _ := strings.Cut(spec, "=")
		if _, ok := s.staged[name]; !ok {
			todo = append(todo, spec)
		}
	}
	known := s.apt.showAll(ctx, todo)
	for _, spec := range todo {
		name, version, pinned := strings.Cut(spec, "=")
		if _, ok := s.staged[name]; ok {
			continue
		}
		p, err := known[name], error(nil)
		if p == nil || (pinned && p.Version != version) {
			p, err = s.apt.show(ctx, spec)
		}
		if err != nil {
			if strict {
				return nil, err
			}
			s.b.Log.Debug("skipping dependency", "package", spec, "err", err)
			s.staged[name] = nil
			continue
		}
		deb, err := s.apt.download(ctx, p)
		if err != nil {
			return nil, err
		}
		pdir := filepath.Join(s.dir, "pkg", p.Name)
		if err := s.apt.extract(ctx, deb, pdir); err != nil {
			return nil, err
		}
		if err := s.merge(pdir, p.Name); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", p, err)
		}
		s.staged[p.Name] = p
		s.order = append(s.order, p)
		out = append(out, p)
	}
	return out, nil
}

// merge moves a package's files into the staging root, noting which
// package shipped each. Paths are resolved inside the root, so a link one
// package ships (lib -> usr/lib, or an absolute one) never leads a later
// package's files out of the staging tree.
func (s *staging) merge(pdir, pkg string) error {
	root := s.tree.stage
	err := filepath.WalkDir(pdir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(pdir, p)
		if rel == "." {
			return nil
		}
		parent, _, err := resolve(root, path.Dir("/"+filepath.ToSlash(rel)))
		if err != nil {
			return err
		}
		ip := path.Join(parent, d.Name())
		dst := filepath.Join(root, ip)
		ofi, oerr := os.Lstat(dst)
		if d.IsDir() {
			if oerr == nil && (ofi.IsDir() || ofi.Mode()&fs.ModeSymlink != 0) {
				return nil // already there (or a packaged link to follow)
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			s.tree.owner[ip] = pkg
			return os.Mkdir(dst, fi.Mode().Perm())
		}
		if oerr == nil && ofi.IsDir() {
			return nil // a directory wins over a later package's file
		}
		s.tree.owner[ip] = pkg
		return os.Rename(p, dst)
	})
	if err != nil {
		return err
	}
	return os.RemoveAll(pdir)
}

// suggest names staged files with the same base name as p.
func (s *staging) suggest(p string) string {
	base := path.Base(p)
	var found []string
	filepath.WalkDir(s.tree.stage, func(hp string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == base && len(found) < 3 {
			rel, _ := filepath.Rel(s.tree.stage, hp)
			found = append(found, "/"+filepath.ToSlash(rel))
		}
		return nil
	})
	if len(found) == 0 {
		return ""
	}
	return " (did you mean " + strings.Join(found, " or ") + "?)"
}

func (s *staging) names() string {
	var n []string
	for _, p := range s.order {
		n = append(n, p.Name)
	}
	return strings.Join(n, ", ")
}

// Build builds the recipe's image.
func (b *Builder) Build(ctx context.Context, r *Recipe) (*Result, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	name, err := NormalizeName(r.Name)
	if err != nil {
		return nil, err
	}
	bb := *b
	if bb.Log == nil {
		bb.Log = slog.Default()
	}
	if bb.CacheDir == "" {
		bb.CacheDir = DefaultCacheDir()
	}
	if bb.HostRoot == "" {
		bb.HostRoot = "/"
	}
	work, err := os.MkdirTemp(bb.WorkDir, "imagebuild-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	s := &staging{b: &bb, apt: &apt{cache: bb.CacheDir, log: bb.Log}, dir: work, tree: newTree(root), staged: map[string]*pkgInfo{}}

	explicit, err := s.stage(ctx, r.Packages, true)
	if err != nil {
		return nil, err
	}
	t := s.tree
	cl := newClosure(t)
	var scan []string
	for _, bin := range r.Binaries {
		final, _, err := resolve(root, bin)
		var fi os.FileInfo
		if err == nil {
			fi, err = os.Stat(filepath.Join(root, final))
		}
		if err != nil {
			return nil, fmt.Errorf("binary %s: in none of the packages %s%s: %w", bin, s.names(), s.suggest(bin), ErrNotInPackages)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return nil, fmt.Errorf("binary %s: not an executable file (%s) in the packages: %w", bin, fi.Mode(), ErrNotInPackages)
		}
		files, err := t.addStaged(bin)
		if err != nil {
			return nil, fmt.Errorf("binary %s: %w", bin, err)
		}
		scan = append(scan, files...)
	}
	for _, p := range r.Paths {
		files, err := t.addStaged(p)
		if err != nil {
			if os.IsNotExist(err) {
				return nil, fmt.Errorf("path %s: in none of the packages %s%s: %w", p, s.names(), s.suggest(p), ErrNotInPackages)
			}
			return nil, fmt.Errorf("path %s: %w", p, err)
		}
		scan = append(scan, files...)
	}
	if err := cl.add(scan...); err != nil {
		return nil, err
	}
	for _, l := range r.Libraries {
		if err := cl.library(l); err != nil {
			return nil, err
		}
	}
	// Libraries the staged packages lack: look in the Depends of the
	// package that shipped the file needing each, a level at a time.
	depth := r.DependsDepth
	if depth == 0 {
		depth = DefaultDependsDepth
	}
	for level := 0; len(cl.pending) > 0 && level < depth; level++ {
		var deps []string
		seen := map[string]bool{}
		for _, n := range cl.pending {
			owners := explicit
			if p := s.staged[t.owner[n.by]]; p != nil {
				owners = []*pkgInfo{p}
			}
			for _, p := range owners {
				for _, d := range p.Depends {
					if _, ok := s.staged[d]; !ok && !seen[d] {
						seen[d] = true
						deps = append(deps, d)
					}
				}
			}
		}
		if len(deps) == 0 {
			break
		}
		bb.Log.Info("looking for libraries in dependencies", "level", level+1, "packages", strings.Join(deps, " "))
		if _, err := s.stage(ctx, deps, false); err != nil {
			return nil, err
		}
		if err := cl.resolve(); err != nil {
			return nil, err
		}
	}
	if len(cl.pending) > 0 && r.HostLibraries {
		cl.hostRoot = bb.HostRoot
		if err := cl.resolve(); err != nil {
			return nil, err
		}
	}
	if err := cl.missingError(); err != nil {
		return nil, err
	}

	mtime := t.newest()
	if sde := os.Getenv("SOURCE_DATE_EPOCH"); sde != "" {
		if n, err := strconv.ParseInt(sde, 10, 64); err == nil {
			mtime = time.Unix(n, 0)
		}
	}
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	mtime = mtime.UTC().Truncate(time.Second)
	if err := r.addRecipeFiles(t); err != nil {
		return nil, err
	}

	var layer bytes.Buffer
	files, size, err := t.writeTar(&layer, mtime)
	if err != nil {
		return nil, err
	}
	res := &Result{Name: name, Files: files, Size: size, HostFiles: cl.fromHost}
	used := map[string]bool{}
	for _, e := range t.entries {
		if e.typ != tar.TypeDir { // a shared directory is no package's content
			used[e.origin] = true
		}
	}
	for _, p := range s.order {
		if used[p.Name] {
			res.Packages = append(res.Packages, p.String())
		}
	}
	sort.Strings(res.Packages)
	data := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: l, MediaType: types.OCILayer, History: v1.History{
		Created:   v1.Time{Time: mtime},
		CreatedBy: "hull-mkimage: " + strings.Join(res.Packages, " "),
		Comment:   "files of Debian packages with their shared libraries",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", goArch(s.order), v1.Time{Time: mtime}
	cf.Config, err = r.imageConfig(res.Packages)
	if err != nil {
		return nil, err
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	res.Image = img
	return res, nil
}

// goArch maps the packages' Debian architecture to GOARCH.
func goArch(pkgs []*pkgInfo) string {
	for _, p := range pkgs {
		switch p.Arch {
		case "all", "":
			continue
		case "i386":
			return "386"
		case "armhf", "armel":
			return "arm"
		case "ppc64el":
			return "ppc64le"
		default:
			return p.Arch // amd64, arm64, s390x, riscv64, mips64el
		}
	}
	return "amd64"
}

func (r *Recipe) imageConfig(pkgs []string) (v1.Config, error) {
	c := v1.Config{
		Entrypoint: r.Config.Entrypoint, Cmd: r.Config.Cmd, WorkingDir: r.Config.WorkingDir,
		User: r.Config.User, StopSignal: r.Config.StopSignal, Labels: map[string]string{},
	}
	hasPath := false
	for _, e := range r.Config.Env {
		if !strings.Contains(e, "=") {
			return c, fmt.Errorf("env %q: want KEY=VALUE: %w", e, ErrInvalidRecipe)
		}
		hasPath = hasPath || strings.HasPrefix(e, "PATH=")
	}
	if !hasPath {
		c.Env = append(c.Env, DefaultPath)
	}
	c.Env = append(c.Env, r.Config.Env...)
	if len(r.Config.ExposedPorts) > 0 {
		c.ExposedPorts = map[string]struct{}{}
		for _, p := range r.Config.ExposedPorts {
			n, err := normPort(p)
			if err != nil {
				return c, err
			}
			c.ExposedPorts[n] = struct{}{}
		}
	}
	for k, v := range r.Config.Labels {
		c.Labels[k] = v
	}
	c.Labels[LabelPackages] = strings.Join(pkgs, " ")
	return c, nil
}

// addRecipeFiles adds /etc/passwd, /etc/group, /tmp and the recipe's own
// dirs, files and symlinks (in that order, later ones winning).
func (r *Recipe) addRecipeFiles(t *tree) error {
	passwd, group := r.accounts()
	t.put("/etc/passwd", &entry{typ: tar.TypeReg, mode: 0o644, data: passwd, origin: "recipe"})
	t.put("/etc/group", &entry{typ: tar.TypeReg, mode: 0o644, data: group, origin: "recipe"})
	if _, ok := t.entries["/tmp"]; !ok {
		t.put("/tmp", &entry{typ: tar.TypeDir, mode: 0o1777, origin: "recipe"})
	}
	for _, d := range r.Dirs {
		mode := int64(d.Mode)
		if mode == 0 {
			mode = 0o755
		}
		t.put(d.Path, &entry{typ: tar.TypeDir, mode: mode, uid: d.UID, gid: d.GID, origin: "recipe"})
	}
	for _, f := range r.Files {
		data := []byte(f.Content)
		if f.Source != "" {
			src := f.Source
			if !filepath.IsAbs(src) {
				src = filepath.Join(r.dir, src)
			}
			var err error
			if data, err = os.ReadFile(src); err != nil {
				return fmt.Errorf("file %s: %w", f.Path, err)
			}
		}
		mode := int64(f.Mode)
		if mode == 0 {
			mode = 0o644
		}
		t.put(f.Path, &entry{typ: tar.TypeReg, mode: mode, uid: f.UID, gid: f.GID, data: data, origin: "recipe"})
	}
	for _, s := range r.Symlinks {
		t.put(s.Path, &entry{typ: tar.TypeSymlink, mode: 0o777, link: s.Target, origin: "recipe"})
	}
	return nil
}

// accounts renders /etc/passwd and /etc/group.
func (r *Recipe) accounts() (passwd, group []byte) {
	users := []User{{Name: "root", UID: 0, GID: 0, Home: "/root", Shell: "/bin/sh"}}
	seenU := map[string]bool{"root": true}
	for _, u := range r.Users {
		if u.Name == "root" {
			users[0] = u
			continue
		}
		if !seenU[u.Name] {
			seenU[u.Name] = true
			users = append(users, u)
		}
	}
	if !seenU["nobody"] {
		users = append(users, User{Name: "nobody", UID: 65534, GID: 65534})
	}
	groups := []Group{{Name: "root", GID: 0}}
	byGID := map[int]bool{0: true}
	seenG := map[string]bool{"root": true}
	for _, g := range r.Groups {
		if !seenG[g.Name] {
			seenG[g.Name], byGID[g.GID] = true, true
			groups = append(groups, g)
		}
	}
	for _, u := range users {
		if !byGID[u.GID] {
			n := u.Name
			if u.GID == 65534 {
				n = "nogroup"
			}
			if !seenG[n] {
				seenG[n], byGID[u.GID] = true, true
				groups = append(groups, Group{Name: n, GID: u.GID})
			}
		}
	}
	var pw, gr strings.Builder
	for _, u := range users {
		home, shell := u.Home, u.Shell
		if home == "" {
			home = "/nonexistent"
		}
		if shell == "" {
			shell = "/usr/sbin/nologin"
		}
		fmt.Fprintf(&pw, "%s:x:%d:%d:%s:%s:%s\n", u.Name, u.UID, u.GID, u.Name, home, shell)
	}
	for _, g := range groups {
		fmt.Fprintf(&gr, "%s:x:%d:%s\n", g.Name, g.GID, strings.Join(g.Members, ","))
	}
	return []byte(pw.String()), []byte(gr.String())
}
