#!/usr/bin/env bash
# Runs Hull's benchmarks. Each compares Hull with its real peer in the same
# run (runc, crun, containerd, bare QEMU) and prints medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
export HULL_BIN="$PWD/bin"
for s in scripts/test-env.d/*.sh; do
  [ -e "$s" ] || continue
  source "$s"
done
go test -p 1 -run '^$' -bench "${BENCH:-.}" -benchtime "${BENCHTIME:-20x}" -timeout 60m ./bench/... 2>&1 | tee /tmp/hull-bench.log
exit "${PIPESTATUS[0]}"
