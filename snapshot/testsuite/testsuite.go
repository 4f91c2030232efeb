// Package testsuite checks any snapshot.Snapshotter against the behaviour
// the interface promises. Each snapshotter's tests call Run with a
// constructor; the checks mount for real, so they need root.
package testsuite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/snapshot"
)

// New opens a snapshotter rooted at root.
type New func(t *testing.T, root string) snapshot.Snapshotter

// Run runs every check against the snapshotter made by newFn.
func Run(t *testing.T, newFn New) {
	if os.Geteuid() != 0 {
		t.Skip("snapshot tests mount filesystems and need root")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, ctx context.Context, s snapshot.Snapshotter)
	}{
		{"LayerChain", checkChain},
		{"ViewIsReadOnly", checkView},
		{"RemoveParentRefused", checkRemoveParent},
		{"Errors", checkErrors},
		{"LabelsAndWalk", checkLabelsWalk},
		{"Usage", checkUsage},
		{"ManyLayers", checkManyLayers},
		{"ConcurrentUnpackOfOneLayer", checkConcurrentCommit},
		{"RemoveWithDirectoryGone", checkRemoveDirGone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			s := newFn(t, root)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.fn(t, context.Background(), s)
			AssertNoMounts(t, root)
		})
	}
}

// AssertNoMounts fails t if anything is mounted at or below dir.
func AssertNoMounts(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			t.Errorf("left mounted: %s", line)
		}
	}
}

