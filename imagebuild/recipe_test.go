package imagebuild

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

const minimal = `
name = "localhost/x"
packages = ["busybox-static"]
binaries = ["/bin/busybox"]
[config]
cmd = ["/bin/busybox", "sh"]
`

func TestParseRecipe(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string // want: "" for success, else a piece of the error
	}{
		{"minimal", minimal, ""},
		{"unknown key", minimal + "colour = \"red\"\n", "unknown keys config.colour"},
		{"syntax", "name = \n", "recipe t.toml:1"},
		{"no packages", strings.Replace(minimal, `packages = ["busybox-static"]`, "", 1), "no packages"},
		{"bad package name", strings.Replace(minimal, "busybox-static", "Busybox", 1), `package "Busybox"`},
		{"relative binary", strings.Replace(minimal, `"/bin/busybox"]`, `"bin/busybox"]`, 1), "must be an absolute path"},
		{"root path", strings.Replace(minimal, "binaries", "paths = [\"/\"]\nbinaries", 1), "root directory"},
		{"escaping path", strings.Replace(minimal, "binaries", "paths = [\"/etc/../../x\"]\nbinaries", 1), `".." is not allowed`},
		{"no command", strings.Replace(minimal, `cmd = ["/bin/busybox", "sh"]`, "", 1), "neither entrypoint nor cmd"},
		{"bad port", minimal + "ports = [\"80/icmp\"]\n", `protocol "icmp"`},
		{"port range", minimal + "ports = [\"70000\"]\n", "1 <= NUMBER <= 65535"},
		{"file with both", strings.Replace(minimal, "binaries", "files = [{path=\"/a\", content=\"x\", source=\"y\"}]\nbinaries", 1), "exactly one of content and source"},
		{"user with colon", strings.Replace(minimal, "binaries", "users = [{name=\"a:b\", uid=1, gid=1}]\nbinaries", 1), `user "a:b"`},
		{"symlink without target", strings.Replace(minimal, "binaries", "symlinks = [{path=\"/a\"}]\nbinaries", 1), "no target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRecipe([]byte(tc.text), "t.toml")
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalidRecipe) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("%v: not ErrInvalidRecipe / invalid argument", err)
			}
		})
	}
}

func TestNginxRecipeParses(t *testing.T) {
	r, err := LoadRecipe(filepath.Join("..", "images", "nginx", "recipe.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "localhost/nginx:latest" || len(r.Binaries) == 0 {
		t.Fatalf("unexpected recipe %+v", r)
	}
	for _, f := range r.Files {
		if _, err := os.Stat(filepath.Join(r.dir, f.Source)); err != nil {
			t.Errorf("file %s: %v", f.Path, err)
		}
	}
}

func TestParseDepends(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"libc6 (>= 2.34), libcrypt1 (>= 1:4.1.0)", []string{"libc6", "libcrypt1"}},
		{"debconf (>= 0.5) | debconf-2.0", []string{"debconf"}},
		{"python3:any, libfoo [amd64]", []string{"python3", "libfoo"}},
		{"libx <!nocheck>, liby", []string{"libx", "liby"}},
	} {
		if got := parseDepends(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseDepends(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseRecords(t *testing.T) {
	recs := parseRecords([]byte("Package: a\nVersion: 1\nDescription: x\n more\n\nPackage: b\nVersion: 2\n"))
	if len(recs) != 2 || recs[0]["Package"] != "a" || recs[1]["Version"] != "2" || recs[0]["Description"] != "x\nmore" {
		t.Fatalf("got %v", recs)
	}
}

// TestResolveStaysInRoot: links in the staging tree are followed as the
// image would see them, absolute ones from its root, never out of it.
func TestResolveStaysInRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"usr/lib/x", "lib64", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "usr/lib/x/libz.so.1.2"), []byte("z"), 0o644)
	links := map[string]string{
		"lib":                  "usr/lib",
		"usr/lib/x/libz.so.1":  "libz.so.1.2",
		"lib64/ld.so":          "/lib/x/libz.so.1",
		"usr/lib/x/escape":     "../../../../../../etc",
		"usr/lib/x/abs-escape": "/etc/passwd",
		"loop":                 "loop",
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		in, want string
		nlinks   int
		err      bool
	}{
		{"/lib64/ld.so", "/usr/lib/x/libz.so.1.2", 3, false},
		{"/lib/x/libz.so.1", "/usr/lib/x/libz.so.1.2", 2, false},
		{"/usr/lib/x/escape/passwd", "/etc/passwd", 1, false},
		{"/usr/lib/x/abs-escape", "/etc/passwd", 1, false},
		{"/missing/file", "", 0, true},
		{"/loop", "", 0, true},
	} {
		got, ls, err := resolve(root, tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("resolve(%s) = %s, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want || len(ls) != tc.nlinks {
			t.Errorf("resolve(%s) = %s, %v, %v; want %s with %d links", tc.in, got, ls, err, tc.want, tc.nlinks)
		}
	}
}

func TestAccounts(t *testing.T) {
	r := &Recipe{Users: []User{{Name: "www-data", UID: 33, GID: 33, Home: "/var/www"}}, Groups: []Group{{Name: "adm", GID: 4, Members: []string{"www-data"}}}}
	pw, gr := r.accounts()
	wantPw := "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	wantGr := "root:x:0:\nadm:x:4:www-data\nwww-data:x:33:\nnogroup:x:65534:\n"
	if string(pw) != wantPw || string(gr) != wantGr {
		t.Fatalf("passwd:\n%s\ngroup:\n%s", pw, gr)
	}
}
