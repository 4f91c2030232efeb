# hulld, hull and their API (issue 4). The tests start private daemons and
# pull from the local registry (scripts/test-env.d/registry.sh).
.PHONY: test-daemon bench-daemon api

test-daemon: build
	@bash -c 'export HULL_BIN=$(BIN); source scripts/test-env.d/registry.sh; \
		$(GO) test -p 1 -count=1 -race ./config/ ./daemon/ ./cli/'

bench-daemon: build
	@bash -c 'export HULL_BIN=$(BIN); source scripts/test-env.d/registry.sh; \
		$(GO) test -p 1 -count=1 -run "^$$" -bench DaemonRunRm -benchtime $${BENCHTIME:-20x} ./bench/'

# Regenerates api/hull/v1 (needs protoc; generated code is checked in).
api:
	$(MAKE) -C api generate
