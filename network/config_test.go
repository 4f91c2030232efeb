package network

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"github.com/vishvananda/netlink"
)

func TestDefaultNetwork(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	n, err := e.m.Get(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want := Network{Name: e.cfg.DefaultName, Bridge: e.bridge, Subnet: e.subnet, Gateway: netip.MustParsePrefix(e.subnet).Addr().Next().String(),
		Plugins: []string{"bridge", "portmap", "firewall"}, Default: true, File: e.cfg.ConfDir + "/" + e.cfg.DefaultName + ".conflist"}
	if !reflect.DeepEqual(n, want) {
		t.Fatalf("default network\n got %+v\nwant %+v", n, want)
	}
	var conf struct {
		Plugins []map[string]any `json:"plugins"`
	}
	b, _ := os.ReadFile(n.File)
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	br := conf.Plugins[0]
	if br["isGateway"] != true || br["ipMasq"] != true || br["hairpinMode"] != true || conf.Plugins[1]["snat"] != true {
		t.Errorf("conflist options: %s", b)
	}
	// An existing conflist is left as it is.
	os.WriteFile(n.File, []byte(strings.Replace(string(b), e.subnet, "10.199.0.0/24", 1)), 0o644)
	m2, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n2, _ := m2.Get(ctx, e.cfg.DefaultName); n2.Subnet != "10.199.0.0/24" {
		t.Errorf("New rewrote an existing conflist: %+v", n2)
	}
	os.WriteFile(n.File, b, 0o644)
	if _, err := New(Config{ConfDir: t.TempDir(), StateDir: t.TempDir(), DefaultName: "x", DefaultSubnet: "10.1.2.3/24"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad default subnet: %v", err)
	}
	if _, err := New(Config{ConfDir: t.TempDir(), StateDir: t.TempDir(), DefaultName: "x", DefaultBridge: "a-very-long-bridge-name"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad default bridge: %v", err)
	}
}

func TestCreateNetwork(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	sub := randSubnet()
	for sub == e.subnet {
		sub = randSubnet()
	}
	name := "web-" + randHex(3)
	br := "hnt" + randHex(4)
	n, err := e.m.Create(ctx, CreateOptions{Name: name, Subnet: sub, Bridge: br})
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != name || n.Bridge != br || n.Subnet != sub || n.Default || n.Gateway != netip.MustParsePrefix(sub).Addr().Next().String() {
		t.Fatalf("created %+v", n)
	}
	for _, tc := range []struct {
		name string
		o    CreateOptions
		is   error
		says string
	}{
		{"empty name", CreateOptions{}, errdefs.ErrInvalidArgument, "network name"},
		{"slash", CreateOptions{Name: "a/b"}, errdefs.ErrInvalidArgument, `"a/b"`},
		{"none", CreateOptions{Name: None}, errdefs.ErrInvalidArgument, "reserved"},
		{"host", CreateOptions{Name: Host}, errdefs.ErrInvalidArgument, "reserved"},
		{"exists", CreateOptions{Name: name}, errdefs.ErrAlreadyExists, name},
		{"default exists", CreateOptions{Name: e.cfg.DefaultName}, errdefs.ErrAlreadyExists, e.cfg.DefaultName},
		{"bad subnet", CreateOptions{Name: "n1", Subnet: "10.300.0.0/24"}, errdefs.ErrInvalidArgument, `subnet "10.300.0.0/24"`},
		{"host bits", CreateOptions{Name: "n1", Subnet: "10.95.0.5/24"}, errdefs.ErrInvalidArgument, "did you mean 10.95.0.0/24"},
		{"ipv6", CreateOptions{Name: "n1", Subnet: "fd00::/64"}, errdefs.ErrInvalidArgument, "IPv4"},
		{"tiny", CreateOptions{Name: "n1", Subnet: "10.95.0.0/31"}, errdefs.ErrInvalidArgument, "prefix length"},
		{"overlap", CreateOptions{Name: "n1", Subnet: netip.PrefixFrom(netip.MustParsePrefix(sub).Addr(), 16).Masked().String()}, errdefs.ErrInvalidArgument, "overlaps"},
		{"overlap default", CreateOptions{Name: "n1", Subnet: e.subnet}, errdefs.ErrInvalidArgument, e.cfg.DefaultName},
		{"gateway outside", CreateOptions{Name: "n1", Subnet: "10.95.0.0/24", Gateway: "10.95.1.1"}, errdefs.ErrInvalidArgument, "not a host address"},
		{"gateway broadcast", CreateOptions{Name: "n1", Subnet: "10.95.0.0/24", Gateway: "10.95.0.255"}, errdefs.ErrInvalidArgument, "not a host address"},
		{"gateway without subnet", CreateOptions{Name: "n1", Gateway: "10.95.0.1"}, errdefs.ErrInvalidArgument, "needs a subnet"},
		{"long bridge", CreateOptions{Name: "n1", Subnet: "10.95.0.0/24", Bridge: "a-very-long-bridge"}, errdefs.ErrInvalidArgument, "15 characters"},
		{"bad bridge", CreateOptions{Name: "n1", Subnet: "10.95.0.0/24", Bridge: "br/0"}, errdefs.ErrInvalidArgument, "br/0"},
		{"shared bridge", CreateOptions{Name: "n1", Subnet: "10.95.0.0/24", Bridge: br}, errdefs.ErrInvalidArgument, "already used by network " + name},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.m.Create(ctx, tc.o)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want %v saying %q", err, tc.is, tc.says)
			}
			if _, err := e.m.Get(ctx, "n1"); !errors.Is(err, ErrUnknownNetwork) {
				t.Fatalf("a conflist was written: %v", err)
			}
		})
	}
	// An empty subnet picks a free one; a long name gets a hashed bridge.
	long := "a-long-network-name-" + randHex(3)
	auto, err := e.m.Create(ctx, CreateOptions{Name: long})
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParsePrefix(auto.Subnet)
	if !netip.MustParsePrefix("10.89.0.0/16").Contains(ap.Addr()) || ap.Bits() != 24 || len(auto.Bridge) > 15 || !strings.HasPrefix(auto.Bridge, "hull-") {
		t.Fatalf("auto network %+v", auto)
	}
	t.Cleanup(func() { delLink(auto.Bridge) })
	nets, err := e.m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nets {
		names = append(names, n.Name)
	}
	if len(nets) != 3 || !strings.Contains(strings.Join(names, ","), name) || !strings.Contains(strings.Join(names, ","), long) {
		t.Fatalf("List: %v", names)
	}
	next, err := e.m.Create(ctx, CreateOptions{Name: "next-" + randHex(3), Bridge: "hnt" + randHex(4)})
	if err != nil || next.Subnet == auto.Subnet {
		t.Fatalf("second auto subnet: %+v, %v", next, err)
	}
	// A broken conflist is skipped by List but named by Get.
	e.writeConflist(t, "broken", "{not json")
	if nets2, err := e.m.List(ctx); err != nil || len(nets2) != 4 {
		t.Fatalf("List with a broken conflist: %d, %v", len(nets2), err)
	}
	if _, err := e.m.Get(ctx, "broken"); err == nil || !strings.Contains(err.Error(), "broken.conflist") {
		t.Fatalf("Get of a broken conflist: %v", err)
	}
}

