package container_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
)

func u32(v uint32) *uint32 { return &v }
func i64(v int64) *int64   { return &v }

// TestFeatures runs one container per feature of config.json and checks
// the effect from inside (what the container prints) and from outside
// (the host's view of the created container's init).
func TestFeatures(t *testing.T) {
	r := newRT(t)
	hostDir := t.TempDir()
	os.WriteFile(filepath.Join(hostDir, "hostfile"), []byte("from-host\n"), 0o644)
	tests := []struct {
		name    string
		script  string
		mod     func(t *testing.T, s *specs.Spec)
		inside  []string // substrings of the output
		absent  []string // must not be in the output
		outside func(t *testing.T, pid int)
	}{
		{
			name:   "namespaces new",
			script: "readlink /proc/self/ns/net; echo pid=$$",
			inside: []string{"pid=1"},
			outside: func(t *testing.T, pid int) {
				for _, ns := range []string{"pid", "net", "ipc", "uts", "mnt"} {
					if nsLink(t, pid, ns) == nsLink(t, 0, ns) {
						t.Errorf("%s namespace is the host's", ns)
					}
				}
				if nsLink(t, pid, "user") != nsLink(t, 0, "user") {
					t.Errorf("user namespace is new but the spec has none")
				}
			},
		},
		{
			name:   "hostname and domainname",
			script: "hostname; cat /proc/sys/kernel/domainname",
			mod: func(t *testing.T, s *specs.Spec) {
				s.Hostname = "box1"
				s.Domainname = "example.org"
			},
			inside: []string{"box1\nexample.org\n"},
			outside: func(t *testing.T, pid int) {
				h, _ := os.Hostname()
				if h == "box1" {
					t.Error("host's hostname changed")
				}
			},
		},
		{
			name:   "process user groups umask cwd env",
			script: "id; umask; pwd; echo FOO=$FOO HOME=$HOME",
			mod: func(t *testing.T, s *specs.Spec) {
				s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1001, 5}, Umask: u32(0o027)}
				s.Process.Cwd = "/tmp"
				s.Process.Env = append(s.Process.Env, "FOO=bar")
			},
			inside: []string{"uid=1000(user) gid=1000(user) groups=5(tty),1001(extra)", "0027", "/tmp\n", "FOO=bar HOME=/home"},
			outside: func(t *testing.T, pid int) {
				// The init is still the runtime (root) until start.
				if st := readFile(t, fmt.Sprintf("/proc/%d/status", pid)); !strings.Contains(st, "Uid:\t1000\t1000\t1000\t1000") {
					t.Errorf("init not switched to uid 1000 before start:\n%s", st)
				}
			},
		},
		{
			name:   "capabilities",
			script: "grep ^Cap /proc/self/status",
			mod: func(t *testing.T, s *specs.Spec) {
				c := []string{"CAP_CHOWN", "CAP_KILL"}
				s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: c, Effective: c, Permitted: c}
			},
			// CAP_CHOWN=0, CAP_KILL=5: 0x21.
			inside: []string{"CapPrm:\t0000000000000021", "CapEff:\t0000000000000021", "CapBnd:\t0000000000000021", "CapAmb:\t0000000000000000"},
			outside: func(t *testing.T, pid int) {
				if st := readFile(t, fmt.Sprintf("/proc/%d/status", pid)); !strings.Contains(st, "CapBnd:\t0000000000000021") {
					t.Errorf("host view: bounding set not applied:\n%s", st)
				}
			},
		},
		{
			name:   "rlimits no_new_privs oom_score_adj",
			script: "ulimit -n; ulimit -Hn; grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj",
			mod: func(t *testing.T, s *specs.Spec) {
				s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 700}}
				s.Process.NoNewPrivileges = true
				adj := 321
				s.Process.OOMScoreAdj = &adj
			},
			inside: []string{"512\n700\n", "NoNewPrivs:\t1", "321"},
			outside: func(t *testing.T, pid int) {
				if got := strings.TrimSpace(readFile(t, fmt.Sprintf("/proc/%d/oom_score_adj", pid))); got != "321" {
					t.Errorf("oom_score_adj = %s", got)
				}
				if lim := readFile(t, fmt.Sprintf("/proc/%d/limits", pid)); !strings.Contains(lim, "Max open files            512                  700") {
					t.Errorf("limits:\n%s", lim)
				}
			},
		},
		{
			name:   "readonly root",
			script: "touch /newfile 2>&1; touch /tmp/x 2>&1 || echo tmp-readonly",
			mod: func(t *testing.T, s *specs.Spec) {
				s.Root.Readonly = true
			},
			inside: []string{"Read-only file system"},
			outside: func(t *testing.T, pid int) {
				if mi := mountOf(t, pid, "/"); !strings.Contains(mi, " ro") {
					t.Errorf("/ is not read-only: %s", mi)
				}
			},
		},
		{
			name:   "mounts tmpfs bind ro",
			script: "cat /mnt/b/hostfile; echo x > /mnt/b/new 2>&1; grep ' /mnt/t ' /proc/self/mountinfo; echo y > /mnt/t/f && cat /mnt/t/f",
			mod: func(t *testing.T, s *specs.Spec) {
				s.Mounts = append(s.Mounts,
					specs.Mount{Destination: "/mnt/t", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m", "mode=700", "nosuid"}},
					specs.Mount{Destination: "/mnt/b", Type: "bind", Source: hostDir, Options: []string{"rbind", "ro", "rprivate"}},
				)
			},
			inside: []string{"from-host", "Read-only file system", "tmpfs", "y\n"},
			outside: func(t *testing.T, pid int) {
				if mi := mountOf(t, pid, "/mnt/b"); !strings.Contains(mi, " ro,") {
					t.Errorf("/mnt/b: %s", mi)
				}
				if mi := mountOf(t, pid, "/mnt/t"); !strings.Contains(mi, "tmpfs") || !strings.Contains(mi, "size=1024k") {
					t.Errorf("/mnt/t: %s", mi)
				}
				if _, err := os.Stat(filepath.Join(hostDir, "new")); err == nil {
					t.Error("the container wrote through a read-only bind")
				}
			},
		},
		{
			name:   "masked and readonly paths",
			script: "cat /proc/timer_list | wc -c; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname 2>&1",
			inside: []string{"0\n0\n", "Read-only file system"},
			outside: func(t *testing.T, pid int) {
				if mi := mountOf(t, pid, "/proc/timer_list"); !strings.Contains(mi, "/null") {
					t.Errorf("/proc/timer_list not masked: %s", mi)
				}
				if mi := mountOf(t, pid, "/proc/sys"); !strings.Contains(mi, " ro,") {
					t.Errorf("/proc/sys not read-only: %s", mi)
				}
			},
		},
		{
			name:   "devices and links",
			script: "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/mydev; for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; head -c 4 /dev/zero | wc -c",
			mod: func(t *testing.T, s *specs.Spec) {
				fm := os.FileMode(0o640)
				s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/mydev", Type: "c", Major: 1, Minor: 3, FileMode: &fm, UID: u32(1000), GID: u32(1000)}}
			},
			inside: []string{
				"crw-rw-rw-    1 root     root        1,   3", "crw-r-----    1 user     user        1,   3 ",
				"/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\npts/ptmx\n", "4\n",
			},
		},
		{
			name:   "sysctl",
			script: "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni",
			mod: func(t *testing.T, s *specs.Spec) {
				s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}
			},
			inside: []string{"1\n1234\n"},
			outside: func(t *testing.T, pid int) {
				if got := strings.TrimSpace(readFile(t, "/proc/sys/kernel/shmmni")); got == "1234" {
					t.Error("the host's kernel.shmmni changed")
				}
			},
		},
		{
			name:   "cgroup limits",
			script: "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max",
			mod: func(t *testing.T, s *specs.Spec) {
				s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(64 << 20)}
				s.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64(77)}
			},
			inside: []string{"67108864\n77\n"},
			outside: func(t *testing.T, pid int) {
				cg := cgroupOf(t, pid, "memory")
				if got := strings.TrimSpace(readFile(t, "/sys/fs/cgroup/memory"+cg+"/memory.limit_in_bytes")); got != "67108864" {
					t.Errorf("memory.limit_in_bytes = %s (cgroup %s)", got, cg)
				}
			},
		},
		{
			name:   "seccomp",
			script: "mkdir /tmp/d 2>&1; echo done",
			mod: func(t *testing.T, s *specs.Spec) {
				s.Linux.Seccomp = &specs.LinuxSeccomp{
					DefaultAction: specs.ActAllow,
					Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: func() *uint { v := uint(1); return &v }()}},
				}
			},
			inside: []string{"Operation not permitted", "done"},
			outside: func(t *testing.T, pid int) {
				// Seccomp is loaded just before execve: not yet at created.
				if st := readFile(t, fmt.Sprintf("/proc/%d/status", pid)); !strings.Contains(st, "Seccomp:\t0") {
					t.Errorf("filter loaded before start:\n%s", st)
				}
			},
		},
		{
			name:   "scheduler ioprio personality",
			script: "cat /proc/self/personality; uname -m",
			mod: func(t *testing.T, s *specs.Spec) {
				s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Nice: 7}
				s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 6}
				s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
			},
			inside: []string{"00000008", "i686"},
			outside: func(t *testing.T, pid int) {
				f := strings.Fields(readFile(t, fmt.Sprintf("/proc/%d/stat", pid)))
				if f[18] != "7" || f[40] != "3" {
					t.Errorf("nice %s policy %s, want 7 and 3", f[18], f[40])
				}
			},
		},
		{
			name:   "rootfs propagation shared",
			script: "awk '$5==\"/\"' /proc/self/mountinfo",
			mod: func(t *testing.T, s *specs.Spec) {
				s.Linux.RootfsPropagation = "shared"
			},
			inside: []string{"shared:"},
		},
		{
			name:   "bind propagation and recursive read-only",
			script: "awk '$5==\"/mnt/s\" || $5==\"/mnt/r\" {print $5, $6, $7}' /proc/self/mountinfo",
			mod: func(t *testing.T, s *specs.Spec) {
				s.Mounts = append(s.Mounts,
					specs.Mount{Destination: "/mnt/s", Type: "bind", Source: hostDir, Options: []string{"rbind", "rshared"}},
					specs.Mount{Destination: "/mnt/r", Type: "bind", Source: hostDir, Options: []string{"rbind", "rro"}},
				)
			},
			inside: []string{"/mnt/s rw,relatime shared:", "/mnt/r ro,"},
			outside: func(t *testing.T, pid int) {
				if mi := mountOf(t, pid, "/mnt/s"); !strings.Contains(mi, "shared:") {
					t.Errorf("/mnt/s not shared: %s", mi)
				}
			},
		},
		{
			name:   "default filesystems",
			script: "cat /proc/self/mounts",
			inside: []string{
				"proc /proc proc rw,nosuid,nodev,noexec", "devpts /dev/pts devpts rw,nosuid,noexec", "mqueue /dev/mqueue mqueue",
				"sysfs /sys sysfs ro,nosuid,nodev,noexec", "shm /dev/shm tmpfs rw,nosuid,nodev,noexec",
				"/sys/fs/cgroup/memory cgroup ro,nosuid,nodev,noexec",
			},
		},
		{
			name:   "cgroup namespace",
			script: "grep memory /proc/self/cgroup",
			mod: func(t *testing.T, s *specs.Spec) {
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
			},
			inside: []string{":memory:/\n"},
			outside: func(t *testing.T, pid int) {
				if nsLink(t, pid, "cgroup") == nsLink(t, 0, "cgroup") {
					t.Error("cgroup namespace is the host's")
				}
				if cg := cgroupOf(t, pid, "memory"); cg == "/" {
					t.Error("the init is in the root memory cgroup")
				}
			},
		},
		{
			name:   "no pivot",
			script: "ls /; cat /proc/self/mountinfo | wc -l",
			inside: []string{"bin"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := testutil.NewBundle(t, "sh", "-c", tt.script)
			if tt.mod != nil {
				tt.mod(t, b.Spec)
			}
			if err := b.Save(); err != nil {
				t.Fatal(err)
			}
			var extra []string
			if tt.name == "no pivot" {
				extra = append(extra, "--no-pivot")
			}
			c := r.mustCreate(b, extra...)
			if tt.outside != nil {
				tt.outside(t, c.pid)
			}
			out := r.output(c)
			for _, w := range tt.inside {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.absent {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
			r.must("delete", c.id)
		})
	}
}

