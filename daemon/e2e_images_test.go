package daemon_test

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/creack/pty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hullproject/hull/internal/hulltest"
	"github.com/hullproject/hull/internal/testimages"
)

func TestSocketIsRootOnly(t *testing.T) {
	d, _ := start(t)
	fi, err := os.Stat(d.Address)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: mode %v, want socket 0600", d.Address, fi.Mode())
	}
	// A second daemon on the same root or address refuses to start.
	cmd := exec.Command(filepath.Join(d.Bin, "hulld"), "--root", d.Root, "--state", d.State+"2", "--address", d.Address+"2", "--config", "/dev/null")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already running") {
		t.Fatalf("second hulld on the same root: err %v, output %s", err, out)
	}
}

func TestPrintConfig(t *testing.T) {
	bin := hulltest.Binaries(t)
	out, err := exec.Command(filepath.Join(bin, "hulld"), "--print-config", "--config", "/dev/null", "--root", "/x/root", "--address", "/x/s.sock").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"root = '/x/root'", "address = '/x/s.sock'", "[runtimes.native]", "type = 'io.containerd.runc.v2'", "default_runtime = 'native'"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--print-config lacks %q:\n%s", want, out)
		}
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("default_runtime = \"nope\"\n"), 0o600)
	out, err = exec.Command(filepath.Join(bin, "hulld"), "--print-config", "--config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `default_runtime = "nope": no such runtime`) {
		t.Fatalf("bad config: err %v, output %s", err, out)
	}
}

