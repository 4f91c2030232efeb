package seccomp

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The runtime spec: "If sending to this socket fails, the runtime MUST
// generate an error."
func TestSendListenerErrors(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	missing := filepath.Join(t.TempDir(), "no-agent.sock")
	tests := []struct {
		name string
		path string
		fd   *os.File
		is   error
		want string
	}{
		{"empty path", "", f, ErrInvalid, "listenerPath is empty"},
		{"no fd", missing, nil, ErrInvalid, "no listener fd"},
		{"no agent listening", missing, f, nil, "connect to seccomp listenerPath " + missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := SendListener(context.Background(), tt.path, tt.fd, specs.ContainerProcessState{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("SendListener: %v, want %q", err, tt.want)
			}
		})
	}
}
