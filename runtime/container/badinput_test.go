package container_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
)

// leakCheck checks, after the test body, that nothing of container id
// (bundle dir) is left: no state directory, no cgroup directory, no
// host mount of the bundle or the state directory. (Other tests on this
// machine mount and unmount at the same time, so mounts are matched by
// path, not counted.)
func leakCheck(t *testing.T, r *rt, id, dir string) func() {
	t.Helper()
	return func() {
		t.Helper()
		if _, err := os.Stat(filepath.Join(r.root, id)); !os.IsNotExist(err) {
			t.Errorf("state directory of %s left behind (%v)", id, err)
		}
		for _, c := range []string{"memory", "pids", "cpu", "devices", "freezer", "unified"} {
			p := filepath.Join("/sys/fs/cgroup", c, "hull-runtime", id)
			if _, err := os.Stat(p); err == nil {
				t.Errorf("cgroup %s left behind", p)
			}
		}
		for _, l := range strings.Split(readFile(t, "/proc/self/mountinfo"), "\n") {
			if strings.Contains(l, dir) || strings.Contains(l, filepath.Join(r.root, id)) {
				t.Errorf("mount left behind: %s", l)
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	r := newRT(t)
	tests := []struct {
		name string
		edit func(t *testing.T, b *testutil.Bundle)
		want string // in the error
	}{
		{"missing config.json", func(t *testing.T, b *testutil.Bundle) {
			os.Remove(filepath.Join(b.Dir, "config.json"))
		}, "config.json"},
		{"invalid config.json", func(t *testing.T, b *testutil.Bundle) {
			os.WriteFile(filepath.Join(b.Dir, "config.json"), []byte("{not json"), 0o644)
		}, "config.json"},
		{"unknown major ociVersion", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Version = "2.0.0"
			b.Save()
		}, "ociVersion"},
		{"missing rootfs", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Root.Path = "nope"
			b.Save()
		}, "root.path"},
		{"bad namespace path", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Linux.Namespaces[1].Path = "/proc/self/ns/nosuch"
			b.Save()
		}, "linux.namespaces[1].path"},
		{"namespace path of another type", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Linux.Namespaces[1] = specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/self/ns/uts"}
			b.Save()
		}, "another type"},
		{"missing process binary", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Process.Args = []string{"/bin/nosuchprogram"}
			b.Save()
		}, "process.args[0]"},
		{"missing binary on PATH", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Process.Args = []string{"nosuchprogram"}
			b.Save()
		}, "process.args[0]"},
		{"cwd outside", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Process.Cwd = "/nonexistent"
			b.Save()
		}, "process.cwd"},
		{"bad mount", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/x", Type: "bind", Source: "/nonexistent/dir", Options: []string{"bind"}})
			b.Save()
		}, "mounts[7]"},
		{"host sysctl", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Linux.Sysctl = map[string]string{"vm.swappiness": "1"}
			b.Save()
		}, "linux.sysctl"},
		{"unknown rlimit", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS"}}
			b.Save()
		}, "process.rlimits[0]"},
		{"unknown capability", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Process.Capabilities.Bounding = []string{"CAP_BOGUS"}
			b.Save()
		}, "CAP_BOGUS"},
		{"proc over a symlink", func(t *testing.T, b *testutil.Bundle) {
			os.Remove(filepath.Join(b.Rootfs(), "proc"))
			os.Symlink("/tmp", filepath.Join(b.Rootfs(), "proc"))
		}, "symlink"},
		{"failing createRuntime hook", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo nope >&2; exit 4"}}}}
			b.Save()
		}, "hooks.createRuntime[0]"},
		{"bad seccomp action", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}
			b.Save()
		}, "linux.seccomp"},
		{"intelRdt without resctrl", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "hull-test"}
			b.Save()
		}, "linux.intelRdt"},
		{"terminal without console socket", func(t *testing.T, b *testutil.Bundle) {
			b.Spec.Process.Terminal = true
			b.Save()
		}, "console-socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := testutil.NewBundle(t, "true")
			tt.edit(t, b)
			id := r.newID()
			check := leakCheck(t, r, id, b.Dir)
			_, errs, code := r.cmd("create", "--bundle", b.Dir, id)
			if code == 0 {
				r.cmd("delete", "-f", id)
				t.Fatalf("create succeeded")
			}
			if !strings.Contains(errs, tt.want) {
				t.Errorf("error %q does not name %q", errs, tt.want)
			}
			check()
		})
	}
}

func TestNothingLeaksAfterDelete(t *testing.T) {
	r := newRT(t)
	host := t.TempDir()
	b := testutil.NewBundle(t, "sleep", "100")
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: host, Options: []string{"rbind"}})
	b.Save()
	c := r.mustCreate(b)
	check := leakCheck(t, r, c.id, b.Dir)
	r.must("start", c.id)
	r.must("exec", "-d", c.id, "sleep", "100")
	r.must("delete", "--force", c.id)
	check()
}