// mountOf returns the mountinfo line of the top mount at target in pid's
// mount namespace.
func mountOf(t *testing.T, pid int, target string) string {
	t.Helper()
	var last string
	for _, l := range strings.Split(readFile(t, fmt.Sprintf("/proc/%d/mountinfo", pid)), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[4] == target {
			last = l
		}
	}
	if last == "" {
		t.Fatalf("no mount at %s in %d's namespace", target, pid)
	}
	return last
}

// cgroupOf is pid's cgroup path in the v1 hierarchy of controller.
func cgroupOf(t *testing.T, pid int, controller string) string {
	t.Helper()
	for _, l := range strings.Split(readFile(t, fmt.Sprintf("/proc/%d/cgroup", pid)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) == 3 {
			for _, c := range strings.Split(parts[1], ",") {
				if c == controller {
					return parts[2]
				}
			}
		}
	}
	t.Fatalf("pid %d has no %s cgroup", pid, controller)
	return ""
}

func TestJoinNamespaces(t *testing.T) {
	r := newRT(t)
	// A holder process with its own net and uts namespaces.
	holder := exec.Command("unshare", "--net", "--uts", "sh", "-c", "hostname holder; exec sleep 100")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	hp := holder.Process.Pid
	for i := 0; i < 200 && nsLink(t, hp, "uts") == nsLink(t, 0, "uts"); i++ {
		exec.Command("sleep", "0.01").Run()
	}
	b := testutil.NewBundle(t, "sh", "-c", "hostname; readlink /proc/self/ns/net")
	for i, n := range b.Spec.Linux.Namespaces {
		switch n.Type {
		case specs.NetworkNamespace:
			b.Spec.Linux.Namespaces[i].Path = "/proc/" + strconv.Itoa(hp) + "/ns/net"
		case specs.UTSNamespace:
			b.Spec.Linux.Namespaces[i].Path = "/proc/" + strconv.Itoa(hp) + "/ns/uts"
		}
	}
	b.Spec.Hostname = ""
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	c := r.mustCreate(b)
	for _, ns := range []string{"net", "uts"} {
		if nsLink(t, c.pid, ns) != nsLink(t, hp, ns) {
			t.Errorf("%s namespace not joined", ns)
		}
	}
	for _, ns := range []string{"pid", "mnt", "ipc"} {
		if nsLink(t, c.pid, ns) == nsLink(t, 0, ns) {
			t.Errorf("%s namespace not new", ns)
		}
	}
	out := r.output(c)
	if !strings.Contains(out, "holder\n"+nsLink(t, hp, "net")) {
		t.Errorf("inside: %q", out)
	}
	r.must("delete", c.id)
}

