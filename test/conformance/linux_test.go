package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
)

// hostDir makes a host directory holding one file, name, with content.
func hostDir(t *testing.T, name, content string) string {
	t.Helper()
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestMounts checks config.md mounts, each from inside the container and
// in the container's mountinfo seen from the host.
func TestMounts(t *testing.T) {
	cases := []struct {
		name    string
		mounts  func(t *testing.T) []specs.Mount
		script  string
		want    string
		outside func(t *testing.T, ms []mountInfo)
	}{
		{
			// config.md mounts: "The runtime MUST mount entries in the
			// listed order." A bind under a tmpfs is only visible if the
			// tmpfs was mounted first; of two mounts on one destination the
			// later one is on top.
			name: "listed-order",
			mounts: func(t *testing.T) []specs.Mount {
				return []specs.Mount{
					{Destination: "/mnt/a", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
					{Destination: "/mnt/a/b", Type: "bind", Source: hostDir(t, "f", "under-a"), Options: []string{"bind"}},
					{Destination: "/mnt/c", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
					{Destination: "/mnt/c", Type: "bind", Source: hostDir(t, "g", "over-c"), Options: []string{"bind"}},
				}
			},
			script: "cat /mnt/a/b/f; echo; cat /mnt/c/g", want: "under-a\nover-c",
			outside: func(t *testing.T, ms []mountInfo) {
				ia, ib := -1, -1
				for i, m := range ms {
					switch m.mountPoint {
					case "/mnt/a":
						ia = i
					case "/mnt/a/b":
						ib = i
					}
				}
				if ia < 0 || ib < 0 || ia > ib {
					t.Errorf("mountinfo order: /mnt/a at %d, /mnt/a/b at %d", ia, ib)
				}
			},
		},
		{
			// config.md mount options: "ro", "nosuid", "nodev", "noexec"
			// MUST be implemented (mount(8) semantics).
			name: "bind-ro",
			mounts: func(t *testing.T) []specs.Mount {
				return []specs.Mount{{Destination: "/mnt/ro", Type: "bind", Source: hostDir(t, "f", "x"), Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}}}
			},
			script: "cat /mnt/ro/f; touch /mnt/ro/new 2>/dev/null && echo writable || echo readonly", want: "xreadonly",
			outside: func(t *testing.T, ms []mountInfo) {
				m, ok := lastMount(ms, "/mnt/ro")
				if !ok {
					t.Fatal("no mount at /mnt/ro")
				}
				for _, o := range []string{"ro", "nosuid", "nodev", "noexec"} {
					if !hasOpt(m.options, o) {
						t.Errorf("/mnt/ro options %q lack %s", m.options, o)
					}
				}
			},
		},
		{
			name: "tmpfs-options",
			mounts: func(t *testing.T) []specs.Mount {
				return []specs.Mount{{Destination: "/mnt/t", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1770", "size=2m"}}}
			},
			script: "stat -c %a /mnt/t; touch /mnt/t/x && echo ok", want: "1770\nok",
			outside: func(t *testing.T, ms []mountInfo) {
				m, ok := lastMount(ms, "/mnt/t")
				if !ok || m.fsType != "tmpfs" {
					t.Fatalf("no tmpfs at /mnt/t: %+v", m)
				}
				if !hasOpt(m.options, "nosuid") || !hasOpt(m.options, "nodev") || hasOpt(m.options, "ro") {
					t.Errorf("/mnt/t options %q, want rw,nosuid,nodev", m.options)
				}
				if !hasOpt(m.super, "size=2048k") {
					t.Errorf("/mnt/t superblock options %q lack size=2048k", m.super)
				}
			},
		},
		{
			// config.md mounts: destination "MAY be a relative path, in
			// which case it MUST be interpreted as relative to /".
			name: "relative-destination",
			mounts: func(t *testing.T) []specs.Mount {
				return []specs.Mount{{Destination: "mnt/rel", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}}}
			},
			script: "grep -c ' /mnt/rel ' /proc/self/mountinfo", want: "1",
		},
		{
			// config.md mount options: "bind" (not recursive) does not carry
			// the source's submounts, "rbind" does.
			name: "bind-vs-rbind",
			mounts: func(t *testing.T) []specs.Mount {
				src := hostDir(t, "top", "t")
				sub := filepath.Join(src, "sub")
				if err := os.Mkdir(sub, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { syscall.Unmount(sub, syscall.MNT_DETACH) })
				if err := os.WriteFile(filepath.Join(sub, "inner"), []byte("i"), 0o644); err != nil {
					t.Fatal(err)
				}
				return []specs.Mount{
					{Destination: "/mnt/bind", Type: "bind", Source: src, Options: []string{"bind"}},
					{Destination: "/mnt/rbind", Type: "bind", Source: src, Options: []string{"rbind"}},
				}
			},
			script: "ls /mnt/bind/sub | wc -l; cat /mnt/rbind/sub/inner", want: "0\ni",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t)
			ms := tc.mounts(t)
			b.Spec.Mounts = append(b.Spec.Mounts, ms...)
			if got := strings.TrimSpace(r.shell(b, tc.script)); got != tc.want {
				t.Errorf("inside: got %q, want %q", got, tc.want)
			}
			if tc.outside == nil {
				return
			}
			b = testutil.NewBundle(t)
			b.Spec.Mounts = append(b.Spec.Mounts, ms...)
			s := r.startSleeper(b, false)
			tc.outside(t, parseMountinfo(readFile(fmt.Sprintf("/proc/%d/mountinfo", s.pid))))
			r.stop(s.id)
		})
	}
}

// TestRootfs checks config.md root and config-linux.md masked and
// read-only paths.
func TestRootfs(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(s *specs.Spec)
		script  string
		want    string
		outside func(t *testing.T, ms []mountInfo)
	}{
		{
			// config.md root: "readonly (bool, OPTIONAL) If true then the
			// root filesystem MUST be read-only inside the container".
			name:   "readonly-root",
			edit:   func(s *specs.Spec) { s.Root.Readonly = true },
			script: "touch /new 2>/dev/null && echo writable || echo readonly; touch /tmp/ok 2>/dev/null || echo tmp-readonly-too",
			want:   "readonly\ntmp-readonly-too",
			outside: func(t *testing.T, ms []mountInfo) {
				m, ok := lastMount(ms, "/")
				if !ok || !hasOpt(m.options, "ro") {
					t.Errorf("/ mount %+v is not ro", m)
				}
			},
		},
		{
			// A read-only root still gets the mounts of the config, even
			// where their destinations must first be made in the rootfs.
			name: "readonly-root-new-mountpoint",
			edit: func(s *specs.Spec) {
				s.Root.Readonly = true
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/newdir/sub", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}})
			},
			script: "touch /newdir/sub/x && echo tmpfs-rw; touch /y 2>/dev/null || echo root-ro",
			want:   "tmpfs-rw\nroot-ro",
		},
		{
			name:   "writable-root",
			edit:   func(s *specs.Spec) { s.Root.Readonly = false },
			script: "touch /new && echo writable", want: "writable",
		},
		{
			// config.md root: "path (string, REQUIRED) Specifies the path to
			// the root filesystem for the container"; the container sees
			// that tree as /.
			name:   "root-is-bundle-rootfs",
			edit:   func(s *specs.Spec) {},
			script: "cat /marker", want: "rootfs-marker",
		},
		{
			// config-linux.md maskedPaths: "will mask over the provided
			// paths inside the container so that they cannot be read."
			name: "masked-paths",
			edit: func(s *specs.Spec) {
				s.Linux.MaskedPaths = []string{"/proc/timer_list", "/sys/firmware", "/etc/secret", "/etc/secretdir"}
			},
			script: "echo k$(head -c 16 /proc/timer_list | wc -c); echo f$(ls /sys/firmware | wc -l); echo s$(cat /etc/secret 2>/dev/null); echo d$(ls /etc/secretdir | wc -l)",
			want:   "k0\nf0\ns\nd0",
			outside: func(t *testing.T, ms []mountInfo) {
				for _, p := range []string{"/proc/timer_list", "/sys/firmware", "/etc/secret"} {
					if _, ok := lastMount(ms, p); !ok {
						t.Errorf("nothing mounted over masked %s", p)
					}
				}
			},
		},
		{
			// config-linux.md readonlyPaths: "will set the provided paths as
			// readonly inside the container."
			name: "readonly-paths",
			edit: func(s *specs.Spec) {
				s.Linux.MaskedPaths = nil
				s.Linux.ReadonlyPaths = []string{"/proc/sys", "/proc/keys", "/etc"}
			},
			script: "echo 1 >/proc/sys/kernel/ns_last_pid 2>/dev/null && echo sys-writable || echo sys-ro; touch /etc/x 2>/dev/null && echo etc-writable || echo etc-ro; touch /ok && echo root-rw",
			want:   "sys-ro\netc-ro\nroot-rw",
			outside: func(t *testing.T, ms []mountInfo) {
				for _, p := range []string{"/proc/sys", "/proc/keys", "/etc"} {
					m, ok := lastMount(ms, p)
					if !ok || !hasOpt(m.options, "ro") {
						t.Errorf("read-only path %s: mount %+v is not ro", p, m)
					}
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRT(t)
			mk := func() *testutil.Bundle {
				b := testutil.NewBundle(t)
				for p, c := range map[string]string{"marker": "rootfs-marker", "etc/secret": "s3cret"} {
					if err := os.WriteFile(filepath.Join(b.Rootfs(), p), []byte(c), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.MkdirAll(filepath.Join(b.Rootfs(), "etc/secretdir/x"), 0o755); err != nil {
					t.Fatal(err)
				}
				tc.edit(b.Spec)
				return b
			}
			if got := strings.TrimSpace(r.shell(mk(), tc.script)); got != tc.want {
				t.Errorf("inside: got %q, want %q", got, tc.want)
			}
			if tc.outside == nil {
				return
			}
			s := r.startSleeper(mk(), false)
			tc.outside(t, parseMountinfo(readFile(fmt.Sprintf("/proc/%d/mountinfo", s.pid))))
			r.stop(s.id)
		})
	}
}

// TestDevices checks config-linux.md devices, default devices and
// runtime-linux.md /dev symlinks.
func TestDevices(t *testing.T) {
	for _, tc := range deviceCases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t)
			tc.edit(b.Spec)
			if got := strings.TrimSpace(r.shell(b, tc.script)); got != tc.want {
				t.Errorf("inside: got %q, want %q", got, tc.want)
			}
		})
	}
}

