# make conformance [RUNTIME=runc|/path/to/runtime] [RUN=TestHooks]: the OCI
# runtime conformance suite (test/conformance) against bin/hull-runtime, or
# against RUNTIME when given.
.PHONY: conformance
conformance: build
	HULL_BIN=$(BIN) HULL_RUNTIME=$(RUNTIME) $(GO) test -count=1 -v $(if $(RUN),-run '$(RUN)') ./test/conformance/
