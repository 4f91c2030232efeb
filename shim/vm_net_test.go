package shim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/vm/guest/guesttest"
	"github.com/hullproject/hull/vm/initramfs"
	"github.com/hullproject/hull/vm/vmtest"
)

// These tests run containers in real QEMU guests (TCG here) through the vm
// backend, as the task service does.

// vmTestBackend returns a vm backend booting Hull's kernel with an agent
// initramfs built from this tree into the test's temporary directory
// (vmtest's own would outlive the test binary: this package's TestMain is
// the shim tests').
func vmTestBackend(t *testing.T) *VMBackend {
	return vmTestBackendOn(t, false)
}

// vmTestBackendOn is vmTestBackend on Hull's kernel, or on Debian's cloud
// kernel with its modules in the initramfs.
func vmTestBackendOn(t *testing.T, cloud bool) *VMBackend {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	var kernel string
	var mods []initramfs.Module
	if cloud {
		guesttest.RequireQEMU(t)
		m := guesttest.CloudKernel(t)
		kernel, mods = m.Path(m.BzImage.Path), guesttest.CloudModules(m)
	} else {
		kernel = vmtest.Kernel(t)
	}
	dir := t.TempDir()
	agentBin := filepath.Join(dir, "hull-agent")
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "netgo,osusergo",
		"-ldflags", "-s -w -linkmode external -extldflags -static",
		"-o", agentBin, "github.com/hullproject/hull/cmd/hull-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hull-agent: %v: %s", err, out)
	}
	rd := filepath.Join(dir, "agent.cpio")
	if err := initramfs.WriteFile(rd, initramfs.Spec{Init: agentBin, Modules: mods}); err != nil {
		t.Fatal(err)
	}
	return &VMBackend{
		cfg:   &vmConfig{Kernel: kernel, Initrd: rd, Accel: "tcg", MemoryMiB: 256, BootTimeout: 90 * time.Second},
		procs: map[string]*vmProc{},
	}
}

// vmRun is a vm backend with one container, its output in files.
type vmRun struct {
	t    *testing.T
	b    *VMBackend
	proc specs.Process // the bundle's process: execs run with its user and capabilities
	dir  string
	n    int
}

// vmCreate creates the bundle's container and starts it.
func vmCreate(t *testing.T, b *VMBackend, bundle *testutil.Bundle) (*vmRun, error) {
	t.Helper()
	r := &vmRun{t: t, b: b, proc: *bundle.Spec.Process, dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id := fmt.Sprintf("vmnet%d", time.Now().UnixNano()%1000000)
	_, err := b.Create(ctx, &CreateConfig{ID: id, Bundle: bundle.Dir, Stdio: Stdio{
		Stdout: filepath.Join(r.dir, "init.out"), Stderr: filepath.Join(r.dir, "init.out"),
	}})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = b.Delete(context.Background()) })
	if _, err := b.Start(ctx, ""); err != nil {
		t.Fatalf("start: %v", err)
	}
	return r, nil
}

// exec runs args in the container and returns its output and exit status.
func (r *vmRun) exec(args ...string) (string, int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r.n++
	id := fmt.Sprintf("e%d", r.n)
	out := filepath.Join(r.dir, id+".out")
	p := r.proc
	p.Args = args
	if err := r.b.Exec(ctx, id, &ExecConfig{Spec: &p, Stdio: Stdio{Stdout: out, Stderr: out}}); err != nil {
		r.t.Fatalf("exec %v: %v", args, err)
	}
	if _, err := r.b.Start(ctx, id); err != nil {
		r.t.Fatalf("start exec %v: %v", args, err)
	}
	e, err := r.b.Wait(ctx, id)
	if err != nil {
		r.t.Fatalf("wait exec %v: %v", args, err)
	}
	_ = r.b.DeleteProcess(ctx, id)
	data, _ := os.ReadFile(out)
	return string(data), e.Status
}

// stop kills the init, waits for it and deletes the container.
func (r *vmRun) stop() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = r.b.Kill(ctx, "", syscall.SIGKILL, false)
	if _, err := r.b.Wait(ctx, ""); err != nil {
		r.t.Errorf("wait init: %v", err)
	}
	if err := r.b.Delete(ctx); err != nil {
		r.t.Errorf("delete: %v", err)
	}
}

