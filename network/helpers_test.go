package network

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// requireCNI skips a test that needs root, the CNI plugins and iptables,
// saying which is missing.
func requireCNI(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, bridges and iptables rules")
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap", "firewall"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", p)); err != nil {
			t.Skipf("needs the CNI plugin %s in /usr/lib/cni (containernetworking-plugins): %v", p, err)
		}
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables (portmap, bridge ipMasq and firewall use it)")
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// testEnv is a manager with private directories, a private default network
// on a unique bridge ("hnt" + 8 hex) and subnet (10.96-127.x.0/24, apart
// from the ranges the daemon's tests use), torn
// down at the end: attachments detached, bridge deleted.
type testEnv struct {
	m      *Manager
	cfg    Config
	bridge string
	subnet string
}

func randSubnet() string {
	var b [2]byte
	rand.Read(b[:])
	return fmt.Sprintf("10.%d.%d.0/24", 96+int(b[0])%32, b[1])
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	requireCNI(t)
	dir := t.TempDir()
	e := &testEnv{bridge: "hnt" + randHex(4), subnet: randSubnet()}
	e.cfg = Config{
		ConfDir:       filepath.Join(dir, "net.d"),
		StateDir:      filepath.Join(dir, "state"),
		PluginDirs:    []string{"/usr/lib/cni"},
		DefaultName:   "hnt-" + randHex(4),
		DefaultBridge: e.bridge,
		DefaultSubnet: e.subnet,
	}
	m, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	t.Cleanup(func() {
		as, _ := e.m.Attachments()
		for _, a := range as {
			if err := e.m.Detach(context.Background(), a.ID); err != nil {
				t.Errorf("cleanup: detach %s: %v", a.ID, err)
			}
		}
		nets, _ := e.m.List(context.Background())
		for _, n := range nets {
			if n.Bridge != "" && strings.HasPrefix(n.Bridge, "hnt") {
				delLink(n.Bridge)
			}
		}
		delLink(e.bridge)
	})
	return e
}

func delLink(name string) {
	if l, err := netlink.LinkByName(name); err == nil {
		netlink.LinkDel(l)
	}
}

func (e *testEnv) attach(t *testing.T, o AttachOptions) *Attachment {
	t.Helper()
	a, err := e.m.Attach(context.Background(), o)
	if err != nil {
		t.Fatalf("attach %s: %v", o.ID, err)
	}
	return a
}

func ipOf(t *testing.T, a *Attachment) string {
	t.Helper()
	if len(a.IPs) == 0 {
		t.Fatalf("attachment %s has no IP: %+v", a.ID, a)
	}
	ip, _, err := net.ParseCIDR(a.IPs[0])
	if err != nil {
		t.Fatal(err)
	}
	return ip.String()
}

// inNS runs f on a thread in the netns at path.
func inNS(t *testing.T, path string, f func() error) error {
	t.Helper()
	return ns.WithNetNSPath(path, func(ns.NetNS) error { return f() })
}

// serveEcho starts a TCP server inside the netns: it answers each connection
// with the reply and closes. Listening sockets stay in the netns they were
// created in, so accepting from any goroutine is fine.
func serveEcho(t *testing.T, nsPath, addr, reply string) net.Listener {
	t.Helper()
	var l net.Listener
	err := inNS(t, nsPath, func() error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, nsPath, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(reply))
			c.Close()
		}
	}()
	return l
}

// fetch connects (in the netns at nsPath, or on the host when it is "") and reads until EOF.
func fetch(t *testing.T, nsPath, addr string) (string, error) {
	t.Helper()
	var out string
	do := func() error {
		c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		out = string(b)
		return err
	}
	if nsPath == "" {
		return out, do()
	}
	return out, inNS(t, nsPath, do)
}

// ping sends one ICMP echo from the netns at nsPath to ip and waits for the reply.
func ping(t *testing.T, nsPath, ip string) error {
	t.Helper()
	return inNS(t, nsPath, func() error {
		c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return err
		}
		defer c.Close()
		id := os.Getpid() & 0xffff
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("hull")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return err
		}
		dst := &net.IPAddr{IP: net.ParseIP(ip)}
		for try := 0; try < 3; try++ {
			if _, err := c.WriteTo(b, dst); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 1500)
			for {
				n, peer, err := c.ReadFrom(buf)
				if err != nil {
					break // timeout: send again
				}
				rm, err := icmp.ParseMessage(1, buf[:n])
				if err == nil && rm.Type == ipv4.ICMPTypeEchoReply && peer.String() == ip {
					return nil
				}
			}
		}
		return fmt.Errorf("no echo reply from %s", ip)
	})
}

// freePort returns a host TCP and UDP port nobody holds right now.
func freePort(t *testing.T) uint16 {
	t.Helper()
	for i := 0; i < 50; i++ {
		var b [2]byte
		rand.Read(b[:])
		p := 20000 + binary.BigEndian.Uint16(b[:])%20000
		l, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		u, err := net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", p))
		if err != nil {
			continue
		}
		u.Close()
		return p
	}
	t.Fatal("no free port")
	return 0
}

// hostIP is the host's first non-loopback IPv4 address outside test bridges.
func hostIP(t *testing.T) string {
	t.Helper()
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		if l, err := netlink.LinkByName(ifc.Name); err == nil && l.Type() != "device" && l.Type() != "veth" {
			continue // bridges, taps and the like belong to others
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	t.Skip("no non-loopback IPv4 address on the host")
	return ""
}

// serveUDP answers every datagram with reply, from a socket made in the netns.
func serveUDP(t *testing.T, nsPath, addr, reply string) {
	t.Helper()
	var c net.PacketConn
	err := inNS(t, nsPath, func() error {
		var err error
		c, err = net.ListenPacket("udp4", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen %s/udp in %s: %v", addr, nsPath, err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo([]byte(reply), from)
		}
	}()
}

// askUDP sends a datagram to addr from the host and returns the answer.
func askUDP(addr string) (string, error) {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for try := 0; try < 3; try++ {
		if _, err := c.Write([]byte("q")); err != nil {
			return "", err
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", fmt.Errorf("no answer from %s/udp", addr)
}