// shellCase is a spec edit and a script whose output is checked.
type shellCase struct {
	name   string
	edit   func(s *specs.Spec)
	script string
	want   string
}

var (
	devMode        = os.FileMode(0o640)
	devUID, devGID = uint32(1000), uint32(5)
	deviceCases    = []shellCase{
		{
			// config-linux.md devices: "lists devices that MUST be available
			// in the container", with type, major, minor, fileMode, uid, gid.
			name: "configured",
			edit: func(s *specs.Spec) {
				s.Linux.Devices = []specs.LinuxDevice{
					{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &devMode, UID: &devUID, GID: &devGID},
					{Path: "/dev/hull-loop", Type: "b", Major: 7, Minor: 200, FileMode: &devMode, UID: &devUID, GID: &devGID},
				}
			},
			script: "stat -c '%F %t %T %a %u %g' /dev/fuse /dev/hull-loop",
			want:   "character special file a e5 640 1000 5\nblock special file 7 c8 640 1000 5",
		},
		{
			// config-linux.md default devices: "the runtime MUST also
			// supply: /dev/null, /dev/zero, /dev/full, /dev/random,
			// /dev/urandom, /dev/tty ... /dev/ptmx".
			name:   "defaults",
			edit:   func(s *specs.Spec) {},
			script: "stat -c '%n %F %t %T' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; stat -L -c '%n %F' /dev/ptmx",
			want: "/dev/null character special file 1 3\n/dev/zero character special file 1 5\n/dev/full character special file 1 7\n" +
				"/dev/random character special file 1 8\n/dev/urandom character special file 1 9\n/dev/tty character special file 5 0\n" +
				"/dev/ptmx character special file",
		},
		{
			// The default devices are usable, even under a devices cgroup
			// that denies everything else (the example spec's default).
			name:   "defaults-usable",
			edit:   func(s *specs.Spec) {},
			script: "echo x >/dev/null && head -c 5 /dev/zero | wc -c && head -c 5 /dev/urandom | wc -c && echo x 2>/dev/null >/dev/full || echo full",
			want:   "5\n5\nfull",
		},
		{
			// runtime-linux.md: "runtimes MUST create the following
			// symlinks if the source file exists after processing mounts":
			// /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr.
			name:   "dev-symlinks",
			edit:   func(s *specs.Spec) {},
			script: "for l in fd stdin stdout stderr; do readlink /dev/$l; done",
			want:   "/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2",
		},
		{
			// config-linux.md allowed device list: under the example's
			// "deny all" rule, a configured device that no rule allows
			// cannot be opened ...
			name: "cgroup-denied",
			edit: func(s *specs.Spec) {
				m := os.FileMode(0o666)
				s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &m}}
			},
			script: "(exec 3</dev/fuse) 2>/dev/null && echo opened || echo refused",
			want:   "refused",
		},
		{
			// ... and once a rule allows it, it can.
			name: "cgroup-allowed",
			edit: func(s *specs.Spec) {
				m := os.FileMode(0o666)
				major, minor := int64(10), int64(229)
				s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &m}}
				s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
					specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"})
			},
			script: "(exec 3</dev/fuse) 2>/dev/null && echo opened || echo refused",
			want:   "opened",
		},
	}
)