// testNetNS is a named network namespace with a veth whose other end is in
// the host with an address, as CNI's bridge plugin leaves a container.
type testNetNS struct {
	name, path, hostIf string
	hostIP, ctrIP      string
	mtu                int
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newTestNetNS(t *testing.T) *testNetNS {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	k := os.Getpid()%200 + 20
	n := &testNetNS{
		name: fmt.Sprintf("hullvmnet%d", os.Getpid()), hostIf: fmt.Sprintf("hvh%d", os.Getpid()),
		hostIP: fmt.Sprintf("10.251.%d.1", k), ctrIP: fmt.Sprintf("10.251.%d.2", k), mtu: 1400,
	}
	n.path = "/var/run/netns/" + n.name
	ipCmd(t, "netns", "add", n.name)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", n.hostIf).Run()
		_ = exec.Command("ip", "netns", "del", n.name).Run()
	})
	ipCmd(t, "link", "add", n.hostIf, "mtu", fmt.Sprint(n.mtu), "type", "veth", "peer", "name", "eth0", "mtu", fmt.Sprint(n.mtu), "netns", n.name)
	ipCmd(t, "addr", "add", n.hostIP+"/24", "dev", n.hostIf)
	ipCmd(t, "link", "set", n.hostIf, "up")
	ipCmd(t, "-n", n.name, "addr", "add", n.ctrIP+"/24", "dev", "eth0")
	ipCmd(t, "-n", n.name, "link", "set", "eth0", "up")
	ipCmd(t, "-n", n.name, "link", "set", "lo", "up")
	ipCmd(t, "-n", n.name, "route", "add", "default", "via", n.hostIP)
	return n
}

func (n *testNetNS) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v: %s", n.name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestVMNetwork: a vm container takes over its network namespace's veth.
// From inside, the host end answers ping and a TCP fetch; from the host, a
// server in the container answers; the guest's eth0 has the veth's address
// and MTU. After delete the tap and the qdiscs are gone from the namespace,
// which stays, and no QEMU or virtiofsd is left.
func TestVMNetwork(t *testing.T) {
	for _, k := range []struct {
		name  string
		cloud bool
	}{{"hull kernel", false}, {"cloud kernel", true}} {
		t.Run(k.name, func(t *testing.T) { testVMNetwork(t, vmTestBackendOn(t, k.cloud)) })
	}
}

func testVMNetwork(t *testing.T, b *VMBackend) {
	n := newTestNetNS(t)

	// A host TCP listener on the host end of the veth.
	ln, err := net.Listen("tcp", n.hostIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 16\r\n\r\nhello-from-host\n")
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	bundle := testutil.NewBundle(t, "sh", "-c", "mkdir -p /www && echo hello-from-vm > /www/index.html && exec httpd -f -p 8080 -h /www")
	bundle.Spec.Linux.Namespaces = setNetNS(bundle.Spec.Linux.Namespaces, n.path)
	withNetRaw(bundle)
	if err := bundle.Save(); err != nil {
		t.Fatal(err)
	}
	r, err := vmCreate(t, b, bundle)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if taps := n.run(t, "ip", "-o", "link", "show", "type", "tun"); !strings.Contains(taps, "tap0"+tapSuffix) {
		t.Errorf("no tap in the namespace while the vm runs: %q", taps)
	}
	// Few execs per VM: see the request about runtime/container's fds.
	out, st := r.exec("sh", "-c", "cat /sys/class/net/eth0/mtu; ip -o -4 addr show dev eth0; ip route; ls /sys/class/net")
	if st != 0 {
		t.Fatalf("guest network info: status %d: %s", st, out)
	}
	if !strings.HasPrefix(out, fmt.Sprintf("%d\n", n.mtu)) {
		t.Errorf("guest eth0 MTU is not the veth's %d:\n%s", n.mtu, out)
	}
	if !strings.Contains(out, n.ctrIP+"/24") {
		t.Errorf("guest eth0 lacks the veth's address %s/24:\n%s", n.ctrIP, out)
	}
	if !strings.Contains(out, "default via "+n.hostIP+" dev eth0") {
		t.Errorf("guest routes lack the default via %s:\n%s", n.hostIP, out)
	}
	if !strings.HasSuffix(out, "eth0\nlo\n") {
		t.Errorf("guest interfaces are not eth0 and lo:\n%s", out)
	}
	if out, st := r.exec("ping", "-c", "1", "-W", "10", n.hostIP); st != 0 {
		t.Errorf("ping %s from the container: status %d: %s", n.hostIP, st, out)
	}
	if out, st := r.exec("wget", "-q", "-O", "-", fmt.Sprintf("http://%s:%d/", n.hostIP, port)); st != 0 || out != "hello-from-host\n" {
		t.Errorf("fetch from the host listener: status %d: %q", st, out)
	}
	// Host to container: busybox httpd in the guest.
	cl := &http.Client{Timeout: 10 * time.Second}
	var body string
	for i := 0; i < 30; i++ {
		resp, err := cl.Get(fmt.Sprintf("http://%s:8080/", n.ctrIP))
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(data)
			break
		}
		time.Sleep(time.Second)
	}
	if body != "hello-from-vm\n" {
		t.Errorf("GET from the host: %q", body)
	}
	r.stop()
	vmtest.NoStrays(t)
	if _, err := os.Stat(n.path); err != nil {
		t.Errorf("the network namespace went with the container: %v", err)
	}
	if out := n.run(t, "ip", "-o", "link", "show"); strings.Contains(out, tapSuffix) {
		t.Errorf("tap left in the namespace:\n%s", out)
	}
	if out := n.run(t, "tc", "qdisc", "show", "dev", "eth0", "ingress"); strings.TrimSpace(out) != "" {
		t.Errorf("ingress qdisc left on eth0: %q", out)
	}
}

