package initproc

import "testing"

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in    string
		count int
		err   bool
	}{
		{"0", 1, false}, {"0-3", 4, false}, {"0-1,5", 3, false}, {"", 0, false},
		{"3-1", 0, true}, {"x", 0, true}, {"-1", 0, true},
	}
	for _, tt := range tests {
		set, err := ParseCPUList(tt.in)
		if (err != nil) != tt.err || (err == nil && set.Count() != tt.count) {
			t.Errorf("ParseCPUList(%q) = %v, %v", tt.in, set, err)
		}
	}
}
