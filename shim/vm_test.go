package shim

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/vm"
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
		{"defaults from HULL_GUEST_DIR", nil, vmConfig{Kernel: filepath.Join(dir, "vmlinux"), Initrd: filepath.Join(dir, "agent.cpio"), GuestDir: dir}, nil},
		{"guest_dir", map[string]any{"guest_dir": "/g"}, vmConfig{Kernel: "/g/bzImage", Initrd: "/g/agent.cpio", GuestDir: "/g"}, nil},
		{"explicit", map[string]any{"kernel": "/k", "initrd": "/i", "kernel_params": "quiet", "accel": "tcg", "vcpus": int64(2), "memory_mib": int64(512), "boot_timeout": int64(90)},
			vmConfig{Kernel: "/k", Initrd: "/i", KernelParams: "quiet", Accel: "tcg", VCPUs: 2, MemoryMiB: 512, BootTimeout: 90 * time.Second, GuestDir: dir}, nil},
		{"tb size", map[string]any{"tb_size_mib": int64(-1)}, vmConfig{Kernel: filepath.Join(dir, "vmlinux"), Initrd: filepath.Join(dir, "agent.cpio"), TBSizeMiB: -1, GuestDir: dir}, nil},
		{"hypervisor", map[string]any{"hypervisor": "cloud-hypervisor"}, vmConfig{Kernel: filepath.Join(dir, "vmlinux"), Initrd: filepath.Join(dir, "agent.cpio"), Hypervisor: "cloud-hypervisor", GuestDir: dir}, nil},
		{"unknown hypervisor", map[string]any{"hypervisor": "xen"}, vmConfig{}, errdefs.ErrInvalidArgument},
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
	netns := func(path string) specs.LinuxNamespace {
		return specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: path}
	}
	pid := specs.LinuxNamespace{Type: specs.PIDNamespace}
	cg := specs.LinuxNamespace{Type: specs.CgroupNamespace}
	for _, tc := range []struct {
		name    string
		ns      []specs.LinuxNamespace
		binds   map[int]string
		wantNS  []specs.LinuxNamespace
		wantSrc []string
	}{
		{"new netns (--net none) dropped: the guest's has only lo", []specs.LinuxNamespace{pid, netns("")}, nil,
			[]specs.LinuxNamespace{pid, cg}, []string{"/host/a", "proc"}},
		{"joined netns dropped: the guest's has its NICs", []specs.LinuxNamespace{pid, netns("/run/netns/x")}, nil,
			[]specs.LinuxNamespace{pid, cg}, []string{"/host/a", "proc"}},
		{"bind sources from the mounts share", []specs.LinuxNamespace{pid, cg}, map[int]string{0: vmGuestMounts + "/m0"},
			[]specs.LinuxNamespace{pid, cg}, []string{vmGuestMounts + "/m0", "proc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &specs.Spec{
				Root:   &specs.Root{Path: "/host/bundle/rootfs", Readonly: true},
				Hooks:  &specs.Hooks{},
				Mounts: []specs.Mount{{Destination: "/a", Type: "bind", Source: "/host/a"}, {Destination: "/proc", Type: "proc", Source: "proc"}},
				Linux:  &specs.Linux{CgroupsPath: "/hull/x", Namespaces: tc.ns},
			}
			orig := append([]specs.LinuxNamespace(nil), tc.ns...)
			g := guestSpec(s, tc.binds)
			if g.Root.Path != vmGuestRoot || !g.Root.Readonly || g.Hooks != nil || g.Linux.CgroupsPath != "" {
				t.Fatalf("guest spec %+v", g)
			}
			if !reflect.DeepEqual(g.Linux.Namespaces, tc.wantNS) {
				t.Errorf("namespaces %+v, want %+v", g.Linux.Namespaces, tc.wantNS)
			}
			for i, src := range tc.wantSrc {
				if g.Mounts[i].Source != src {
					t.Errorf("mount %d source %q, want %q", i, g.Mounts[i].Source, src)
				}
			}
			if s.Root.Path != "/host/bundle/rootfs" || !reflect.DeepEqual(s.Linux.Namespaces, orig) || s.Hooks == nil || s.Mounts[0].Source != "/host/a" {
				t.Fatal("guestSpec changed its input")
			}
		})
	}
}

