# Snapshots, mounts, layer apply and block images (issue 3, back half).
.PHONY: test-snapshot bench-snapshot

test-snapshot:
	$(GO) test -p 1 -count=1 ./mount/... ./snapshot/... ./diff/... ./blockimage/...

bench-snapshot:
	$(GO) test -p 1 -count=1 -run '^$$' -bench . -benchtime $${BENCHTIME:-5x} ./diff/ ./blockimage/
