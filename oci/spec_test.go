package oci

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/runtime/caps"
	"github.com/hullproject/hull/runtime/label"
	"github.com/hullproject/hull/runtime/seccomp"
)

func TestDefaultSpec(t *testing.T) {
	s := DefaultSpec("default", "web")
	if err := ValidateSecurity(s); err != nil {
		t.Fatalf("DefaultSpec does not pass ValidateSecurity: %v", err)
	}
	if s.Linux.CgroupsPath != "/default/web" {
		t.Errorf("cgroupsPath %q", s.Linux.CgroupsPath)
	}
	c := s.Process.Capabilities
	if !reflect.DeepEqual(c.Bounding, DefaultCaps()) || !reflect.DeepEqual(c.Effective, DefaultCaps()) ||
		!reflect.DeepEqual(c.Permitted, DefaultCaps()) || c.Inheritable != nil || c.Ambient != nil {
		t.Errorf("capabilities: %+v", c)
	}
	if !reflect.DeepEqual(s.Linux.Seccomp, seccomp.DefaultFor(DefaultCaps())) {
		t.Error("seccomp is not the default profile for the default capabilities")
	}
	if !reflect.DeepEqual(s.Linux.MaskedPaths, DefaultMaskedPaths) || !reflect.DeepEqual(s.Linux.ReadonlyPaths, DefaultReadonlyPaths) {
		t.Error("masked or read-only paths differ from the defaults")
	}
	if !s.Process.NoNewPrivileges || s.Process.Args != nil || s.Root.Path != "rootfs" {
		t.Errorf("process/root: %+v %+v", s.Process, s.Root)
	}
	// Each call gets its own copy.
	s.Linux.MaskedPaths[0] = "/changed"
	s.Process.Capabilities.Bounding[0] = "CAP_SYS_ADMIN"
	if DefaultMaskedPaths[0] == "/changed" || DefaultSpec("a", "b").Process.Capabilities.Bounding[0] == "CAP_SYS_ADMIN" {
		t.Error("DefaultSpec shares slices between calls")
	}
}

func TestExampleUnchanged(t *testing.T) {
	e := Example()
	if e.Process.Args[0] != "sh" || !e.Process.Terminal || !e.Root.Readonly || e.Linux.Seccomp != nil ||
		!reflect.DeepEqual(e.Process.Capabilities.Bounding, ExampleCaps) {
		t.Errorf("Example changed: %+v", e.Process)
	}
	if err := ValidateSecurity(e); err != nil {
		t.Errorf("Example does not validate: %v", err)
	}
}