func TestSpecNetwork(t *testing.T) {
	for _, tc := range []struct {
		name     string
		linux    *specs.Linux
		wantMode vmNetMode
		wantPath string
		err      error
	}{
		{"new netns", &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace}}}, vmNetNone, "", nil},
		{"netns path", &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/run/netns/a"}}}, vmNetJoin, "/run/netns/a", nil},
		{"host network", &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}}, 0, "", ErrHostNetwork},
		{"no linux section", nil, 0, "", ErrHostNetwork},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode, path, err := specNetwork(&specs.Spec{Linux: tc.linux})
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || mode != tc.wantMode || path != tc.wantPath {
				t.Fatalf("got %v %q %v, want %v %q", mode, path, err, tc.wantMode, tc.wantPath)
			}
		})
	}
}

func TestVMBinds(t *testing.T) {
	host := t.TempDir()
	file := filepath.Join(host, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		mounts    []specs.Mount
		wantBinds []vm.Bind
		wantGuest map[int]string
		err       error
	}{
		{"none", []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}}, nil, nil, nil},
		{"dir rw, file ro, rbind by option, guest's own /dev",
			[]specs.Mount{
				{Destination: "/proc", Type: "proc", Source: "proc"},
				{Destination: "/data", Type: "bind", Source: host, Options: []string{"rbind", "rw"}},
				{Destination: "/etc/x", Type: "none", Source: file, Options: []string{"bind", "ro"}},
				{Destination: "/null", Type: "bind", Source: "/dev/null"},
			},
			[]vm.Bind{{Source: host, Target: "m1", Recursive: true}, {Source: file, Target: "m2", ReadOnly: true}},
			map[int]string{1: vmGuestMounts + "/m1", 2: vmGuestMounts + "/m2"}, nil},
		{"missing source", []specs.Mount{{Destination: "/x", Type: "bind", Source: filepath.Join(host, "nope")}}, nil, nil, ErrBindSource},
		{"relative source", []specs.Mount{{Destination: "/x", Type: "bind", Source: "rel"}}, nil, nil, ErrBindSource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "mounts")
			binds, guest, err := vmBinds(&specs.Spec{Mounts: tc.mounts}, dir)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(binds, tc.wantBinds) || !reflect.DeepEqual(guest, tc.wantGuest) {
				t.Fatalf("got %+v %v, want %+v %v", binds, guest, tc.wantBinds, tc.wantGuest)
			}
			for _, b := range binds {
				src, _ := os.Stat(b.Source)
				dst, err := os.Stat(filepath.Join(dir, b.Target))
				if err != nil || src.IsDir() != dst.IsDir() {
					t.Errorf("mount point of %s: %v", b.Source, err)
				}
			}
			if len(binds) == 0 {
				if _, err := os.Stat(dir); err == nil {
					t.Error("mounts dir made without binds")
				}
			}
		})
	}
}

// TestRootfsDiscarded: Delete quits the VM without asking the guest to
// flush only when hulld marked the rootfs discarded in the bundle and the
// guest has no share of volumes or bind mounts.
func TestRootfsDiscarded(t *testing.T) {
	for _, tc := range []struct {
		name          string
		bundle        bool
		marked, binds bool
		want          bool
	}{
		{"marked", true, true, false, true},
		{"not marked", true, false, false, false},
		{"marked with bind mounts", true, true, true, false},
		{"no bundle", false, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &VMBackend{binds: tc.binds}
			if tc.bundle {
				b.bundle = t.TempDir()
			}
			if tc.marked {
				if err := os.WriteFile(filepath.Join(b.bundle, RootfsDiscardedFile), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := b.nothingToFlush(); got != tc.want {
				t.Fatalf("quit without the guest's flush: %v, want %v", got, tc.want)
			}
		})
	}
}
