package conformance

// Container breakouts of the past, as configurations a runtime must refuse
// or confine (runtime.md lifecycle 2: the environment "MUST be created
// according to the configuration", which places everything inside
// root.path).

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
)

// TestCwdThroughLeakedFD: a cwd of /proc/self/fd/N reaches the host when
// the runtime leaks a directory descriptor into the container
// (CVE-2024-21626). The process must either be refused or stay in the
// rootfs.
func TestCwdThroughLeakedFD(t *testing.T) {
	for fd := 3; fd <= 8; fd++ {
		t.Run(fmt.Sprint(fd), func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t, "sh", "-c", "ls -a . | tr '\\n' ' '; echo; test -e ./marker-only-in-rootfs && echo inside")
			os.WriteFile(filepath.Join(b.Rootfs(), "marker-only-in-rootfs"), nil, 0o644)
			b.Spec.Process.Cwd = fmt.Sprintf("/proc/self/fd/%d", fd)
			res, err := r.tryRun(b)
			if err != nil || res.code != 0 {
				return // refused: fine
			}
			if !strings.Contains(res.stdout, "inside") {
				t.Errorf("cwd /proc/self/fd/%d is outside the rootfs; the container lists: %s", fd, res.stdout)
			}
		})
	}
}

// TestMountThroughSymlink: a mount destination that is a symlink in the
// rootfs is resolved inside the rootfs, never on the host
// (CVE-2021-30465 class).
func TestMountThroughSymlink(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t)
	hostDir := t.TempDir()
	// An absolute link: on the host it names hostDir; inside the container
	// it names rootfs/<hostDir>.
	if err := os.Symlink(hostDir, filepath.Join(b.Rootfs(), "evil")); err != nil {
		t.Fatal(err)
	}
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/evil", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}})
	res, err := r.tryRun(withScript(b, "grep -c ' "+hostDir+" ' /proc/self/mountinfo"))
	if err != nil || res.code != 0 {
		t.Logf("refused (fine): %v %s", err, res.stderr)
	} else if strings.TrimSpace(res.stdout) != "1" {
		t.Errorf("the tmpfs for /evil is not at the link's target inside the rootfs: %q", res.stdout)
	}
	// Whatever the runtime did, the host directory got nothing.
	if ents, _ := os.ReadDir(hostDir); len(ents) > 0 {
		t.Errorf("the host directory the link names was written to: %v", ents)
	}
	if fi, err := os.Lstat(filepath.Join(b.Rootfs(), hostDir)); err == nil && !fi.IsDir() {
		t.Errorf("%s in the rootfs is %v, want a directory", hostDir, fi.Mode())
	}
}

// TestProcMountOnSymlink: proc and sysfs targets are checked: a rootfs
// whose /proc is a symlink must be refused (CVE-2019-16884 class), since
// the kernel would mount the procfs elsewhere and the masked paths would
// not cover it.
func TestProcMountOnSymlink(t *testing.T) {
	for _, dir := range []string{"proc", "sys"} {
		t.Run(dir, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t, "sh", "-c", "touch /ran")
			root := b.Rootfs()
			os.Remove(filepath.Join(root, dir))
			os.MkdirAll(filepath.Join(root, "elsewhere"), 0o755)
			if err := os.Symlink("/elsewhere", filepath.Join(root, dir)); err != nil {
				t.Fatal(err)
			}
			expectRefused(t, r, b)
		})
	}
}

func withScript(b *testutil.Bundle, script string) *testutil.Bundle {
	b.Spec.Process.Args = []string{"sh", "-c", script}
	return b
}

// TestMountDotDot: a mount destination climbing out with ".." stays in the
// rootfs: "/../../x" is "/x" of the container.
func TestMountDotDot(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t)
	hostDir := t.TempDir()
	dest := "/../../../../../../.." + hostDir + "/escape"
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: dest, Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}})
	res, err := r.tryRun(withScript(b, "grep -c ' "+hostDir+"/escape ' /proc/self/mountinfo"))
	if err != nil || res.code != 0 {
		t.Logf("refused (fine): %v %s", err, res.stderr)
	} else if strings.TrimSpace(res.stdout) != "1" {
		t.Errorf("the tmpfs for %s is not at %s/escape inside the rootfs: %q", dest, hostDir, res.stdout)
	}
	if ents, _ := os.ReadDir(hostDir); len(ents) > 0 {
		t.Errorf("the host directory got %v", ents)
	}
}

// TestMissingBindSource: a bind mount whose source does not exist cannot
// be set up; runtime.md lifecycle 2: "If the runtime is unable to create
// the environment specified in the config.json, it MUST generate an error."
func TestMissingBindSource(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "touch /ran")
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/mnt/x", Type: "bind", Source: "/no/such/source/dir", Options: []string{"bind"}})
	expectRefused(t, r, b)
}
