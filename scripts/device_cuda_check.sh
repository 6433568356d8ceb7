#!/usr/bin/env bash
# One device call for the CUDA backend: the CUDA test binary (every op vs the CPU oracle, the
# engine end to end), compute-sanitizer on the op tests, then `vila bench --device cuda` and the
# PyTorch peer (scripts/bench_torch_gpu.py) in the same run. Binaries are built here and carried:
#   cmake --preset cuda && cmake --build --preset cuda --target vila_cuda_tests vila_cli
#   bash scripts/device_cuda_check.sh pack      (copies them + libraries into .devdata/engine)
# then, through the device tool (with $DEST in the call's `carry`: .devdata is git-ignored and
# does not travel otherwise):  bash scripts/device_cuda_check.sh run [tests|bench|all]
# Logs go to $OUT (tests.txt, sanitizer.txt, bench.txt, bench.json, torch.txt, torch.json).
# The bench step first writes the time-to-first-token image both sides read, $TTFT_IMAGE
# (default /tmp/ttft_1920x1080.jpg): tests/fixtures/vision/images/boats_640x360.jpg enlarged 3x
# with Pillow (bicubic, JPEG quality 90), so BENCH_ARGS="--ttft --image $TTFT_IMAGE" and
# TORCH_ARGS="--ttft $TTFT_IMAGE" time the same file. Environment: BUILD (build folder of
# `pack`, default build/cuda), GTEST_FILTER, SANITIZE (memcheck filter), BENCH_ARGS, TORCH_ARGS,
# NO_TORCH, and the time limits TESTS_TIMEOUT, SANITIZE_TIMEOUT, BENCH_TIMEOUT, TORCH_TIMEOUT.
set -uo pipefail
cd "$(dirname "$0")/.."
DEST="${DEST:-.devdata/engine}"
if [ "${1:-}" = "pack" ]; then
  mkdir -p "$DEST"
  BUILD="${BUILD:-build/cuda}"
  cp "$BUILD/tests/vila_cuda_tests" "$BUILD/bin/vila" "$DEST/"
  cp .devdata/cu/libs.tar.xz "$DEST/"
  # vila links FreeType (plot) and yaml-cpp (train configs) since libs.tar.xz was made: carry them.
  mkdir -p "$DEST/lib"
  for l in libfreetype.so.6 libbrotlidec.so.1 libbrotlicommon.so.1 libbz2.so.1.0 libz.so.1 \
           libyaml-cpp.so.0.7; do
    cp -L "/lib/x86_64-linux-gnu/$l" "$DEST/lib/"
  done
  strip "$DEST/vila_cuda_tests" "$DEST/vila" 2>/dev/null
  du -sh "$DEST"
  exit 0
fi
what="${2:-all}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT" /tmp/l /work
tar -xJf "$DEST/libs.tar.xz" -C /tmp/l
if [ -d "$DEST/lib" ]; then cp "$DEST/lib/"* /tmp/l/; fi
ln -sfn "$PWD" /work/main
export LD_LIBRARY_PATH=/tmp/l
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
if [ "$what" = tests ] || [ "$what" = all ]; then
  timeout "${TESTS_TIMEOUT:-300}" "$DEST/vila_cuda_tests" ${GTEST_FILTER:+--gtest_filter=$GTEST_FILTER} \
    >"$OUT/tests.txt" 2>&1
  echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED) |FAILED|tests ran" "$OUT/tests.txt" | head -40
  if [ -n "${SANITIZE:-}" ]; then
    timeout "${SANITIZE_TIMEOUT:-200}" /usr/local/cuda/bin/compute-sanitizer --tool memcheck --leak-check full \
      "$DEST/vila_cuda_tests" --gtest_filter="$SANITIZE" >"$OUT/sanitizer.txt" 2>&1
    echo "sanitizer rc=$?"; tail -3 "$OUT/sanitizer.txt"
  fi
fi
if [ "$what" = train ]; then
  # The CUDA training path: its tests, then `vila bench --train` ($TRAIN_ARGS, e.g.
  # "--train-shape qwen2-1.5b --seq 2048 --batch 2") and the PyTorch peer on the same shape.
  timeout "${TESTS_TIMEOUT:-120}" "$DEST/vila_cuda_tests" --gtest_filter="${GTEST_FILTER:-TrainCuda*}" \
    >"$OUT/train_tests.txt" 2>&1
  echo "train tests rc=$?"; grep -E "^\[ train|OK \]|FAILED|PASSED|Failure|rel err|Expected|Which" "$OUT/train_tests.txt" | head -40
  timeout "${BENCH_TIMEOUT:-120}" "$DEST/vila" bench --train ${TRAIN_ARGS:---seq 2048 --batch 1} \
    --json "$OUT/bench_train.json" 2>&1 | tee "$OUT/bench_train.txt"
  if [ -z "${NO_TORCH:-}" ] && [ -f scripts/bench_torch_train.py ]; then
    timeout "${TORCH_TIMEOUT:-170}" python3 scripts/bench_torch_train.py ${TORCH_TRAIN_ARGS:-} \
      --json "$OUT/torch_train.json" >"$OUT/torch_train.txt" 2>&1
    echo "torch train rc=$?"; grep -v Warning "$OUT/torch_train.txt" | tail -15
  fi
  exit 0
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  export TTFT_IMAGE="${TTFT_IMAGE:-/tmp/ttft_1920x1080.jpg}"
  python3 -c "from PIL import Image; Image.open('tests/fixtures/vision/images/boats_640x360.jpg')\
.convert('RGB').resize((1920, 1080), Image.BICUBIC).save('$TTFT_IMAGE', quality=90)" &&
    echo "ttft image $TTFT_IMAGE: $(stat -c %s "$TTFT_IMAGE") bytes, sha256 $(sha256sum < "$TTFT_IMAGE" | cut -c1-16)"
  timeout "${BENCH_TIMEOUT:-240}" "$DEST/vila" bench --device cuda ${BENCH_ARGS:-} --json "$OUT/bench.json" \
    2>"$OUT/bench_err.txt" | tee "$OUT/bench.txt"
  echo "bench rc=$?"; tail -3 "$OUT/bench_err.txt"
  if [ -z "${NO_TORCH:-}" ]; then
    timeout "${TORCH_TIMEOUT:-300}" python3 scripts/bench_torch_gpu.py ${TORCH_ARGS:-} --json "$OUT/torch.json" \
      >"$OUT/torch.txt" 2>&1
    echo "torch rc=$?"; grep -v Warning "$OUT/torch.txt" | tail -20
  fi
fi
