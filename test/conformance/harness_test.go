package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
)

// cmdTimeout bounds every runtime invocation: a runtime that hangs fails
// the test instead of the whole suite.
const cmdTimeout = 60 * time.Second

var idSeq atomic.Int64

// rt drives one OCI runtime binary through its runc-compatible CLI. Each
// test gets its own --root, so state never leaks between tests, and every
// container it made is force-deleted when the test ends.
type rt struct {
	t    *testing.T
	bin  string
	root string
	ids  *[]string // shared with the copies sub makes
}

// sub is r for a subtest: failures go to t, containers are still cleaned
// up with r's.
func (r *rt) sub(t *testing.T) *rt {
	c := *r
	c.t = t
	return &c
}

func newRT(t *testing.T) *rt {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	r := &rt{t: t, bin: testutil.RuntimeBinary(t), root: t.TempDir(), ids: new([]string)}
	t.Cleanup(func() {
		for _, id := range *r.ids {
			if _, err := r.state(id); err != nil {
				continue
			}
			_, _, _ = r.exec(nil, "delete", "--force", id)
		}
	})
	return r
}

// newID returns a container id unique on this host (cgroup paths default
// to the id, so ids must not collide across tests).
func (r *rt) newID() string {
	id := fmt.Sprintf("hc%d-%d", os.Getpid(), idSeq.Add(1))
	*r.ids = append(*r.ids, id)
	return id
}

// exec runs the runtime with args after the global --root flag. When
// stdio is nil the output is captured; otherwise the three files are
// passed as the runtime's (and so the container's) stdin, stdout, stderr.
func (r *rt) exec(stdio *stdio, args ...string) (string, string, error) {
	r.t.Helper()
	return r.execFiles(stdio, nil, args...)
}

// execFiles is exec with extra files passed as descriptors 3 and up.
func (r *rt) execFiles(stdio *stdio, extra []*os.File, args ...string) (string, string, error) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, append([]string{"--root", r.root}, args...)...)
	var out, errb bytes.Buffer
	if stdio == nil {
		cmd.Stdout, cmd.Stderr = &out, &errb
	} else {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.in, stdio.out, stdio.err
	}
	cmd.ExtraFiles = extra
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: timed out after %s: %w", r.bin, strings.Join(args, " "), cmdTimeout, err)
	}
	return out.String(), errb.String(), err
}

// ok runs a command that must succeed and returns its stdout.
func (r *rt) ok(args ...string) string {
	r.t.Helper()
	out, errOut, err := r.exec(nil, args...)
	if err != nil {
		r.t.Fatalf("%s %s: %v\nstderr: %s", filepath.Base(r.bin), strings.Join(args, " "), err, errOut)
	}
	return out
}

// fails runs a command that must fail (the spec's "generate an error").
func (r *rt) fails(args ...string) {
	r.t.Helper()
	out, errOut, err := r.exec(nil, args...)
	if err == nil {
		r.t.Fatalf("%s %s succeeded, want an error\nstdout: %s\nstderr: %s", filepath.Base(r.bin), strings.Join(args, " "), out, errOut)
	}
}

// state queries the state of id as the spec's State document.
func (r *rt) state(id string) (specs.State, error) {
	r.t.Helper()
	var st specs.State
	out, errOut, err := r.exec(nil, "state", id)
	if err != nil {
		return st, fmt.Errorf("state %s: %w: %s", id, err, strings.TrimSpace(errOut))
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("state %s: bad JSON %q: %w", id, out, err)
	}
	return st, nil
}

func (r *rt) mustState(id string) specs.State {
	r.t.Helper()
	st, err := r.state(id)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// waitStatus polls state until the container reaches want.
func (r *rt) waitStatus(id string, want specs.ContainerState) specs.State {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var st specs.State
	var err error
	for time.Now().Before(deadline) {
		st, err = r.state(id)
		if err == nil && st.Status == want {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("container %s: status %q (err %v), want %q", id, st.Status, err, want)
	return st
}

// stdio is the standard input, output and error handed to a container.
// Output goes to files, because a container outlives the runtime command
// that created it and would hold a pipe open.
type stdio struct {
	in, out, err *os.File
}

func newStdio(t *testing.T) *stdio {
	t.Helper()
	dir := t.TempDir()
	in, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); out.Close(); errf.Close() })
	return &stdio{in: in, out: out, err: errf}
}

func (s *stdio) stdout() string { return readFile(s.out.Name()) }
func (s *stdio) stderr() string { return readFile(s.err.Name()) }

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// save writes the bundle's config.json. $CONFORMANCE_OCI_VERSION, when
// set, replaces its ociVersion: crun 1.8 refuses runtime-spec 1.2 and later
// as an "unknown version".
func (r *rt) save(b *testutil.Bundle) {
	r.t.Helper()
	if v := os.Getenv("CONFORMANCE_OCI_VERSION"); v != "" {
		b.Spec.Version = v
	}
	if err := b.Save(); err != nil {
		r.t.Fatal(err)
	}
}

// create makes container id from bundle b (saving b.Spec first) and
// returns its stdio.
func (r *rt) create(b *testutil.Bundle, id string, extra ...string) *stdio {
	r.t.Helper()
	r.save(b)
	s := newStdio(r.t)
	args := append([]string{"create", "--bundle", b.Dir}, extra...)
	if _, _, err := r.exec(s, append(args, id)...); err != nil {
		r.t.Fatalf("create %s: %v\nstderr: %s", id, err, s.stderr())
	}
	return s
}

