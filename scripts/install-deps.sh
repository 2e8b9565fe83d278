#!/usr/bin/env bash
# Installs every Debian package that kith's build, tests and demo need, but
# only those that are missing, so a second run costs one dpkg query.
# Usage: scripts/install-deps.sh            (build + tests)
# clang-14 and libclang-rt-14-dev are for the libFuzzer targets
# (scripts/fuzz.sh, docs/fuzzing.md); the main build uses g++.
# python3 reads JSON in the demo and the multi-process tests.
# chromium, nodejs and npm are for the web page's browser test
# (tests/web; it installs playwright-core from npm into web/tests itself).
set -euo pipefail

packages=(
  cmake g++ make pkg-config ninja-build
  libcaf-dev libsodium-dev librocksdb-dev libboost-dev
  capnproto libcapnp-dev catch2
  nlohmann-json3-dev libcli11-dev libspdlog-dev libtomlplusplus-dev
  libjemalloc-dev
  clang-14 libclang-rt-14-dev
  chromium nodejs
  python3
  gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Some nodejs builds bundle npm (and conflict with Debian's npm package):
# any working npm will do.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "install-deps: not root and no sudo; install these packages: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
