# The vm runtime (vm/, vm/qemu, agent/, cmd/hull-agent):
#   guest-agent       hull-agent, static (cgo for runtime/nsenter and libseccomp)
#   guest-initramfs   the agent initramfs for Hull's kernel (agent.cpio) and for
#                     the cloud kernel with its modules (cloud/agent.cpio)
#   agent-api         regenerate agent/api from agent.proto (pinned generators)
#   agent-seccomp     recompile the default seccomp profile the agent embeds
#                     (agent/seccompcache; when the profile or libseccomp changes)
#   test-vm           the vm runtime's tests (boot real guests under TCG)
AGENT_LDFLAGS := -s -w -linkmode external -extldflags "-static"
PROTOC_GEN_GO_VERSION    := v1.36.11
PROTOC_GEN_TTRPC_VERSION := v1.2.10
VM_TOOLS ?= $(CURDIR)/build/tools

.PHONY: guest-agent guest-initramfs agent-api agent-seccomp test-vm
guest-agent:
	@mkdir -p $(GUEST_DIR)
	@CGO_ENABLED=1 $(GO) build -trimpath -tags netgo,osusergo -ldflags '$(AGENT_LDFLAGS)' -o $(GUEST_DIR)/hull-agent ./cmd/hull-agent

guest-initramfs: guest-agent guest-cloud-kernel
	@$(GO) run ./vm/guest/mkguest initramfs -version $(VERSION) -init $(GUEST_DIR)/hull-agent -out $(GUEST_DIR)/agent.cpio
	@$(GO) run ./vm/guest/mkguest initramfs -version $(VERSION) -init $(GUEST_DIR)/hull-agent -out $(GUEST_DIR)/cloud/agent.cpio -modules $(GUEST_DIR)/cloud

build: guest-initramfs

agent-api:
	GOBIN=$(VM_TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(VM_TOOLS) $(GO) install github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc@$(PROTOC_GEN_TTRPC_VERSION)
	cd agent/api && PATH=$(VM_TOOLS):$$PATH protoc -I . --go_out=paths=source_relative:. \
		--go-ttrpc_out=paths=source_relative:. agent.proto

agent-seccomp:
	CGO_ENABLED=1 $(GO) run ./agent/seccompcache/gen -out agent/seccompcache

test-vm: guest-initramfs
	$(GO) test -p 1 -count=1 ./vm/... ./agent/...

# Boot-to-agent and /bin/true-in-a-VM times against the bare boot floor, and
# the idle VM's PSS (QEMU + virtiofsd), at the agent level (agent/).
# HULL_VM_TB_SIZE / HULL_VM_APPEND try TCG's translation-cache size and
# extra kernel parameters.
#   bench-vm-runtime  issue #5 item 8 / #7 item 5 through a real hulld:
#                     cold `hull run --rm --runtime vm` of /bin/true vs the bare
#                     QEMU floor and the stock cloud kernel, where the time goes,
#                     the idle container's PSS; then each lever (tb-size, RAM,
#                     kernel parameters; HULL_VM_LEVERS="name=backend keys;...")
#   bench-vm-boot     bare boots: stock vs Hull's kernel, bzImage vs PVH, tb-size
.PHONY: bench-vm bench-vm-runtime bench-vm-boot
bench-vm:
	$(GO) test -p 1 -count=1 -run '^$$' -bench VMRunTrue -benchtime $${BENCHTIME:-5x} ./agent/

bench-vm-runtime: build guest-initramfs
	@bash -c 'source scripts/test-env.d/registry.sh; HULL_BIN=$(BIN) \
		$(GO) test -p 1 -count=1 -timeout 60m -run "^$$" -bench "VMRunRm|VMLevers" -benchtime $${BENCHTIME:-10x} ./bench/'

bench-vm-boot: guest
	$(GO) test -p 1 -count=1 -timeout 30m -run '^$$' -bench 'VMBoot' -benchtime $${BENCHTIME:-10x} ./bench/
