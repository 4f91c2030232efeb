package container_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/runtime/container"
)

// rt drives the runtime binary (bin/hull-runtime or $HULL_RUNTIME) with
// its own --root, as containerd's go-runc does.
type rt struct {
	t    *testing.T
	bin  string
	root string
}

var idSeq atomic.Int64

func newRT(t *testing.T) *rt {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	return &rt{t: t, bin: testutil.RuntimeBinary(t), root: t.TempDir()}
}

func (r *rt) newID() string {
	return fmt.Sprintf("t%d-%d", os.Getpid(), idSeq.Add(1))
}

// cmd runs the runtime; it returns stdout, stderr and the exit code.
func (r *rt) cmd(args ...string) (string, string, int) {
	r.t.Helper()
	c := exec.Command(r.bin, append([]string{"--root", r.root}, args...)...)
	// Files, not pipes: a container started by this call inherits them
	// and would keep a pipe open.
	out, errb := r.tempFile(), r.tempFile()
	defer out.Close()
	defer errb.Close()
	c.Stdout, c.Stderr = out, errb
	err := c.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			r.t.Fatalf("run %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return readAll(out), readAll(errb), code
}

func (r *rt) tempFile() *os.File {
	f, err := os.CreateTemp(r.t.TempDir(), "out")
	if err != nil {
		r.t.Fatal(err)
	}
	return f
}

func readAll(f *os.File) string {
	data, _ := os.ReadFile(f.Name())
	return string(data)
}

// must runs the runtime and fails the test on a non-zero exit.
func (r *rt) must(args ...string) string {
	r.t.Helper()
	out, errs, code := r.cmd(args...)
	if code != 0 {
		r.t.Fatalf("hull-runtime %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func (r *rt) state(id string) container.State {
	r.t.Helper()
	var st container.State
	if err := json.Unmarshal([]byte(r.must("state", id)), &st); err != nil {
		r.t.Fatalf("state %s: %v", id, err)
	}
	return st
}

// created is a container made with `create`, its stdout/stderr in a file.
type created struct {
	id      string
	pid     int
	outFile string
}

// create makes a container from b, with the process's stdout and stderr
// going to a file, and registers its forced delete for cleanup.
func (r *rt) create(b *testutil.Bundle, extra ...string) (*created, string, int) {
	r.t.Helper()
	id := r.newID()
	outFile := filepath.Join(r.t.TempDir(), "out")
	f, err := os.Create(outFile)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	args := append([]string{"--root", r.root, "create", "--bundle", b.Dir}, extra...)
	args = append(args, id)
	c := exec.Command(r.bin, args...)
	// The container's stdout and stderr both go to the file (with the
	// runtime's own messages).
	errb := f
	c.Stdout, c.Stderr = f, f
	code := 0
	if err := c.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			r.t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	r.t.Cleanup(func() { r.cmd("delete", "--force", id) })
	if code != 0 {
		return &created{id: id, outFile: outFile}, readAll(errb), code
	}
	st := r.state(id)
	return &created{id: id, pid: st.Pid, outFile: outFile}, readAll(errb), 0
}

func (r *rt) mustCreate(b *testutil.Bundle, extra ...string) *created {
	r.t.Helper()
	c, errs, code := r.create(b, extra...)
	if code != 0 {
		r.t.Fatalf("create: exit %d: %s", code, errs)
	}
	return c
}

// waitStopped polls the state until the container has stopped.
func (r *rt) waitStopped(id string) {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if r.state(id).Status == container.Stopped {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Fatalf("container %s did not stop", id)
}

// output starts c, waits for it to stop and returns what it printed.
func (r *rt) output(c *created) string {
	r.t.Helper()
	r.must("start", c.id)
	r.waitStopped(c.id)
	data, err := os.ReadFile(c.outFile)
	if err != nil {
		r.t.Fatal(err)
	}
	return string(data)
}

// runOut runs b's process to completion (create, start, wait, delete)
// and returns its output.
func (r *rt) runOut(b *testutil.Bundle) string {
	r.t.Helper()
	c := r.mustCreate(b)
	out := r.output(c)
	r.must("delete", c.id)
	return out
}

func nsLink(t *testing.T, pid int, ns string) string {
	t.Helper()
	p := "/proc/self/ns/" + ns
	if pid > 0 {
		p = "/proc/" + strconv.Itoa(pid) + "/ns/" + ns
	}
	l, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// waitOutput waits until c's output contains want.
func (r *rt) waitOutput(c *created, want string) {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if data, _ := os.ReadFile(c.outFile); strings.Contains(string(data), want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Fatalf("container %s never printed %q", c.id, want)
}

func execCommand(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
