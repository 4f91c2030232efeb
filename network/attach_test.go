package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"
)

func TestAttachContainerToContainer(t *testing.T) {
	e := newTestEnv(t)
	id := "t-" + randHex(4)
	a := e.attach(t, AttachOptions{ID: "ns/" + id + "-a"})
	b := e.attach(t, AttachOptions{ID: "ns/" + id + "-b"})
	if a.MAC == "" || a.Gateway == "" || a.NetNS == "" || a.IfName != "eth0" || a.Network != e.cfg.DefaultName {
		t.Fatalf("attachment lacks fields: %+v", a)
	}
	ipA, ipB := ipOf(t, a), ipOf(t, b)
	if ipA == ipB {
		t.Fatalf("both got %s", ipA)
	}
	serveEcho(t, b.NetNS, ":8080", "hello from b")
	got, err := fetch(t, a.NetNS, ipB+":8080")
	if err != nil || got != "hello from b" {
		t.Fatalf("a -> b tcp: %q, %v", got, err)
	}
	if err := ping(t, a.NetNS, ipB); err != nil {
		t.Fatalf("ping a -> b: %v", err)
	}
	if err := ping(t, b.NetNS, ipA); err != nil {
		t.Fatalf("ping b -> a: %v", err)
	}
	if err := ping(t, b.NetNS, a.Gateway); err != nil {
		t.Fatalf("ping b -> gateway: %v", err)
	}
	// Container to host, through the gateway and to the host's own address.
	hl, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	go func() {
		for {
			c, err := hl.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("host"))
			c.Close()
		}
	}()
	hport := hl.Addr().(*net.TCPAddr).Port
	for _, ip := range []string{a.Gateway, hostIP(t)} {
		if got, err := fetch(t, a.NetNS, fmt.Sprintf("%s:%d", ip, hport)); err != nil || got != "host" {
			t.Errorf("container -> host %s:%d: %q, %v", ip, hport, got, err)
		}
	}
	// lo is up inside (the loopback plugin).
	serveEcho(t, a.NetNS, "127.0.0.1:9090", "lo")
	if got, err := fetch(t, a.NetNS, "127.0.0.1:9090"); err != nil || got != "lo" {
		t.Fatalf("lo in the netns: %q, %v", got, err)
	}
	for _, x := range []*Attachment{a, b} {
		if err := e.m.Detach(context.Background(), x.ID); err != nil {
			t.Fatal(err)
		}
	}
	e.assertClean(t, nil, nil)
}

func TestPublishedPort(t *testing.T) {
	e := newTestEnv(t)
	hp := freePort(t)
	a := e.attach(t, AttachOptions{ID: "pub-" + randHex(4), Ports: []PortMapping{
		{HostPort: hp, ContainerPort: 80, Protocol: "tcp"}, {HostPort: hp, ContainerPort: 53, Protocol: "udp"}}})
	serveEcho(t, a.NetNS, ":80", "page")
	serveUDP(t, a.NetNS, ":53", "dns")
	for _, host := range []string{"127.0.0.1", hostIP(t)} {
		if got, err := askUDP(fmt.Sprintf("%s:%d", host, hp)); err != nil || got != "dns" {
			t.Errorf("host -> %s:%d/udp: %q, %v", host, hp, got, err)
		}
	}
	for _, host := range []string{"127.0.0.1", hostIP(t)} {
		addr := fmt.Sprintf("%s:%d", host, hp)
		got, err := fetch(t, "", addr)
		if err != nil || got != "page" {
			t.Errorf("host -> %s: %q, %v", addr, got, err)
		}
	}
	// Through the host's address from another container, and from the
	// container itself (hairpin).
	other := e.attach(t, AttachOptions{ID: "pub-other-" + randHex(4)})
	for _, from := range []*Attachment{other, a} {
		addr := fmt.Sprintf("%s:%d", hostIP(t), hp)
		if got, err := fetch(t, from.NetNS, addr); err != nil || got != "page" {
			t.Errorf("%s -> %s: %q, %v", from.ID, addr, got, err)
		}
	}
	for _, x := range []*Attachment{a, other} {
		if err := e.m.Detach(context.Background(), x.ID); err != nil {
			t.Fatal(err)
		}
	}
	e.assertClean(t, []string{a.ID, other.ID}, []string{ipOf(t, a), ipOf(t, other)})
	if _, err := fetch(t, "", fmt.Sprintf("127.0.0.1:%d", hp)); err == nil {
		t.Error("the published port still answers after detach")
	}
}

