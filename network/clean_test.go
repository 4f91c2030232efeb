package network

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// assertClean checks that nothing of any attachment is left: no veth on the
// bridge, no netns file, no record, no libcni cache entry, no host-local
// allocation, and no iptables rule naming one of ids (as CNI container IDs)
// or ips.
func (e *testEnv) assertClean(t *testing.T, ids, ips []string) {
	t.Helper()
	if br, err := netlink.LinkByName(e.bridge); err == nil {
		links, err := netlink.LinkList()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				t.Errorf("interface %s is still on bridge %s", l.Attrs().Name, e.bridge)
			}
		}
	}
	sd := e.m.StateDir()
	for _, d := range []string{"netns", "attachments", filepath.Join("cache", "results")} {
		ents, _ := os.ReadDir(filepath.Join(sd, d))
		for _, ent := range ents {
			t.Errorf("left in %s: %s", d, ent.Name())
		}
	}
	ipamDirs, _ := os.ReadDir(filepath.Join(sd, "ipam"))
	for _, nd := range ipamDirs {
		ents, _ := os.ReadDir(filepath.Join(sd, "ipam", nd.Name()))
		for _, ent := range ents {
			if n := ent.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
				t.Errorf("IPAM allocation left: %s/%s", nd.Name(), n)
			}
		}
	}
	for _, table := range []string{"nat", "filter"} {
		rules := iptablesSave(t, table)
		for _, id := range ids {
			if strings.Contains(rules, cniID(id)) {
				t.Errorf("iptables %s still names container %s", table, cniID(id))
			}
		}
		for _, ip := range ips {
			if mentionsIP(rules, ip) {
				t.Errorf("iptables %s still names IP %s", table, ip)
			}
		}
	}
}

func iptablesSave(t *testing.T, table string) string {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", table).CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save -t %s: %v: %s", table, err, out)
	}
	return string(out)
}

// mentionsIP finds ip as a whole address in iptables-save output
// ("10.1.2.3/32", "10.1.2.3:80" or "10.1.2.3 ").
func mentionsIP(rules, ip string) bool {
	return strings.Contains(rules, ip+"/") || strings.Contains(rules, ip+":") || strings.Contains(rules, ip+" ")
}
