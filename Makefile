# Hull — top-level build. Each area adds its own targets in mk/*.mk.
SHELL       := /bin/bash
GO          ?= go
BIN         := $(CURDIR)/bin
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GOFLAGS_LD  := -X github.com/hullproject/hull/version.Version=$(VERSION)
export GOFLAGS ?= -buildvcs=false

# Binaries built from cmd/<name>. STATIC_CMDS are pure Go (CGO_ENABLED=0);
# STATIC_CGO_CMDS use cgo (libseccomp, the nsenter constructor) and are
# linked statically: one page-cache image, no dynamic loader on the hot path.
# Each is installed as a copy of the linker's output: a file the Go linker has
# just written sits in the page cache as it wrote it, and every exec of it is
# 0.2-0.4 ms slower than of a copy until its pages are evicted.
# hull-runtime is pure Go (no glibc start-up on every call); the C parts it
# needs now and then (joining namespaces before the Go runtime, compiling a
# seccomp profile that is not cached yet) are in hull-runtime-helper.
CMDS            := $(notdir $(wildcard cmd/*))
STATIC_CMDS     ?= containerd-shim-hull-v2 hull-runtime-init hull-runtime
STATIC_CGO_CMDS ?= hull-runtime-helper

.PHONY: all build deps test test-unit bench demo clean fmt vet lint
all: build

deps:
	@bash scripts/install-deps.sh

build:
	@mkdir -p $(BIN)
	@for c in $(CMDS); do \
		cgo=1; tags=; ld=; \
		case " $(STATIC_CMDS) " in *" $$c "*) cgo=0;; esac; \
		case " $(STATIC_CGO_CMDS) " in *" $$c "*) tags="-tags netgo,osusergo"; ld="-linkmode external -extldflags -static";; esac; \
		echo "  GO    bin/$$c"; \
		CGO_ENABLED=$$cgo $(GO) build -trimpath $$tags -ldflags "$(GOFLAGS_LD) $$ld" -o $(BIN)/.$$c.tmp ./cmd/$$c || exit 1; \
		install -m 0755 $(BIN)/.$$c.tmp $(BIN)/$$c && rm -f $(BIN)/.$$c.tmp || exit 1; \
	done

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

# make test: installs what it needs, starts the services the tests use,
# builds the binaries and runs every test as root.
test: deps build
	@bash scripts/test.sh

bench: deps build
	@bash scripts/bench.sh

clean:
	rm -rf $(BIN) build

-include mk/*.mk