func TestPublishedPortOnHostIP(t *testing.T) {
	e := newTestEnv(t)
	hp := freePort(t)
	a := e.attach(t, AttachOptions{ID: "pubip-" + randHex(4), Ports: []PortMapping{{HostIP: "127.0.0.1", HostPort: hp, ContainerPort: 8000, Protocol: "tcp"}}})
	serveEcho(t, a.NetNS, ":8000", "only lo")
	if got, err := fetch(t, "", fmt.Sprintf("127.0.0.1:%d", hp)); err != nil || got != "only lo" {
		t.Fatalf("host -> 127.0.0.1:%d: %q, %v", hp, got, err)
	}
	if !strings.Contains(a.Ports[0].String(), fmt.Sprintf("127.0.0.1:%d->8000/tcp", hp)) {
		t.Fatalf("port string %q", a.Ports[0])
	}
}

func TestPortInUse(t *testing.T) {
	e := newTestEnv(t)
	t.Run("host tcp listener", func(t *testing.T) {
		hp := freePort(t)
		l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", hp))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		id := "busy-" + randHex(4)
		_, err = e.m.Attach(context.Background(), AttachOptions{ID: id, Ports: []PortMapping{{HostPort: hp, ContainerPort: 80, Protocol: "tcp"}}})
		want := fmt.Sprintf("0.0.0.0:%d/tcp", hp)
		t.Logf("error: %v", err)
		if !errors.Is(err, ErrPortInUse) || !errdefs.IsConflict(err) || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
			t.Fatalf("got %v, want ErrPortInUse naming %s and this process", err, want)
		}
		e.assertClean(t, []string{id}, nil)
	})
	t.Run("host udp socket", func(t *testing.T) {
		hp := freePort(t)
		c, err := net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", hp))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = e.m.Attach(context.Background(), AttachOptions{ID: "busyu-" + randHex(4), Ports: []PortMapping{{HostIP: "127.0.0.1", HostPort: hp, ContainerPort: 53, Protocol: "udp"}}})
		if want := fmt.Sprintf("127.0.0.1:%d/udp", hp); !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want ErrPortInUse naming %s", err, want)
		}
		e.assertClean(t, nil, nil)
	})
	t.Run("another daemon", func(t *testing.T) {
		other := newTestEnv(t) // its own state dir, network and bridge
		hp := freePort(t)
		theirs := other.attach(t, AttachOptions{ID: "theirs-" + randHex(4), Ports: []PortMapping{{HostPort: hp, ContainerPort: 80, Protocol: "tcp"}}})
		_, err := e.m.Attach(context.Background(), AttachOptions{ID: "ours-" + randHex(4), Ports: []PortMapping{{HostIP: "127.0.0.1", HostPort: hp, ContainerPort: 80, Protocol: "tcp"}}})
		t.Logf("error: %v", err)
		if !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), cniID(theirs.ID)) || !strings.Contains(err.Error(), other.cfg.DefaultName) {
			t.Fatalf("got %v, want ErrPortInUse naming %s of network %s", err, cniID(theirs.ID), other.cfg.DefaultName)
		}
		// The other protocol is free.
		ours := e.attach(t, AttachOptions{ID: "ours-" + randHex(4), Ports: []PortMapping{{HostPort: hp, ContainerPort: 53, Protocol: "udp"}}})
		if err := e.m.Detach(context.Background(), ours.ID); err != nil {
			t.Fatal(err)
		}
		if err := other.m.Detach(context.Background(), theirs.ID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("another attachment", func(t *testing.T) {
		hp := freePort(t)
		first := e.attach(t, AttachOptions{ID: "first-" + randHex(4), Ports: []PortMapping{{HostPort: hp, ContainerPort: 80, Protocol: "tcp"}}})
		for _, p := range []PortMapping{
			{HostPort: hp, ContainerPort: 81, Protocol: "tcp"},
			{HostIP: "127.0.0.1", HostPort: hp, ContainerPort: 81, Protocol: "tcp"},
		} {
			_, err := e.m.Attach(context.Background(), AttachOptions{ID: "second-" + randHex(4), Ports: []PortMapping{p}})
			if !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), first.ID) || !strings.Contains(err.Error(), fmt.Sprintf(":%d/tcp", hp)) {
				t.Fatalf("%s: got %v, want ErrPortInUse naming %s", p, err, first.ID)
			}
		}
		// The same port number over UDP is another port.
		u := e.attach(t, AttachOptions{ID: "udp-" + randHex(4), Ports: []PortMapping{{HostPort: hp, ContainerPort: 53, Protocol: "udp"}}})
		for _, x := range []*Attachment{first, u} {
			if err := e.m.Detach(context.Background(), x.ID); err != nil {
				t.Fatal(err)
			}
		}
		// Released on detach.
		again := e.attach(t, AttachOptions{ID: "again-" + randHex(4), Ports: []PortMapping{{HostPort: hp, ContainerPort: 80, Protocol: "tcp"}}})
		if err := e.m.Detach(context.Background(), again.ID); err != nil {
			t.Fatal(err)
		}
		e.assertClean(t, []string{first.ID, u.ID, again.ID}, nil)
	})
}