// tryCreate is create for bundles that may be refused.
func (r *rt) tryCreate(b *testutil.Bundle, id string) (*stdio, error) {
	r.t.Helper()
	r.save(b)
	s := newStdio(r.t)
	_, _, err := r.exec(s, "create", "--bundle", b.Dir, id)
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(s.stderr()))
	}
	return s, err
}

// result is what a container that ran to completion left behind.
type result struct {
	code   int
	stdout string
	stderr string
}

// runToEnd runs the bundle in the foreground (`run`) and returns the
// container's exit code and output.
func (r *rt) runToEnd(b *testutil.Bundle) result {
	r.t.Helper()
	res, err := r.tryRun(b)
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

func (r *rt) tryRun(b *testutil.Bundle) (result, error) {
	r.t.Helper()
	r.save(b)
	id := r.newID()
	s := newStdio(r.t)
	_, _, err := r.exec(s, "run", "--bundle", b.Dir, id)
	res := result{stdout: s.stdout(), stderr: s.stderr()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		res.code = ee.ExitCode()
	default:
		return res, fmt.Errorf("run %s: %w\nstderr: %s", id, err, res.stderr)
	}
	return res, nil
}

// shell returns the output of script run by sh in the bundle's container,
// failing the test if the container exits non-zero.
func (r *rt) shell(b *testutil.Bundle, script string) string {
	r.t.Helper()
	b.Spec.Process.Args = []string{"sh", "-c", script}
	res := r.runToEnd(b)
	if res.code != 0 {
		r.t.Fatalf("container %q exited %d\nstdout: %s\nstderr: %s", script, res.code, res.stdout, res.stderr)
	}
	return res.stdout
}

// started is a running container whose process has exec'd the user
// program, for checks from the host side.
type started struct {
	id  string
	pid int
	io  *stdio
}

// startSleeper creates and starts a container running `sleep 1000` (or the
// spec's args when keepArgs) and waits until its pid runs the program.
func (r *rt) startSleeper(b *testutil.Bundle, keepArgs bool) started {
	r.t.Helper()
	if !keepArgs {
		b.Spec.Process.Args = []string{"sleep", "1000"}
	}
	id := r.newID()
	s := r.create(b, id)
	st := r.mustState(id)
	r.ok("start", id)
	waitExec(r.t, st.Pid, b.Spec.Process.Args[0])
	return started{id: id, pid: st.Pid, io: s}
}

// waitExec waits until pid's command name is comm: start may return
// before the container's init has exec'd the user program.
func waitExec(t *testing.T, pid int, comm string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		got = strings.TrimSpace(readFile(fmt.Sprintf("/proc/%d/comm", pid)))
		if got == comm {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d runs %q, want %q", pid, got, comm)
}

// stop kills a started container, waits for it to stop and deletes it.
func (r *rt) stop(id string) {
	r.t.Helper()
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
}

// procStatus returns the fields of /proc/<pid>/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	return parseStatus(readFile(fmt.Sprintf("/proc/%d/status", pid)))
}

func parseStatus(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// nsInode is the namespace identity of pid's namespace of kind (net, ipc...).
func nsInode(t *testing.T, pid int, kind string) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
	if err != nil {
		t.Fatalf("namespace %s of pid %d: %v", kind, pid, err)
	}
	return l
}

// mountInfo is one line of /proc/<pid>/mountinfo.
type mountInfo struct {
	mountPoint string
	options    string // per-mount options (ro, nosuid, ...)
	fsType     string
	source     string
	super      string // per-superblock options
}

func parseMountinfo(s string) []mountInfo {
	var ms []mountInfo
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if len(f) < 6 || len(g) < 3 {
			continue
		}
		ms = append(ms, mountInfo{mountPoint: unescape(f[4]), options: f[5], fsType: g[0], source: g[1], super: g[2]})
	}
	return ms
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lastMount is the topmost mount at point (the one a lookup sees).
func lastMount(ms []mountInfo, point string) (mountInfo, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].mountPoint == point {
			return ms[i], true
		}
	}
	return mountInfo{}, false
}

func hasOpt(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// pidAlive reports whether pid exists and is not a zombie.
func pidAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	st := parseStatus(readFile(fmt.Sprintf("/proc/%d/status", pid)))
	return !strings.HasPrefix(st["State"], "Z")
}

// noNamespaces removes namespace types from the spec.
func withoutNS(s *specs.Spec, types ...specs.LinuxNamespaceType) {
	var keep []specs.LinuxNamespace
	for _, ns := range s.Linux.Namespaces {
		drop := false
		for _, t := range types {
			drop = drop || ns.Type == t
		}
		if !drop {
			keep = append(keep, ns)
		}
	}
	s.Linux.Namespaces = keep
}

// setNS adds or replaces the namespace of ns.Type.
func setNS(s *specs.Spec, ns specs.LinuxNamespace) {
	withoutNS(s, ns.Type)
	s.Linux.Namespaces = append(s.Linux.Namespaces, ns)
}

// writeExec writes an executable script.
func writeExec(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}
