package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/vm/vmtest"
)

// The vm runtime on hulld's networks: the VM takes over the container's
// veth (a tap mirrored with tc in the container's network namespace) and
// the guest gets the veth's address, routes and MTU.

// vmRuntime is the vm runtime these tests configure (TCG, a long boot
// timeout: the machine is shared).
const vmRuntime = "vmnet"

// startVMNet is startNet with a vm runtime beside the default ones.
func startVMNet(t *testing.T) *netEnv {
	t.Helper()
	requireCNI(t)
	kernel, initrd := vmtest.Kernel(t), vmtest.Initramfs(t)
	return startNetDaemon(t, "hv", 170, fmt.Sprintf("\n[runtimes.%s]\ntype = \"io.containerd.hull.v2\"\noptions = { mode = \"vm\", backend = { kernel = %q, initrd = %q, accel = \"tcg\", boot_timeout = 120 } }\n",
		vmRuntime, kernel, initrd))
}

// vmHTTPServer runs busybox httpd on port 80 of a detached container
// serving "hello from <id>"; args go to run (runtime, ports).
func (e *netEnv) vmHTTPServer(t *testing.T, id string, args ...string) {
	t.Helper()
	run := append([]string{"run", "-d"}, args...)
	run = append(run, e.ref, id, "sh", "-c",
		"busybox mkdir -p /www && echo hello from "+id+" > /www/index.html && exec busybox httpd -f -p 80 -h /www")
	e.MustHull(run...)
}

// getEventually GETs url until it answers (the server starts in the
// background), for up to a minute.
func getEventually(t *testing.T, url string) string {
	t.Helper()
	var last error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		body, err := httpGet(url)
		if err == nil {
			return body
		}
		last = err
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}

// TestVMNetPublishedPort: `hull run --runtime vm -p HOSTPORT:80` of busybox
// httpd answers on 127.0.0.1:HOSTPORT and on the host port of all
// addresses; the guest's eth0 has the address hulld reports and the veth's
// MTU; rm leaves no VM, no network state and frees the ports.
func TestVMNetPublishedPort(t *testing.T) {
	e := startVMNet(t)
	id := "vmweb"
	port, portAll := freePort(t), freePort(t)
	e.vmHTTPServer(t, id, "--runtime", vmRuntime, "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "-p", fmt.Sprintf("%d:80", portAll))
	for _, p := range []int{port, portAll} {
		if body := getEventually(t, fmt.Sprintf("http://127.0.0.1:%d/", p)); body != "hello from "+id+"\n" {
			t.Errorf("GET 127.0.0.1:%d: %q", p, body)
		}
	}
	ip := e.ip(t, id)
	out := e.MustHull("exec", id, "sh", "-c", "cat /sys/class/net/eth0/mtu; ip -o -4 addr show dev eth0; ip route; cat /etc/hostname; "+
		"cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6; ip -o link show lo; ip -o addr show dev lo")
	t.Logf("in the guest:\n%s", out)
	// As the host's veth has it (an IPv4-only network: IPv6 off on eth0,
	// lo up with both loopback addresses).
	for _, want := range []string{"1500\n", " " + ip + "/24 brd ", " scope global eth0", "default via ", id + "\n",
		"\n1\n", "<LOOPBACK,UP,LOWER_UP>", "inet 127.0.0.1/8 scope host lo", "inet6 ::1/128 scope host"} {
		if !strings.Contains(out, want) {
			t.Errorf("in the guest, %q lacks %q", out, want)
		}
	}
	if ls := e.MustHull("c", "ls"); !strings.Contains(ls, fmt.Sprintf("127.0.0.1:%d->80/tcp", port)) {
		t.Errorf("c ls lacks the published port:\n%s", ls)
	}
	e.MustHull("c", "rm", "-f", id)
	waitVMGone(t, id)
	e.checkNoLeftovers(t, id)
	for _, p := range []int{port, portAll} {
		if _, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", p)); err == nil {
			t.Errorf("port %d still answers after the container went", p)
		}
	}
}

// TestVMNetBridge: a vm container and a native one on the same bridge
// reach each other both ways.
func TestVMNetBridge(t *testing.T) {
	e := startVMNet(t)
	vmSrv, nativeSrv := "vmsrv", "nativesrv"
	e.vmHTTPServer(t, vmSrv, "--runtime", vmRuntime)
	e.vmHTTPServer(t, nativeSrv, "--runtime", "native")
	vmIP, nativeIP := e.ip(t, vmSrv), e.ip(t, nativeSrv)

	// native → vm, from a fresh native container on the bridge.
	var out, errs string
	var code int
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		out, errs, code = e.Hull("run", "--rm", "--runtime", "native", e.ref, "nativecli", "busybox", "wget", "-qO-", "http://"+vmIP+"/")
		if code == 0 {
			break
		}
	}
	if code != 0 || out != "hello from "+vmSrv+"\n" {
		t.Errorf("native container to the vm one: code %d, out %q, err %q", code, out, errs)
	}
	// vm → native, from inside the vm container.
	out, errs, code = e.Hull("exec", vmSrv, "busybox", "wget", "-qO-", "http://"+nativeIP+"/")
	if code != 0 || out != "hello from "+nativeSrv+"\n" {
		t.Errorf("vm container to the native one: code %d, out %q, err %q", code, out, errs)
	}
	// vm → vm (a second VM, run --rm).
	out, errs, code = e.Hull("run", "--rm", "--runtime", vmRuntime, e.ref, "vmcli", "busybox", "wget", "-qO-", "http://"+vmIP+"/")
	if code != 0 || out != "hello from "+vmSrv+"\n" {
		t.Errorf("vm container to the vm one: code %d, out %q, err %q", code, out, errs)
	}
	e.MustHull("c", "rm", "-f", vmSrv, nativeSrv)
	waitVMGone(t, vmSrv)
	waitVMGone(t, "vmcli")
	e.checkNoLeftovers(t, vmSrv, nativeSrv, "nativecli", "vmcli")
}

