package shim

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseVMConfig(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"vmlinux", "agent.cpio"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("HULL_GUEST_DIR", dir)
	for _, tc := range []struct {
		name string
		in   map[string]any
		want vmConfig
		err  error
	}{
		{"defaults from HULL_GUEST_DIR", nil, vmConfig{Kernel: filepath.Join(dir, "vmlinux"), Initrd: filepath.Join(dir, "agent.cpio")}, nil},
		{"guest_dir", map[string]any{"guest_dir": "/g"}, vmConfig{Kernel: "/g/bzImage", Initrd: "/g/agent.cpio"}, nil},
		{"explicit", map[string]any{"kernel": "/k", "initrd": "/i", "kernel_params": "quiet", "accel": "tcg", "vcpus": int64(2), "memory_mib": int64(512), "boot_timeout": int64(90)},
			vmConfig{Kernel: "/k", Initrd: "/i", KernelParams: "quiet", Accel: "tcg", VCPUs: 2, MemoryMiB: 512, BootTimeout: 90 * time.Second}, nil},
		{"unknown key", map[string]any{"kernal": "/k"}, vmConfig{}, errdefs.ErrInvalidArgument},
		{"kernel not a string", map[string]any{"kernel": int64(1)}, vmConfig{}, errdefs.ErrInvalidArgument},
		{"vcpus not a number", map[string]any{"vcpus": "two"}, vmConfig{}, errdefs.ErrInvalidArgument},
		{"negative memory", map[string]any{"memory_mib": int64(-1)}, vmConfig{}, errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVMConfig(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tc.want {
				t.Fatalf("got %+v, want %+v", *got, tc.want)
			}
		})
	}
}

// TestVMModeFromRuntimeConfig: a runtime config with mode = "vm" and a
// [backend] table selects the vm backend with those settings.
func TestVMModeFromRuntimeConfig(t *testing.T) {
	o := &Options{Mode: "vm", Backend: map[string]any{"kernel": "/k", "initrd": "/i"}}
	b, err := newBackendFor(o)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := b.(*VMBackend)
	if !ok || v.cfg.Kernel != "/k" || v.cfg.Initrd != "/i" {
		t.Fatalf("backend %T %+v", b, v)
	}
	if _, err := newBackendFor(&Options{Mode: "vm", Backend: map[string]any{"nope": 1}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("unknown backend key: %v", err)
	}
}

func TestGuestSpec(t *testing.T) {
	s := &specs.Spec{
		Root:  &specs.Root{Path: "/host/bundle/rootfs", Readonly: true},
		Hooks: &specs.Hooks{},
		Linux: &specs.Linux{CgroupsPath: "/hull/x", Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}},
	}
	g := guestSpec(s)
	if g.Root.Path != vmGuestRoot || !g.Root.Readonly || g.Hooks != nil || g.Linux.CgroupsPath != "" {
		t.Fatalf("guest spec %+v", g)
	}
	if n := g.Linux.Namespaces; len(n) != 2 || n[1].Type != specs.CgroupNamespace {
		t.Fatalf("namespaces %+v", n)
	}
	if s.Root.Path != "/host/bundle/rootfs" || len(s.Linux.Namespaces) != 1 || s.Hooks == nil {
		t.Fatal("guestSpec changed its input")
	}
}
