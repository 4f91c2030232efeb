package daemon_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
	"github.com/hullproject/hull/internal/hulltest"
	"github.com/hullproject/hull/network"
)

// netEnv is a hulld whose default network is private to the test: its
// own conf_dir, bridge and subnet, so tests running beside it (other
// packages' included) never share addresses.
type netEnv struct {
	*hulltest.Daemon
	ref             string
	bridge, subnet  string
	netName         string // the default network's name
	confDir, netDir string // [network] conf_dir, <state>/net
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startNet starts a hulld for network tests and pulls busybox into it.
func startNet(t *testing.T) *netEnv {
	t.Helper()
	requireCNI(t)
	return startNetDaemon(t, "hn", 200, "")
}

// requireCNI skips unless the CNI plugins and iptables the default
// network uses are installed.
func requireCNI(t *testing.T) {
	t.Helper()
	hulltest.RequireRoot(t)
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", p)); err != nil {
			t.Skipf("needs the CNI plugins in /usr/lib/cni (Debian containernetworking-plugins): %v", err)
		}
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables (the portmap and bridge plugins use it)")
	}
}

// startNetDaemon starts a hulld whose default network has its own bridge
// (bridgePrefix + random hex) and a random subnet in 10.<subnetFrom..>,
// with extraConfig appended to its configuration, and pulls busybox.
func startNetDaemon(t *testing.T, bridgePrefix string, subnetFrom int, extraConfig string) *netEnv {
	t.Helper()
	ref := hulltest.Busybox(t)
	e := &netEnv{ref: ref, bridge: bridgePrefix + randHex(t, 4), netName: "hull0", subnet: randSubnet(t, subnetFrom)}
	// Registered before the daemon's own cleanup, so it runs after it:
	// the bridge plugin never removes a bridge.
	t.Cleanup(func() { deleteLink(e.bridge) })
	d := hulltest.NewDaemon(t)
	e.Daemon = d
	e.confDir = filepath.Join(d.Dir, "net.d")
	e.netDir = filepath.Join(d.State, "net")
	d.Config = fmt.Sprintf("[network]\nconf_dir = %q\nbridge = %q\nsubnet = %q\n", e.confDir, e.bridge, e.subnet) + extraConfig
	d.Start()
	d.MustHull("images", "pull", ref)
	return e
}

func (e *netEnv) For(t *testing.T) *netEnv {
	c := *e
	c.Daemon = e.Daemon.For(t)
	return &c
}

// randSubnet is a random 10.<from..from+27>.x.0/24.
func randSubnet(t *testing.T, from int) string {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("10.%d.%d.0/24", from+int(b[0])%28, b[1])
}

func deleteLink(name string) {
	if _, err := os.Stat("/sys/class/net/" + name); err == nil {
		_ = exec.Command("ip", "link", "del", name).Run()
	}
}

// freePort is a TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// container is a container as `hull c ls --format json` shows it.
type container struct {
	ID      string   `json:"id"`
	Network string   `json:"network"`
	IPs     []string `json:"ips"`
	Ports   []struct {
		HostIP        string `json:"hostIp"`
		HostPort      int    `json:"hostPort"`
		ContainerPort int    `json:"containerPort"`
		Protocol      string `json:"protocol"`
	} `json:"ports"`
}