// TestSysctl checks config-linux.md sysctl: "allows kernel parameters to
// be modified at runtime for the container", inside the container's own
// namespaces and without touching the host's values.
func TestSysctl(t *testing.T) {
	hostFwd := readFile("/proc/sys/net/ipv4/ip_forward")
	hostShm := readFile("/proc/sys/kernel/shmmni")
	r := newRT(t)
	b := testutil.NewBundle(t)
	b.Spec.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234", "net.ipv4.ping_group_range": "0 1000"}
	got := r.shell(b, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni /proc/sys/net/ipv4/ping_group_range")
	if want := "1\n1234\n0\t1000\n"; got != want {
		t.Errorf("inside: %q, want %q", got, want)
	}
	if readFile("/proc/sys/net/ipv4/ip_forward") != hostFwd || readFile("/proc/sys/kernel/shmmni") != hostShm {
		t.Error("the container's sysctls changed the host's values")
	}
}

// TestNamespaces checks config-linux.md namespaces from the host: a type
// listed without path gets a new namespace, one with a path joins it, and
// one not listed is inherited from the runtime.
func TestNamespaces(t *testing.T) {
	kinds := map[specs.LinuxNamespaceType]string{
		specs.PIDNamespace: "pid", specs.NetworkNamespace: "net", specs.IPCNamespace: "ipc",
		specs.UTSNamespace: "uts", specs.MountNamespace: "mnt", specs.CgroupNamespace: "cgroup",
	}
	self := os.Getpid()
	t.Run("new", func(t *testing.T) {
		// "If path is not specified, the runtime MUST create a new
		// container namespace of type type."
		r := newRT(t)
		b := testutil.NewBundle(t)
		setNS(b.Spec, specs.LinuxNamespace{Type: specs.CgroupNamespace})
		s := r.startSleeper(b, false)
		for typ, k := range kinds {
			if nsInode(t, s.pid, k) == nsInode(t, self, k) {
				t.Errorf("%s namespace is the host's", typ)
			}
		}
		r.stop(s.id)
	})
	t.Run("inherited", func(t *testing.T) {
		// "If a namespace type is not specified in the namespaces array,
		// the container MUST inherit the runtime namespace of that type."
		r := newRT(t)
		b := testutil.NewBundle(t)
		withoutNS(b.Spec, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.CgroupNamespace)
		b.Spec.Hostname = ""
		s := r.startSleeper(b, false)
		for _, k := range []string{"net", "ipc", "uts", "cgroup"} {
			if nsInode(t, s.pid, k) != nsInode(t, self, k) {
				t.Errorf("%s namespace is not the runtime's", k)
			}
		}
		r.stop(s.id)
	})
	t.Run("joined-by-path", func(t *testing.T) {
		// "path ... The runtime MUST place the container process in the
		// namespace associated with that path."
		r := newRT(t)
		first := r.startSleeper(testutil.NewBundle(t), false)
		b := testutil.NewBundle(t)
		for _, typ := range []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.PIDNamespace} {
			setNS(b.Spec, specs.LinuxNamespace{Type: typ, Path: fmt.Sprintf("/proc/%d/ns/%s", first.pid, kinds[typ])})
		}
		b.Spec.Hostname = ""
		second := r.startSleeper(b, false)
		for _, k := range []string{"net", "ipc", "uts", "pid"} {
			if nsInode(t, second.pid, k) != nsInode(t, first.pid, k) {
				t.Errorf("%s namespace was not joined", k)
			}
		}
		if nsInode(t, second.pid, "mnt") == nsInode(t, first.pid, "mnt") {
			t.Error("the mount namespace, not listed with a path, was shared")
		}
		r.stop(second.id)
		r.stop(first.id)
	})
}

