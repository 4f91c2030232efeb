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
