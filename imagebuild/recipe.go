// Package imagebuild builds small OCI images from Debian packages, without
// a container engine and without network access beyond the host's apt
// sources.
//
// A Recipe names Debian packages and the parts of them an image needs: the
// binaries (with the shared libraries they load), configuration files and
// directories, extra files written from the recipe, users and groups, and
// the image config (entrypoint, ports, stop signal...). Build then:
//
//  1. asks apt-cache for each package's candidate version, and fetches the
//     .deb with `apt-get download` into a cache (verified by SHA256, reused
//     on the next build);
//  2. unpacks every package with `dpkg-deb -x` into one staging tree (the
//     packages' maintainer scripts never run);
//  3. takes the binaries and paths the recipe asks for from the staging
//     tree, and follows each ELF file's PT_INTERP and DT_NEEDED entries
//     (read with debug/elf, never by running ldd on the binaries) through
//     the staged tree the way the dynamic loader would (RPATH/RUNPATH with
//     $ORIGIN, then the multiarch and default library directories). A
//     library no staged package provides is looked for in the Depends of
//     the package that shipped the file needing it, one level at a time
//     (Recipe.DependsDepth levels), and, when the recipe allows it, on the
//     host;
//  4. writes one reproducible layer (sorted entries, files owned by root
//     unless the recipe says otherwise, every timestamp the newest one of
//     the staged inputs) and the image config.
//
// WriteLayout stores the image as an OCI image layout tar that
// `hull images import` (and skopeo, and containerd's import) read; Push
// sends it to a registry.
//
// Why not debootstrap, or mmdebstrap with a package list: those install a
// whole Debian userland (and run maintainer scripts as root on the build
// host); a container image needs the handful of files the program uses.
package imagebuild

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/pelletier/go-toml/v2"
)

// Errors of the package. Each wraps the errdefs kind that fits, so callers
// test with errors.Is against either.
var (
	// ErrInvalidRecipe: the recipe is malformed or incomplete.
	ErrInvalidRecipe = fmt.Errorf("invalid recipe: %w", errdefs.ErrInvalidArgument)
	// ErrUnknownPackage: apt knows no such package (or only a virtual one).
	ErrUnknownPackage = fmt.Errorf("unknown package: %w", errdefs.ErrNotFound)
	// ErrNotInPackages: a binary or path the recipe asks for is in none of
	// the staged packages.
	ErrNotInPackages = fmt.Errorf("not in the packages: %w", errdefs.ErrNotFound)
	// ErrMissingLibrary: an ELF file needs a shared library no staged
	// package (nor the host, if allowed) provides.
	ErrMissingLibrary = fmt.Errorf("missing shared library: %w", errdefs.ErrNotFound)
	// ErrTool: apt-get, apt-cache or dpkg-deb failed or is missing.
	ErrTool = fmt.Errorf("packaging tool failed: %w", errdefs.ErrUnavailable)
)

// Recipe describes an image. The TOML form (LoadRecipe) uses the toml tags.
type Recipe struct {
	// Name is the image reference written into the layout
	// (io.containerd.image.name), e.g. "docker.io/hull/nginx:1.22".
	Name string `toml:"name"`
	// Packages are Debian package names, optionally pinned as name=version.
	Packages []string `toml:"packages"`
	// DependsDepth is how many levels of Depends are searched for shared
	// libraries the named packages do not ship: a library a file needs is
	// looked for in the Depends of the package that shipped the file, then
	// in theirs (0: DefaultDependsDepth; negative: none).
	DependsDepth int `toml:"depends_depth"`
	// HostLibraries lets libraries no package provides come from the host's
	// library directories (off by default: the image should be built from
	// packages only).
	HostLibraries bool `toml:"host_libraries"`
	// Binaries are absolute paths of executables in the packages; each is
	// taken with its shared-library closure.
	Binaries []string `toml:"binaries"`
	// Libraries are sonames to take with their own closure, for libraries
	// a program loads with dlopen (DT_NEEDED does not name those), e.g.
	// "libnss_compat.so.2".
	Libraries []string `toml:"libraries"`
	// Paths are files or directories (taken whole) from the packages.
	// ELF files among them bring their libraries too.
	Paths []string `toml:"paths"`
	// Files are written from the recipe (over anything from Paths).
	Files []File `toml:"files"`
	// Dirs are created empty (if no path brought them).
	Dirs []Dir `toml:"dirs"`
	// Symlinks are created as given.
	Symlinks []Symlink `toml:"symlinks"`
	// Users and Groups make /etc/passwd and /etc/group. root (0) and
	// nobody/nogroup (65534) are always there; each user's primary group is
	// created with the user's name if no group has its gid.
	Users  []User  `toml:"users"`
	Groups []Group `toml:"groups"`
	// Config is the image config.
	Config Config `toml:"config"`

	// dir is the directory File.Source paths are relative to.
	dir string
}