// TestVMNetworkNone: a new network namespace (--net none) has only lo, and
// a spec without one (host networking) is refused before anything starts.
func TestVMNetworkNone(t *testing.T) {
	b := vmTestBackend(t)
	bundle := testutil.NewBundle(t, "sleep", "600")
	withNetRaw(bundle)
	if err := bundle.Save(); err != nil {
		t.Fatal(err)
	}
	r, err := vmCreate(t, b, bundle)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if out, _ := r.exec("sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/operstate; ping -c 1 -W 10 127.0.0.1 >/dev/null && echo lo-answers"); out != "lo\nunknown\nlo-answers\n" {
		t.Errorf("--net none: %q, want only lo, up", out)
	}
	r.stop()

	host := testutil.NewBundle(t, "true")
	host.Spec.Linux.Namespaces = setNetNS(host.Spec.Linux.Namespaces, "-")
	if err := host.Save(); err != nil {
		t.Fatal(err)
	}
	hb := &VMBackend{cfg: b.cfg, procs: map[string]*vmProc{}}
	_, err = hb.Create(context.Background(), &CreateConfig{ID: "vmhostnet", Bundle: host.Dir})
	if !errors.Is(err, ErrHostNetwork) || !strings.Contains(err.Error(), "host") {
		t.Fatalf("create with the host network: %v, want ErrHostNetwork", err)
	}
	vmtest.NoStrays(t)
	if _, err := os.Stat(filepath.Join(host.Dir, "vm")); err == nil {
		t.Error("vm state dir left after the refused create")
	}
}

// withNetRaw gives the bundle's process CAP_NET_RAW (ping), as Docker's
// default set does.
func withNetRaw(b *testutil.Bundle) {
	c := b.Spec.Process.Capabilities
	c.Bounding = append(c.Bounding, "CAP_NET_RAW")
	c.Effective = append(c.Effective, "CAP_NET_RAW")
	c.Permitted = append(c.Permitted, "CAP_NET_RAW")
}

// setNetNS sets the network namespace's path; "-" removes it (host
// network).
func setNetNS(nss []specs.LinuxNamespace, path string) []specs.LinuxNamespace {
	var out []specs.LinuxNamespace
	for _, n := range nss {
		if n.Type != specs.NetworkNamespace {
			out = append(out, n)
		}
	}
	if path != "-" {
		out = append(out, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: path})
	}
	return out
}

