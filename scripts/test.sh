#!/usr/bin/env bash
# Runs Hull's test suite: vet, then every package's tests against real parts
# (containers as root, a local registry, QEMU). Services the tests need are
# started here and stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "make test runs real containers and must run as root" >&2
  exit 1
fi

unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
  echo "gofmt needed on: $unformatted" >&2
  exit 1
fi
go vet ./...

export HULL_BIN="$PWD/bin"
# Test services (registry, ...) are started by scripts/test-env.d/*.sh.
for s in scripts/test-env.d/*.sh; do
  [ -e "$s" ] || continue
  # shellcheck disable=SC1090
  source "$s"
done

# Packages run one at a time (-p 1): many tests mount, create cgroups and
# boot VMs, and this machine has 2 cores.
go test -p 1 -count=1 -timeout 45m ${HULL_TEST_FLAGS:-} ./... 2>&1 | tee /tmp/hull-test.log
exit "${PIPESTATUS[0]}"
