package cli

import (
	"strings"
	"syscall"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"", 0, false}, {"1024", 1024, false}, {"64m", 64 << 20, false}, {"64MB", 64 << 20, false},
		{"1g", 1 << 30, false}, {"512k", 512 << 10, false}, {"lots", 0, true}, {"-1m", 0, true}, {"0", 0, true},
	} {
		got, err := parseSize(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v", tc.in, got, err)
		}
	}
}

func TestParseMount(t *testing.T) {
	m, err := parseMount("type=bind,src=/a,dst=/b,options=rbind:ro")
	if err != nil || m.Type != "bind" || m.Source != "/a" || m.Destination != "/b" || strings.Join(m.Options, ",") != "rbind,ro" {
		t.Fatalf("%+v %v", m, err)
	}
	for _, bad := range []string{"src=/a", "type=bind,dst=rel", "dst=/b,color=red", "dst"} {
		if _, err := parseMount(bad); err == nil {
			t.Errorf("parseMount(%q): no error", bad)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"TERM": syscall.SIGTERM, "SIGKILL": syscall.SIGKILL, "int": syscall.SIGINT, "9": syscall.SIGKILL, "SIGUSR1": syscall.SIGUSR1} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"NOPE", "0", "99", ""} {
		if _, err := parseSignal(bad); err == nil {
			t.Errorf("parseSignal(%q): no error", bad)
		}
	}
}

func TestParseLabels(t *testing.T) {
	m, err := parseLabels([]string{"a=1", "b=", "c=x=y"})
	if err != nil || m["a"] != "1" || m["b"] != "" || m["c"] != "x=y" {
		t.Fatalf("%v %v", m, err)
	}
	if _, err := parseLabels([]string{"=v"}); err == nil {
		t.Fatal("empty key accepted")
	}
}

func TestParsePublish(t *testing.T) {
	for _, tc := range []struct {
		net     string
		in      []string
		want    string // portsString of the result
		wantErr string
	}{
		{in: nil, want: ""},
		{in: []string{"8080:80"}, want: "0.0.0.0:8080->80/tcp"},
		{in: []string{"127.0.0.1:8080:80/udp", "8443:443"}, want: "127.0.0.1:8080->80/udp, 0.0.0.0:8443->443/tcp"},
		{net: "web", in: []string{"0.0.0.0:53:53/udp"}, want: "0.0.0.0:53->53/udp"},
		{in: []string{"80"}, wantErr: "no host port"},
		{in: []string{"x:80"}, wantErr: `"x" is not a port number`},
		{in: []string{"8080:80/sctp"}, wantErr: "sctp"},
		{in: []string{"8080:0"}, wantErr: "out of range"},
		{in: []string{"1.2.3.4.5:8080:80"}, wantErr: "IPv4"},
		{in: []string{"8080:80", "8080:81"}, wantErr: "already published"},
		{net: "none", in: []string{"8080:80"}, wantErr: "needs a network, not --net none"},
		{net: "host", in: []string{"8080:80"}, wantErr: "needs a network, not --net host"},
	} {
		got, err := parsePublish(tc.net, tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parsePublish(%q, %q) = %v, want an error naming %q", tc.net, tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || portsString(got) != tc.want {
			t.Errorf("parsePublish(%q, %q) = %q, %v; want %q", tc.net, tc.in, portsString(got), err, tc.want)
		}
	}
}