// TestNamespaceErrors checks namespace configurations that MUST fail.
func TestNamespaceErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(t *testing.T, r *rt, s *specs.Spec)
	}{
		{
			// "The runtime MUST generate an error if path is not associated
			// with a namespace of type type."
			name: "path-of-other-type",
			edit: func(t *testing.T, r *rt, s *specs.Spec) {
				setNS(s, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/self/ns/ipc"})
			},
		},
		{
			name: "path-missing",
			edit: func(t *testing.T, r *rt, s *specs.Spec) {
				setNS(s, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/no-such-pid/ns/net"})
			},
		},
		{
			name: "path-not-a-namespace",
			edit: func(t *testing.T, r *rt, s *specs.Spec) {
				setNS(s, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/etc/hostname"})
			},
		},
		{
			// "If a namespaces field contains duplicated namespaces with same
			// type, the runtime MUST generate an error."
			name: "duplicate-type",
			edit: func(t *testing.T, r *rt, s *specs.Spec) {
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t, "sh", "-c", "touch /ran")
			tc.edit(t, r, b.Spec)
			expectRefused(t, r, b)
		})
	}
}

// TestUserNamespace checks config-linux.md user namespace mappings from
// inside and outside.
func TestUserNamespace(t *testing.T) {
	self := os.Getpid()
	// config-linux.md user namespace mappings: "uidMappings (array of
	// objects, OPTIONAL) describes the user namespace uid mappings from
	// the host to the container", and likewise gidMappings.
	r := newRT(t)
	b := testutil.NewBundle(t)
	openUp(t, b.Dir)
	setNS(b.Spec, specs.LinuxNamespace{Type: specs.UserNamespace})
	b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	// A new user namespace may not mount a cgroup hierarchy it does
	// not own; sysfs needs its own network namespace, which it has.
	var ms []specs.Mount
	for _, m := range b.Spec.Mounts {
		if m.Type != "cgroup" {
			ms = append(ms, m)
		}
	}
	b.Spec.Mounts = ms
	if got := r.shell(b, "id -u; tr -s ' ' </proc/self/uid_map; tr -s ' ' </proc/self/gid_map"); got != "0\n 0 100000 65536\n 0 100000 65536\n" {
		t.Errorf("inside: %q", got)
	}
	s := r.startSleeper(b, false)
	if nsInode(t, s.pid, "user") == nsInode(t, self, "user") {
		t.Error("user namespace is the host's")
	}
	if f := strings.Fields(procStatus(t, s.pid)["Uid"]); len(f) == 0 || f[0] != "100000" {
		t.Errorf("host uid of the container's root is %v, want 100000", f)
	}
	r.stop(s.id)
}

// openUp lets other users (a mapped container root) traverse the
// directories above dir, which t.TempDir makes 0700.
func openUp(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExampleMounts checks that every mount of the example spec (proc,
// tmpfs, devpts, mqueue, sysfs, cgroup) is in the container with its type,
// and that the listed options hold. config.md mounts: "type (string,
// OPTIONAL) The type of the filesystem to be mounted."
func TestExampleMounts(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t)
	s := r.startSleeper(b, false)
	ms := parseMountinfo(readFile(fmt.Sprintf("/proc/%d/mountinfo", s.pid)))
	for _, want := range b.Spec.Mounts {
		m, ok := lastMount(ms, want.Destination)
		if !ok {
			t.Errorf("nothing mounted at %s", want.Destination)
			continue
		}
		// On cgroup v1 a runtime may put a tmpfs at /sys/fs/cgroup and
		// one mount per controller under it.
		okType := m.fsType == want.Type ||
			(want.Type == "cgroup" && (m.fsType == "tmpfs" || m.fsType == "cgroup2"))
		if !okType {
			t.Errorf("%s: type %s, want %s", want.Destination, m.fsType, want.Type)
		}
		check := []mountInfo{m}
		if want.Type == "cgroup" && m.fsType == "tmpfs" {
			// The v1 layout: the options hold for each controller's mount
			// (the tmpfs holding them is the runtime's scaffolding).
			check = nil
			for _, c := range ms {
				if strings.HasPrefix(c.mountPoint, want.Destination+"/") && c.fsType == "cgroup" {
					check = append(check, c)
				}
			}
			if len(check) == 0 {
				t.Errorf("%s: a tmpfs without cgroup controllers under it", want.Destination)
			}
		}
		for _, c := range check {
			for _, o := range want.Options {
				if (o == "ro" || o == "nosuid" || o == "nodev" || o == "noexec") && !hasOpt(c.options, o) {
					t.Errorf("%s: options %q lack %s", c.mountPoint, c.options, o)
				}
			}
		}
	}
	r.stop(s.id)
}