func (e *netEnv) containers(t *testing.T) []container {
	t.Helper()
	var cs []container
	if err := json.Unmarshal([]byte(e.MustHull("c", "ls", "--format", "json")), &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// ip is the address of container id (without the prefix length).
func (e *netEnv) ip(t *testing.T, id string) string {
	t.Helper()
	for _, c := range e.containers(t) {
		if c.ID == id {
			if len(c.IPs) != 1 {
				t.Fatalf("container %s: IPs %v", id, c.IPs)
			}
			addr, _, _ := strings.Cut(c.IPs[0], "/")
			return addr
		}
	}
	t.Fatalf("container %s not listed", id)
	return ""
}

// httpServer runs busybox httpd in container id serving "hello from id".
func (e *netEnv) httpServer(t *testing.T, id string, args ...string) {
	t.Helper()
	run := append([]string{"run", "-d"}, args...)
	run = append(run, e.ref, id, "sh", "-c",
		"busybox mkdir -p /www && echo hello from "+id+" > /www/index.html && exec busybox httpd -f -p 80 -h /www")
	e.MustHull(run...)
	// Serving once httpd listens: probe from inside.
	waitFor(t, "httpd in "+id, func() bool {
		out, _, code := e.Hull("exec", id, "busybox", "wget", "-qO-", "http://127.0.0.1/")
		return code == 0 && strings.Contains(out, "hello from")
	})
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	r, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

// checkNoLeftovers fails unless the daemon holds no network state: no
// network namespace, no attachment record, no IPAM allocation, no veth
// on the bridge and no iptables rule naming one of ids.
func (e *netEnv) checkNoLeftovers(t *testing.T, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		l := e.leftovers(ids...)
		if l == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("network state left:\n%s", l)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leftovers lists the network state left on the host now: netns and
// attachment records, IPAM allocations, veths on the bridge, and iptables
// rules of the containers ids.
func (e *netEnv) leftovers(ids ...string) string {
	var bad []string
	for _, sub := range []string{"netns", "attachments"} {
		ents, _ := os.ReadDir(filepath.Join(e.netDir, sub))
		for _, en := range ents {
			bad = append(bad, sub+"/"+en.Name())
		}
	}
	_ = filepath.WalkDir(filepath.Join(e.netDir, "ipam"), func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() && de.Name() != "lock" && !strings.HasPrefix(de.Name(), "last_reserved_ip") {
			bad = append(bad, "ipam allocation "+p)
		}
		return nil
	})
	ports, _ := os.ReadDir("/sys/class/net/" + e.bridge + "/brif")
	for _, p := range ports {
		bad = append(bad, "veth "+p.Name()+" on "+e.bridge)
	}
	if out, err := exec.Command("iptables-save").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			for _, id := range ids {
				// CNI's container ID: the attachment ID "default/<id>" made file safe.
				if strings.Contains(line, `"default_`+id+`-`) {
					bad = append(bad, "iptables: "+line)
				}
			}
		}
	}
	return strings.Join(bad, "\n")
}

// `run --rm -p` twice in a row with the same name and host port: the
// second finds the port and the name free (its container's detach ran
// beside the shim's delete, and the CLI returned only after both), and
// when it returns nothing of either is left on the host, without waiting.
func TestNetRunRmTwice(t *testing.T) {
	e := startNet(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			port := freePort(t)
			id := "twice-" + rt
			for i := 0; i < 2; i++ {
				e.MustHull("run", "--rm", "--runtime", rt, "-p", fmt.Sprintf("%d:80", port), e.ref, id, "true")
			}
			if l := e.leftovers(id); l != "" {
				t.Fatalf("left when run --rm returned:\n%s", l)
			}
		})
	}
}

// Containers on one bridge reach each other; the host reaches them through
// published ports; ls shows network, address and ports.
func TestNetBridge(t *testing.T) {
	e := startNet(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			e := e.For(t)
			srv, cli := "web-"+rt, "client-"+rt
			port, portAll := freePort(t), freePort(t)
			e.httpServer(t, srv, "--runtime", rt, "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "-p", fmt.Sprintf("%d:80", portAll))
			ip := e.ip(t, srv)
			if !strings.HasPrefix(ip, strings.TrimSuffix(e.subnet, "0/24")) {
				t.Fatalf("address %s is not in the network's subnet %s", ip, e.subnet)
			}
			ls := e.MustHull("c", "ls")
			for _, want := range []string{fmt.Sprintf("127.0.0.1:%d->80/tcp", port), fmt.Sprintf("0.0.0.0:%d->80/tcp", portAll), ip, e.netName} {
				if !strings.Contains(ls, want) {
					t.Fatalf("c ls lacks %q:\n%s", want, ls)
				}
			}

			// Container to container, over the bridge.
			out, errs, code := e.Hull("run", "--rm", "--runtime", rt, e.ref, cli, "busybox", "wget", "-qO-", "http://"+ip+"/")
			if code != 0 || out != "hello from "+srv+"\n" {
				t.Fatalf("wget from another container: code %d, out %q, err %q", code, out, errs)
			}
			// Host to container through the published ports.
			for _, p := range []int{port, portAll} {
				body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", p))
				if err != nil || body != "hello from "+srv+"\n" {
					t.Fatalf("GET 127.0.0.1:%d: %q, %v", p, body, err)
				}
			}

			// The files that name the container.
			if out := e.MustHull("exec", srv, "cat", "/etc/hostname"); out != srv+"\n" {
				t.Fatalf("/etc/hostname: %q", out)
			}
			if out := e.MustHull("exec", srv, "cat", "/etc/hosts"); !strings.Contains(out, ip) || !strings.Contains(out, srv) || !strings.Contains(out, "localhost") {
				t.Fatalf("/etc/hosts:\n%s", out)
			}
			if out := e.MustHull("exec", srv, "cat", "/etc/resolv.conf"); !strings.Contains(out, "nameserver") {
				t.Fatalf("/etc/resolv.conf:\n%s", out)
			}
			if out := e.MustHull("exec", srv, "busybox", "hostname"); out != srv+"\n" {
				t.Fatalf("hostname: %q", out)
			}

			// The leak check below looks for rules naming the container:
			// there are some while it runs.
			if out, err := exec.Command("iptables-save").Output(); err != nil || !strings.Contains(string(out), `"default_`+srv+`-`) {
				t.Fatalf("no iptables rule names %s while it runs (%v):\n%s", srv, err, out)
			}

			// The ports are free once the container is gone.
			e.MustHull("c", "rm", "-f", srv)
			e.checkNoLeftovers(t, srv, cli)
			for _, p := range []int{port, portAll} {
				if _, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", p)); err == nil {
					t.Fatalf("port %d still answers after the container went", p)
				}
			}
		})
	}
}