func TestRemoveNetwork(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	sub := randSubnet()
	for sub == e.subnet {
		sub = randSubnet()
	}
	name, br := "rm-"+randHex(3), "hnt"+randHex(4)
	t.Cleanup(func() { delLink(br) })
	if _, err := e.m.Create(ctx, CreateOptions{Name: name, Subnet: sub, Bridge: br}); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove(ctx, e.cfg.DefaultName); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "default network") {
		t.Fatalf("remove default: %v", err)
	}
	if err := e.m.Remove(ctx, "no-such-net"); !errors.Is(err, ErrUnknownNetwork) || !errdefs.IsNotFound(err) {
		t.Fatalf("remove unknown: %v", err)
	}
	a := e.attach(t, AttachOptions{ID: "rm/user", Network: name})
	if !netip.MustParsePrefix(sub).Contains(netip.MustParseAddr(ipOf(t, a))) {
		t.Fatalf("IP %s is not in %s", ipOf(t, a), sub)
	}
	if err := e.m.Remove(ctx, name); !errors.Is(err, ErrNetworkInUse) || !strings.Contains(err.Error(), "rm/user") {
		t.Fatalf("remove in use: %v", err)
	}
	if err := e.m.Detach(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(br); err != nil {
		t.Fatalf("bridge %s should exist before remove: %v", br, err)
	}
	if err := e.m.Remove(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(br); err == nil {
		t.Errorf("bridge %s left after remove", br)
	}
	if _, err := e.m.Get(ctx, name); !errors.Is(err, ErrUnknownNetwork) {
		t.Errorf("get after remove: %v", err)
	}
	if _, err := os.Stat(e.m.StateDir() + "/ipam/" + name); !os.IsNotExist(err) {
		t.Errorf("IPAM dir left: %v", err)
	}
	e.assertClean(t, []string{a.ID}, []string{ipOf(t, a)})
}

// TestWithoutPortmap: an attachment without published ports runs the
// conflist without its portmap plugins (their ADD and DEL do nothing then);
// the other plugins stay, in order, and a list of portmap alone is kept.
func TestWithoutPortmap(t *testing.T) {
	def, err := conflistJSON("n", "br", netip.MustParsePrefix("10.77.0.0/24"), netip.MustParseAddr("10.77.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		list string
		want []string
	}{
		{"default", string(def), []string{"bridge", "firewall"}},
		{"no portmap", `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"tuning"}]}`, []string{"bridge", "tuning"}},
		{"portmap only", `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"portmap","capabilities":{"portMappings":true}}]}`, []string{"portmap"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := libcni.ConfListFromBytes([]byte(tc.list))
			if err != nil {
				t.Fatal(err)
			}
			got, err := withoutPortmap(list)
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, p := range got.Plugins {
				types = append(types, p.Network.Type)
			}
			if !slices.Equal(types, tc.want) || got.Name != "n" {
				t.Errorf("plugins %v (name %q), want %v", types, got.Name, tc.want)
			}
		})
	}
}
