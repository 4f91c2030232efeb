package cgroups

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hullproject/hull/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestStatsMatchRuncShape runs a real container with runc, reads
// `runc events --stats`, and checks that its data decodes into Stats with no
// unknown field and that Stats encodes to the same set of keys.
func TestStatsMatchRuncShape(t *testing.T) {
	needRoot(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc is not installed (scripts/install-deps.sh installs it)")
	}
	b := testutil.NewBundle(t, "sleep", "100")
	b.Spec.Linux.CgroupsPath = testParent(t) + "/runc"
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	id := "hull-cgstats-" + itoa(os.Getpid())
	rc := func(args ...string) ([]byte, error) {
		cmd := exec.Command(runc, append([]string{"--root", root}, args...)...)
		cmd.Dir = b.Dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Logf("runc %v: %s", args, stderr.String())
		}
		return out, err
	}
	t.Cleanup(func() { _, _ = rc("delete", "-f", id) })
	// stdio must not be a pipe we wait on: the container keeps it open
	logf, err := os.Create(filepath.Join(t.TempDir(), "runc.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	run := exec.Command(runc, "--root", root, "run", "-d", "--bundle", b.Dir, id)
	run.Stdout, run.Stderr = logf, logf
	if err := run.Run(); err != nil {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("runc run: %v: %s", err, out)
	}
	out, err := rc("events", "--stats", id)
	if err != nil {
		t.Fatalf("runc events --stats: %v", err)
	}
	var ev struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(out, &ev); err != nil || ev.Type != "stats" {
		t.Fatalf("runc events output %q: %v", out, err)
	}
	dec := json.NewDecoder(bytes.NewReader(ev.Data))
	dec.DisallowUnknownFields()
	var theirs Stats
	if err := dec.Decode(&theirs); err != nil {
		t.Fatalf("runc's stats do not decode into Stats: %v", err)
	}

	// ours, for the same container's cgroup
	state, err := rc("state", id)
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Pid int }
	if err := json.Unmarshal(state, &st); err != nil {
		t.Fatal(err)
	}
	m, err := New(b.Spec.Linux.CgroupsPath, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := m.Pids()
	if err != nil || !slices.Contains(pids, st.Pid) {
		t.Fatalf("Pids() = %v, %v; runc's container pid is %d", pids, err, st.Pid)
	}
	ours, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	mine, _ := json.Marshal(ours)
	if a, b := keys(t, ev.Data), keys(t, mine); !slices.Equal(a, b) {
		t.Errorf("top-level keys differ:\n runc: %v\n hull: %v", a, b)
	}
	// runc's data, decoded into Stats and encoded again, is the same JSON:
	// same names, same omitempty rules
	again, err := json.Marshal(&theirs)
	if err != nil {
		t.Fatal(err)
	}
	var runcJSON, hullJSON any
	if err := json.Unmarshal(ev.Data, &runcJSON); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(again, &hullJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(runcJSON, hullJSON) {
		t.Errorf("runc's stats re-encoded through Stats differ:\n runc: %s\n hull: %s", ev.Data, again)
	}
	// pids.current may still count runc's init threads for a moment after
	// start (tasks are uncharged when released), so only both must see one
	if ours.Pids.Current == 0 || theirs.Pids.Current == 0 {
		t.Errorf("pids.current: hull %d, runc %d", ours.Pids.Current, theirs.Pids.Current)
	}
	if ours.Memory.Usage.Limit != theirs.Memory.Usage.Limit {
		t.Errorf("memory.usage.limit: hull %d, runc %d", ours.Memory.Usage.Limit, theirs.Memory.Usage.Limit)
	}
	if len(ours.Memory.Raw) == 0 || len(ours.CPU.Usage.Percpu) == 0 {
		t.Errorf("memory.raw or cpu.usage.percpu missing: %s", mine)
	}
}

func keys(t *testing.T, b []byte) []string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestDetectMode mounts cgroup2 and tmpfs in temporary directories to show
// each layout to the detector.
func TestDetectMode(t *testing.T) {
	needRoot(t)
	mount := func(t *testing.T, fstype, dir string) {
		if err := unix.Mount("none", dir, fstype, 0, ""); err != nil {
			t.Skipf("cannot mount %s here: %v", fstype, err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		})
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  Layout
	}{
		{"plain directory", func(t *testing.T, dir string) {}, Legacy},
		{"cgroup2 at the root", func(t *testing.T, dir string) { mount(t, "cgroup2", dir) }, Unified},
		{"tmpfs with cgroup2 at unified", func(t *testing.T, dir string) {
			mount(t, "tmpfs", dir)
			u := filepath.Join(dir, "unified")
			if err := os.Mkdir(u, 0o755); err != nil {
				t.Fatal(err)
			}
			mount(t, "cgroup2", u)
		}, Hybrid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			if got := detectMode(dir); got != tc.want {
				t.Errorf("detectMode = %s, want %s", got, tc.want)
			}
		})
	}
	if got := detectMode(Root); got != Mode() {
		t.Errorf("Mode() = %s, detectMode(%s) = %s", Mode(), Root, got)
	}
	if s := Mode().String(); strings.Contains(s, "unknown") {
		t.Errorf("Mode().String() = %q", s)
	}
}