// writeConflist puts a hand-written conflist into the env's conf dir.
func (e *testEnv) writeConflist(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.cfg.ConfDir, name+".conflist"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAttachBadInput(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	missing := "missing-" + randHex(3)
	e.writeConflist(t, missing, `{"cniVersion":"1.0.0","name":"`+missing+`","plugins":[{"type":"hull-no-such-plugin"}]}`)
	// A chain that fails after the bridge plugin succeeded: the undo must run DEL.
	failing, failBridge := "failing-"+randHex(3), "hnt"+randHex(4)
	t.Cleanup(func() { delLink(failBridge) })
	e.writeConflist(t, failing, `{"cniVersion":"1.0.0","name":"`+failing+`","plugins":[
		{"type":"bridge","bridge":"`+failBridge+`","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"`+randSubnet()+`"}]]}},
		{"type":"portmap","capabilities":{"portMappings":true}},
		{"type":"tuning","sysctl":{"net.ipv4.conf.eth0.hull_no_such_sysctl":"1"}}]}`)
	noPortmap, npBridge := "noportmap-"+randHex(3), "hnt"+randHex(4)
	t.Cleanup(func() { delLink(npBridge) })
	e.writeConflist(t, noPortmap, `{"cniVersion":"1.0.0","name":"`+noPortmap+`","plugins":[
		{"type":"bridge","bridge":"`+npBridge+`","ipam":{"type":"host-local","ranges":[[{"subnet":"`+randSubnet()+`"}]]}}]}`)
	emptyDir := t.TempDir()
	noPlugins, err := New(Config{ConfDir: e.cfg.ConfDir, StateDir: t.TempDir(), PluginDirs: []string{emptyDir}, DefaultName: e.cfg.DefaultName})
	if err != nil {
		t.Fatal(err)
	}
	hp := freePort(t)
	for _, tc := range []struct {
		name string
		m    *Manager
		o    AttachOptions
		is   error
		says []string
	}{
		{"unknown network", e.m, AttachOptions{Network: "hull-no-such-net"}, ErrUnknownNetwork, []string{`"hull-no-such-net"`}},
		{"unknown network with a path", e.m, AttachOptions{Network: "../x"}, ErrUnknownNetwork, []string{`"../x"`}},
		{"missing plugin", e.m, AttachOptions{Network: missing}, ErrMissingPlugin, []string{`"hull-no-such-plugin"`, "/usr/lib/cni"}},
		{"empty plugin dir", noPlugins, AttachOptions{}, ErrMissingPlugin, []string{`"loopback"`, emptyDir}},
		{"sctp", e.m, AttachOptions{Ports: []PortMapping{{HostPort: hp, ContainerPort: 80, Protocol: "sctp"}}}, ErrInvalidPort, []string{"sctp"}},
		{"port twice", e.m, AttachOptions{Ports: []PortMapping{{HostPort: hp, ContainerPort: 80}, {HostPort: hp, ContainerPort: 81}}}, ErrInvalidPort, []string{"twice"}},
		{"foreign host IP", e.m, AttachOptions{Ports: []PortMapping{{HostIP: "203.0.113.7", HostPort: hp, ContainerPort: 80}}}, ErrInvalidPort, []string{"203.0.113.7 is not an address of this host"}},
		{"ports without portmap", e.m, AttachOptions{Network: noPortmap, Ports: []PortMapping{{HostPort: hp, ContainerPort: 80}}}, ErrInvalidPort, []string{"portMappings", noPortmap}},
		{"none", e.m, AttachOptions{Network: None}, errdefs.ErrInvalidArgument, []string{"none"}},
		{"host", e.m, AttachOptions{Network: Host}, errdefs.ErrInvalidArgument, []string{"host"}},
		{"plugin fails after bridge", e.m, AttachOptions{Network: failing, Ports: []PortMapping{{HostPort: hp, ContainerPort: 80, Protocol: "tcp"}}}, nil, []string{"tuning", "hull_no_such_sysctl"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.ID = "bad-" + randHex(4)
			a, err := tc.m.Attach(ctx, tc.o)
			if err == nil {
				t.Fatalf("attached: %+v", a)
			}
			t.Logf("error: %v", err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if _, err := tc.m.Attachment(tc.o.ID); !errdefs.IsNotFound(err) {
				t.Errorf("a record is left: %v", err)
			}
			e.assertClean(t, []string{tc.o.ID}, nil)
			if tc.name == "plugin fails after bridge" {
				// The bridge came up and got a veth during ADD: none must be left on it.
				(&testEnv{m: e.m, bridge: failBridge}).assertClean(t, []string{tc.o.ID}, nil)
			}
		})
	}
	// The same ID twice.
	a := e.attach(t, AttachOptions{ID: "twice"})
	if _, err := e.m.Attach(ctx, AttachOptions{ID: "twice"}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second attach of one ID: %v", err)
	}
	if err := e.m.Detach(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	// Detach is idempotent.
	if err := e.m.Detach(ctx, a.ID); err != nil {
		t.Fatalf("second detach: %v", err)
	}
	if err := e.m.Detach(ctx, "never-attached"); err != nil {
		t.Fatalf("detach of an unknown ID: %v", err)
	}
}

func TestDetachAfterRestart(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	hp := freePort(t)
	a := e.attach(t, AttachOptions{ID: "default/restart-" + randHex(4), Ports: []PortMapping{{HostPort: hp, ContainerPort: 80, Protocol: "tcp"}}})
	serveEcho(t, a.NetNS, ":80", "before")
	// The conflist changes while hulld is down; DEL must use what ADD used
	// (libcni's cache), so the veth on the original bridge still goes.
	conf := filepath.Join(e.cfg.ConfDir, e.cfg.DefaultName+".conflist")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	otherBridge := "hnt" + randHex(4)
	t.Cleanup(func() { delLink(otherBridge) })
	if err := os.WriteFile(conf, []byte(strings.Replace(string(b), e.bridge, otherBridge, 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	m2, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	as, err := m2.Attachments()
	if err != nil || len(as) != 1 || as[0].ID != a.ID || ipOf(t, as[0]) != ipOf(t, a) {
		t.Fatalf("attachments after restart: %+v, %v", as, err)
	}
	if got, err := fetch(t, "", fmt.Sprintf("127.0.0.1:%d", hp)); err != nil || got != "before" {
		t.Fatalf("published port across the restart: %q, %v", got, err)
	}
	// Ports stay reserved across the restart.
	if _, err := m2.Attach(ctx, AttachOptions{ID: "other-" + randHex(4), Ports: []PortMapping{{HostPort: hp, ContainerPort: 80}}}); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("port of a restored attachment: %v", err)
	}
	if err := m2.Detach(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t, []string{a.ID}, []string{ipOf(t, a)})
	if _, err := fetch(t, "", fmt.Sprintf("127.0.0.1:%d", hp)); err == nil {
		t.Fatal("the published port still answers after detach")
	}
}

func TestConcurrentAttach(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	res := make([]*Attachment, n)
	errs := make([]error, n)
	var ports []uint16
	for len(ports) < n-1 {
		if p := freePort(t); !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = e.m.Attach(ctx, AttachOptions{ID: fmt.Sprintf("conc-%d-%s", i, randHex(3)),
				Ports: []PortMapping{{HostIP: "127.0.0.1", HostPort: ports[i%(n-1)], ContainerPort: 80}}})
		}()
	}
	wg.Wait()
	// Eight attaches on seven distinct ports: exactly one loses the race for its port.
	ips := map[string]bool{}
	var lost int
	var ids, addrs []string
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			if !errors.Is(errs[i], ErrPortInUse) {
				t.Errorf("attach %d: %v", i, errs[i])
			}
			lost++
			continue
		}
		ip := ipOf(t, res[i])
		if ips[ip] {
			t.Errorf("IP %s given twice", ip)
		}
		ips[ip] = true
		ids, addrs = append(ids, res[i].ID), append(addrs, ip)
	}
	if lost != 1 {
		t.Errorf("%d attaches failed, want 1", lost)
	}
	// Two attaches of one ID at once: one wins.
	var errA, errB error
	wg.Add(2)
	go func() { defer wg.Done(); _, errA = e.m.Attach(ctx, AttachOptions{ID: "same"}) }()
	go func() { defer wg.Done(); _, errB = e.m.Attach(ctx, AttachOptions{ID: "same"}) }()
	wg.Wait()
	if (errA == nil) == (errB == nil) || !errdefs.IsAlreadyExists(errors.Join(errA, errB)) {
		t.Errorf("same ID twice at once: %v / %v", errA, errB)
	}
	ids = append(ids, "same")
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.m.Detach(ctx, id); err != nil {
				t.Errorf("detach %s: %v", id, err)
			}
		}()
	}
	wg.Wait()
	e.assertClean(t, ids, addrs)
}

