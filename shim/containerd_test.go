package shim_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/shim"
)

// These tests run the shim under a real, private containerd 1.6 driven by
// its own ctr, as a user of `runtime_type = "io.containerd.hull.v2"` would.

const (
	runtimeType = "io.containerd.hull.v2"
	imageRef    = "docker.io/hulltest/busybox:latest"
)

// ctrd is a private containerd with the shim on its PATH and the busybox
// image imported.
type ctrd struct {
	dir, sock, ns string
	shimDir, cfg  string
	cmd           *exec.Cmd
	waited        chan struct{}
}

// start runs containerd and waits until it answers.
func (c *ctrd) start() error {
	logf, err := os.OpenFile(filepath.Join(c.dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	c.cmd = exec.Command("containerd", "--config", c.cfg)
	c.cmd.Env = append(os.Environ(), "PATH="+c.shimDir+":"+os.Getenv("PATH"))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		return err
	}
	c.waited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(c.cmd, c.waited)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := exec.Command("ctr", "-a", c.sock, "version").Run(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			c.stop()
			log, _ := os.ReadFile(filepath.Join(c.dir, "containerd.log"))
			return fmt.Errorf("containerd did not answer on %s: %s", c.sock, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// crash kills containerd as a crash would.
func (c *ctrd) crash() {
	_ = c.cmd.Process.Kill()
	<-c.waited
}

var (
	ctrdOnce sync.Once
	ctrdInst *ctrd
	ctrdErr  error
)

func requireTools(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	for _, b := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("needs %s (Debian package containerd; make deps installs it)", b)
		}
	}
}

// startContainerd starts the shared private containerd once per test
// binary; TestMain stops it.
func startContainerd(t testing.TB) *ctrd {
	t.Helper()
	requireTools(t)
	ctrdOnce.Do(func() { ctrdInst, ctrdErr = newCtrd() })
	if ctrdErr != nil {
		t.Fatalf("private containerd: %v", ctrdErr)
	}
	return ctrdInst
}

// HULL_SHIM_RACE=1 builds the shims the tests run with the race detector;
// a race any of them reports fails the run.
var raceDir string

// buildShim builds containerd-shim-hull-v2 at path.
func buildShim(path string, extra ...string) error {
	args := []string{"build", "-o", path}
	if raceDir != "" {
		args = append(args, "-race")
	}
	args = append(append(args, extra...), "github.com/hullproject/hull/cmd/containerd-shim-hull-v2")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("build shim: %v: %s", err, out)
	}
	return nil
}

func TestMain(m *testing.M) {
	if os.Getenv("HULL_SHIM_RACE") == "1" {
		dir, err := os.MkdirTemp("", "hullshimrace")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		raceDir = dir
		os.Setenv("GORACE", "log_path="+filepath.Join(dir, "race"))
	}
	code := m.Run()
	if ctrdInst != nil {
		ctrdInst.stop()
	}
	// The runtime root of the direct tests' namespace, once empty.
	_ = os.Remove(filepath.Join(shim.DefaultRoot, "hulltest"))
	if shimBin != "" {
		_ = os.RemoveAll(filepath.Dir(shimBin))
	}
	if raceDir != "" {
		logs, _ := filepath.Glob(filepath.Join(raceDir, "race*"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			fmt.Fprintf(os.Stderr, "shim race report %s:\n%s\n", l, data)
			code = 1
		}
		os.RemoveAll(raceDir)
	}
	os.Exit(code)
}

func newCtrd() (*ctrd, error) {
	dir, err := os.MkdirTemp("", "hullctrd")
	if err != nil {
		return nil, err
	}
	c := &ctrd{dir: dir, sock: filepath.Join(dir, "c.sock"), ns: fmt.Sprintf("hulltest%d", os.Getpid()), shimDir: filepath.Join(dir, "bin")}
	if err := buildShim(filepath.Join(c.shimDir, "containerd-shim-hull-v2")); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	c.cfg = cfgPath
	if err := c.start(); err != nil {
		return nil, err
	}
	tarPath := filepath.Join(dir, "busybox.tar")
	if err := writeBusyboxImage(tarPath); err != nil {
		c.stop()
		return nil, err
	}
	if out, err := c.ctr("images", "import", tarPath); err != nil {
		c.stop()
		return nil, fmt.Errorf("import: %v: %s", err, out)
	}
	return c, nil
}

func (c *ctrd) stop() {
	// Whatever a failed test left: tasks, containers, then the daemon.
	if out, err := c.ctr("containers", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			_, _ = c.ctr("task", "kill", "-s", "SIGKILL", id)
			time.Sleep(100 * time.Millisecond)
			_, _ = c.ctr("task", "rm", "-f", id)
			_, _ = c.ctr("containers", "rm", id)
		}
	}
	_, _ = c.ctr("images", "rm", imageRef)
	_, _ = c.ctr("namespaces", "rm", c.ns)
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(os.Interrupt)
		select {
		case <-c.waited:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.waited
		}
	}
	unmountUnder(c.dir)
	_ = os.Remove(filepath.Join(shim.DefaultRoot, c.ns))
	// containerd puts tasks in /<namespace>/<id> cgroups and never removes
	// the namespace's parent.
	removeCgroupParent(c.ns)
	_ = os.RemoveAll(c.dir)
}

