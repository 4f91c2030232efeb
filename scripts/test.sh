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
# The daemon's packages run under the race detector; everything else plain.
race_pkgs=(./config/ ./cli/ ./daemon/)
mapfile -t plain_pkgs < <(go list ./... | grep -v -E '/hull/(config|cli|daemon)$')
set +e
go test -p 1 -count=1 -timeout 45m ${HULL_TEST_FLAGS:-} "${plain_pkgs[@]}" 2>&1 | tee /tmp/hull-test.log
plain=${PIPESTATUS[0]}
go test -race -p 1 -count=1 -timeout 20m ${HULL_TEST_FLAGS:-} "${race_pkgs[@]}" 2>&1 | tee -a /tmp/hull-test.log
race=${PIPESTATUS[0]}
set -e
[ "$plain" = 0 ] && [ "$race" = 0 ]
