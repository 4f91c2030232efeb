package accel

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hullproject/hull/vm/guest/guesttest"
	"github.com/hullproject/hull/vm/initramfs"
)

func TestMain(m *testing.M) {
	code := m.Run()
	guesttest.Cleanup()
	os.Exit(code)
}

func TestDetectWithoutKVMDevice(t *testing.T) {
	r := Detect(context.Background(), Options{DevKVM: filepath.Join(t.TempDir(), "kvm"), CacheDir: t.TempDir()})
	if r.Accel != TCG {
		t.Fatalf("Accel = %q, want tcg", r.Accel)
	}
	if !strings.Contains(r.Reason, "KVM unusable") || !strings.Contains(r.Reason, "no such file") {
		t.Errorf("reason %q does not say KVM is unusable and why", r.Reason)
	}
}

func TestDetectWithoutProbeGuest(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skip("no /dev/kvm on this host: the probe-guest path is not reached")
	}
	dir := t.TempDir()
	r := Detect(context.Background(), Options{Kernel: filepath.Join(dir, "bzImage"), Initrd: filepath.Join(dir, "i.cpio"), CacheDir: dir})
	if r.Accel != TCG || !strings.Contains(r.Reason, "KVM not verified") || !strings.Contains(r.Reason, "bzImage") {
		t.Errorf("Detect = %+v, want tcg saying KVM was not verified and naming the kernel", r)
	}
}

// expectedAccel is what this host should give, found independently of
// Detect: no /dev/kvm, or a PVM host (kvm_pvm loaded, which cannot boot an
// ordinary guest), means TCG.
func expectedAccel() string {
	if !haveDevKVM() {
		return TCG
	}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return TCG
	}
	return KVM
}

func haveDevKVM() bool {
	_, err := os.Stat("/dev/kvm")
	return err == nil
}

// TestDetectThisHost probes for real with Hull's kernel and the test init,
// then checks that the second call is answered from the cache.
func TestDetectThisHost(t *testing.T) {
	guesttest.RequireQEMU(t)
	m := guesttest.MinimalKernel(t)
	initrd := guesttest.Initramfs(t, nil, initramfs.None)
	cache := t.TempDir()
	opts := Options{Kernel: m.Path(m.BzImage.Path), Initrd: initrd, CacheDir: cache, Timeout: 10 * time.Second}

	r := Detect(context.Background(), opts)
	t.Logf("Detect: %s: %s", r.Accel, r.Reason)
	want := expectedAccel()
	if r.Accel != want {
		t.Fatalf("Accel = %q (%s), want %q on this host", r.Accel, r.Reason, want)
	}
	if !strings.Contains(r.Reason, "KVM") {
		t.Errorf("reason %q does not mention KVM", r.Reason)
	}
	if r.Cached {
		t.Error("first Detect claims a cached verdict")
	}
	again := Detect(context.Background(), opts)
	if !haveDevKVM() {
		// No /dev/kvm: nothing is probed or cached (the failed open is
		// the whole check, and costs less than reading a cache).
		if again.Cached || again.Accel != TCG || again.Reason != r.Reason || r.Key != "" {
			t.Errorf("without /dev/kvm: second Detect = %+v, first %+v; want the same uncached TCG verdict", again, r)
		}
	} else if !again.Cached || again.Accel != r.Accel || again.Reason != r.Reason {
		t.Errorf("second Detect = %+v, want the cached %+v", again, r)
	}
	// A rebuilt kernel (new mtime) is a different key: probed again.
	key := func() string { o := opts; o.defaults(); k, _ := cacheKey(context.Background(), &o); return k }
	before := key()
	now := time.Now().Add(time.Second)
	if err := os.Chtimes(opts.Initrd, now, now); err != nil {
		t.Fatal(err)
	}
	if after := key(); after == before || before == "" {
		t.Errorf("touching the probe initrd: cache key %q, before %q; want a new key", after, before)
	}
	// A different probe guest is a different key: no stale verdict.
	other := guesttest.Initramfs(t, nil, initramfs.Gzip)
	opts.defaults()
	key1, _ := cacheKey(context.Background(), &opts)
	opts.Initrd = other
	key2, err := cacheKey(context.Background(), &opts)
	if err != nil || key1 == key2 || key1 == "" {
		t.Errorf("cache keys for two initrds: %q, %q (%v)", key1, key2, err)
	}
}

func TestQEMUArg(t *testing.T) {
	for _, tc := range []struct {
		kind string
		tb   int
		want string
	}{
		{TCG, 0, "tcg,tb-size=" + strconv.Itoa(DefaultTBSizeMiB)},
		{TCG, 64, "tcg,tb-size=64"},
		{TCG, -1, "tcg"},
		{KVM, 0, "kvm"},
		{KVM, 64, "kvm"},
		{"tcg,thread=single", 8, "tcg,thread=single"},
	} {
		if got := QEMUArg(tc.kind, tc.tb); got != tc.want {
			t.Errorf("QEMUArg(%q, %d) = %q, want %q", tc.kind, tc.tb, got, tc.want)
		}
	}
}
