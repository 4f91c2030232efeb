package hooks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "state")
	one := 1
	tests := []struct {
		name string
		hook specs.Hook
		want string // in the error; "" for success
	}{
		{"state on stdin", specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > " + out}}, ""},
		{"env", specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", `test "$X" = 1`}, Env: []string{"X=1"}}, ""},
		{"failure names the hook", specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "echo bad >&2; exit 3"}}, "hooks.test[0] (/bin/sh): exit status 3: bad"},
		{"timeout", specs.Hook{Path: "/bin/sleep", Args: []string{"sleep", "5"}, Timeout: &one}, "timed out after 1s"},
		{"missing", specs.Hook{Path: "/nonexistent"}, "/nonexistent"},
	}
	st := &specs.State{Version: specs.Version, ID: "c1", Status: specs.StateCreating, Pid: 42, Bundle: "/b"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Run(context.Background(), "test", []specs.Hook{tt.hook}, st)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrHook) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), `"id":"c1"`) || !strings.Contains(string(data), `"pid":42`) {
		t.Errorf("hook got %q on stdin", data)
	}
}
