package network

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestParsePort(t *testing.T) {
	tcp := func(ip string, h, c uint16) PortMapping {
		return PortMapping{HostIP: ip, HostPort: h, ContainerPort: c, Protocol: "tcp"}
	}
	for _, tc := range []struct {
		in   string
		want []PortMapping
	}{
		{"8080:80", []PortMapping{tcp("", 8080, 80)}},
		{"8080:80/tcp", []PortMapping{tcp("", 8080, 80)}},
		{"8080:80/TCP", []PortMapping{tcp("", 8080, 80)}},
		{"5353:53/udp", []PortMapping{{HostPort: 5353, ContainerPort: 53, Protocol: "udp"}}},
		{"127.0.0.1:8080:80", []PortMapping{tcp("127.0.0.1", 8080, 80)}},
		{"0.0.0.0:8080:80", []PortMapping{tcp("", 8080, 80)}},
		{"65535:1", []PortMapping{tcp("", 65535, 1)}},
		{"8000-8002:9000-9002", []PortMapping{tcp("", 8000, 9000), tcp("", 8001, 9001), tcp("", 8002, 9002)}},
		{"8000-8000:80", []PortMapping{tcp("", 8000, 80)}},
	} {
		got, err := ParsePort(tc.in)
		if err != nil {
			t.Errorf("ParsePort(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParsePort(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParsePortMalformed(t *testing.T) {
	for _, tc := range []struct {
		in   string
		says string // a part of the error that names what is wrong
	}{
		{"", "empty"},
		{"80", "no host port"},
		{"80:", "empty container port"},
		{":80", "empty host port"},
		{"abc:80", `"abc" is not a port number`},
		{"80:abc", `"abc" is not a port number`},
		{"70000:80", "port 70000 is out of range"},
		{"80:0", "port 0 is out of range"},
		{"-1:80", "empty port number"},
		{"1.2.3:80:80", `host IP "1.2.3" is not an IPv4 address`},
		{"::1:80:80", "too many ':'"},
		{"[::1]:80:80", "IPv6"},
		{"localhost:80:80", `host IP "localhost"`},
		{":8080:80", "empty host IP"},
		{"127.0.0.1::80", "empty host port"},
		{"80:80/sctp", "sctp is not supported"},
		{"80:80/icmp", `unknown protocol "icmp"`},
		{"80:80/", "empty protocol"},
		{"8000-8001:80", "differ in length"},
		{"8000-8002:9000-9001", "differ in length"},
		{"8002-8000:9002-9000", "ends before it starts"},
		{"1-2000:1-2000", "too large"},
		{"1:2:3:4", "too many ':'"},
	} {
		_, err := ParsePort(tc.in)
		if err == nil {
			t.Errorf("ParsePort(%q): no error", tc.in)
			continue
		}
		if !errors.Is(err, ErrInvalidPort) || !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParsePort(%q): %v is not ErrInvalidPort/InvalidArgument", tc.in, err)
		}
		if !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), `"`+tc.in+`"`) {
			t.Errorf("ParsePort(%q): error %q should name the spec and say %q", tc.in, err, tc.says)
		}
	}
}

func TestParsePorts(t *testing.T) {
	got, err := ParsePorts([]string{"8080:80", "8080:80/udp", "127.0.0.1:8081:81", "127.0.0.2:8081:82"})
	if err != nil || len(got) != 4 {
		t.Fatalf("ParsePorts: %v, %v", got, err)
	}
	for _, dup := range [][]string{
		{"8080:80", "8080:81"},
		{"8080:80", "127.0.0.1:8080:81"},
		{"8000-8010:9000-9010", "8005:80"},
		{"0.0.0.0:53:53/udp", "53:5353/udp"},
	} {
		_, err := ParsePorts(dup)
		if !errors.Is(err, ErrInvalidPort) || !strings.Contains(err.Error(), "already published") {
			t.Errorf("ParsePorts(%q): %v, want a duplicate error", dup, err)
		}
	}
}

func TestPortMappingString(t *testing.T) {
	for _, tc := range []struct {
		p    PortMapping
		want string
	}{
		{PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, "0.0.0.0:8080->80/tcp"},
		{PortMapping{HostIP: "127.0.0.1", HostPort: 53, ContainerPort: 5353, Protocol: "udp"}, "127.0.0.1:53->5353/udp"},
		{PortMapping{HostPort: 1, ContainerPort: 2}, "0.0.0.0:1->2/tcp"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestCNIID(t *testing.T) {
	seen := map[string]string{}
	for _, id := range []string{"abc", "ns/abc", "ns_abc", "ns-abc", "/x", "ünï/c", strings.Repeat("a", 300), "..", "a b"} {
		c := cniID(id)
		if !cniIDRE.MatchString(c) || len(c) > 128 {
			t.Errorf("cniID(%q) = %q: not a safe CNI container ID", id, c)
		}
		if other, ok := seen[c]; ok {
			t.Errorf("cniID(%q) = cniID(%q) = %q", id, other, c)
		}
		seen[c] = id
	}
	if cniID("abc") != "abc" {
		t.Errorf("a safe ID should stay as it is")
	}
}

func TestParseHostPortRules(t *testing.T) {
	rules := `-N CNI-HOSTPORT-DNAT
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"hull0\" id: \"default_web-1a2b3c4d\"" -m multiport --dports 8080,8443 -j CNI-DN-6ebc99fbb0bf293cb618e
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"podman\" id: \"abc\"" -m multiport --dports 5000:5002 -j CNI-DN-1
-A CNI-HOSTPORT-DNAT -j RETURN
`
	got := parseHostPortRules(rules)
	want := []cniHostPort{
		{proto: "tcp", network: "hull0", id: "default_web-1a2b3c4d", lo: 8080, hi: 8080},
		{proto: "tcp", network: "hull0", id: "default_web-1a2b3c4d", lo: 8443, hi: 8443},
		{proto: "udp", network: "podman", id: "abc", lo: 5000, hi: 5002},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}