func TestSpecOpts(t *testing.T) {
	rootfs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nweb:x:1000:1000::/home:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc/group"), []byte("root:x:0:\nweb:x:1000:\nwheel:x:10:web\n"), 0o644)

	tests := []struct {
		name  string
		opts  []SpecOpt
		check func(t *testing.T, s *specs.Spec)
		err   string
	}{
		{"args", []SpecOpt{WithProcessArgs("nginx", "-g", "daemon off;")}, func(t *testing.T, s *specs.Spec) {
			if !reflect.DeepEqual(s.Process.Args, []string{"nginx", "-g", "daemon off;"}) {
				t.Error(s.Process.Args)
			}
		}, ""},
		{"empty args", []SpecOpt{WithProcessArgs()}, nil, "empty command"},
		{"env merge", []SpecOpt{WithEnv([]string{"A=1", "PATH=/bin", "B=2"}), WithEnv([]string{"A=3", "B"})}, func(t *testing.T, s *specs.Spec) {
			if !reflect.DeepEqual(s.Process.Env, []string{"PATH=/bin", "A=3"}) {
				t.Error(s.Process.Env)
			}
		}, ""},
		{"env empty name", []SpecOpt{WithEnv([]string{"=x"})}, nil, `env "=x": empty name`},
		{"uid:gid", []SpecOpt{WithUser("1000:1001")}, func(t *testing.T, s *specs.Spec) {
			if s.Process.User.UID != 1000 || s.Process.User.GID != 1001 {
				t.Error(s.Process.User)
			}
		}, ""},
		{"user by name", []SpecOpt{WithRootFSPath(rootfs), WithUser("web")}, func(t *testing.T, s *specs.Spec) {
			u := s.Process.User
			if u.UID != 1000 || u.GID != 1000 || !reflect.DeepEqual(u.AdditionalGids, []uint32{10}) {
				t.Error(u)
			}
		}, ""},
		{"unknown user", []SpecOpt{WithRootFSPath(rootfs), WithUser("nobody")}, nil, `user "nobody"`},
		{"name without rootfs", []SpecOpt{WithUser("web")}, nil, "need an absolute root.path"},
		{"cap add and drop", []SpecOpt{WithCapAdd("net_admin", "CAP_SYS_TIME"), WithCapDrop("CAP_MKNOD", "kill")}, func(t *testing.T, s *specs.Spec) {
			c := s.Process.Capabilities
			for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted} {
				if !slices.Contains(set, "CAP_NET_ADMIN") || !slices.Contains(set, "CAP_SYS_TIME") ||
					slices.Contains(set, "CAP_MKNOD") || slices.Contains(set, "CAP_KILL") {
					t.Errorf("set %v", set)
				}
			}
			if !reflect.DeepEqual(s.Linux.Seccomp, seccomp.DefaultFor(c.Bounding)) {
				t.Error("default seccomp profile not regenerated for the new capabilities")
			}
		}, ""},
		{"cap add all", []SpecOpt{WithCapAdd("ALL")}, func(t *testing.T, s *specs.Spec) {
			for _, c := range caps.Current() {
				if !slices.Contains(s.Process.Capabilities.Bounding, c) {
					t.Errorf("%s missing", c)
				}
			}
		}, ""},
		{"cap drop all", []SpecOpt{WithCapDrop("ALL"), WithCapAdd("CAP_CHOWN")}, func(t *testing.T, s *specs.Spec) {
			if !reflect.DeepEqual(s.Process.Capabilities.Bounding, []string{"CAP_CHOWN"}) {
				t.Error(s.Process.Capabilities.Bounding)
			}
		}, ""},
		{"bad cap", []SpecOpt{WithCapAdd("CAP_TELEPORT")}, nil, `capability "CAP_TELEPORT"`},
		{"custom seccomp kept on cap add", []SpecOpt{
			WithSeccompProfile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow}), WithCapAdd("SYS_ADMIN"),
		}, func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp.DefaultAction != specs.ActAllow {
				t.Error("custom profile replaced")
			}
		}, ""},
		{"default seccomp after privileged", []SpecOpt{WithPrivileged, WithDefaultSeccomp}, func(t *testing.T, s *specs.Spec) {
			if !reflect.DeepEqual(s.Linux.Seccomp, seccomp.DefaultFor(caps.Current())) {
				t.Error("not the default profile for all capabilities")
			}
		}, ""},
		{"bad seccomp", []SpecOpt{WithSeccompProfile(&specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NOPE"})}, nil, "defaultAction"},
		{"privileged", []SpecOpt{WithPrivileged}, func(t *testing.T, s *specs.Spec) {
			if !reflect.DeepEqual(s.Process.Capabilities.Bounding, caps.Current()) || s.Linux.Seccomp != nil ||
				s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil || !s.Linux.Resources.Devices[0].Allow {
				t.Errorf("privileged: %+v", s.Linux)
			}
			for _, m := range s.Mounts {
				if (m.Type == "sysfs" || m.Type == "cgroup") && slices.Contains(m.Options, "ro") {
					t.Errorf("%s still read-only", m.Destination)
				}
			}
		}, ""},
		{"readonly rootfs", []SpecOpt{WithReadonlyRootfs(true)}, func(t *testing.T, s *specs.Spec) {
			if !s.Root.Readonly {
				t.Error("not read-only")
			}
		}, ""},
		{"hostname", []SpecOpt{WithHostname("web-1")}, func(t *testing.T, s *specs.Spec) {
			if s.Hostname != "web-1" {
				t.Error(s.Hostname)
			}
		}, ""},
		{"bad hostname", []SpecOpt{WithHostname("a b")}, nil, `hostname "a b"`},
		{"resources", []SpecOpt{WithMemoryLimit(64 << 20), WithCPUs(1.5), WithCPUSet("0-1"), WithPidsLimit(100)}, func(t *testing.T, s *specs.Spec) {
			r := s.Linux.Resources
			if *r.Memory.Limit != 64<<20 || *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 || r.CPU.Cpus != "0-1" || *r.Pids.Limit != 100 {
				t.Errorf("resources: %+v %+v", r.Memory, r.CPU)
			}
			if len(r.Devices) != 1 {
				t.Error("device rules lost")
			}
		}, ""},
		{"memory zero", []SpecOpt{WithMemoryLimit(0)}, nil, "memory limit 0"},
		{"cpus tiny", []SpecOpt{WithCPUs(0.001)}, nil, "below the 1 ms quota"},
		{"pids negative", []SpecOpt{WithPidsLimit(-1)}, nil, "pids limit -1"},
		{"cpuset bad", []SpecOpt{WithCPUSet("all")}, nil, `cpuset "all"`},
		{"mounts replace by destination", []SpecOpt{WithMounts([]specs.Mount{
			{Destination: "/dev/shm/", Type: "tmpfs", Source: "shm", Options: []string{"size=1g"}},
			{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "ro"}},
		})}, func(t *testing.T, s *specs.Spec) {
			n := 0
			for _, m := range s.Mounts {
				if filepath.Clean(m.Destination) == "/dev/shm" {
					n++
					if m.Options[0] != "size=1g" {
						t.Error(m)
					}
				}
			}
			if n != 1 || s.Mounts[len(s.Mounts)-1].Destination != "/data" {
				t.Errorf("mounts: %+v", s.Mounts)
			}
		}, ""},
		{"relative mount", []SpecOpt{WithMounts([]specs.Mount{{Destination: "data"}})}, nil, `mount destination "data"`},
		{"host network", []SpecOpt{WithHostNamespace(specs.NetworkNamespace)}, func(t *testing.T, s *specs.Spec) {
			for _, n := range s.Linux.Namespaces {
				if n.Type == specs.NetworkNamespace {
					t.Error("network namespace still there")
				}
			}
		}, ""},
		{"join namespace", []SpecOpt{WithNamespacePath(specs.NetworkNamespace, "/var/run/netns/x")}, func(t *testing.T, s *specs.Spec) {
			found := 0
			for _, n := range s.Linux.Namespaces {
				if n.Type == specs.NetworkNamespace {
					found++
					if n.Path != "/var/run/netns/x" {
						t.Error(n)
					}
				}
			}
			if found != 1 {
				t.Errorf("%d network entries", found)
			}
		}, ""},
		{"rlimit", []SpecOpt{WithRlimit("nofile", 4096, 2048)}, func(t *testing.T, s *specs.Spec) {
			if len(s.Process.Rlimits) != 1 || s.Process.Rlimits[0] != (specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 4096, Soft: 2048}) {
				t.Error(s.Process.Rlimits)
			}
		}, ""},
		{"rlimit soft above hard", []SpecOpt{WithRlimit("nofile", 1, 2)}, nil, "soft 2 above hard 1"},
		{"user namespace", []SpecOpt{WithUserNamespace(
			[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
			[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}})}, func(t *testing.T, s *specs.Spec) {
			if s.Linux.UIDMappings[0].HostID != 100000 || s.Linux.Namespaces[len(s.Linux.Namespaces)-1].Type != specs.UserNamespace {
				t.Error(s.Linux)
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSpec("ns", "id", tt.opts...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
			if err := ValidateSecurity(s); err != nil {
				t.Errorf("result does not validate: %v", err)
			}
		})
	}
}

func TestValidateSecurity(t *testing.T) {
	s := DefaultSpec("ns", "id")
	s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_TEST")
	if err := ValidateSecurity(s); err != nil {
		t.Errorf("an unknown capability must only warn: %v", err)
	}
	if w := CapabilityWarnings(s); len(w) != 1 || !strings.HasSuffix(w[0], "bounding: CAP_TEST") {
		t.Errorf("warnings %q", w)
	}
	s.Linux.Seccomp.Syscalls[0].Action = "SCMP_ACT_PERHAPS"
	if err := ValidateSecurity(s); err == nil || !strings.Contains(err.Error(), `action "SCMP_ACT_PERHAPS"`) {
		t.Errorf("bad seccomp action: %v", err)
	}
	s = DefaultSpec("ns", "id")
	s.Process.ApparmorProfile = "docker-default"
	if err := ValidateSecurity(s); err == nil && !label.AppArmorEnabled() {
		t.Error("an AppArmor profile on a host without AppArmor validated")
	}
}

func TestInvalidOptIs(t *testing.T) {
	_, err := NewSpec("ns", "id", WithMemoryLimit(-1))
	if !errors.Is(err, ErrInvalidOpt) {
		t.Errorf("%v is not ErrInvalidOpt", err)
	}
}

// TestRootlessLikeRunc compares Rootless(Example()) with what the
// installed runc writes for `runc spec --rootless`, field by field.
func TestRootlessLikeRunc(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("needs runc (Debian package runc)")
	}
	dir := t.TempDir()
	cmd := exec.Command(runc, "spec", "--rootless")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runc spec --rootless: %v: %s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want specs.Spec
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	got := Example()
	Rootless(got)

	nsTypes := func(s *specs.Spec) []string {
		var out []string
		for _, n := range s.Linux.Namespaces {
			out = append(out, string(n.Type))
		}
		slices.Sort(out)
		return out
	}
	if !reflect.DeepEqual(nsTypes(got), nsTypes(&want)) {
		t.Errorf("namespaces %v, runc %v", nsTypes(got), nsTypes(&want))
	}
	if !reflect.DeepEqual(got.Linux.UIDMappings, want.Linux.UIDMappings) || !reflect.DeepEqual(got.Linux.GIDMappings, want.Linux.GIDMappings) {
		t.Errorf("mappings %v %v, runc %v %v", got.Linux.UIDMappings, got.Linux.GIDMappings, want.Linux.UIDMappings, want.Linux.GIDMappings)
	}
	if got.Linux.Resources != nil || want.Linux.Resources != nil {
		t.Errorf("resources %+v, runc %+v", got.Linux.Resources, want.Linux.Resources)
	}
	byDst := func(s *specs.Spec) map[string]specs.Mount {
		m := map[string]specs.Mount{}
		for _, x := range s.Mounts {
			m[x.Destination] = x
		}
		return m
	}
	g, w := byDst(got), byDst(&want)
	if !reflect.DeepEqual(g["/sys"], w["/sys"]) {
		t.Errorf("/sys mount %+v, runc %+v", g["/sys"], w["/sys"])
	}
	if !reflect.DeepEqual(g["/dev/pts"].Options, w["/dev/pts"].Options) {
		t.Errorf("/dev/pts options %v, runc %v", g["/dev/pts"].Options, w["/dev/pts"].Options)
	}
	// The deliberate difference: no cgroup mount (see Rootless).
	if _, ok := g["/sys/fs/cgroup"]; ok {
		t.Error("rootless spec still mounts a cgroup")
	}
	for dst := range w {
		if _, ok := g[dst]; !ok && dst != "/sys/fs/cgroup" {
			t.Errorf("runc mounts %s, Rootless does not", dst)
		}
	}
}
