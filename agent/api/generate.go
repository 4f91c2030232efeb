package agentapi

// The generated code is checked in. Regenerate with `make agent-api`, which
// pins the generators (see mk/vm.mk):
//   protoc 3.21.12 (Debian 12 protobuf-compiler)
//   protoc-gen-go v1.36.11, protoc-gen-go-ttrpc (github.com/containerd/ttrpc) v1.2.10
