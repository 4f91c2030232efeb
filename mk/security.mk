# Security pieces of the native runtime: runtime/seccomp, runtime/caps, runtime/label and the
# spec builders in oci/ (their container tests run under runc and bin/hull-runtime).
#   test-security   the tests of those packages, as root
#   bench-security  seccomp compile/validate/cache costs of the default profile
.PHONY: test-security bench-security
test-security: build
	HULL_BIN=$(BIN) $(GO) test -p 1 -count=1 ./runtime/seccomp/... ./runtime/caps/... ./runtime/label/... ./oci/...

bench-security:
	$(GO) test -p 1 -count=1 -run '^$$' -bench . -benchtime $${BENCHTIME:-30x} ./runtime/seccomp/
