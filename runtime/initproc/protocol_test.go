package initproc

import (
	"encoding/json"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestConfigSpecTravels: the spec crosses the sync socket as the bytes the
// runtime read (or encoded once), and the init gets Spec and, when the
// runtime sent none of its own, Process from them.
func TestConfigSpecTravels(t *testing.T) {
	spec := &specs.Spec{Version: "1.2.0", Hostname: "h", Process: &specs.Process{Args: []string{"/bin/true"}, Cwd: "/"}}
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	own := &specs.Process{Args: []string{"/bin/sh"}}
	tests := []struct {
		name     string
		cfg      Config
		wantArgs string
	}{
		{"bytes from the runtime", Config{SpecJSON: raw}, "/bin/true"},
		{"encoded from Spec", Config{Spec: spec}, "/bin/true"},
		{"own process kept", Config{SpecJSON: raw, Process: own}, "/bin/sh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			if err := c.EncodeSpec(); err != nil {
				t.Fatal(err)
			}
			data, err := json.Marshal(&Message{Type: MsgConfig, Config: &c})
			if err != nil {
				t.Fatal(err)
			}
			var m Message
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			if err := m.Config.DecodeSpec(); err != nil {
				t.Fatal(err)
			}
			got := m.Config
			if got.Spec == nil || got.Spec.Hostname != "h" || got.Spec.Version != "1.2.0" {
				t.Fatalf("Spec = %+v", got.Spec)
			}
			if got.Process == nil || got.Process.Args[0] != tt.wantArgs {
				t.Fatalf("Process = %+v, want args[0] %s", got.Process, tt.wantArgs)
			}
		})
	}
	bad := Config{SpecJSON: json.RawMessage(`{"process":1}`)}
	if err := bad.DecodeSpec(); err == nil {
		t.Error("DecodeSpec of a bad spec: no error")
	}
}