func TestUserNamespace(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t, "sh", "-c", "id -u; cat /proc/self/uid_map; cat /bin/busybox >/dev/null && echo readable")
	// The mapped root must reach the rootfs: t.TempDir makes 0700 dirs.
	for d := b.Dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	c := r.mustCreate(b)
	if st := readFile(t, fmt.Sprintf("/proc/%d/status", c.pid)); !strings.Contains(st, "Uid:\t100000") {
		t.Errorf("host uid of the init:\n%s", st)
	}
	if m := readFile(t, fmt.Sprintf("/proc/%d/uid_map", c.pid)); !strings.Contains(m, "100000") {
		t.Errorf("uid_map %q", m)
	}
	out := r.output(c)
	if !strings.Contains(out, "0\n") || !strings.Contains(out, "100000") || !strings.Contains(out, "readable") {
		t.Errorf("inside: %q", out)
	}
	r.must("delete", c.id)
}

func TestNetDevices(t *testing.T) {
	r := newRT(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2) to make a veth pair")
	}
	// One end of a veth pair moves in; deleting the other deletes both.
	dev := fmt.Sprintf("hr%da", os.Getpid()%100000)
	peer := strings.TrimSuffix(dev, "a") + "b"
	if out, err := exec.Command("ip", "link", "add", dev, "type", "veth", "peer", "name", peer).CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", peer).Run() })
	if out, err := exec.Command("ip", "addr", "add", "10.251.9.1/24", "dev", dev).CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v: %s", err, out)
	}
	b := testutil.NewBundle(t, "sh", "-c", "cat /sys/class/net/ctr0/flags; ip -4 addr show ctr0 2>/dev/null || cat /proc/net/fib_trie")
	b.Spec.Linux.NetDevices = map[string]specs.LinuxNetDevice{dev: {Name: "ctr0"}}
	b.Save()
	c := r.mustCreate(b)
	if _, err := os.Stat("/sys/class/net/" + dev); err == nil {
		t.Errorf("%s is still in the host's namespace", dev)
	}
	out := r.output(c)
	var flags int
	fmt.Sscanf(out, "0x%x", &flags)
	if flags&1 == 0 || !strings.Contains(out, "10.251.9.1") {
		t.Errorf("inside: %q, want ctr0 up with 10.251.9.1", out)
	}
	r.must("delete", c.id)
}
