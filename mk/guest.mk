# Guest assets of the vm runtime (vm/guest, vm/initramfs):
#   guest-kernel        Hull's minimal guest kernel from Debian's linux-source-6.1
#                       (cached by source version + fragment hash; ~5 min the first time)
#   guest-cloud-kernel  Debian's cloud kernel, apt-get download + dpkg -x (pinned)
#   guest-testinit      the trivial static init, and its initramfs for both kernels
# `make build` depends on all three, so `make test` and CI have them.
GUEST_DIR      ?= $(CURDIR)/build/guest
GUEST_FRAGMENT ?= $(CURDIR)/vm/guest/kernel.config

.PHONY: guest guest-kernel guest-cloud-kernel guest-testinit guest-info guest-accel
guest: guest-kernel guest-cloud-kernel guest-testinit

guest-kernel:
	@$(GO) run ./vm/guest/mkguest kernel -out $(GUEST_DIR) -fragment $(GUEST_FRAGMENT)

guest-cloud-kernel:
	@$(GO) run ./vm/guest/mkguest cloud -out $(GUEST_DIR)/cloud

guest-testinit: guest-cloud-kernel
	@mkdir -p $(GUEST_DIR)
	@CGO_ENABLED=0 $(GO) build -trimpath -o $(GUEST_DIR)/testinit ./vm/guest/testinit
	@$(GO) run ./vm/guest/mkguest initramfs -init $(GUEST_DIR)/testinit -out $(GUEST_DIR)/testinit.cpio
	@$(GO) run ./vm/guest/mkguest initramfs -init $(GUEST_DIR)/testinit -out $(GUEST_DIR)/cloud/testinit.cpio -modules $(GUEST_DIR)/cloud

guest-info:
	@$(GO) run ./vm/guest/mkguest show -dir $(GUEST_DIR)

build: guest

guest-accel:
	@$(GO) run ./vm/guest/mkguest accel