// TestVMNetHostAndNone: --net none in a VM has only lo (up), --net host is
// refused naming the cause, and neither leaves anything.
func TestVMNetHostAndNone(t *testing.T) {
	e := startVMNet(t)
	out, errs, code := e.Hull("run", "--rm", "--runtime", vmRuntime, "--net", "none", e.ref, "vmnone",
		"sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/operstate")
	if code != 0 || out != "lo\nunknown\n" {
		t.Errorf("--net none: code %d, out %q (want only lo, up), err %q", code, out, errs)
	}
	out, errs, code = e.Hull("run", "--rm", "--runtime", vmRuntime, "--net", "host", e.ref, "vmhost", "true")
	if code == 0 || !strings.Contains(errs, "host network") {
		t.Errorf("--net host: code %d, out %q, err %q: want a refusal naming the host network", code, out, errs)
	}
	if ls := e.MustHull("c", "ls"); strings.Contains(ls, "vmhost") {
		t.Errorf("the refused run left its container:\n%s", ls)
	}
	waitVMGone(t, "vmnone")
	waitVMGone(t, "vmhost")
	e.checkNoLeftovers(t, "vmnone", "vmhost")
}

// TestVMNetShimKilled: when the shim of a networked vm container dies, its
// VM goes (and with it the tap), and removing the container leaves no
// network state.
func TestVMNetShimKilled(t *testing.T) {
	e := startVMNet(t)
	id := "vmnetshimkill"
	e.MustHull("run", "-d", "--runtime", vmRuntime, e.ref, id, "sleep", "1000")
	waitFor(t, "running", func() bool { return strings.HasPrefix(taskStatus(e.Daemon, "default", id), "running") })
	pids := vmProcs(id)
	if len(pids) == 0 {
		t.Fatal("no QEMU/virtiofsd for the running vm container")
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pids[0]))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	shim, _ := strconv.Atoi(f[1])
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", shim)); !strings.HasPrefix(string(comm), "containerd-shim") {
		t.Fatalf("parent of %d is %d (%s), not the shim", pids[0], shim, comm)
	}
	if err := unix.Kill(shim, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "stopped", func() bool { return strings.HasPrefix(taskStatus(e.Daemon, "default", id), "stopped") })
	waitVMGone(t, id)
	e.MustHull("c", "rm", "-f", id)
	e.checkNoLeftovers(t, id)
}

// TestVMBindMountThroughDaemon: `hull run --runtime vm --mount type=bind`
// of a host directory (rw) and a host file (ro): read and written from the
// guest container, the writes on the host, the ro file refused, and no
// mount left on the host.
func TestVMBindMountThroughDaemon(t *testing.T) {
	e := startVMNet(t)
	host := t.TempDir()
	dir, file := filepath.Join(host, "vol"), filepath.Join(host, "conf.txt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := "vmbind"
	out, errs, code := e.Hull("run", "--rm", "--runtime", vmRuntime, "--net", "none",
		"--mount", "type=bind,src="+dir+",dst=/data,options=rbind:rw",
		"--mount", "type=bind,src="+file+",dst=/etc/conf.txt,options=bind:ro",
		e.ref, id, "sh", "-c", "cat /data/in.txt /etc/conf.txt; echo from-guest > /data/out.txt; echo no >> /etc/conf.txt 2>/dev/null || echo ro-refused")
	if code != 0 || out != "from-host\nconf\nro-refused\n" {
		t.Fatalf("run: code %d, out %q, err %q", code, out, errs)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "out.txt")); string(data) != "from-guest\n" {
		t.Errorf("host sees %q, want the guest's write", data)
	}
	if data, _ := os.ReadFile(file); string(data) != "conf\n" {
		t.Errorf("ro file changed on the host: %q", data)
	}
	waitVMGone(t, id)
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), host) {
		t.Errorf("a mount of %s is left on the host", host)
	}
}

// TestVMNetRunRmTwice: `run --rm -p` of a vm container twice in a row with
// the same name and host port works, and when the CLI returns nothing is
// left: no QEMU or virtiofsd, no rootfs mount, no network state (the VM
// quits and the CNI DEL runs beside it before the delete answers).
func TestVMNetRunRmTwice(t *testing.T) {
	e := startVMNet(t)
	port := freePort(t)
	id := "vmtwice"
	for i := 0; i < 2; i++ {
		e.MustHull("run", "--rm", "--runtime", vmRuntime, "-p", fmt.Sprintf("%d:80", port), e.ref, id, "true")
		pids, mounted := vmLeft(e.Daemon, id)
		if len(pids) > 0 {
			t.Errorf("run %d: QEMU/virtiofsd %v still there when run --rm returned", i+1, pids)
		}
		if mounted {
			t.Errorf("run %d: the rootfs is still mounted when run --rm returned", i+1)
		}
		if l := e.leftovers(id); l != "" {
			t.Errorf("run %d: network state left when run --rm returned:\n%s", i+1, l)
		}
	}
}
