#!/usr/bin/env bash
# One device call for the CUDA backend: the CUDA test binary (every op vs the CPU oracle, the
# engine end to end), compute-sanitizer on the op tests, then `vila bench --device cuda` and the
# PyTorch peer (scripts/bench_torch_gpu.py) in the same run. Binaries are built here and carried:
#   cmake --preset cuda && cmake --build --preset cuda --target vila_cuda_tests vila_cli
#   bash scripts/device_cuda_check.sh pack      (copies them + libraries into .devdata/engine)
# then, through the device tool:  bash scripts/device_cuda_check.sh run [tests|bench|all]
# Logs go to $OUT (tests.txt, sanitizer.txt, bench.txt, bench.json, torch.txt, torch.json).
set -uo pipefail
cd "$(dirname "$0")/.."
DEST=.devdata/engine
if [ "${1:-}" = "pack" ]; then
  mkdir -p "$DEST"
  cp build/cuda/tests/vila_cuda_tests build/cuda/bin/vila "$DEST/"
  cp .devdata/cu/libs.tar.xz "$DEST/"
  strip "$DEST/vila_cuda_tests" "$DEST/vila" 2>/dev/null
  du -sh "$DEST"
  exit 0
fi
what="${2:-all}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT" /tmp/l /work
tar -xJf "$DEST/libs.tar.xz" -C /tmp/l
ln -sfn "$PWD" /work/main
export LD_LIBRARY_PATH=/tmp/l
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
if [ "$what" = tests ] || [ "$what" = all ]; then
  timeout 300 "$DEST/vila_cuda_tests" ${GTEST_FILTER:+--gtest_filter=$GTEST_FILTER} \
    >"$OUT/tests.txt" 2>&1
  echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED) |FAILED|tests ran" "$OUT/tests.txt" | head -40
  if [ -n "${SANITIZE:-}" ]; then
    timeout 200 /usr/local/cuda/bin/compute-sanitizer --tool memcheck --leak-check full \
      "$DEST/vila_cuda_tests" --gtest_filter="$SANITIZE" >"$OUT/sanitizer.txt" 2>&1
    echo "sanitizer rc=$?"; tail -3 "$OUT/sanitizer.txt"
  fi
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  timeout 240 "$DEST/vila" bench --device cuda ${BENCH_ARGS:-} --json "$OUT/bench.json" \
    2>"$OUT/bench_err.txt" | tee "$OUT/bench.txt"
  echo "bench rc=$?"; tail -3 "$OUT/bench_err.txt"
  if [ -z "${NO_TORCH:-}" ]; then
    timeout 300 python3 scripts/bench_torch_gpu.py ${TORCH_ARGS:-} --json "$OUT/torch.json" \
      >"$OUT/torch.txt" 2>&1
    echo "torch rc=$?"; grep -v Warning "$OUT/torch.txt" | tail -20
  fi
fi
