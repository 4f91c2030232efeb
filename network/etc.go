package network

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// EtcPaths are the files EtcFiles wrote.
type EtcPaths struct{ ResolvConf, Hosts, Hostname string }

// Host files EtcFiles reads; variables for tests.
var (
	hostResolvConf = "/etc/resolv.conf"
	hostHosts      = "/etc/hosts"
)

// fallbackNameservers are used when the container has its own netns and the
// host's resolv.conf names only loopback resolvers (which the container cannot
// reach) or none, as Docker does.
var fallbackNameservers = []string{"8.8.8.8", "8.8.4.4"}

// EtcFiles writes resolv.conf, hosts and hostname for a container into dir
// and returns their paths; the daemon bind-mounts them at /etc/resolv.conf,
// /etc/hosts and /etc/hostname.
//
// netMode is Host, None or a network name. With Host the container gets the
// host's /etc/hosts and resolv.conf as they are. Otherwise hosts maps
// localhost, and the hostname to the attachment's address (a non-nil) or to
// 127.0.1.1 (none); resolv.conf is the host's without loopback nameservers,
// with 8.8.8.8 and 8.8.4.4 when none is left.
func EtcFiles(dir string, a *Attachment, hostname string, netMode string) (EtcPaths, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return EtcPaths{}, fmt.Errorf("etc files: %w", err)
	}
	p := EtcPaths{
		ResolvConf: filepath.Join(dir, "resolv.conf"),
		Hosts:      filepath.Join(dir, "hosts"),
		Hostname:   filepath.Join(dir, "hostname"),
	}
	hostname = strings.TrimSpace(hostname)
	if err := writeFileAtomic(p.Hostname, []byte(hostname+"\n"), 0o644); err != nil {
		return EtcPaths{}, fmt.Errorf("etc files: %w", err)
	}
	hostResolv, _ := os.ReadFile(hostResolvConf)
	var hosts, resolv []byte
	if netMode == Host {
		resolv = hostResolv
		if len(resolv) == 0 {
			resolv = fallbackResolv()
		}
		h, err := os.ReadFile(hostHosts)
		if err != nil || len(h) == 0 {
			h = []byte(localhostLines)
		}
		hosts = h
	} else {
		resolv = filterResolv(hostResolv)
		var b bytes.Buffer
		b.WriteString(localhostLines)
		if hostname != "" {
			switch {
			case a != nil && len(a.IPs) > 0:
				for _, cidr := range a.IPs {
					if pfx, err := netip.ParsePrefix(cidr); err == nil {
						fmt.Fprintf(&b, "%s\t%s\n", pfx.Addr(), hostname)
					}
				}
			default:
				fmt.Fprintf(&b, "127.0.1.1\t%s\n", hostname)
			}
		}
		hosts = b.Bytes()
	}
	if err := writeFileAtomic(p.Hosts, hosts, 0o644); err != nil {
		return EtcPaths{}, fmt.Errorf("etc files: %w", err)
	}
	if err := writeFileAtomic(p.ResolvConf, resolv, 0o644); err != nil {
		return EtcPaths{}, fmt.Errorf("etc files: %w", err)
	}
	return p, nil
}

const localhostLines = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

func fallbackResolv() []byte {
	var b bytes.Buffer
	for _, ns := range fallbackNameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	return b.Bytes()
}

// filterResolv drops nameservers on loopback addresses; when no nameserver
// is left it adds the fallback ones. Other lines (search, options) stay.
func filterResolv(in []byte) []byte {
	var b bytes.Buffer
	kept := 0
	sc := bufio.NewScanner(bytes.NewReader(in))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			addr, err := netip.ParseAddr(strings.Split(f[1], "%")[0])
			if err == nil && addr.IsLoopback() {
				continue
			}
			kept++
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if kept == 0 {
		b.Write(fallbackResolv())
	}
	return b.Bytes()
}
