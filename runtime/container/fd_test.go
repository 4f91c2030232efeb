package container

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/runtime/initproc"
)

// TestMain lets this test binary serve as the container init (`init`),
// for the tests that run Create in-process as hull-agent does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		initproc.Main()
	}
	os.Exit(m.Run())
}

// A long-lived caller (hull-agent) runs many containers with Create in
// its own process: Create must not leave a second *os.File on any of its
// fds, whose finalizer would close whatever file reuses the number later.
func TestCreateLeavesNoFDWrapper(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	root := t.TempDir()
	b := testutil.NewBundle(t, "true")
	var sentinels []*os.File
	defer func() {
		for _, f := range sentinels {
			f.Close()
		}
	}()
	for i := 0; i < 3; i++ {
		id := filepath.Base(t.TempDir())
		p, err := Create(context.Background(), CreateOptions{Root: root, ID: id, Bundle: b.Dir, StartNow: true})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if code, err := p.Wait(); err != nil || code != 0 {
			t.Fatalf("container: exit %d, %v", code, err)
		}
		if err := Delete(context.Background(), root, id, true); err != nil {
			t.Fatal(err)
		}
		// New files take the lowest free numbers, those Create used.
		for j := 0; j < 4; j++ {
			f, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			sentinels = append(sentinels, f)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // finalizers run
		runtime.GC()
	}
	for _, f := range sentinels {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatalf("fd %d (opened after Create) was closed behind its owner's back: %v", f.Fd(), err)
		}
	}
}
