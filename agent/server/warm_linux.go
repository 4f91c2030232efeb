package server

import (
	_ "embed"
	"encoding/json"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"

	agentapi "github.com/hullproject/hull/agent/api"
)

// warmSpec is a small OCI spec touching every part the runtime decodes
// (process, mounts, hooks, linux resources, namespaces, devices, seccomp).
//
//go:embed warmspec.json
var warmSpec []byte

var warmOnce sync.Once

// warmUp decodes warmSpec and the CreateContainer request once, in the
// background. Under TCG the first run of a code path costs its
// translation, and a guest's first container create begins with
// encoding/json building its decoders for the spec's types (then shared by
// every later decode in the agent, the runtime's included) and protobuf
// preparing the request's message: ~20-30 ms. The shim sends
// ConfigureNetwork just before CreateContainer and then prepares the spec
// and the stdio, tens of ms in which the guest waits: started when
// ConfigureNetwork has answered, this work, needed anyway, is done then.
func warmUp() {
	warmOnce.Do(func() {
		go func() {
			var s specs.Spec
			_ = json.Unmarshal(warmSpec, &s)
			_ = proto.Unmarshal(nil, &agentapi.CreateContainerRequest{})
			Mark("warm-up done")
		}()
	})
}
