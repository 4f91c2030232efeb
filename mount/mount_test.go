package mount

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		opts  []string
		flags uintptr
		data  string
	}{
		{[]string{"ro", "rbind"}, unix.MS_RDONLY | unix.MS_BIND | unix.MS_REC, ""},
		{[]string{"ro", "rw", "nosuid", "lowerdir=/a:/b"}, unix.MS_NOSUID, "lowerdir=/a:/b"},
		{[]string{"index=off", "upperdir=/u", "workdir=/w"}, 0, "index=off,upperdir=/u,workdir=/w"},
	}
	for _, tc := range tests {
		f, _, d := parseOptions(tc.opts)
		if f != tc.flags || strings.Join(d, ",") != tc.data {
			t.Errorf("%q: flags %#x data %q, want %#x %q", tc.opts, f, d, tc.flags, tc.data)
		}
	}
}

func TestShortenOverlay(t *testing.T) {
	dir, out, err := shortenOverlay([]string{"index=off", "lowerdir=/r/s/1/fs:/r/s/2/fs", "upperdir=/r/s/3/fs", "workdir=/r/s/3/work"})
	if err != nil {
		t.Fatal(err)
	}
	want := "index=off,lowerdir=1/fs:2/fs,upperdir=3/fs,workdir=3/work"
	if dir != "/r/s" || strings.Join(out, ",") != want {
		t.Errorf("got %s %q", dir, out)
	}
}

// TestOverlayTooManyLayers asks for more layers than fit a page even with
// relative paths and expects the named error, not an opaque EINVAL.
func TestOverlayTooManyLayers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	var lowers []string
	for i := 0; i < 600; i++ {
		p := filepath.Join(dir, strings.Repeat("l", 10)+string(rune('a'+i%26))+strings.Repeat("x", i/26))
		lowers = append(lowers, p)
	}
	target := filepath.Join(dir, "m")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	m := Mount{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + strings.Join(lowers, ":")}}
	err := m.Mount(target)
	if !errors.Is(err, ErrOptionsTooLong) {
		_ = UnmountAll(target, 0)
		t.Fatalf("err = %v, want ErrOptionsTooLong", err)
	}
}

func TestBindReadOnlyAndUnmountAll(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	src, dst := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ms := []Mount{{Type: "bind", Source: src, Options: []string{"ro", "rbind"}}}
	if err := All(ms, dst); err != nil {
		t.Fatal(err)
	}
	// Stack a second mount below the first.
	sub := filepath.Join(dst, "f")
	if err := (Mount{Type: "bind", Source: filepath.Join(src, "f"), Options: []string{"bind"}}).Mount(sub); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "g"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write to ro bind: %v", err)
	}
	if err := UnmountAll(dst, 0); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), dst) {
		t.Errorf("still mounted under %s", dst)
	}
	if err := UnmountAll(filepath.Join(dst, "missing"), 0); err != nil {
		t.Errorf("UnmountAll of a missing path: %v", err)
	}
}
