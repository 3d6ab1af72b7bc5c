#!/usr/bin/env bash
# Installs every Debian package hostvisor needs to build, test and demo.
# Idempotent: prints nothing and touches nothing when all is there; runs
# `apt-get update` only when something is missing.
set -euo pipefail

PACKAGES=(
  # toolchain
  g++ cmake make pkg-config git
  # libraries (see ../shared/ARCHITECTURE.md)
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libsqlite3-dev libssl-dev libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev libseccomp-dev clang libbpf-dev bpftool libnftables-dev nftables
  libelf-dev zlib1g-dev  # libbpf.a needs libelf.a and libz.a (HV_STATIC_DEPS)
  # tests
  libgtest-dev libgmock-dev python3 python3-websockets procps iproute2
  openssl websocketd node-ws nodejs chromium  # proxy tests (test_proxy_*.py), browser test (tests/e2e)
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=()
[[ $(id -u) -eq 0 ]] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
