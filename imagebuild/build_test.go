package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/content"
	"github.com/hullproject/hull/image"
	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/metadata"
	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/oci"
	"github.com/hullproject/hull/snapshot/auto"
)

// requireApt skips where Debian's apt and dpkg are missing (the builder's
// only requirement besides the package archive).
func requireApt(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"apt-cache", "apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs Debian's %s", tool)
		}
	}
}

// builder caches packages where make demo does (build/debs of this
// checkout), and stages under a test directory it checks is left empty.
func builder(t *testing.T) *Builder {
	t.Helper()
	cache, err := filepath.Abs(filepath.Join("..", "build", "debs"))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	t.Cleanup(func() {
		if ents, _ := os.ReadDir(work); len(ents) > 0 {
			t.Errorf("staging left behind in %s: %v", work, ents)
		}
	})
	return &Builder{CacheDir: cache, WorkDir: work, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestBuildBadInput(t *testing.T) {
	requireApt(t)
	const lib = "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0"
	for _, tc := range []struct {
		name    string
		r       Recipe
		is      error
		kind    func(error) bool
		message []string
	}{
		{"unknown package",
			Recipe{Packages: []string{"hull-no-such-package"}, Binaries: []string{"/bin/x"}},
			ErrUnknownPackage, errdefs.IsNotFound, []string{`package "hull-no-such-package"`}},
		{"unknown version",
			Recipe{Packages: []string{"busybox-static=0.0.1-hull"}, Binaries: []string{"/bin/busybox"}},
			ErrUnknownPackage, errdefs.IsNotFound, []string{`"busybox-static=0.0.1-hull"`}},
		{"binary not in package",
			Recipe{Packages: []string{"busybox-static"}, Binaries: []string{"/usr/sbin/nginx"}},
			ErrNotInPackages, errdefs.IsNotFound, []string{"binary /usr/sbin/nginx", "busybox-static"}},
		{"binary elsewhere",
			Recipe{Packages: []string{"busybox-static"}, Binaries: []string{"/usr/bin/busybox"}},
			ErrNotInPackages, errdefs.IsNotFound, []string{"did you mean /bin/busybox"}},
		{"binary not executable",
			Recipe{Packages: []string{"busybox-static"}, Binaries: []string{"/usr/share/doc/busybox-static/copyright"}},
			ErrNotInPackages, errdefs.IsNotFound, []string{"not an executable file"}},
		{"path not in package",
			Recipe{Packages: []string{"busybox-static"}, Binaries: []string{"/bin/busybox"}, Paths: []string{"/etc/nginx"}},
			ErrNotInPackages, errdefs.IsNotFound, []string{"path /etc/nginx"}},
		{"library nowhere",
			Recipe{Packages: []string{"libpcre2-8-0"}, Paths: []string{lib}, DependsDepth: -1},
			ErrMissingLibrary, errdefs.IsNotFound, []string{"libc.so.6 (needed by " + lib}},
		{"dlopen library nowhere",
			Recipe{Packages: []string{"busybox-static"}, Binaries: []string{"/bin/busybox"}, Libraries: []string{"libhull-none.so.9"}},
			ErrMissingLibrary, errdefs.IsNotFound, []string{"libhull-none.so.9 (needed by the recipe's libraries)"}},
		{"bad name",
			Recipe{Name: "Local/UPPER", Packages: []string{"busybox-static"}, Binaries: []string{"/bin/busybox"}},
			ErrInvalidRecipe, errdefs.IsInvalidArgument, []string{`image name "Local/UPPER"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			if r.Name == "" {
				r.Name = "localhost/hull-test"
			}
			r.Config.Cmd = []string{"/bin/x"}
			_, err := builder(t).Build(context.Background(), &r)
			if err == nil {
				t.Fatal("built an image")
			}
			if !errors.Is(err, tc.is) || !tc.kind(err) {
				t.Fatalf("%v: want %v", err, tc.is)
			}
			for _, m := range tc.message {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("%v: does not say %q", err, m)
				}
			}
		})
	}
}

// TestLibrariesFromDependsOrHost: a library's needs come from its
// package's Depends, and with host_libraries from the host when the
// Depends are not searched.
func TestLibrariesFromDependsOrHost(t *testing.T) {
	requireApt(t)
	const lib = "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0"
	for _, tc := range []struct {
		name     string
		depth    int
		host     bool
		packages []string
		hostLibc bool
		libs     []string
	}{
		{"depends", 0, false, []string{"libc6=", "libpcre2-8-0="}, false, nil},
		{"host", -1, true, []string{"libpcre2-8-0="}, true, nil},
		{"dlopen", 0, false, []string{"libc6=", "libpcre2-8-0="}, false, []string{"libnss_compat.so.2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Recipe{Name: "localhost/hull-test", Packages: []string{"libpcre2-8-0"}, Paths: []string{lib}, Libraries: tc.libs,
				DependsDepth: tc.depth, HostLibraries: tc.host, Config: Config{Cmd: []string{"/bin/x"}}}
			res, err := builder(t).Build(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Packages) != len(tc.packages) {
				t.Fatalf("packages %v, want %v", res.Packages, tc.packages)
			}
			for i, p := range tc.packages {
				if !strings.HasPrefix(res.Packages[i], p) {
					t.Errorf("packages %v, want %v", res.Packages, tc.packages)
				}
			}
			hasLibc := false
			for _, f := range res.HostFiles {
				hasLibc = hasLibc || strings.HasSuffix(f, "/libc.so.6")
			}
			if hasLibc != tc.hostLibc {
				t.Errorf("host files %v", res.HostFiles)
			}
			files := layerFiles(t, res)
			want := []string{"lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libpcre2-8.so.0", "etc/passwd", "tmp/"}
			for _, l := range tc.libs {
				want = append(want, "lib/x86_64-linux-gnu/"+l)
			}
			for _, want := range want {
				if !files[want] {
					t.Errorf("image lacks %s: %v", want, files)
				}
			}
		})
	}
}

func layerFiles(t *testing.T, res *Result) map[string]bool {
	t.Helper()
	ls, err := res.Image.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers: %v (%d)", err, len(ls))
	}
	rc, err := ls[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]bool{}
	for _, n := range tarNames(t, rc) {
		out[n] = true
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestNginxImage builds images/nginx, imports the layout as hull images
// import does, unpacks it into a bundle and runs it with hull-runtime in
// the host's network namespace on a free port (the test rewrites the
// listen line): the page answers, errors go to stderr, the access log to
// stdout, the worker runs as www-data, and SIGQUIT (the image's stop
// signal) ends it cleanly. Where a local registry runs, the image is also
// pushed and pulled back.
func TestNginxImage(t *testing.T) {
	requireApt(t)
	testutil.RequireRoot(t)
	rt := testutil.RuntimeBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	r, err := LoadRecipe(filepath.Join("..", "images", "nginx", "recipe.toml"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := builder(t).Build(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"nginx=", "nginx-common=", "libc6=", "libssl3="} {
		found := false
		for _, q := range res.Packages {
			found = found || strings.HasPrefix(q, p)
		}
		if !found {
			t.Errorf("packages %v lack %s", res.Packages, p)
		}
	}
	if len(res.HostFiles) > 0 {
		t.Errorf("files from the host: %v", res.HostFiles)
	}
	dir := t.TempDir()
	layoutTar := filepath.Join(dir, "nginx.tar")
	if err := WriteLayout(res.Image, res.Name, layoutTar); err != nil {
		t.Fatal(err)
	}

	// Import and unpack as hulld does.
	root := filepath.Join(dir, "hull")
	cs, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := metadata.Open(filepath.Join(root, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sn, snName, err := auto.New(filepath.Join(root, "snapshots"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	svc := &image.Service{Content: cs, Meta: db, Snapshotter: sn, SnapshotterName: snName, Applier: image.DiffApplier{},
		Registry: image.RegistryConfig{ConfigPath: filepath.Join(root, "no-config.json")}}
	imgs, err := svc.Import(ctx, "default", layoutTar, image.ImportOptions{Unpack: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Name != "localhost/nginx:latest" {
		t.Fatalf("imported %+v", imgs)
	}
	_, cfg, _, err := svc.Resolve(ctx, imgs[0].Target, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Config.ExposedPorts["80/tcp"]; !ok || cfg.Config.StopSignal != "SIGQUIT" {
		t.Errorf("image config %+v", cfg.Config)
	}
	top := imgs[0].Labels["hull.io/unpacked."+snName]
	if top == "" {
		t.Fatalf("not unpacked: labels %v", imgs[0].Labels)
	}
	bundle := filepath.Join(dir, "bundle")
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	mounts, err := sn.Prepare(ctx, "nginx-test", top)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Remove(context.Background(), "nginx-test")
	if err := mount.All(mounts, rootfs); err != nil {
		t.Fatal(err)
	}
	defer mount.UnmountAll(rootfs, 0)

	port := freePort(t)
	conf := filepath.Join(rootfs, "etc/nginx/conf.d/default.conf")
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("listen 80 "), fmt.Appendf(nil, "listen 127.0.0.1:%d ", port), 1)
	if err := os.WriteFile(conf, data, 0o644); err != nil {
		t.Fatal(err)
	}

	id := fmt.Sprintf("hull-imagebuild-%d", os.Getpid())
	s, err := oci.NewSpec("hulltest", id, oci.WithImageConfig(cfg.Config))
	if err != nil {
		t.Fatal(err)
	}
	s.Root = &specs.Root{Path: rootfs}
	var nss []specs.LinuxNamespace
	for _, n := range s.Linux.Namespaces {
		if n.Type != specs.NetworkNamespace {
			nss = append(nss, n)
		}
	}
	s.Linux.Namespaces = nss
	js, _ := json.Marshal(s)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(rt, "--root", state, "run", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		exec.Command(rt, "--root", state, "kill", id, "KILL").Run()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		exec.Command(rt, "--root", state, "delete", "--force", id).Run()
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/pids/hulltest", id)); err == nil {
			t.Errorf("cgroup of %s left behind", id)
		}
	}()

	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var body []byte
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s", url, resp.Status)
			}
			break
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("nginx ended before answering: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
		case <-ctx.Done():
			t.Fatalf("GET %s: no answer: %v", url, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !bytes.Contains(body, []byte("Welcome to nginx on Hull")) {
		t.Errorf("page: %s", body)
	}

	// The worker runs as www-data (uid 33, from the image's /etc/passwd).
	st, err := exec.Command(rt, "--root", state, "state", id).Output()
	if err != nil {
		t.Fatal(err)
	}
	var cs0 specs.State
	if err := json.Unmarshal(st, &cs0); err != nil {
		t.Fatal(err)
	}
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cs0.Pid, cs0.Pid))
	if f := strings.Fields(string(kids)); len(f) != 1 {
		t.Errorf("nginx master has children %q, want one worker", kids)
	} else if status, err := os.ReadFile("/proc/" + f[0] + "/status"); err != nil || !strings.Contains(string(status), "\nUid:\t33\t33\t33\t33\n") {
		t.Errorf("worker %s is not www-data: %v\n%s", f[0], err, status)
	}

	if err := exec.Command(rt, "--root", state, "kill", id, "QUIT").Run(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("nginx after SIGQUIT: %v\nstderr: %s", err, stderr.String())
		}
		done <- err
	case <-time.After(30 * time.Second):
		t.Fatal("nginx did not stop on SIGQUIT")
	}
	if !strings.Contains(stdout.String(), `"GET / HTTP/1.1" 200`) {
		t.Errorf("no access log line on stdout: %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "start worker process") {
		t.Errorf("no error log on stderr: %q", stderr.String())
	}

	t.Run("registry", func(t *testing.T) {
		reg := os.Getenv("HULL_TEST_REGISTRY")
		if reg == "" {
			t.Skip("HULL_TEST_REGISTRY is not set: run through scripts/test.sh, which starts docker-registry")
		}
		ref := fmt.Sprintf("%s/hulltest%d/nginx:latest", reg, os.Getpid())
		if err := Push(ctx, res.Image, ref, true); err != nil {
			t.Fatal(err)
		}
		img, err := svc.Pull(ctx, "pulled", ref, image.PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := res.Image.Digest()
		if img.Target.Digest.String() != want.String() {
			t.Errorf("pulled %s, pushed %s", img.Target.Digest, want)
		}
	})
}

func tarNames(t *testing.T, r io.Reader) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// TestRecipes builds every recipe under images/ from packages only (no
// host libraries), and checks each binary it names is in the image with
// the dynamic loader its libraries need.
func TestRecipes(t *testing.T) {
	requireApt(t)
	files, err := filepath.Glob(filepath.Join("..", "images", "*", "recipe.toml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recipes under images/: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			r, err := LoadRecipe(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := builder(t).Build(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.HostFiles) > 0 {
				t.Errorf("files from the host: %v", res.HostFiles)
			}
			got := layerFiles(t, res)
			for _, b := range r.Binaries {
				if !got[strings.TrimPrefix(b, "/")] {
					t.Errorf("binary %s not in the image", b)
				}
			}
			if !got["lib64/ld-linux-x86-64.so.2"] || !got["lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"] {
				t.Errorf("no dynamic loader in the image")
			}
		})
	}
}

// TestAptArchiveCache: a package apt already holds in its archive cache
// is taken from there (verified by its SHA256), not downloaded again.
func TestAptArchiveCache(t *testing.T) {
	requireApt(t)
	r := &Recipe{Name: "localhost/hull-test", Packages: []string{"busybox-static"}, Binaries: []string{"/bin/busybox"}, Config: Config{Cmd: []string{"/bin/busybox"}}}
	b := builder(t)
	if _, err := b.Build(context.Background(), r); err != nil { // fills b.CacheDir
		t.Fatal(err)
	}
	debs, _ := filepath.Glob(filepath.Join(b.CacheDir, "busybox-static_*.deb"))
	if len(debs) == 0 {
		t.Fatal("busybox-static not in the cache after a build")
	}
	archives := t.TempDir()
	for _, d := range debs {
		data, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(archives, filepath.Base(d)), data, 0o644)
	}
	old := aptArchives
	aptArchives = archives
	defer func() { aptArchives = old }()
	var log bytes.Buffer
	b2 := &Builder{CacheDir: t.TempDir(), WorkDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if _, err := b2.Build(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "package from apt's cache") || strings.Contains(log.String(), "msg=downloading") {
		t.Errorf("not taken from apt's archive cache:\n%s", log.String())
	}
}
