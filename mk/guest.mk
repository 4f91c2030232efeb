# Guest assets of the vm runtime (vm/guest, vm/initramfs):
#   guest-kernel        Hull's minimal guest kernel from Debian's linux-source-6.1
#                       with vm/guest/patches applied (cached by source version +
#                       fragment hash + patches hash; ~6 min the first time)
#   guest-cloud-kernel  Debian's cloud kernel, apt-get download + dpkg -x (pinned)
#   guest-testinit      the trivial static init, and its initramfs for both kernels
#   test-guest          the guest test suite (issue #7): Hull's kernel booted with the
#                       native runtime's cgroup v2 tests, hull-runtime containers and the
#                       kernel feature checks running inside (vm/guest/guestsuite), the
#                       ACPI power-off check and the kernel probes (vm/guest)
# `make build` depends on all three assets, so `make test` and CI have them; `make test`
# runs the guest suite with every other package (go test ./...).
GUEST_DIR      ?= $(CURDIR)/build/guest
GUEST_FRAGMENT ?= $(CURDIR)/vm/guest/kernel.config
# Source patches applied to the unpacked linux-source before configuring
# (vm/guest/patches/README.md); part of the kernel's cache key.
GUEST_PATCHES  ?= $(CURDIR)/vm/guest/patches

.PHONY: guest guest-kernel guest-cloud-kernel guest-testinit guest-info guest-accel test-guest
guest: guest-kernel guest-cloud-kernel guest-testinit

guest-kernel:
	@$(GO) run ./vm/guest/mkguest kernel -out $(GUEST_DIR) -fragment $(GUEST_FRAGMENT) -patches $(GUEST_PATCHES)

guest-cloud-kernel:
	@$(GO) run ./vm/guest/mkguest cloud -out $(GUEST_DIR)/cloud

guest-testinit: guest-cloud-kernel
	@mkdir -p $(GUEST_DIR)
	@CGO_ENABLED=0 $(GO) build -trimpath -o $(GUEST_DIR)/testinit ./vm/guest/testinit
	@$(GO) run ./vm/guest/mkguest initramfs -version $(VERSION) -init $(GUEST_DIR)/testinit -out $(GUEST_DIR)/testinit.cpio
	@$(GO) run ./vm/guest/mkguest initramfs -version $(VERSION) -init $(GUEST_DIR)/testinit -out $(GUEST_DIR)/cloud/testinit.cpio -modules $(GUEST_DIR)/cloud

guest-info:
	@$(GO) run ./vm/guest/mkguest show -dir $(GUEST_DIR)

build: guest

guest-accel:
	@$(GO) run ./vm/guest/mkguest accel

test-guest: guest
	$(GO) test -p 1 -count=1 -v -timeout 30m -run 'TestGuestSuite|TestGuestPowerdown' ./vm/guest/guestsuite/
	$(GO) test -p 1 -count=1 -timeout 20m -run 'TestGuestKernelFeatures|TestBoot' ./vm/guest/