// removeCgroupParent removes the (empty) cgroup /name from every
// hierarchy.
func removeCgroupParent(name string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name))
	dirs = append(dirs, filepath.Join("/sys/fs/cgroup", name))
	for _, d := range dirs {
		_ = os.Remove(d)
	}
}

// unmountUnder lazily unmounts anything still mounted below dir.
func unmountUnder(dir string) {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			_ = exec.Command("umount", "-l", f[4]).Run()
		}
	}
}

func (c *ctrd) ctrCmd(args ...string) *exec.Cmd {
	return exec.Command("ctr", append([]string{"-a", c.sock, "-n", c.ns}, args...)...)
}

func (c *ctrd) ctr(args ...string) (string, error) {
	out, err := c.ctrCmd(args...).CombinedOutput()
	return string(out), err
}

// runtimeConfig writes the runtime config that `ctr --runtime-config-path`
// sends (runtimeoptions.v1.Options) naming the OCI runtime binary.
func (c *ctrd) runtimeConfig(t testing.TB, binary string) string {
	t.Helper()
	p := filepath.Join(c.dir, "runtime-"+filepath.Base(binary)+".toml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("binary_name = %q\n", binary)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeBusyboxImage writes a docker archive of a one-layer busybox image.
func writeBusyboxImage(path string) error {
	root, err := os.MkdirTemp("", "hullrootfs")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if err := testutil.MakeBusyboxRootfs(root); err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name, _ = filepath.Rel(root, p)
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return err
	}
	base, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: runtime.GOARCH, OS: "linux",
		Config: v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(imageRef)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(path, ref, img)
}

// runtimes are the OCI runtimes the shim is tested with: runc always, and
// bin/hull-runtime (or $HULL_RUNTIME) where it is built.
func runtimes(t testing.TB) map[string]string {
	rts := map[string]string{}
	if p, err := exec.LookPath("runc"); err == nil {
		rts["runc"] = p
	}
	if r := os.Getenv("HULL_RUNTIME"); r != "" {
		if p, err := exec.LookPath(r); err == nil {
			rts["hull-runtime"] = p
		}
	} else if p := filepath.Join(testutil.BinDir(t), "hull-runtime"); fileExists(p) {
		rts["hull-runtime"] = p
	}
	if len(rts) == 0 {
		t.Skip("no OCI runtime: needs runc (Debian package runc) or bin/hull-runtime")
	}
	return rts
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

var idSeq int

func (c *ctrd) newID(t testing.TB) string {
	idSeq++
	id := fmt.Sprintf("t%d-%d", os.Getpid(), idSeq)
	t.Cleanup(func() {
		_, _ = c.ctr("task", "kill", "-s", "SIGKILL", id)
		_, _ = c.ctr("task", "rm", "-f", id)
		_, _ = c.ctr("containers", "rm", id)
	})
	return id
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

// shimPids lists the pids of this test's shims for container id.
func shimPids(id string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if !strings.HasSuffix(args[0], "containerd-shim-hull-v2") {
			continue
		}
		for i, a := range args {
			if a == "-id" && i+1 < len(args) && args[i+1] == id {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// waitGone polls until cond reports nothing left, or fails with what is.
func waitGone(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := cond()
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s left behind: %s", what, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertNothingLeft checks that container id left no shim, mount, cgroup
// or runtime state.
func (c *ctrd) assertNothingLeft(t *testing.T, id string) {
	t.Helper()
	waitGone(t, "shim process", func() string {
		if p := shimPids(id); len(p) > 0 {
			return fmt.Sprint(p)
		}
		return ""
	})
	waitGone(t, "mount", func() string {
		data, _ := os.ReadFile("/proc/self/mountinfo")
		var left []string
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if strings.Contains(sc.Text(), "/"+id+"/") || strings.HasSuffix(strings.Fields(sc.Text())[4], "/"+id) {
				left = append(left, strings.Fields(sc.Text())[4])
			}
		}
		return strings.Join(left, " ")
	})
	waitGone(t, "cgroup", func() string {
		var left []string
		ents, _ := os.ReadDir("/sys/fs/cgroup")
		for _, e := range ents {
			p := filepath.Join("/sys/fs/cgroup", e.Name(), c.ns, id)
			if fileExists(p) {
				left = append(left, p)
			}
		}
		return strings.Join(left, " ")
	})
	waitGone(t, "bundle", func() string {
		p := filepath.Join(c.dir, "state", "io.containerd.runtime.v2.task", c.ns, id)
		if fileExists(p) {
			return p
		}
		return ""
	})
}