func TestTeardownCycles(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	cycles := 100
	if testing.Short() {
		cycles = 10
	}
	hp := freePort(t)
	var ids, ips []string
	var inodes []uint64
	start := time.Now()
	for i := 0; i < cycles; i++ {
		id := fmt.Sprintf("default/cycle-%d-%s", i, randHex(3))
		a, err := e.m.Attach(ctx, AttachOptions{ID: id, Ports: []PortMapping{
			{HostPort: hp, ContainerPort: 80, Protocol: "tcp"}, {HostPort: hp, ContainerPort: 53, Protocol: "udp"}}})
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		ids, ips = append(ids, id), append(ips, ipOf(t, a))
		var st unix.Stat_t
		if err := unix.Stat(a.NetNS, &st); err != nil {
			t.Fatal(err)
		}
		inodes = append(inodes, st.Ino)
		if i == 0 {
			// The leak checks below can fail: while attached, the rules name the container.
			if nat := iptablesSave(t, "nat"); !strings.Contains(nat, cniID(id)) || !mentionsIP(nat, ipOf(t, a)) {
				t.Fatalf("nat rules do not name %s / %s while attached", cniID(id), ipOf(t, a))
			}
			if filter := iptablesSave(t, "filter"); !mentionsIP(filter, ipOf(t, a)) {
				t.Fatalf("filter rules do not name %s while attached", ipOf(t, a))
			}
		}
		if err := e.m.Detach(ctx, id); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}
	t.Logf("%d attach/detach cycles (2 published ports each) in %v, %v per cycle", cycles, time.Since(start).Round(time.Millisecond), (time.Since(start) / time.Duration(cycles)).Round(time.Millisecond))
	e.assertClean(t, ids, ips)
	assertNoThreadIn(t, inodes)
}

