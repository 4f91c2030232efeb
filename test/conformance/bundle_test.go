package conformance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
)

// TestBadBundle checks bundles the runtime must refuse. Each refusal must
// be an error that leaves nothing behind: runtime.md errors: "generating an
// error MUST leave the state of the environment as if the operation were
// never attempted".
func TestBadBundle(t *testing.T) {
	cases := []struct {
		name string
		// edit breaks the bundle (spec already saved) and may rewrite
		// config.json itself.
		edit func(t *testing.T, b *testutil.Bundle)
	}{
		{
			// bundle.md: the bundle "MUST" contain config.json.
			name: "missing-config",
			edit: func(t *testing.T, b *testutil.Bundle) {
				os.Remove(filepath.Join(b.Dir, "config.json"))
			},
		},
		{
			// config.md: "Runtimes MUST generate an error when invalid or
			// unsupported values are encountered."
			name: "invalid-json",
			edit: func(t *testing.T, b *testutil.Bundle) {
				os.WriteFile(filepath.Join(b.Dir, "config.json"), []byte(`{"ociVersion": "1.0.2", "process": `), 0o644)
			},
		},
		{
			// config.md ociVersion: "MUST be in SemVer v2.0.0 format and
			// specifies the version of the Open Container Initiative
			// Runtime Specification with which the bundle complies"; a
			// major version the runtime does not know is unsupported.
			name: "unknown-major-version",
			edit: func(t *testing.T, b *testutil.Bundle) {
				b.Spec.Version = "2.0.0"
				b.Save()
			},
		},
		{
			// config.md root.path: "A directory MUST exist at the path
			// declared by the field."
			name: "missing-rootfs",
			edit: func(t *testing.T, b *testutil.Bundle) {
				b.Spec.Root.Path = "no-such-rootfs"
				b.Save()
			},
		},
		{
			name: "rootfs-is-a-file",
			edit: func(t *testing.T, b *testutil.Bundle) {
				os.WriteFile(filepath.Join(b.Dir, "file"), []byte("x"), 0o644)
				b.Spec.Root.Path = "file"
				b.Save()
			},
		},
		{
			// runtime.md lifecycle 2: "If the runtime is unable to create the
			// environment specified in the config.json, it MUST generate an
			// error": a mount of an unknown filesystem type.
			name: "unmountable",
			edit: func(t *testing.T, b *testutil.Bundle) {
				b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/mnt/x", Type: "no-such-fs", Source: "none"})
				b.Save()
			},
		},
		{
			// runtime.md create: "If the runtime cannot apply a property as
			// specified in the configuration, it MUST generate an error and
			// a new container MUST NOT be created": a sysctl that does not
			// exist.
			name: "bad-sysctl",
			edit: func(t *testing.T, b *testutil.Bundle) {
				b.Spec.Linux.Sysctl = map[string]string{"kernel.no_such_sysctl": "1"}
				b.Save()
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t, "sh", "-c", "touch /ran")
			cg := "/hull-conformance/" + strings.ReplaceAll(t.Name(), "/", "-")
			b.Spec.Linux.CgroupsPath = cg
			r.save(b)
			tc.edit(t, b)
			mountsBefore := hostMountsUnder(b.Dir)
			id := r.newID()
			s := newStdio(t)
			if _, _, err := r.exec(s, "create", "--bundle", b.Dir, id); err == nil {
				t.Fatalf("create succeeded")
			}
			// Bad input gets a message naming what is wrong: it says
			// something on stderr.
			if strings.TrimSpace(s.stderr()) == "" {
				t.Error("create failed without a message on stderr")
			}
			if _, err := r.state(id); err == nil {
				t.Error("the refused create left a container")
			}
			if out := strings.TrimSpace(r.ok("list", "-q")); out != "" {
				t.Errorf("list after the refused create: %q", out)
			}
			if m := hostMountsUnder(b.Dir); m != mountsBefore {
				t.Errorf("the refused create left mounts: %s", m)
			}
			if left := cgroupDirs(cg); len(left) > 0 {
				t.Errorf("the refused create left cgroups: %v", left)
			}
			if _, err := os.Stat(filepath.Join(b.Rootfs(), "ran")); err == nil {
				t.Error("the user program ran")
			}
		})
	}
}

// hostMountsUnder lists the host's mount points under dir.
func hostMountsUnder(dir string) string {
	var out []string
	for _, m := range parseMountinfo(readFile("/proc/self/mountinfo")) {
		if strings.HasPrefix(m.mountPoint, dir) {
			out = append(out, m.mountPoint)
		}
	}
	return strings.Join(out, " ")
}

// cgroupDirs lists the directories that exist for cgroup path p in each
// mounted cgroup hierarchy (the v1 controllers, or the v2 tree).
func cgroupDirs(p string) []string {
	var found []string
	for _, m := range parseMountinfo(readFile("/proc/self/mountinfo")) {
		if m.fsType != "cgroup" && m.fsType != "cgroup2" {
			continue
		}
		r := m.mountPoint
		d := filepath.Join(r, p)
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			found = append(found, d)
		}
	}
	return found
}

// TestStateAfterDelete checks runtime.md delete: "Deleting a container
// MUST delete the resources that were created during the create step": the
// cgroup the runtime made, and the container's entry in list.
func TestStateAfterDelete(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sleep", "1000")
	id := r.newID()
	cg := "/hull-conformance/" + id
	b.Spec.Linux.CgroupsPath = cg
	r.create(b, id)
	if len(cgroupDirs(cg)) == 0 {
		t.Fatalf("no cgroup at %s after create", cg)
	}
	if out := r.ok("list", "-q"); !strings.Contains(out, id) {
		t.Errorf("list -q %q lacks %s", out, id)
	}
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
	if left := cgroupDirs(cg); len(left) > 0 {
		t.Errorf("delete left the cgroups %v", left)
	}
	if out := strings.TrimSpace(r.ok("list", "-q")); out != "" {
		t.Errorf("list -q after delete: %q", out)
	}
}