// File is a file the recipe writes: Content, or the file at Source
// (relative to the recipe's directory).
type File struct {
	Path    string `toml:"path"`
	Content string `toml:"content"`
	Source  string `toml:"source"`
	Mode    uint32 `toml:"mode"` // default 0644
	UID     int    `toml:"uid"`
	GID     int    `toml:"gid"`
}

// Dir is a directory the recipe creates.
type Dir struct {
	Path string `toml:"path"`
	Mode uint32 `toml:"mode"` // default 0755
	UID  int    `toml:"uid"`
	GID  int    `toml:"gid"`
}

// Symlink is a symbolic link Path → Target.
type Symlink struct {
	Path   string `toml:"path"`
	Target string `toml:"target"`
}

// User is one /etc/passwd line.
type User struct {
	Name  string `toml:"name"`
	UID   int    `toml:"uid"`
	GID   int    `toml:"gid"`
	Home  string `toml:"home"`  // default /nonexistent
	Shell string `toml:"shell"` // default /usr/sbin/nologin
}

// Group is one /etc/group line.
type Group struct {
	Name    string   `toml:"name"`
	GID     int      `toml:"gid"`
	Members []string `toml:"members"`
}

// Config is the part of the OCI image config a recipe sets.
type Config struct {
	Entrypoint   []string          `toml:"entrypoint"`
	Cmd          []string          `toml:"cmd"`
	Env          []string          `toml:"env"`
	WorkingDir   string            `toml:"workdir"`
	User         string            `toml:"user"`
	ExposedPorts []string          `toml:"ports"` // "80/tcp", "53/udp"; "80" means tcp
	StopSignal   string            `toml:"stop_signal"`
	Labels       map[string]string `toml:"labels"`
}

// LoadRecipe reads a TOML recipe. Unknown keys are an error, and relative
// File.Source paths are taken from the recipe's directory.
func LoadRecipe(file string) (*Recipe, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	r, err := ParseRecipe(data, file)
	if err != nil {
		return nil, err
	}
	r.dir = filepath.Dir(file)
	return r, nil
}

// ParseRecipe reads a TOML recipe from data; name is used in errors.
func ParseRecipe(data []byte, name string) (*Recipe, error) {
	r := &Recipe{}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			var keys []string
			for _, e := range strict.Errors {
				keys = append(keys, strings.Join(e.Key(), "."))
			}
			return nil, fmt.Errorf("recipe %s: unknown keys %s: %w", name, strings.Join(keys, ", "), ErrInvalidRecipe)
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("recipe %s:%d:%d: %s: %w", name, row, col, de.Error(), ErrInvalidRecipe)
		}
		return nil, fmt.Errorf("recipe %s: %v: %w", name, err, ErrInvalidRecipe)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("recipe %s: %w", name, err)
	}
	return r, nil
}

// SetDir sets the directory relative File.Source paths are read from
// (LoadRecipe sets it to the recipe file's directory).
func (r *Recipe) SetDir(dir string) { r.dir = dir }

func absClean(what, p string) error {
	if !path.IsAbs(p) {
		return fmt.Errorf("%s %q: must be an absolute path: %w", what, p, ErrInvalidRecipe)
	}
	if path.Clean(p) == "/" {
		return fmt.Errorf("%s %q: the root directory cannot be named: %w", what, p, ErrInvalidRecipe)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return fmt.Errorf("%s %q: \"..\" is not allowed: %w", what, p, ErrInvalidRecipe)
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c == ':' || c == '\n' || c == ',' || c == ' ' {
			return false
		}
	}
	return true
}