func TestDaemonNotRunning(t *testing.T) {
	hulltest.RequireRoot(t)
	d := hulltest.NewDaemon(t) // never started
	_, errs, code := d.Hull("images", "ls")
	if code != 1 || !strings.Contains(errs, "hulld is not running at "+d.Address) || !strings.Contains(errs, "start it with `hulld --address "+d.Address+"`") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

func TestNamespacesAndImages(t *testing.T) {
	d, ref := start(t)
	d.MustHull("ns", "create", "other")
	if out := d.MustHull("ns", "ls"); !strings.Contains(out, "default") || !strings.Contains(out, "other") {
		t.Fatalf("ns ls:\n%s", out)
	}
	// Images are per namespace.
	if out := d.MustHull("images", "ls"); !strings.Contains(out, ref) {
		t.Fatalf("images ls (default):\n%s", out)
	}
	if out := d.MustHull("-n", "other", "images", "ls"); strings.Contains(out, ref) {
		t.Fatalf("images ls (other) shows default's image:\n%s", out)
	}
	out := d.MustHull("-n", "other", "images", "pull", ref)
	if !strings.Contains(out, "unpacked") && !strings.Contains(out, "exists") {
		t.Fatalf("pull without a tty prints plain progress lines:\n%s", out)
	}
	if out := d.MustHull("--format", "json", "-n", "other", "images", "ls"); !strings.Contains(out, `"name": "`+ref+`"`) {
		t.Fatalf("images ls --format json:\n%s", out)
	}
	d.MustHull("images", "tag", ref, "example.com/copy:1")
	if out := d.MustHull("images", "ls"); !strings.Contains(out, "example.com/copy:1") {
		t.Fatalf("tag:\n%s", out)
	}
	tar := filepath.Join(t.TempDir(), "img.tar")
	d.MustHull("images", "export", tar, "example.com/copy:1")
	d.MustHull("images", "rm", "example.com/copy:1")
	if out := d.MustHull("images", "ls"); strings.Contains(out, "example.com/copy:1") {
		t.Fatalf("rm:\n%s", out)
	}
	d.MustHull("ns", "create", "third")
	if out := d.MustHull("-n", "third", "images", "import", tar); !strings.Contains(out, "example.com/copy:1") {
		t.Fatalf("import:\n%s", out)
	}
	// The imported image runs.
	if out := d.MustHull("-n", "third", "run", "--rm", "example.com/copy:1", "imp", "echo", "imported"); out != "imported\n" {
		t.Fatalf("run imported: %q", out)
	}
	d.MustHull("-n", "third", "images", "rm", "example.com/copy:1")
	d.MustHull("ns", "rm", "third")
	if out := d.MustHull("images", "prune"); !strings.Contains(out, "removed") {
		t.Fatalf("prune: %s", out)
	}
	// A namespace with images or containers is not removed.
	if _, errs, code := d.Hull("ns", "rm", "other"); code == 0 || !strings.Contains(errs, "not empty") {
		t.Fatalf("ns rm of a namespace with images: exit %d, %s", code, errs)
	}
	if _, errs, code := d.Hull("images", "pull", "127.0.0.1:1/nothing:here"); code == 0 || errs == "" {
		t.Fatalf("pull from nowhere: exit %d, %q", code, errs)
	}
}

func TestInfo(t *testing.T) {
	hulltest.RequireRoot(t)
	d := hulltest.NewDaemon(t)
	d.Config = "[runtimes.broken]\ntype = \"io.containerd.nothere.v2\"\n[runtimes.nobin]\ntype = \"io.containerd.hull.v2\"\noptions = { binary_name = \"no-such-runtime\" }\n" +
		"[runtimes.norun]\ntype = \"io.containerd.hull.v2\"\noptions = { binary_name = \"/bin/false\" }\n"
	d.Start()
	out := d.MustHull("info")
	for _, want := range []string{"native (default)", "io.containerd.runc.v2", "containerd-shim-nothere-v2: not found", "OCI runtime no-such-runtime: not found",
		"OCI runtime /bin/false --version: exit status 1", "runc version"} {
		if !strings.Contains(out, want) {
			t.Errorf("info lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && (f[0] == "native" || f[0] == "runc") && !strings.Contains(line, " yes ") {
			t.Errorf("runtime %s not usable: %s", f[0], line)
		}
	}
	js := d.MustHull("info", "--format", "json")
	if !strings.Contains(js, `"usable": true`) || !strings.Contains(js, `"reason":`) {
		t.Fatalf("info json:\n%s", js)
	}
}

// TestPullProgressBarsOnTTY: on a terminal, pull draws mpb progress bars
// (byte counters per layer); TestNamespacesAndImages checks the plain
// lines without one.
func TestPullProgressBarsOnTTY(t *testing.T) {
	hulltest.RequireRoot(t)
	ref := hulltest.Busybox(t)
	d := hulltest.NewDaemon(t)
	d.Start()
	cmd := d.Command("images", "pull", ref)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, _ := io.ReadAll(f) // EIO once the command exits
	cmd.Wait()
	s := string(out)
	if cmd.ProcessState.ExitCode() != 0 || !strings.Contains(s, ref+": sha256:") {
		t.Fatalf("pull on a tty: exit %d\n%s", cmd.ProcessState.ExitCode(), s)
	}
	if !strings.Contains(s, "KiB") && !strings.Contains(s, "MiB") && !strings.Contains(s, " b / ") {
		t.Fatalf("no progress bar counters in:\n%q", s)
	}
	if strings.Contains(s, ": downloading\n") {
		t.Fatalf("plain progress lines on a tty:\n%s", s)
	}
}

// TestPublishBinary: `hull publish` (the shims' -publish-binary) forwards
// an event to hulld's subscribers.
func TestPublishBinary(t *testing.T) {
	hulltest.RequireRoot(t)
	d := hulltest.NewDaemon(t)
	d.Start()
	cmd := d.Command("events")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	a, _ := anypb.New(&eventstypes.TaskOOM{ContainerID: "oomer"})
	a.TypeUrl = strings.TrimPrefix(a.TypeUrl, "type.googleapis.com/")
	data, _ := proto.Marshal(a)
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line <- sc.Text()
			return
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Publish until the subscriber (started concurrently) sees it.
		if _, errs, code := d.HullIn(data, "publish", "--topic", "/tasks/oom", "-n", "default"); code != 0 {
			t.Fatalf("publish: %d %s", code, errs)
		}
		select {
		case l := <-line:
			if !strings.Contains(l, "/tasks/oom oomer") {
				t.Fatalf("event line %q", l)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("published event never seen")
		}
	}
}

// TestRunInteractiveTerminal: `hull run -it` from a real terminal: the
// container gets a tty of the terminal's size, input typed goes in, the
// exit status comes back.
func TestRunInteractiveTerminal(t *testing.T) {
	hulltest.RequireRoot(t)
	ref := hulltest.Busybox(t)
	d := hulltest.NewDaemon(t)
	d.Start()
	d.MustHull("images", "pull", ref)
	for _, rt := range []string{"native", "runc"} {
		t.Run(rt, func(t *testing.T) {
			cmd := d.Command("run", "--rm", "-i", "-t", "--runtime", rt, ref, "it-"+rt, "sh")
			f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 33, Cols: 111})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var mu sync.Mutex
			var out strings.Builder
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := f.Read(buf)
					mu.Lock()
					out.Write(buf[:n])
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
			time.Sleep(500 * time.Millisecond)
			f.Write([]byte("stty size; exit 3\r"))
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			mu.Lock()
			s := out.String()
			mu.Unlock()
			if code := cmd.ProcessState.ExitCode(); code != 3 || !strings.Contains(s, "33 111") {
				t.Fatalf("exit %d (want 3), output %q (want the size 33 111)", code, s)
			}
		})
	}
}

