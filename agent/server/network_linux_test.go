package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/plugins/pkg/ns"

	agentapi "github.com/hullproject/hull/agent/api"
	"github.com/hullproject/hull/internal/testutil"
)

// TestConfigureNetwork runs the guest side of the vm network in a network
// namespace standing in for the guest: the NIC (a veth end with the MAC
// the host asked for) is found by MAC, renamed, gets its MTU, addresses
// and routes and comes up, and so does lo; a NIC given no IPv6 address has
// IPv6 disabled; the same request again changes
// nothing; an unknown MAC is an error naming it.
func TestConfigureNetwork(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	name := fmt.Sprintf("hullagentnet%d", os.Getpid())
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ip("netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	const mac = "02:42:0a:fa:00:05"
	ip("-n", name, "link", "add", "nic0", "address", mac, "type", "veth", "peer", "name", "peer0")
	ip("-n", name, "link", "set", "peer0", "up")
	const mac4 = "02:42:0a:fa:00:06"
	ip("-n", name, "link", "add", "nic1", "address", mac4, "type", "veth", "peer", "name", "peer1")
	ip("-n", name, "link", "set", "peer1", "up")

	req := &agentapi.ConfigureNetworkRequest{
		Interfaces: []*agentapi.Interface{
			{Name: "eth0", Mac: mac, Mtu: 1400, Addresses: []string{"10.250.3.5/24", "fd00:3::5/64"}},
			// IPv4 only: IPv6 is disabled on it.
			{Name: "eth1", Mac: mac4, Addresses: []string{"10.250.4.5/24"}},
		},
		Routes: []*agentapi.Route{
			{Destination: "10.99.0.0/16", Device: "eth0", Scope: 253},
			{Gateway: "10.250.3.1", Device: "eth0", Family: 2},
			{Destination: "192.168.77.0/24", Gateway: "10.99.0.1", Device: "eth0"},
			{Destination: "172.31.0.0/16", Gateway: "10.250.4.1", Device: "eth1", Metric: 50},
			{Destination: "172.30.0.9/32", Gateway: "10.250.4.1", Device: "eth1"},
			{Gateway: "fd00:3::1", Device: "eth0", Family: 10},
		},
	}
	s := &Server{}
	for i := 0; i < 2; i++ {
		err := ns.WithNetNSPath("/var/run/netns/"+name, func(ns.NetNS) error {
			_, err := s.ConfigureNetwork(context.Background(), req)
			return err
		})
		if err != nil {
			t.Fatalf("configure (%d): %v", i, err)
		}
	}
	link := ip("-n", name, "-o", "link", "show", "eth0")
	for _, want := range []string{"mtu 1400", "link/ether " + mac, "UP"} {
		if !strings.Contains(link, want) {
			t.Errorf("eth0 %q lacks %q", link, want)
		}
	}
	if lo := ip("-n", name, "-o", "link", "show", "lo"); !strings.Contains(lo, "UP") {
		t.Errorf("lo is down: %s", lo)
	}
	addrs := ip("-n", name, "addr", "show", "eth0")
	for _, want := range []string{"inet 10.250.3.5/24", "inet6 fd00:3::5/64"} {
		if !strings.Contains(addrs, want) {
			t.Errorf("eth0 addresses lack %q:\n%s", want, addrs)
		}
	}
	for ifc, want := range map[string]string{"eth0": "0", "eth1": "1"} {
		out, err := exec.Command("ip", "netns", "exec", name, "cat", "/proc/sys/net/ipv6/conf/"+ifc+"/disable_ipv6").CombinedOutput()
		if err != nil {
			t.Fatalf("disable_ipv6 of %s: %v: %s", ifc, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%s: disable_ipv6 = %s, want %s", ifc, got, want)
		}
	}
	// The first IPv4 address of a NIC is set by ioctls, the others and
	// IPv6 by netlink: all as `ip addr add` would (scope global, the
	// broadcast address derived, permanent).
	for ifc, want := range map[string]string{
		"eth0": "inet 10.250.3.5/24 brd 10.250.3.255 scope global eth0\\       valid_lft forever preferred_lft forever",
		"eth1": "inet 10.250.4.5/24 brd 10.250.4.255 scope global eth1\\       valid_lft forever preferred_lft forever",
	} {
		if got := ip("-n", name, "-o", "-4", "addr", "show", ifc); !strings.Contains(got, want) {
			t.Errorf("%s: %q lacks %q", ifc, got, want)
		}
	}
	// IPv4 routes through a gateway are added by ioctl, the others by
	// netlink: the same table, protocol, scope and metric either way.
	routes := ip("-n", name, "-d", "route", "show", "table", "main")
	for _, want := range []string{
		"unicast default via 10.250.3.1 dev eth0 proto boot scope global \n",
		"unicast 10.99.0.0/16 dev eth0 proto boot scope link \n",
		"unicast 192.168.77.0/24 via 10.99.0.1 dev eth0 proto boot scope global \n",
		"unicast 172.31.0.0/16 via 10.250.4.1 dev eth1 proto boot scope global metric 50 \n",
		"unicast 172.30.0.9 via 10.250.4.1 dev eth1 proto boot scope global \n",
	} {
		if !strings.Contains(routes, want) {
			t.Errorf("routes lack %q:\n%s", want, routes)
		}
	}
	if r6 := ip("-n", name, "-6", "route", "show", "default"); !strings.Contains(r6, "default via fd00:3::1 dev eth0") {
		t.Errorf("IPv6 default route missing: %s", r6)
	}

	nicWait = 100 * time.Millisecond
	t.Cleanup(func() { nicWait = 5 * time.Second })
	bad := &agentapi.ConfigureNetworkRequest{Interfaces: []*agentapi.Interface{{Name: "eth1", Mac: "02:00:00:00:00:99"}}}
	err := ns.WithNetNSPath("/var/run/netns/"+name, func(ns.NetNS) error {
		_, err := s.ConfigureNetwork(context.Background(), bad)
		return err
	})
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "02:00:00:00:00:99") {
		t.Fatalf("unknown MAC: %v", err)
	}
}