// hostRouteIface is the interface of the host's default route.
func hostRouteIface(t *testing.T) string {
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == "00000000" {
			return f[0]
		}
	}
	t.Skip("the host has no default route")
	return ""
}

func TestNetHostAndNone(t *testing.T) {
	e := startNet(t)
	iface := hostRouteIface(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			e := e.For(t)
			// --net host: the host's interfaces, hosts and resolv.conf.
			out := e.MustHull("run", "--rm", "--runtime", rt, "--net", "host", e.ref, "host-"+rt, "ls", "/sys/class/net")
			if names := strings.Fields(out); !slices.Contains(names, iface) || !slices.Contains(names, "lo") {
				t.Fatalf("--net host sees %v, want the host's %s among them", names, iface)
			}
			hosts, _ := os.ReadFile("/etc/hosts")
			if out := e.MustHull("run", "--rm", "--runtime", rt, "--net", "host", e.ref, "hosth-"+rt, "cat", "/etc/hosts"); out != string(hosts) {
				t.Fatalf("--net host /etc/hosts:\n%s\nwant the host's:\n%s", out, hosts)
			}
			// --net none: only lo.
			out = e.MustHull("run", "--rm", "--runtime", rt, "--net", "none", e.ref, "none-"+rt, "ls", "/sys/class/net")
			if strings.Fields(out)[0] != "lo" || len(strings.Fields(out)) != 1 {
				t.Fatalf("--net none sees %q, want only lo", out)
			}
			// lo is up (IFF_UP|IFF_LOOPBACK), as Docker has it: programs
			// talk to themselves over 127.0.0.1.
			if out := e.MustHull("run", "--rm", "--runtime", rt, "--net", "none", e.ref, "nonelo-"+rt, "cat", "/sys/class/net/lo/flags"); out != "0x9\n" {
				t.Fatalf("--net none: lo flags %q, want 0x9 (up)", out)
			}
			if out := e.MustHull("run", "--rm", "--runtime", rt, "--net", "none", e.ref, "noneh-"+rt, "cat", "/etc/hostname"); out != "noneh-"+rt+"\n" {
				t.Fatalf("--net none hostname %q", out)
			}
			e.MustHull("run", "-d", "--runtime", rt, "--net", "none", e.ref, "nonels-"+rt, "sleep", "100")
			ls := e.MustHull("c", "ls")
			// CONTAINER IMAGE RUNTIME NETWORK IP PORTS
			if f := strings.Fields(lineOf(ls, "nonels-"+rt)); len(f) < 6 || f[3] != "none" || f[4] != "-" || f[5] != "-" {
				t.Fatalf("c ls shows no network none:\n%s", ls)
			}
			e.MustHull("c", "rm", "-f", "nonels-"+rt)
			e.checkNoLeftovers(t)
		})
	}
}

func lineOf(out, id string) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == id {
			return l
		}
	}
	return ""
}