// TestRegistryConfig: the [registry] table of hulld's config reaches
// pulls: a mirror serves an image named after a registry that does not
// exist.
func TestRegistryConfig(t *testing.T) {
	hulltest.RequireRoot(t)
	ref := hulltest.Busybox(t) // registry/repo:tag
	reg, repo, _ := strings.Cut(ref, "/")
	d := hulltest.NewDaemon(t)
	d.Config = "[registry.mirrors]\n\"registry.invalid\" = [\"http://" + reg + "\"]\n"
	d.Start()
	out := d.MustHull("images", "pull", "registry.invalid/"+repo)
	if !strings.Contains(out, "registry.invalid/"+repo+": sha256:") {
		t.Fatalf("pull through the mirror:\n%s", out)
	}
	if out := d.MustHull("run", "--rm", "registry.invalid/"+repo, "m1", "echo", "mirrored"); out != "mirrored\n" {
		t.Fatalf("run: %q", out)
	}
}

// TestRunUserName: user names (from --user or the image's config) are
// looked up in the image's /etc/passwd and /etc/group.
func TestRunUserName(t *testing.T) {
	hulltest.RequireRoot(t)
	reg := testimages.Registry(t)
	base, err := testimages.Busybox(testimages.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := testimages.Layer([]testimages.Entry{
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "etc/passwd", Body: []byte("root:x:0:0::/root:/bin/sh\napp:x:4242:4343::/:/bin/sh\n")},
		{Name: "etc/group", Body: []byte("root:x:0:\napp:x:4343:\nextra:x:5555:app\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.User = "app"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref, err := testimages.Push(context.Background(), reg, fmt.Sprintf("hulltest%d/users:latest", os.Getpid()), img)
	if err != nil {
		t.Fatal(err)
	}
	d := hulltest.NewDaemon(t)
	d.Start()
	d.MustHull("images", "pull", ref)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"u1", "sh", "-c", "echo $(id -u):$(id -g):$(id -G)"}, "4242:4343:4343 5555\n"}, // the image's User
		{[]string{"--user", "root", "u2", "id", "-u"}, "0\n"},
		{[]string{"--user", "app:root", "u3", "sh", "-c", "echo $(id -u):$(id -g)"}, "4242:0\n"},
	} {
		args := []string{"run", "--rm"}
		if tc.args[0] == "--user" {
			args = append(args, tc.args[0], tc.args[1], ref)
			args = append(args, tc.args[2:]...)
		} else {
			args = append(args, ref)
			args = append(args, tc.args...)
		}
		if out, errs, code := d.Hull(args...); code != 0 || out != tc.want {
			t.Errorf("hull %v: code %d out %q (want %q) %s", args, code, out, tc.want, errs)
		}
	}
	if _, errs, code := d.Hull("run", "--rm", "--user", "ghost", ref, "u4", "true"); code == 0 || !strings.Contains(errs, "ghost") {
		t.Fatalf("unknown user: code %d %q", code, errs)
	}
	if out := d.MustHull("c", "ls"); strings.Contains(out, "u4") {
		t.Fatalf("failed create left a record:\n%s", out)
	}
}
