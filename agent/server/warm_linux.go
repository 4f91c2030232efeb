package server

import (
	_ "embed"
	"encoding/json"
	"sync"

	"github.com/containerd/ttrpc"
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

// warmUp decodes warmSpec once, in the background. Under TCG the first
// run of a code path costs its translation, and a guest's first container
// create begins with encoding/json building its decoders for the spec's
// types (then shared by every later decode in the agent, the runtime's
// included): ~20-60 ms. The shim sends ConfigureNetwork just before
// CreateContainer and then prepares the spec and the stdio, tens of ms in
// which the guest waits: started when ConfigureNetwork has answered, this
// work, needed anyway, is done then.
func warmUp() {
	warmOnce.Do(func() {
		go func() {
			Mark("warm-up start")
			var s specs.Spec
			_ = json.Unmarshal(warmSpec, &s)
			Mark("warm-up done")
		}()
	})
}

var warmRPCOnce sync.Once

// warmRPC prepares, once and in the background, what serving the first
// requests costs: protobuf's first decoding and encoding of ttrpc's
// envelope and of the readiness check's messages (~20 ms under TCG), then
// lo, then protobuf for the messages of a container's first requests.
// Started as soon as the agent's port is open, it runs while the host's
// first bytes are on their way (QEMU delivers them once the guest opened
// the port).
func warmRPC() {
	warmRPCOnce.Do(func() {
		go func() {
			b, _ := proto.Marshal(&ttrpc.Request{Service: "s", Method: "m", Payload: []byte{0}, TimeoutNano: 1, Metadata: []*ttrpc.KeyValue{{Key: "k", Value: "v"}}})
			_ = proto.Unmarshal(b, &ttrpc.Request{})
			b, _ = proto.Marshal(&agentapi.VersionResponse{AgentVersion: "v", BootNs: 1})
			_ = proto.Unmarshal(b, &ttrpc.Response{})
			_ = proto.Unmarshal(nil, &agentapi.VersionRequest{})
			Mark("rpc warm-up done")
			// Every container uses lo (ConfigureNetwork brings it up
			// in any case): the kernel's work for it (~30-60 ms of first
			// runs under TCG) is done while the guest waits for the host.
			// (Through netlink it would also prepare netlink's request
			// path for a NIC, but its longer kernel work held up the
			// readiness check's answer by ~60 ms.)
			_ = loopbackUp()
			Mark("lo up")
			// The messages of a container's first requests.
			for _, m := range []proto.Message{
				&agentapi.ConfigureNetworkRequest{
					Interfaces: []*agentapi.Interface{{Name: "n", Mac: "m", Mtu: 1, Addresses: []string{"a"}}},
					Routes:     []*agentapi.Route{{Destination: "d", Gateway: "g", Device: "n", Source: "s", Scope: 1, Family: 2, Metric: 1}},
				},
				&agentapi.CreateContainerRequest{ContainerId: "c", OciSpec: []byte{0}, Storages: []*agentapi.Storage{{Source: "s", Fstype: "f", Options: []string{"o"}, MountPoint: "m"}}},
				&agentapi.ContainerRequest{ContainerId: "c"},
				&agentapi.StartResponse{Pid: 1},
				&agentapi.ProcessRequest{ContainerId: "c", ExecId: "e"},
				&agentapi.WaitProcessResponse{Status: 1},
				&agentapi.ReadStreamRequest{ContainerId: "c", ExecId: "e", Len: 1},
				&agentapi.ReadStreamResponse{Data: []byte{0}},
				&agentapi.Empty{},
			} {
				b, _ := proto.Marshal(m)
				_ = proto.Unmarshal(b, m)
			}
			Mark("messages warm-up done")
		}()
	})
}