// TestVMBindMounts: a host directory (rw) and host files (one rw, one ro)
// bind-mounted into a vm container: read and written from inside, the
// writes seen on the host, the ro one refused; the host's mount table never
// holds the binds and nothing is left after delete.
func TestVMBindMounts(t *testing.T) {
	b := vmTestBackend(t)
	host := t.TempDir()
	vol := filepath.Join(host, "vol")
	rwFile := filepath.Join(host, "rw.txt")
	roFile := filepath.Join(host, "ro.txt")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	for p, c := range map[string]string{filepath.Join(vol, "in.txt"): "from-host-dir\n", rwFile: "rw-file\n", roFile: "ro-file\n"} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bundle := testutil.NewBundle(t, "sleep", "600")
	bundle.Spec.Mounts = append(bundle.Spec.Mounts,
		specs.Mount{Destination: "/data", Type: "bind", Source: vol, Options: []string{"rbind", "rw"}},
		specs.Mount{Destination: "/etc/rw.txt", Type: "bind", Source: rwFile, Options: []string{"bind", "rw"}},
		specs.Mount{Destination: "/etc/ro.txt", Type: "bind", Source: roFile, Options: []string{"bind", "ro"}},
	)
	if err := bundle.Save(); err != nil {
		t.Fatal(err)
	}
	r, err := vmCreate(t, b, bundle)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if mountTableMentions(host) {
		t.Error("a bind of the vm container is in the host's mount table")
	}
	if out, st := r.exec("cat", "/data/in.txt", "/etc/rw.txt", "/etc/ro.txt"); st != 0 || out != "from-host-dir\nrw-file\nro-file\n" {
		t.Errorf("read the binds: status %d: %q", st, out)
	}
	if out, st := r.exec("sh", "-c", "echo from-guest > /data/out.txt && echo appended >> /etc/rw.txt"); st != 0 {
		t.Errorf("write the rw binds: status %d: %s", st, out)
	}
	if out, st := r.exec("sh", "-c", "echo no >> /etc/ro.txt"); st == 0 {
		t.Errorf("wrote the ro bind: %s", out)
	}
	if data, _ := os.ReadFile(filepath.Join(vol, "out.txt")); string(data) != "from-guest\n" {
		t.Errorf("host sees %q in the volume, want the guest's write", data)
	}
	if data, _ := os.ReadFile(rwFile); string(data) != "rw-file\nappended\n" {
		t.Errorf("host file %q, want the guest's append", data)
	}
	if data, _ := os.ReadFile(roFile); string(data) != "ro-file\n" {
		t.Errorf("ro host file changed: %q", data)
	}
	r.stop()
	vmtest.NoStrays(t)
	if _, err := os.Stat(filepath.Join(bundle.Dir, "vm")); err == nil {
		t.Error("vm state dir left after delete")
	}
	if mountTableMentions(bundle.Dir) {
		t.Error("mounts left under the bundle")
	}
}

// mountTableMentions says whether a mount in this process's mount table
// has its source path or mount point under dir.
func mountTableMentions(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) > 4 && (strings.HasPrefix(fl[3], dir) || strings.HasPrefix(fl[4], dir)) {
			return true
		}
	}
	return false
}

// netnsState is what a namespace holds that the vm network touches: links
// (name and kind), qdiscs and routes.
func (n *testNetNS) state(t *testing.T) string {
	t.Helper()
	links := n.run(t, "ip", "-o", "link", "show")
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(links), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, f[1])
		}
	}
	addrs := strings.ReplaceAll(n.run(t, "ip", "addr"), " tentative", "") // IPv6 DAD ends meanwhile
	return strings.Join(names, " ") + "\n" + n.run(t, "tc", "qdisc", "show") + addrs + n.run(t, "ip", "route")
}

