# make demo: the README's first command. nginx, built offline from Debian's
# packages by hull-mkimage (images/nginx), runs under a private hulld
# natively and in a VM with published ports; both answer curl and are
# compared side by side (start time, host memory, kernel). Variables:
#   IMAGE=docker.io/library/nginx:latest   pull that image instead (needs the network)
#   DEMO_PORT_NATIVE=8080 DEMO_PORT_VM=8081 host ports
# make demo-image builds only the image (build/images/nginx.tar; the .deb
# files are kept in build/debs, so later builds need no network).
DEMO_IMAGE_TAR ?= $(CURDIR)/build/images/nginx.tar
DEMO_DEB_CACHE ?= $(CURDIR)/build/debs
IMAGE          ?=

.PHONY: demo demo-image
demo: deps build
	@$(if $(IMAGE),,$(MAKE) --no-print-directory demo-image &&) \
		IMAGE='$(IMAGE)' DEMO_IMAGE_TAR='$(DEMO_IMAGE_TAR)' HULL_BIN='$(BIN)' bash scripts/demo.sh

demo-image: $(DEMO_IMAGE_TAR)

$(DEMO_IMAGE_TAR): $(wildcard images/nginx/*) $(wildcard imagebuild/*.go) $(wildcard cmd/hull-mkimage/*.go) | $(BIN)/hull-mkimage
	@mkdir -p $(dir $@)
	@echo "  IMAGE $(patsubst $(CURDIR)/%,%,$@) (nginx from Debian's packages)"
	@$(BIN)/hull-mkimage build images/nginx/recipe.toml --cache $(DEMO_DEB_CACHE) -o $@

$(BIN)/hull-mkimage:
	@$(MAKE) --no-print-directory build