// Validate checks the recipe without touching the system.
func (r *Recipe) Validate() error {
	if len(r.Packages) == 0 {
		return fmt.Errorf("no packages: %w", ErrInvalidRecipe)
	}
	for _, p := range r.Packages {
		name, _, _ := strings.Cut(p, "=")
		if !validPackageName(name) {
			return fmt.Errorf("package %q: not a Debian package name: %w", p, ErrInvalidRecipe)
		}
	}
	if len(r.Binaries) == 0 && len(r.Paths) == 0 && len(r.Files) == 0 {
		return fmt.Errorf("nothing to put in the image (no binaries, paths or files): %w", ErrInvalidRecipe)
	}
	for _, b := range r.Binaries {
		if err := absClean("binary", b); err != nil {
			return err
		}
	}
	for _, p := range r.Paths {
		if err := absClean("path", p); err != nil {
			return err
		}
	}
	for _, l := range r.Libraries {
		if l == "" || strings.Contains(l, "/") {
			return fmt.Errorf("library %q: want a soname such as libfoo.so.1: %w", l, ErrInvalidRecipe)
		}
	}
	for _, f := range r.Files {
		if err := absClean("file", f.Path); err != nil {
			return err
		}
		if (f.Content == "") == (f.Source == "") {
			return fmt.Errorf("file %q: give exactly one of content and source: %w", f.Path, ErrInvalidRecipe)
		}
		if f.Mode&^0o7777 != 0 {
			return fmt.Errorf("file %q: mode %o: %w", f.Path, f.Mode, ErrInvalidRecipe)
		}
	}
	for _, d := range r.Dirs {
		if err := absClean("dir", d.Path); err != nil {
			return err
		}
		if d.Mode&^0o7777 != 0 {
			return fmt.Errorf("dir %q: mode %o: %w", d.Path, d.Mode, ErrInvalidRecipe)
		}
	}
	for _, s := range r.Symlinks {
		if err := absClean("symlink", s.Path); err != nil {
			return err
		}
		if s.Target == "" {
			return fmt.Errorf("symlink %q: no target: %w", s.Path, ErrInvalidRecipe)
		}
	}
	for _, u := range r.Users {
		if !validName(u.Name) || u.UID < 0 || u.GID < 0 {
			return fmt.Errorf("user %q (uid %d, gid %d): want a name without ':' and ids >= 0: %w", u.Name, u.UID, u.GID, ErrInvalidRecipe)
		}
	}
	for _, g := range r.Groups {
		if !validName(g.Name) || g.GID < 0 {
			return fmt.Errorf("group %q (gid %d): want a name without ':' and a gid >= 0: %w", g.Name, g.GID, ErrInvalidRecipe)
		}
	}
	for _, p := range r.Config.ExposedPorts {
		if _, err := normPort(p); err != nil {
			return err
		}
	}
	if len(r.Config.Entrypoint) == 0 && len(r.Config.Cmd) == 0 {
		return fmt.Errorf("config: neither entrypoint nor cmd: %w", ErrInvalidRecipe)
	}
	return nil
}

// validPackageName follows Debian policy 5.6.1: lower case letters,
// digits, + - . , at least two characters, starting alphanumeric.
func validPackageName(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '+' || c == '-' || c == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}

func normPort(p string) (string, error) {
	num, proto, ok := strings.Cut(p, "/")
	if !ok {
		proto = "tcp"
	}
	n := 0
	if _, err := fmt.Sscanf(num, "%d", &n); err != nil || fmt.Sprint(n) != num || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q: want NUMBER[/tcp|udp] with 1 <= NUMBER <= 65535: %w", p, ErrInvalidRecipe)
	}
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return "", fmt.Errorf("port %q: protocol %q: want tcp, udp or sctp: %w", p, proto, ErrInvalidRecipe)
	}
	return num + "/" + proto, nil
}