// TestVMNetworkCycles: taking over a namespace's veth and giving it back,
// 100 times, leaves the namespace as it was (no tap, no qdisc; addresses
// and routes untouched), and the taps are mirrored to the veth meanwhile.
func TestVMNetworkCycles(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNetNS(t)
	before := n.state(t)
	for i := 0; i < 100; i++ {
		vn, err := setupVMNetwork(n.path, i%2 == 1)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if i == 0 {
			if got := vn.devices(); len(got) != 1 || got[0].TapName != "tap0"+tapSuffix || got[0].MTU != n.mtu || got[0].Tap == nil {
				t.Fatalf("devices %+v", got)
			}
			req := vn.request()
			if len(req.Interfaces) != 1 || req.Interfaces[0].Name != "eth0" || fmt.Sprint(req.Interfaces[0].Addresses) != "["+n.ctrIP+"/24]" {
				t.Fatalf("interfaces %+v", req.Interfaces)
			}
			if len(req.Routes) != 1 || req.Routes[0].Gateway != n.hostIP || req.Routes[0].Destination != "" {
				t.Fatalf("routes %+v (want only the default via %s: the subnet's comes with the address)", req.Routes, n.hostIP)
			}
			filters := n.run(t, "tc", "filter", "show", "dev", "eth0", "ingress") + n.run(t, "tc", "filter", "show", "dev", "tap0"+tapSuffix, "ingress")
			if !strings.Contains(filters, "Egress Redirect to device tap0"+tapSuffix) || !strings.Contains(filters, "Egress Redirect to device eth0") {
				t.Fatalf("filters:\n%s", filters)
			}
		}
		if err := vn.teardown(); err != nil {
			t.Fatalf("cycle %d teardown: %v", i, err)
		}
	}
	if after := n.state(t); after != before {
		t.Fatalf("namespace changed:\n%s\nwas:\n%s", after, before)
	}
}

// TestVMNetworkHalfway: a take-over that fails halfway (an ingress qdisc
// of someone else's on the veth) leaves what was there and removes its
// tap; a create that fails after the network was set up (no kernel)
// leaves the namespace as it was, with no VM.
func TestVMNetworkHalfway(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	n := newTestNetNS(t)
	before := n.state(t)
	n.run(t, "tc", "qdisc", "add", "dev", "eth0", "ingress")
	withQdisc := n.state(t)
	if _, err := setupVMNetwork(n.path, false); err == nil || !strings.Contains(err.Error(), "already there") {
		t.Fatalf("take-over with a foreign ingress qdisc: %v", err)
	}
	if after := n.state(t); after != withQdisc {
		t.Fatalf("namespace after the failed take-over:\n%s\nwas:\n%s", after, withQdisc)
	}
	n.run(t, "tc", "qdisc", "del", "dev", "eth0", "ingress")

	bundle := testutil.NewBundle(t, "true")
	bundle.Spec.Linux.Namespaces = setNetNS(bundle.Spec.Linux.Namespaces, n.path)
	if err := bundle.Save(); err != nil {
		t.Fatal(err)
	}
	b := &VMBackend{cfg: &vmConfig{Kernel: filepath.Join(t.TempDir(), "no-kernel"), Accel: "tcg"}, procs: map[string]*vmProc{}}
	_, err := b.Create(context.Background(), &CreateConfig{ID: "vmhalfway", Bundle: bundle.Dir})
	if err == nil || !strings.Contains(err.Error(), "no-kernel") {
		t.Fatalf("create without a kernel: %v", err)
	}
	vmtest.NoStrays(t)
	if after := n.state(t); after != before {
		t.Fatalf("namespace after the failed create:\n%s\nwas:\n%s", after, before)
	}
	if _, err := os.Stat(filepath.Join(bundle.Dir, "vm")); err == nil {
		t.Error("vm state dir left after the failed create")
	}
}

