#!/usr/bin/env bash
# Runs the test suite on the CPU build (and, when clang is present, the bounded fuzz runs).
# Usage: bash scripts/test.sh   [extra ctest args, e.g. -L unit]
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET="${VILA_PRESET:-cpu}"
[ -x "build/$PRESET/bin/vila" ] || bash scripts/setup.sh
cmake --build --preset "$PRESET"
[ -d "build/$PRESET/npm-tokenizers/qwen3" ] ||
  node scripts/export_npm_tokenizers.js "build/$PRESET/npm-tokenizers" >/dev/null
ctest --preset "$PRESET" "$@"
if [ "${VILA_SKIP_FUZZ:-0}" != "1" ] && command -v clang++ >/dev/null; then
  bash scripts/fuzz.sh "${VILA_FUZZ_SECONDS:-30}"
fi