// assertNoThreadIn checks that no thread of this process is still in one of
// the network namespaces (by inode): such a thread would keep it alive.
func assertNoThreadIn(t *testing.T, inodes []uint64) {
	t.Helper()
	want := map[string]bool{}
	for _, ino := range inodes {
		want[fmt.Sprintf("net:[%d]", ino)] = true
	}
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, task := range tasks {
		if l, err := os.Readlink(task); err == nil && want[l] {
			t.Errorf("thread %s is still in a container's netns %s", task, l)
		}
	}
}

// TestDetachAfterCrash: hulld died in the middle of Attach. Detach from a new
// manager must undo what was done, from the record alone when libcni has no
// cache entry yet.
func TestDetachAfterCrash(t *testing.T) {
	ctx := context.Background()
	for _, stage := range []string{"record only", "netns made", "ADD done, not cached"} {
		t.Run(stage, func(t *testing.T) {
			e := newTestEnv(t)
			hp := freePort(t)
			id := "crash/" + randHex(4)
			list, _, err := e.m.load("")
			if err != nil {
				t.Fatal(err)
			}
			if list, err = e.m.prepare(list); err != nil {
				t.Fatal(err)
			}
			rec := &record{
				Attachment: Attachment{ID: id, Network: e.cfg.DefaultName, NetNS: e.m.netnsPath(id), IfName: "eth0",
					Ports: []PortMapping{{HostPort: hp, ContainerPort: 80, Protocol: "tcp"}}},
				CNIID: cniID(id), Conflist: list.Bytes,
			}
			if err := e.m.writeRecord(rec); err != nil {
				t.Fatal(err)
			}
			var ips []string
			if stage != "record only" {
				if err := newNetNS(rec.NetNS); err != nil {
					t.Fatal(err)
				}
			}
			if stage == "ADD done, not cached" {
				res, err := e.m.cni.AddNetworkList(ctx, list, e.m.runtimeConf(rec))
				if err != nil {
					t.Fatal(err)
				}
				r, _ := types100.NewResultFromResult(res)
				ips = append(ips, r.IPs[0].Address.IP.String())
				os.RemoveAll(filepath.Join(e.m.StateDir(), "cache"))
				if nat := iptablesSave(t, "nat"); !strings.Contains(nat, cniID(id)) {
					t.Fatal("no nat rules after ADD")
				}
				if !mentionsIP(iptablesSave(t, "filter"), ips[0]) {
					t.Fatal("no firewall rules after ADD")
				}
			}
			m2, err := New(e.cfg)
			if err != nil {
				t.Fatal(err)
			}
			as, _ := m2.Attachments()
			if len(as) != 1 || as[0].ID != id {
				t.Fatalf("attachments after the crash: %+v", as)
			}
			if err := m2.Detach(ctx, id); err != nil {
				t.Fatal(err)
			}
			e.assertClean(t, []string{id}, ips)
		})
	}
}