// TestVMPauseResume: pausing a vm container freezes its VM (QEMU reports
// it paused), resuming lets it go on: a counter the container keeps
// (replaced atomically, so a read never sees it half written) advances.
func TestVMPauseResume(t *testing.T) {
	b := vmTestBackend(t)
	bundle := testutil.NewBundle(t, "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n.t; mv /tmp/n.t /tmp/n; sleep 0.05; done")
	r, err := vmCreate(t, b, bundle)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	// The counter exists once the loop ran once.
	for i := 0; i < 50; i++ {
		if out, _ := r.exec("cat", "/tmp/n"); strings.TrimSpace(out) != "" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx := context.Background()
	if err := b.Pause(ctx); err != nil {
		t.Fatalf("pause: %v", err)
	}
	// The agent does not answer while paused; QEMU's state says so.
	if st := qmpStatus(t, b); st != "paused" {
		t.Errorf("VM status while paused: %q", st)
	}
	if err := b.Resume(ctx); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if st := qmpStatus(t, b); st != "running" {
		t.Errorf("VM status after resume: %q", st)
	}
	out1, _ := r.exec("cat", "/tmp/n")
	time.Sleep(300 * time.Millisecond)
	out2, _ := r.exec("cat", "/tmp/n")
	if out1 == out2 || strings.TrimSpace(out1) == "" {
		t.Errorf("the container does not run after resume: %q then %q", out1, out2)
	}
	r.stop()
	vmtest.NoStrays(t)
}

// qmpStatus is the VM's run state as QEMU reports it (QMP query-status).
func qmpStatus(t *testing.T, b *VMBackend) string {
	t.Helper()
	q, ok := b.sb.Hypervisor.(interface {
		Status(context.Context) (string, error)
	})
	if !ok {
		t.Fatalf("%T reports no status", b.sb.Hypervisor)
	}
	st, err := q.Status(context.Background())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

// TestVMNetworkNamespaceGone: a spec naming a namespace that is not there
// is an error naming it; a teardown after the namespace went (or another
// took its path) touches nothing.
func TestVMNetworkNamespaceGone(t *testing.T) {
	testutil.RequireRoot(t)
	missing := filepath.Join(t.TempDir(), "nons")
	if _, err := setupVMNetwork(missing, false); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing namespace: %v", err)
	}
	n := newTestNetNS(t)
	vn, err := setupVMNetwork(n.path, false)
	if err != nil {
		t.Fatal(err)
	}
	vn.closeTaps() // the tap goes with its last fd, as when QEMU ends
	// Another namespace at the same path, with a tap and qdisc of the same
	// names: not the shim's to remove.
	ipCmd(t, "netns", "del", n.name)
	ipCmd(t, "netns", "add", n.name)
	n.run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	n.run(t, "ip", "tuntap", "add", "tap0"+tapSuffix, "mode", "tap")
	n.run(t, "tc", "qdisc", "add", "dev", "eth0", "ingress")
	before := n.state(t)
	if err := vn.teardown(); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	if after := n.state(t); after != before {
		t.Fatalf("teardown changed another namespace:\n%s\nwas:\n%s", after, before)
	}
}

// TestVMBindSourceMissing: a bind mount whose source is missing fails the
// create before any VM starts, naming the source, and leaves nothing.
func TestVMBindSourceMissing(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	bundle := testutil.NewBundle(t, "true")
	missing := filepath.Join(t.TempDir(), "gone")
	bundle.Spec.Mounts = append(bundle.Spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: missing, Options: []string{"rbind"}})
	if err := bundle.Save(); err != nil {
		t.Fatal(err)
	}
	b := &VMBackend{cfg: &vmConfig{Kernel: "/nonexistent", Accel: "tcg"}, procs: map[string]*vmProc{}}
	_, err := b.Create(context.Background(), &CreateConfig{ID: "vmbindmissing", Bundle: bundle.Dir})
	if !errors.Is(err, ErrBindSource) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("create: %v, want ErrBindSource naming %s", err, missing)
	}
	vmtest.NoStrays(t)
	if _, err := os.Stat(filepath.Join(bundle.Dir, "vm")); err == nil {
		t.Error("vm state dir left after the failed create")
	}
}

// TestVMNetworkStale: what a shim that died left in a namespace (its tap
// gone with QEMU, the veth's ingress qdisc redirecting to nothing; or a
// persistent tap) is removed by the next take-over, whose give-back leaves
// the namespace as it was before either.
func TestVMNetworkStale(t *testing.T) {
	testutil.RequireRoot(t)
	n := newTestNetNS(t)
	before := n.state(t)
	for _, persistent := range []bool{false, true} {
		dead, err := setupVMNetwork(n.path, persistent)
		if err != nil {
			t.Fatal(err)
		}
		dead.closeTaps() // the shim and its QEMU die: no teardown
		vn, err := setupVMNetwork(n.path, false)
		if err != nil {
			t.Fatalf("take-over after a dead shim (persistent taps %v): %v", persistent, err)
		}
		if err := vn.teardown(); err != nil {
			t.Fatal(err)
		}
		if after := n.state(t); after != before {
			t.Fatalf("namespace after a dead shim (persistent taps %v) and a take-over:\n%s\nwas:\n%s", persistent, after, before)
		}
	}
}