// client is a gRPC connection to the daemon (API-level tests).
func (e *netEnv) client(t *testing.T) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient("unix://"+e.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Bad input: a clear error, a non-zero exit, and nothing left (no
// container, task, network namespace or address).
func TestNetBadInput(t *testing.T) {
	e := startNet(t)
	// A network whose conflist names a plugin nobody has.
	if err := os.WriteFile(filepath.Join(e.confDir, "noplug.conflist"), []byte(`{"cniVersion": "1.0.0", "name": "noplug",
  "plugins": [{"type": "no-such-cni-plugin"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		name string
		args []string // before IMAGE
		want string   // in stderr
	}{
		{"no host port", []string{"-p", "80"}, "no host port"},
		{"not a number", []string{"-p", "80a:80"}, `"80a" is not a port number`},
		{"out of range", []string{"-p", "70000:80"}, "out of range"},
		{"bad protocol", []string{"-p", "8080:80/icmp"}, `unknown protocol "icmp"`},
		{"bad host ip", []string{"-p", "1.2.3:8080:80"}, "not an IPv4 address"},
		{"empty", []string{"-p", ""}, "empty"},
		{"ranges differ", []string{"-p", "8000-8002:80-81"}, "differ in length"},
		{"published twice", []string{"-p", "18080:80", "-p", "18080:81"}, "already published"},
		{"ports with none", []string{"--net", "none", "-p", "18080:80"}, "needs a network"},
		{"ports with host", []string{"--net", "host", "-p", "18080:80"}, "needs a network"},
		{"unknown network", []string{"--net", "nosuchnet"}, `nosuchnet`},
		{"missing plugin", []string{"--net", "noplug"}, "no-such-cni-plugin"},
		{"port in use", []string{"-p", fmt.Sprintf("127.0.0.1:%d:80", busyPort)}, strconv.Itoa(busyPort)},
		{"vm with host network", []string{"--runtime", "vm", "--net", "host"}, "the vm runtime cannot share the host network namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.For(t)
			id := "bad-" + strings.ReplaceAll(tc.name, " ", "-")
			for _, detach := range []bool{false, true} {
				args := []string{"run"}
				if detach {
					args = append(args, "-d")
				}
				args = append(append(args, tc.args...), e.ref, id, "true")
				out, errs, code := e.Hull(args...)
				if code == 0 || !strings.Contains(errs, tc.want) {
					t.Fatalf("hull %s: code %d, stdout %q, stderr %q (want it to name %q)", strings.Join(args, " "), code, out, errs, tc.want)
				}
				t.Logf("%s", strings.TrimSpace(errs))
				if ls := e.MustHull("c", "ls"); strings.Contains(ls, id) {
					t.Fatalf("the failed run left its container:\n%s", ls)
				}
				if ls := e.MustHull("tasks", "ls"); strings.Contains(ls, id) {
					t.Fatalf("the failed run left its task:\n%s", ls)
				}
				e.checkNoLeftovers(t, id)
			}
		})
	}
	// A host port another container publishes: refused, naming it; the
	// first keeps it.
	held := freePort(t)
	e.MustHull("run", "-d", "-p", fmt.Sprintf("%d:80", held), e.ref, "holder", "sleep", "100")
	if _, errs, code := e.Hull("run", "-d", "-p", fmt.Sprintf("127.0.0.1:%d:80", held), e.ref, "taker", "sleep", "100"); code == 0 || !strings.Contains(errs, strconv.Itoa(held)) || !strings.Contains(errs, "holder") {
		t.Fatalf("a port another container publishes: code %d, stderr %q (want the port and the holder named)", code, errs)
	} else {
		t.Logf("%s", strings.TrimSpace(errs))
	}
	if ls := e.MustHull("c", "ls"); lineOf(ls, "taker") != "" || !strings.Contains(lineOf(ls, "holder"), fmt.Sprintf("0.0.0.0:%d->80/tcp", held)) {
		t.Fatalf("c ls after the refused run:\n%s", ls)
	}
	e.MustHull("c", "rm", "-f", "holder")
	e.checkNoLeftovers(t, "holder", "taker")

	// The listener still has its port, untouched.
	if c, err := net.Dial("tcp", busy.Addr().String()); err != nil {
		t.Fatalf("the busy port: %v", err)
	} else {
		c.Close()
	}

	// The same through the API: gRPC codes by kind.
	conn := e.client(t)
	cc, tc := hullv1.NewContainersClient(conn), hullv1.NewTasksClient(conn)
	ctx := context.Background()
	pm := func(ip string, h, c uint32, proto string) *hullv1.PortMapping {
		return &hullv1.PortMapping{HostIp: ip, HostPort: h, ContainerPort: c, Protocol: proto}
	}
	for _, bc := range []struct {
		name string
		cfg  *hullv1.ContainerConfig
		code codes.Code
		want string
	}{
		{"port 0", &hullv1.ContainerConfig{Ports: []*hullv1.PortMapping{pm("", 0, 80, "tcp")}}, codes.InvalidArgument, "host port 0"},
		{"port 65536", &hullv1.ContainerConfig{Ports: []*hullv1.PortMapping{pm("", 8080, 65536, "tcp")}}, codes.InvalidArgument, "container port 65536"},
		{"protocol", &hullv1.ContainerConfig{Ports: []*hullv1.PortMapping{pm("", 8080, 80, "sctp")}}, codes.InvalidArgument, "sctp"},
		{"host ip", &hullv1.ContainerConfig{Ports: []*hullv1.PortMapping{pm("example.com", 8080, 80, "")}}, codes.InvalidArgument, "example.com"},
		{"twice", &hullv1.ContainerConfig{Ports: []*hullv1.PortMapping{pm("", 8080, 80, ""), pm("", 8080, 81, "")}}, codes.InvalidArgument, "twice"},
		{"ports with host", &hullv1.ContainerConfig{Network: "host", Ports: []*hullv1.PortMapping{pm("", 8080, 80, "")}}, codes.InvalidArgument, "--net host"},
		{"unknown network", &hullv1.ContainerConfig{Network: "nosuchnet"}, codes.NotFound, "nosuchnet"},
	} {
		_, err := cc.Create(ctx, &hullv1.CreateContainerRequest{Id: "api-bad", Image: e.ref, Config: bc.cfg})
		if s, _ := status.FromError(err); status.Code(err) != bc.code || !strings.Contains(s.Message(), bc.want) {
			t.Errorf("API %s: %v, want code %v naming %q", bc.name, err, bc.code, bc.want)
		}
	}
	// Failures at task create leave the container (the API caller owns
	// it) and nothing of the task.
	for _, bc := range []struct {
		name string
		cfg  *hullv1.ContainerConfig
		code codes.Code
	}{
		{"port in use", &hullv1.ContainerConfig{Ports: []*hullv1.PortMapping{pm("127.0.0.1", uint32(busyPort), 80, "tcp")}}, codes.FailedPrecondition}, // errdefs Conflict
		{"missing plugin", &hullv1.ContainerConfig{Network: "noplug"}, codes.FailedPrecondition},
	} {
		id := "api-" + strings.ReplaceAll(bc.name, " ", "-")
		if _, err := cc.Create(ctx, &hullv1.CreateContainerRequest{Id: id, Image: e.ref, Config: bc.cfg}); err != nil {
			t.Fatalf("API %s: container create: %v", bc.name, err)
		}
		if _, err := tc.Create(ctx, &hullv1.TaskRequest{Id: id}); status.Code(err) != bc.code {
			t.Errorf("API %s: task create: %v, want code %v", bc.name, err, bc.code)
		}
		if _, err := tc.Get(ctx, &hullv1.TaskRequest{Id: id}); status.Code(err) != codes.NotFound {
			t.Errorf("API %s: a task is left: %v", bc.name, err)
		}
		if _, err := cc.Delete(ctx, &hullv1.DeleteContainerRequest{Id: id}); err != nil {
			t.Errorf("API %s: delete: %v", bc.name, err)
		}
		e.checkNoLeftovers(t, id)
	}
}

func TestNetworkCommands(t *testing.T) {
	e := startNet(t)
	name := "tn" + randHex(t, 3)
	bridge := "hm" + randHex(t, 3)
	t.Cleanup(func() { deleteLink(bridge) })
	subnet := randSubnet(t, 228)

	ls := e.MustHull("network", "ls")
	if line := lineOf(ls, e.netName); !strings.Contains(line, e.bridge) || !strings.Contains(line, e.subnet) || !strings.Contains(line, "*") {
		t.Fatalf("network ls lacks the default network (bridge %s, subnet %s):\n%s", e.bridge, e.subnet, ls)
	}
	e.MustHull("network", "create", "--subnet", subnet, "--bridge", bridge, name)
	if _, err := os.Stat(filepath.Join(e.confDir, name+".conflist")); err != nil {
		t.Fatalf("no conflist for the new network: %v", err)
	}
	ls = e.MustHull("network", "ls")
	if line := lineOf(ls, name); !strings.Contains(line, bridge) || !strings.Contains(line, subnet) || !strings.Contains(line, "bridge") {
		t.Fatalf("network ls:\n%s", ls)
	}
	if _, errs, code := e.Hull("network", "create", "--subnet", subnet, name); code == 0 || !strings.Contains(errs, name) {
		t.Fatalf("create of an existing network: code %d %s", code, errs)
	}
	for _, bad := range [][]string{{"none"}, {"host"}, {"--subnet", "10.0.0.0/33", name + "x"}} {
		if _, _, code := e.Hull(append([]string{"network", "create"}, bad...)...); code == 0 {
			t.Fatalf("network create %v succeeded", bad)
		}
	}

	// A container on it gets an address in its subnet.
	e.MustHull("run", "-d", "--net", name, e.ref, "onnet", "sleep", "100")
	if ip := e.ip(t, "onnet"); !strings.HasPrefix(ip, strings.TrimSuffix(subnet, "0/24")) {
		t.Fatalf("address %s not in %s", ip, subnet)
	}
	if out := e.MustHull("exec", "onnet", "ls", "/sys/class/net"); !slices.Contains(strings.Fields(out), "eth0") {
		t.Fatalf("interfaces: %q", out)
	}
	// In use: refused, running or not.
	if _, errs, code := e.Hull("network", "rm", name); code == 0 || !strings.Contains(errs, "onnet") {
		t.Fatalf("rm of a network in use: code %d %s", code, errs)
	}
	e.MustHull("tasks", "kill", "-s", "KILL", "onnet")
	waitFor(t, "exit", func() bool { return strings.HasPrefix(taskStatus(e.Daemon, "default", "onnet"), "stopped") })
	if _, errs, code := e.Hull("network", "rm", name); code == 0 || !strings.Contains(errs, "onnet") {
		t.Fatalf("rm of a network a stopped container names: code %d %s", code, errs)
	}
	e.MustHull("c", "rm", "-f", "onnet")
	e.checkNoLeftovers(t, "onnet")
	e.MustHull("network", "rm", name)
	if ls := e.MustHull("network", "ls"); lineOf(ls, name) != "" {
		t.Fatalf("network still listed:\n%s", ls)
	}
	if _, errs, code := e.Hull("network", "rm", name); code == 0 || !strings.Contains(errs, name) {
		t.Fatalf("rm of a missing network: code %d %s", code, errs)
	}
	// The default network stays.
	if _, _, code := e.Hull("network", "rm", e.netName); code == 0 {
		t.Fatal("the default network was removed")
	}
}

// Create/delete cycles leave nothing behind: veths, netns, IPAM
// allocations, iptables rules. The cycles take turns: run --rm with a
// published port, run -d then rm -f while it runs, a task created and
// never started then removed, and run --rm --net none.
func TestNetNoLeaks(t *testing.T) {
	e := startNet(t)
	n := 100
	if testing.Short() {
		n = 12
	}
	conn := e.client(t)
	cc, tc := hullv1.NewContainersClient(conn), hullv1.NewTasksClient(conn)
	ctx := context.Background()
	base := freePort(t)
	if base > 65000 {
		base = 40000
	}
	var ids []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("cycle-%d", i)
		ids = append(ids, id)
		port := base + i%20
		switch i % 4 {
		case 0:
			e.MustHull("run", "--rm", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), e.ref, id, "true")
		case 1:
			e.MustHull("run", "-d", "-p", fmt.Sprintf("%d:80/udp", port), e.ref, id, "sleep", "100")
			e.MustHull("c", "rm", "-f", id)
		case 2:
			if _, err := cc.Create(ctx, &hullv1.CreateContainerRequest{Id: id, Image: e.ref,
				Config: &hullv1.ContainerConfig{Process: &hullv1.ProcessConfig{Args: []string{"true"}}}}); err != nil {
				t.Fatal(err)
			}
			if _, err := tc.Create(ctx, &hullv1.TaskRequest{Id: id}); err != nil {
				t.Fatal(err)
			}
			if _, err := cc.Delete(ctx, &hullv1.DeleteContainerRequest{Id: id, Force: true}); err != nil {
				t.Fatal(err)
			}
		case 3:
			e.MustHull("run", "--rm", "--net", "none", e.ref, id, "true")
		}
	}
	e.checkNoLeftovers(t, ids...)
}

// A container whose task ends while hulld is down loses its attachment
// when the next hulld starts, and so does an attachment without a task; a
// running container keeps its address.
func TestNetRestartSweep(t *testing.T) {
	e := startNet(t)
	e.MustHull("run", "-d", e.ref, "swept", "sleep", "100")
	e.MustHull("run", "-d", e.ref, "kept", "sleep", "100")
	ip := e.ip(t, "kept")
	e.ip(t, "swept")
	pid, err := strconv.Atoi(taskPid(e.Daemon, "swept"))
	if err != nil || pid == 0 {
		t.Fatalf("pid of swept: %v", err)
	}
	e.Kill()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// An attachment no task has, as a hulld that crashed in a task create
	// leaves it.
	m, err := network.New(network.Config{ConfDir: e.confDir, StateDir: e.netDir, DefaultBridge: e.bridge, DefaultSubnet: e.subnet, DefaultName: e.netName})
	if err != nil {
		t.Fatal(err)
	}
	ghost := "ghost-" + randHex(t, 4)
	if _, err := m.Attach(context.Background(), network.AttachOptions{ID: "default/" + ghost, Ports: []network.PortMapping{{HostPort: uint16(freePort(t)), ContainerPort: 80, Protocol: "tcp"}}}); err != nil {
		t.Fatal(err)
	}
	// Whatever happens below, its rules go (they are the host's).
	t.Cleanup(func() { _ = m.Detach(context.Background(), "default/"+ghost) })
	e.Start()
	for _, c := range e.containers(t) {
		switch {
		case c.ID == "kept" && (len(c.IPs) != 1 || !strings.HasPrefix(c.IPs[0], ip+"/")):
			t.Fatalf("the running container's addresses changed over the restart: %s -> %v", ip, c.IPs)
		case c.ID == "swept" && len(c.IPs) != 0:
			t.Fatalf("the ended container still has addresses %v", c.IPs)
		}
	}
	if out := e.MustHull("exec", "kept", "cat", "/etc/hostname"); out != "kept\n" {
		t.Fatalf("kept: %q", out)
	}
	if atts, err := m.Attachments(); err != nil || len(atts) != 1 || atts[0].ID != "default/kept" {
		var ids []string
		for _, a := range atts {
			ids = append(ids, a.ID)
		}
		t.Fatalf("attachments after the restart: %v, %v; want only default/kept", ids, err)
	}
	e.MustHull("c", "rm", "-f", "swept", "kept")
	e.checkNoLeftovers(t, "swept", "kept", ghost)
}

// A published UDP port carries datagrams to the container and its
// answers back.
func TestNetPublishUDP(t *testing.T) {
	e := startNet(t)
	bin := filepath.Join(t.TempDir(), "udpecho")
	build := exec.Command("go", "build", "-o", bin, "./testdata/udpecho")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build udpecho: %v\n%s", err, out)
	}
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	e.MustHull("run", "-d", "-p", fmt.Sprintf("127.0.0.1:%d:5353/udp", port), "--mount", "type=bind,src="+bin+",dst=/udpecho,options=rbind:ro",
		e.ref, "udp", "/udpecho")
	if ls := e.MustHull("c", "ls"); !strings.Contains(ls, fmt.Sprintf("127.0.0.1:%d->5353/udp", port)) {
		t.Fatalf("c ls:\n%s", ls)
	}
	waitFor(t, "udpecho listening", func() bool { out, _, _ := e.Hull("logs", "udp"); return strings.Contains(out, "listening") })
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 100)
	var got string
	for i := 0; i < 20 && got == ""; i++ {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			got = string(buf[:n])
		}
	}
	if got != "echo: ping" {
		t.Fatalf("no answer through the published UDP port (got %q)", got)
	}
	e.MustHull("c", "rm", "-f", "udp")
	e.checkNoLeftovers(t, "udp")
}