// TestAttachCancelled: a context that ends somewhere inside Attach (before
// the netns, between plugins, ...) leaves either a whole attachment or nothing.
func TestAttachCancelled(t *testing.T) {
	e := newTestEnv(t)
	hp := freePort(t)
	var ids, ips []string
	for _, d := range []time.Duration{time.Millisecond, 5 * time.Millisecond, 15 * time.Millisecond, 30 * time.Millisecond,
		50 * time.Millisecond, 80 * time.Millisecond, 120 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		id := fmt.Sprintf("cancel-%d-%s", d.Milliseconds(), randHex(3))
		ids = append(ids, id)
		a, err := e.m.Attach(ctx, AttachOptions{ID: id, Ports: []PortMapping{{HostPort: hp, ContainerPort: 80, Protocol: "tcp"}}})
		cancel()
		if err == nil {
			ips = append(ips, ipOf(t, a))
			if err := e.m.Detach(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		} else if _, rerr := e.m.Attachment(id); !errdefs.IsNotFound(rerr) {
			t.Fatalf("after %v: %v, and a record is left", d, err)
		}
		t.Logf("timeout %v: %v", d, err)
		e.assertClean(t, ids, ips)
	}
}

// TestDetachWhenDELFails: a plugin's DEL that fails but leaves nothing does
// not block Detach; one that leaves something keeps the record and says what.
func TestDetachWhenDELFails(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	t.Run("nothing left", func(t *testing.T) {
		a := e.attach(t, AttachOptions{ID: "delfail-" + randHex(4)})
		// Remove the bridge plugin's NAT rule and chain, as an ADD cut short
		// would have: its DEL then fails on the missing chain.
		var chain string
		for _, line := range strings.Split(iptablesSave(t, "nat"), "\n") {
			if strings.HasPrefix(line, "-A POSTROUTING ") && strings.Contains(line, cniID(a.ID)) {
				f := strings.Fields(line)
				chain = f[len(f)-1]
				args := append([]string{"-w", "-t", "nat", "-D"}, unquoteFields(t, line)[1:]...)
				if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
					t.Fatalf("iptables %v: %v: %s", args, err, out)
				}
			}
		}
		if chain == "" {
			t.Fatal("no ipMasq rule for the attachment")
		}
		exec.Command("iptables", "-w", "-t", "nat", "-F", chain).Run()
		exec.Command("iptables", "-w", "-t", "nat", "-X", chain).Run()
		if err := e.m.Detach(ctx, a.ID); err != nil {
			t.Fatalf("detach: %v", err)
		}
		e.assertClean(t, []string{a.ID}, []string{ipOf(t, a)})
	})
	t.Run("something left", func(t *testing.T) {
		a := e.attach(t, AttachOptions{ID: "delleft-" + randHex(4)})
		// A manager that cannot find the bridge plugin.
		dir := t.TempDir()
		for _, p := range []string{"loopback", "host-local", "portmap", "firewall"} {
			if err := os.Symlink(filepath.Join("/usr/lib/cni", p), filepath.Join(dir, p)); err != nil {
				t.Fatal(err)
			}
		}
		cfg := e.cfg
		cfg.PluginDirs = []string{dir}
		m2, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = m2.Detach(ctx, a.ID)
		t.Logf("detach: %v", err)
		if err == nil || !strings.Contains(err.Error(), "bridge") || !strings.Contains(err.Error(), "left behind: IPAM allocation "+ipOf(t, a)) {
			t.Fatalf("detach without the bridge plugin: %v", err)
		}
		if _, err := m2.Attachment(a.ID); err != nil {
			t.Fatalf("the record is gone: %v", err)
		}
		if err := e.m.Detach(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		e.assertClean(t, []string{a.ID}, []string{ipOf(t, a)})
	})
}

// unquoteFields splits an iptables-save line into arguments, honouring the
// double quotes around comments.
func unquoteFields(t *testing.T, line string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	inQ, any := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && inQ && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQ, any = !inQ, true
		case c == ' ' && !inQ:
			if cur.Len() > 0 || any {
				out = append(out, cur.String())
			}
			cur.Reset()
			any = false
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 || any {
		out = append(out, cur.String())
	}
	return out
}

// An attachment announced as leaving (Releasing: hulld detaches a
// container's attachment beside reporting its exit) still holds its ports
// and its network, but an Attach that wants one of those ports, and a
// Remove of the network, wait for its Detach instead of failing; without
// the announcement they fail at once as before.
func TestReleasingWaits(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	hp := freePort(t)
	ports := []PortMapping{{HostPort: hp, ContainerPort: 80, Protocol: "tcp"}}

	t.Run("port", func(t *testing.T) {
		first := e.attach(t, AttachOptions{ID: "leaving-" + randHex(4), Ports: ports})
		if _, err := e.m.Attach(ctx, AttachOptions{ID: "early-" + randHex(4), Ports: ports}); !errors.Is(err, ErrPortInUse) {
			t.Fatalf("attach before Releasing: got %v, want ErrPortInUse", err)
		}
		e.m.Releasing(first.ID)
		type res struct {
			a   *Attachment
			err error
		}
		got := make(chan res, 1)
		second := "next-" + randHex(4)
		go func() {
			a, err := e.m.Attach(ctx, AttachOptions{ID: second, Ports: ports})
			got <- res{a, err}
		}()
		select {
		case r := <-got:
			t.Fatalf("attach of a port held by a leaving attachment returned before its detach: %v, %v", r.a, r.err)
		case <-time.After(300 * time.Millisecond):
		}
		if err := e.m.Detach(ctx, first.ID); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err != nil {
			t.Fatalf("attach after the leaving one's detach: %v", r.err)
		}
		// A bounded wait for one that never goes.
		e.m.Releasing(second)
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := e.m.Attach(cctx, AttachOptions{ID: "late-" + randHex(4), Ports: ports}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("attach while the holder never detaches: got %v, want the context's deadline", err)
		}
		if err := e.m.Detach(ctx, second); err != nil {
			t.Fatal(err)
		}
		e.assertClean(t, []string{first.ID, second}, nil)
	})

	t.Run("network", func(t *testing.T) {
		br := "hnt" + randHex(4)
		t.Cleanup(func() { delLink(br) })
		n, err := e.m.Create(ctx, CreateOptions{Name: "hnt-rel-" + randHex(3), Bridge: br})
		if err != nil {
			t.Fatal(err)
		}
		a := e.attach(t, AttachOptions{ID: "user-" + randHex(4), Network: n.Name})
		if err := e.m.Remove(ctx, n.Name); !errors.Is(err, ErrNetworkInUse) {
			t.Fatalf("remove with a user: got %v, want ErrNetworkInUse", err)
		}
		e.m.Releasing(a.ID)
		done := make(chan error, 1)
		go func() { done <- e.m.Remove(ctx, n.Name) }()
		select {
		case err := <-done:
			t.Fatalf("remove returned before the leaving attachment's detach: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		if err := e.m.Detach(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("remove after the last user's detach: %v", err)
		}
	})
}
