package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	hullv1 "github.com/hullproject/hull/api/hull/v1"
	"github.com/hullproject/hull/mount"
	"github.com/hullproject/hull/network"
)

func TestPortsFromAPI(t *testing.T) {
	pm := func(ip string, h, c uint32, proto string) *hullv1.PortMapping {
		return &hullv1.PortMapping{HostIp: ip, HostPort: h, ContainerPort: c, Protocol: proto}
	}
	for _, tc := range []struct {
		name    string
		in      []*hullv1.PortMapping
		want    string // the mappings' String()s, comma separated
		wantErr string
	}{
		{name: "none"},
		{name: "tcp default", in: []*hullv1.PortMapping{pm("", 8080, 80, "")}, want: "0.0.0.0:8080->80/tcp"},
		{name: "udp and ip", in: []*hullv1.PortMapping{pm("127.0.0.1", 53, 53, "UDP"), pm("", 53, 53, "tcp")}, want: "127.0.0.1:53->53/udp,0.0.0.0:53->53/tcp"},
		{name: "0.0.0.0 is all", in: []*hullv1.PortMapping{pm("0.0.0.0", 1, 2, "tcp")}, want: "0.0.0.0:1->2/tcp"},
		{name: "same port two addresses", in: []*hullv1.PortMapping{pm("127.0.0.1", 80, 80, ""), pm("127.0.0.2", 80, 81, "")}, want: "127.0.0.1:80->80/tcp,127.0.0.2:80->81/tcp"},
		{name: "host port 0", in: []*hullv1.PortMapping{pm("", 0, 80, "")}, wantErr: "host port 0"},
		{name: "container port too big", in: []*hullv1.PortMapping{pm("", 80, 70000, "")}, wantErr: "container port 70000"},
		{name: "sctp", in: []*hullv1.PortMapping{pm("", 80, 80, "sctp")}, wantErr: `protocol "sctp"`},
		{name: "bad ip", in: []*hullv1.PortMapping{pm("localhost", 80, 80, "")}, wantErr: `host IP "localhost"`},
		{name: "ipv6", in: []*hullv1.PortMapping{pm("::1", 80, 80, "")}, wantErr: `host IP "::1"`},
		{name: "twice", in: []*hullv1.PortMapping{pm("", 80, 80, ""), pm("127.0.0.1", 80, 81, "tcp")}, wantErr: "published twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := portsFromAPI(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, network.ErrInvalidPort) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want one containing %q wrapping ErrInvalidPort", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if strings.Join(s, ",") != tc.want {
				t.Fatalf("got %v, want %s", s, tc.want)
			}
			if back := portsToAPI(got); len(back) != len(tc.in) {
				t.Fatalf("portsToAPI: %v", back)
			}
		})
	}
}

// writeEtcFiles replaces what the image has at /etc/resolv.conf (a symlink
// out of the rootfs here) without writing through it.
func TestWriteEtcFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: bind-mounts the rootfs")
	}
	dir := t.TempDir()
	rootfs, outside, src := filepath.Join(dir, "rootfs"), filepath.Join(dir, "outside"), filepath.Join(dir, "src")
	for _, d := range []string{filepath.Join(rootfs, "etc"), src} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(outside, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(rootfs, "etc", "resolv.conf")); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, name := range []string{"resolv.conf", "hosts", "hostname"} {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte("new "+name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		files["/etc/"+name] = p
	}
	delete(files, "/etc/hostname") // a path the user mounts is not written
	if err := writeEtcFiles([]mount.Mount{{Type: "bind", Source: rootfs, Options: []string{"rbind"}}}, files); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"resolv.conf": "new resolv.conf\n", "hosts": "new hosts\n"} {
		if data, err := os.ReadFile(filepath.Join(rootfs, "etc", name)); err != nil || string(data) != want {
			t.Errorf("%s: %q, %v", name, data, err)
		}
	}
	if _, err := os.Stat(filepath.Join(rootfs, "etc", "hostname")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("hostname written though not asked: %v", err)
	}
	if data, _ := os.ReadFile(outside); string(data) != "keep\n" {
		t.Errorf("wrote through the symlink: %q", data)
	}
}
