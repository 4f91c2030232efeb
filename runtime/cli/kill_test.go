package cli

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want unix.Signal
		err  bool
	}{
		{"9", unix.SIGKILL, false}, {"KILL", unix.SIGKILL, false}, {"SIGKILL", unix.SIGKILL, false},
		{"kill", unix.SIGKILL, false}, {"TERM", unix.SIGTERM, false}, {"15", unix.SIGTERM, false},
		{"0", 0, true}, {"NOSUCH", 0, true}, {"65", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSignal(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseSignal(%q) = %v, %v", tt.in, got, err)
		}
	}
}
