#!/usr/bin/env bash
# Installs the Debian packages Hull builds, tests and benchmarks with.
# Idempotent: packages already present are skipped, and apt-get update runs
# only when something is missing.
set -euo pipefail

pkgs=(
  # build
  build-essential pkg-config libseccomp-dev git make cpio
  # api/Makefile: protoc for `make -C api generate` (generated code is checked in)
  protobuf-compiler
  # native runtime peers and tests
  busybox-static runc crun containerd iproute2 iptables psmisc procps
  # images: local registry, peer tooling, block images
  docker-registry skopeo e2fsprogs erofs-utils
  # vm runtime
  qemu-system-x86 qemu-utils
  # guest kernel build (issue: minimal guest kernel; patch applies vm/guest/patches)
  linux-source-6.1 bc bison flex libelf-dev libssl-dev xz-utils lz4 dwarves patch
  # networking
  containernetworking-plugins
  # measuring
  hyperfine time curl
)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# docker-registry and containerd start services through their postinst on
# systems with an init; Hull starts its own private instances, so stop any
# that came up.
if command -v service >/dev/null 2>&1; then
  service docker-registry stop >/dev/null 2>&1 || true
  service containerd stop >/dev/null 2>&1 || true
fi
echo "install-deps: done"