// WithMount mounts ms on a temp dir for the duration of fn.
func WithMount(t *testing.T, ms []mount.Mount, fn func(dir string)) {
	t.Helper()
	dir := t.TempDir()
	if err := mount.All(ms, dir); err != nil {
		t.Fatalf("mount %+v: %v", ms, err)
	}
	defer func() {
		if err := mount.UnmountAll(dir, 0); err != nil {
			t.Errorf("unmount: %v", err)
		}
	}()
	fn(dir)
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// layer prepares key on parent, runs fn in its mounted tree, and commits it
// as name.
func layer(t *testing.T, ctx context.Context, s snapshot.Snapshotter, name, parent string, fn func(dir string)) {
	t.Helper()
	key := name + "-active"
	ms, err := s.Prepare(ctx, key, parent)
	if err != nil {
		t.Fatalf("prepare %s: %v", key, err)
	}
	WithMount(t, ms, fn)
	if err := s.Commit(ctx, name, key); err != nil {
		t.Fatalf("commit %s: %v", name, err)
	}
}

func checkChain(t *testing.T, ctx context.Context, s snapshot.Snapshotter) {
	layer(t, ctx, s, "l1", "", func(d string) {
		write(t, d, "a", "1")
		write(t, d, "dir/b", "1")
	})
	layer(t, ctx, s, "l2", "l1", func(d string) {
		write(t, d, "a", "2")
		if err := os.Remove(filepath.Join(d, "dir/b")); err != nil {
			t.Fatal(err)
		}
		write(t, d, "c", "2")
	})
	ms, err := s.Prepare(ctx, "top", "l2")
	if err != nil {
		t.Fatal(err)
	}
	WithMount(t, ms, func(d string) {
		for name, want := range map[string]string{"a": "2", "c": "2"} {
			if got := read(d, name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		if _, err := os.Lstat(filepath.Join(d, "dir/b")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("dir/b deleted in l2 still visible: %v", err)
		}
		write(t, d, "top", "rw")
	})
	// The committed layers are unchanged by the container's writes.
	vms, err := s.View(ctx, "view-l1", "l1")
	if err != nil {
		t.Fatal(err)
	}
	WithMount(t, vms, func(d string) {
		if got := read(d, "a"); got != "1" {
			t.Errorf("l1 a = %q", got)
		}
		if got := read(d, "dir/b"); got != "1" {
			t.Errorf("l1 dir/b = %q", got)
		}
		if _, err := os.Lstat(filepath.Join(d, "top")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("top's write leaked into l1")
		}
	})
	// Mounts returns the same mounts again.
	again, err := s.Mounts(ctx, "top")
	if err != nil {
		t.Fatal(err)
	}
	WithMount(t, again, func(d string) {
		if got := read(d, "top"); got != "rw" {
			t.Errorf("top after remount = %q", got)
		}
	})
	for _, k := range []string{"top", "view-l1", "l2", "l1"} {
		if err := s.Remove(ctx, k); err != nil {
			t.Errorf("remove %s: %v", k, err)
		}
	}
}

func checkView(t *testing.T, ctx context.Context, s snapshot.Snapshotter) {
	layer(t, ctx, s, "l1", "", func(d string) { write(t, d, "a", "1") })
	layer(t, ctx, s, "l2", "l1", func(d string) { write(t, d, "b", "2") })
	for _, parent := range []string{"l1", "l2"} {
		ms, err := s.View(ctx, "v-"+parent, parent)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Stat(ctx, "v-"+parent)
		if err != nil || info.Kind != snapshot.KindView || info.Parent != parent {
			t.Errorf("stat view: %+v %v", info, err)
		}
		WithMount(t, ms, func(d string) {
			if got := read(d, "a"); got != "1" {
				t.Errorf("view of %s: a = %q", parent, got)
			}
			err := os.WriteFile(filepath.Join(d, "x"), nil, 0o644)
			if !errors.Is(err, unix.EROFS) {
				t.Errorf("write in view of %s: %v, want EROFS", parent, err)
			}
		})
		if err := s.Commit(ctx, "c-"+parent, "v-"+parent); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("commit of a view: %v, want failed precondition", err)
		}
	}
}

func checkRemoveParent(t *testing.T, ctx context.Context, s snapshot.Snapshotter) {
	layer(t, ctx, s, "base", "", func(d string) { write(t, d, "a", "1") })
	if _, err := s.Prepare(ctx, "child", "base"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "base"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("remove of a parent with an active child: %v, want failed precondition", err)
	}
	if err := s.Commit(ctx, "child-c", "child"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "base"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("remove of a parent with a committed child: %v, want failed precondition", err)
	}
	if _, err := s.Stat(ctx, "base"); err != nil {
		t.Fatalf("refused remove damaged the parent: %v", err)
	}
	if err := s.Remove(ctx, "child-c"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "base"); err != nil {
		t.Fatalf("remove after the child is gone: %v", err)
	}
	var n int
	_ = s.Walk(ctx, func(context.Context, snapshot.Info) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d snapshots left", n)
	}
}

func checkErrors(t *testing.T, ctx context.Context, s snapshot.Snapshotter) {
	if _, err := s.Prepare(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		fn   func() error
		want error
	}{
		{"prepare existing key", func() error { _, err := s.Prepare(ctx, "a", ""); return err }, errdefs.ErrAlreadyExists},
		{"prepare on missing parent", func() error { _, err := s.Prepare(ctx, "b", "nope"); return err }, errdefs.ErrNotFound},
		{"prepare on active parent", func() error { _, err := s.Prepare(ctx, "b", "a"); return err }, errdefs.ErrFailedPrecondition},
		{"prepare empty key", func() error { _, err := s.Prepare(ctx, "", ""); return err }, errdefs.ErrInvalidArgument},
		{"stat missing", func() error { _, err := s.Stat(ctx, "nope"); return err }, errdefs.ErrNotFound},
		{"mounts missing", func() error { _, err := s.Mounts(ctx, "nope"); return err }, errdefs.ErrNotFound},
		{"usage missing", func() error { _, err := s.Usage(ctx, "nope"); return err }, errdefs.ErrNotFound},
		{"commit missing", func() error { return s.Commit(ctx, "x", "nope") }, errdefs.ErrNotFound},
		{"remove missing", func() error { return s.Remove(ctx, "nope") }, errdefs.ErrNotFound},
	}
	for _, tc := range tests {
		if err := tc.fn(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := s.Commit(ctx, "a-c", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "c", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "a-c", "c"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("commit onto an existing name: %v", err)
	}
	if _, err := s.Mounts(ctx, "a-c"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("mounts of a committed snapshot: %v", err)
	}
	// A failed Prepare leaves no directory behind.
	ents, _ := os.ReadDir(filepath.Join(rootOf(t, s), "snapshots"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "new-") || strings.HasPrefix(e.Name(), "rm-") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

func rootOf(t *testing.T, s snapshot.Snapshotter) string {
	r, ok := s.(interface{ Root() string })
	if !ok {
		t.Skip("snapshotter does not expose its root")
	}
	return r.Root()
}

func checkLabelsWalk(t *testing.T, ctx context.Context, s snapshot.Snapshotter) {
	if _, err := s.Prepare(ctx, "k", "", snapshot.WithLabels(map[string]string{"a": "1"})); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "n", "k", snapshot.WithLabels(map[string]string{"b": "2"})); err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(ctx, "n")
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != snapshot.KindCommitted || info.Labels["a"] != "1" || info.Labels["b"] != "2" || info.Name != "n" {
		t.Errorf("info = %+v", info)
	}
	if info.Created.IsZero() || info.Updated.Before(info.Created) {
		t.Errorf("times = %v %v", info.Created, info.Updated)
	}
	if _, err := s.Prepare(ctx, "k2", "n"); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	if err := s.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		got[i.Name] = i.Kind.String() + "/" + i.Parent
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["n"] != "Committed/" || got["k2"] != "Active/n" {
		t.Errorf("walk = %v", got)
	}
}

func checkUsage(t *testing.T, ctx context.Context, s snapshot.Snapshotter) {
	ms, err := s.Prepare(ctx, "k", "")
	if err != nil {
		t.Fatal(err)
	}
	WithMount(t, ms, func(d string) {
		write(t, d, "big", strings.Repeat("x", 1<<20))
		write(t, d, "small", "y")
	})
	u, err := s.Usage(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if u.Size < 1<<20 || u.Inodes < 3 {
		t.Errorf("active usage = %+v", u)
	}
	if err := s.Commit(ctx, "n", "k"); err != nil {
		t.Fatal(err)
	}
	cu, err := s.Usage(ctx, "n")
	if err != nil {
		t.Fatal(err)
	}
	if cu != u {
		t.Errorf("committed usage %+v != active %+v", cu, u)
	}
}

// checkManyLayers stacks enough layers that the overlay lowerdir list with
// absolute paths exceeds a page.
func checkManyLayers(t *testing.T, ctx context.Context, s snapshot.Snapshotter) {
	if testing.Short() {
		t.Skip("short")
	}
	parent := ""
	const n = 100
	for i := 0; i < n; i++ {
		name := "layer-" + strings.Repeat("x", 3) + string(rune('a'+i%26)) + itoa(i)
		layer(t, ctx, s, name, parent, func(d string) { write(t, d, "f"+itoa(i), itoa(i)) })
		parent = name
	}
	ms, err := s.Prepare(ctx, "top", parent)
	if err != nil {
		t.Fatal(err)
	}
	WithMount(t, ms, func(d string) {
		for _, i := range []int{0, n / 2, n - 1} {
			if got := read(d, "f"+itoa(i)); got != itoa(i) {
				t.Errorf("f%d = %q", i, got)
			}
		}
	})
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// CheckReopen checks that a snapshotter reopened on the same root keeps its
// snapshots and removes directories left by an interrupted create or
// remove.
func CheckReopen(t *testing.T, root string, newFn New) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ctx := context.Background()
	s := newFn(t, root)
	layer(t, ctx, s, "l1", "", func(d string) { write(t, d, "a", "1") })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"new-123", "rm-7", "99"} {
		if err := os.MkdirAll(filepath.Join(root, "snapshots", d, "fs"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s = newFn(t, root)
	defer s.Close()
	ents, err := os.ReadDir(filepath.Join(root, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("after reopen: %d snapshot directories, want 1", len(ents))
	}
	ms, err := s.View(ctx, "v", "l1")
	if err != nil {
		t.Fatal(err)
	}
	WithMount(t, ms, func(d string) {
		if got := read(d, "a"); got != "1" {
			t.Errorf("after reopen a = %q", got)
		}
	})
	AssertNoMounts(t, root)
}

// checkConcurrentCommit has several goroutines unpack the same layer (same
// committed name) at once, as concurrent pulls of images sharing a layer
// do: one commit wins, the others get ErrAlreadyExists and remove their
// keys, and nothing is left over.
func checkConcurrentCommit(t *testing.T, ctx context.Context, s snapshot.Snapshotter) {
	layer(t, ctx, s, "base", "", func(d string) { write(t, d, "a", "1") })
	const n = 6
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			key := "extract-" + itoa(i)
			if _, err := s.Prepare(ctx, key, "base"); err != nil {
				errs <- err
				return
			}
			err := s.Commit(ctx, "shared", key)
			if errors.Is(err, errdefs.ErrAlreadyExists) {
				err = s.Remove(ctx, key)
				if err == nil {
					err = errdefs.ErrAlreadyExists
				}
			}
			errs <- err
		}()
	}
	won := 0
	for i := 0; i < n; i++ {
		err := <-errs
		switch {
		case err == nil:
			won++
		case errors.Is(err, errdefs.ErrAlreadyExists):
		default:
			t.Errorf("concurrent unpack: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d commits won, want 1", won)
	}
	var names []string
	_ = s.Walk(ctx, func(_ context.Context, i snapshot.Info) error { names = append(names, i.Name); return nil })
	if len(names) != 2 {
		t.Errorf("snapshots after concurrent unpack: %v", names)
	}
	if ents, err := os.ReadDir(filepath.Join(rootOf(t, s), "snapshots")); err == nil && len(ents) != 2 {
		t.Errorf("%d snapshot directories, want 2", len(ents))
	}
}

// checkRemoveDirGone removes a snapshot whose directory someone deleted:
// the record must still go.
func checkRemoveDirGone(t *testing.T, ctx context.Context, s snapshot.Snapshotter) {
	if _, err := s.Prepare(ctx, "k", ""); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(rootOf(t, s), "snapshots")
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("snapshot dirs: %v %v", ents, err)
	}
	if err := os.RemoveAll(filepath.Join(dir, ents[0].Name())); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "k"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := s.Stat(ctx, "k"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("stat after remove: %v", err)
	}
}
