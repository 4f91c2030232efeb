package network

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEtcFiles(t *testing.T) {
	dir := t.TempDir()
	oldR, oldH := hostResolvConf, hostHosts
	t.Cleanup(func() { hostResolvConf, hostHosts = oldR, oldH })
	hostResolvConf = filepath.Join(dir, "host-resolv.conf")
	hostHosts = filepath.Join(dir, "host-hosts")
	os.WriteFile(hostHosts, []byte("127.0.0.1 localhost\n10.9.9.9 printer\n"), 0o644)
	a := &Attachment{IPs: []string{"10.88.0.7/16"}}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name, hostResolv, mode string
		a                      *Attachment
		resolv, hosts          []string // lines that must be there
		notResolv, notHosts    []string // lines that must not
	}{
		{
			name: "network", hostResolv: "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\n", mode: "hull0", a: a,
			resolv: []string{"nameserver 192.0.2.53", "search example.org"}, notResolv: []string{"127.0.0.53", "8.8.8.8"},
			hosts: []string{"127.0.0.1\tlocalhost", "10.88.0.7\tweb"}, notHosts: []string{"printer"},
		},
		{
			name: "only loopback resolvers", hostResolv: "nameserver 127.0.0.53\nnameserver ::1\noptions edns0\n", mode: "hull0", a: a,
			resolv: []string{"nameserver 8.8.8.8", "nameserver 8.8.4.4", "options edns0"}, notResolv: []string{"127.0.0.53", "::1"},
			hosts: []string{"10.88.0.7\tweb"},
		},
		{
			name: "none", hostResolv: "nameserver 192.0.2.53\n", mode: None,
			resolv: []string{"nameserver 192.0.2.53"}, hosts: []string{"127.0.1.1\tweb", "::1\tlocalhost ip6-localhost ip6-loopback"},
		},
		{
			name: "host", hostResolv: "nameserver 127.0.0.53\n", mode: Host,
			resolv: []string{"nameserver 127.0.0.53"}, hosts: []string{"10.9.9.9 printer"}, notHosts: []string{"127.0.1.1"},
		},
		{
			name: "no host resolv.conf", mode: "hull0", a: a,
			resolv: []string{"nameserver 8.8.8.8"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(hostResolvConf)
			if tc.hostResolv != "" {
				os.WriteFile(hostResolvConf, []byte(tc.hostResolv), 0o644)
			}
			out := filepath.Join(dir, tc.name)
			p, err := EtcFiles(out, tc.a, "web", tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			if got := read(p.Hostname); got != "web\n" {
				t.Errorf("hostname %q", got)
			}
			check := func(file string, must, mustNot []string) {
				got := read(file)
				for _, l := range must {
					if !strings.Contains(got, l+"\n") {
						t.Errorf("%s lacks %q:\n%s", filepath.Base(file), l, got)
					}
				}
				for _, l := range mustNot {
					if strings.Contains(got, l) {
						t.Errorf("%s has %q:\n%s", filepath.Base(file), l, got)
					}
				}
			}
			check(p.ResolvConf, tc.resolv, tc.notResolv)
			check(p.Hosts, tc.hosts, tc.notHosts)
		})
	}
}
