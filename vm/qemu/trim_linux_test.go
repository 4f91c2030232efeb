package qemu

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/agent"
	"github.com/hullproject/hull/vm"
	"github.com/hullproject/hull/vm/vmtest"
)

// copyFile copies src to a new file in dir (a private inode: pages no
// other QEMU on the host maps).
func copyFile(t *testing.T, src, dir string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(dir, filepath.Base(src))
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// residentKiB sums the Rss of pid's mappings of path (as ReleaseBootFiles
// finds them).
func residentKiB(t *testing.T, pid int, path string) int64 {
	t.Helper()
	_, kib, err := mappingsOf(pid, bootFiles{paths: map[string]bool{path: true}})
	if err != nil {
		t.Fatal(err)
	}
	return kib
}

// privateBootConfig is baseConfig with private copies of the kernel and
// initrd: pages no other QEMU on the host maps (shared pages stay mapped).
func privateBootConfig(t *testing.T) vm.Config {
	cfg := baseConfig(t)
	dir := t.TempDir()
	cfg.Kernel = copyFile(t, cfg.Kernel, dir)
	cfg.Initrd = copyFile(t, cfg.Initrd, dir)
	return cfg
}

// checkReleased checks that QEMU (pid) has none of the boot files resident
// and that they are all in the page cache again, polling up to wait.
func checkReleased(t *testing.T, pid int, cfg vm.Config, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for _, f := range []string{cfg.Kernel, cfg.Initrd} {
		for {
			res := residentKiB(t, pid, f)
			cached, total := cachedPages(t, f)
			if res == 0 && cached == total {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: %d KiB still resident in QEMU, %d of %d pages in the page cache", filepath.Base(f), res, cached, total)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestReleaseBootFiles boots the agent guest (without vm.Boot, which
// releases the files itself) from private copies of the kernel and initrd,
// releases QEMU's pages of both, and checks they are no longer resident in
// QEMU but in the page cache, while the agent still answers.
func TestReleaseBootFiles(t *testing.T) {
	defer vmtest.NoStrays(t)
	cfg := privateBootConfig(t)
	q := newTCG()
	var passes atomic.Int32
	q.opts.AfterRelease = func() { passes.Add(1) }
	if _, err := q.ReleaseBootFiles(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("ReleaseBootFiles before Start: %v, want ErrNotRunning", err)
	}
	ctx := context.Background()
	c := startNoRelease(t, q, cfg)
	pid := q.cmd.Process.Pid
	before := map[string]int64{}
	for _, f := range []string{cfg.Kernel, cfg.Initrd} {
		if before[f] = residentKiB(t, pid, f); before[f] == 0 {
			t.Errorf("QEMU has none of %s resident after boot: nothing to test", filepath.Base(f))
		}
	}
	n, err := q.ReleaseBootFiles()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("ReleaseBootFiles advised no mapping")
	}
	if passes.Load() != 1 {
		t.Errorf("AfterRelease called %d times after one pass, want 1", passes.Load())
	}
	for _, f := range []string{cfg.Kernel, cfg.Initrd} {
		t.Logf("%s: %d KiB resident in QEMU before, %d after", filepath.Base(f), before[f], residentKiB(t, pid, f))
	}
	checkReleased(t, pid, cfg, 0)
	if _, err := c.WaitReady(ctx); err != nil {
		t.Errorf("agent after ReleaseBootFiles: %v", err)
	}
	if err := q.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.ReleaseBootFiles(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("ReleaseBootFiles after the VM ended: %v, want ErrNotRunning", err)
	}
}

// startNoRelease starts q and waits for its agent, without vm.Boot (which
// would release the boot files); q is stopped at the test's end.
func startNoRelease(t *testing.T, q *QEMU, cfg vm.Config) *agent.Client {
	t.Helper()
	ctx := context.Background()
	if err := q.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Stop(ctx) })
	actx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := vm.DialAgent(actx, q)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.WaitReady(actx); err != nil {
		t.Fatalf("agent: %v; console:\n%s", err, vm.ConsoleTail(q.ConsolePath(), 20))
	}
	return c
}

// TestReleaseBootFilesShared: pages another QEMU maps too stay resident
// (the kernel does not page out shared pages); once that QEMU is gone, the
// background retry releases them.
func TestReleaseBootFilesShared(t *testing.T) {
	defer vmtest.NoStrays(t)
	saved := releaseRetries
	releaseRetries = []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	defer func() { releaseRetries = saved }()
	cfg := privateBootConfig(t)
	a, b := newTCG(), newTCG()
	startNoRelease(t, a, cfg)
	cfgB := cfg
	cfgB.ID, cfgB.StateDir = cfg.ID+"-b", t.TempDir()
	startNoRelease(t, b, cfgB)
	pid := a.cmd.Process.Pid
	if _, err := a.ReleaseBootFiles(); err != nil {
		t.Fatal(err)
	}
	if kib := residentKiB(t, pid, cfg.Kernel); kib == 0 {
		t.Errorf("vmlinux: none resident in QEMU A while QEMU B maps it too: expected the shared pages to stay")
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkReleased(t, pid, cfg, 12*time.Second)
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestBootReleasesBootFiles: vm.Boot releases them once the agent answered
// (vm.BootFileReleaser).
func TestBootReleasesBootFiles(t *testing.T) {
	defer vmtest.NoStrays(t)
	cfg := privateBootConfig(t)
	q := newTCG()
	sb, err := vm.Boot(context.Background(), q, cfg, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Stop(context.Background())
	checkReleased(t, q.cmd.Process.Pid, cfg, 10*time.Second)
	if err := sb.Shutdown(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// cachedPages says how many of file's pages are in the page cache.
func cachedPages(t *testing.T, file string) (cached, total int) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore %s: %v", file, errno)
	}
	for _, v := range vec {
		if v&1 != 0 {
			cached++
		}
	}
	return cached, len(vec)
}

func TestPageOutFilesBadInput(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-kernel")
	if _, _, err := pageOutFiles(os.Getpid(), []string{missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("pageOutFiles of a missing file: %v, want an error naming it", err)
	}
	// A file the process does not map: nothing to advise.
	f := filepath.Join(t.TempDir(), "unmapped")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, left, err := pageOutFiles(os.Getpid(), []string{f}); err != nil || n != 0 || left != 0 {
		t.Errorf("pageOutFiles of an unmapped file: %d, %d, %v; want 0, 0, nil", n, left, err)
	}
}
