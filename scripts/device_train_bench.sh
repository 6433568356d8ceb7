#!/usr/bin/env bash
# One device call for issue 5's speed table: `vila bench --train` for the Qwen2-1.5B LLM and the
# NVILA-Lite-2B VLM, each beside the PyTorch peer (scripts/bench_torch_train.py, eager and
# torch.compile) on the same GPU in the same call. Binaries are built here and carried:
#   cmake --build build/cuda --target vila_cli vila_cuda_tests
#   BUILD=build/cuda DEST=.devdata/lead bash scripts/device_cuda_check.sh pack
#   tar -cJf .devdata/lead/bins.tar.xz -C .devdata/lead vila vila_cuda_tests   (optional: the
#   call's tree is limited to 64 MiB; with bins.tar.xz present the bare binaries need not travel)
# then through the device tool, with .devdata/lead in `carry`:
#   bash scripts/device_train_bench.sh        (logs and JSON under $OUT)
# Environment: DEST (default .devdata/lead), WHAT ("llm vlm": which models, each ours then the
# peer), LLM_ARGS, VLM_ARGS (our side), TORCH_LLM_ARGS, TORCH_VLM_ARGS (the peer), TORCH_LIMIT
# (seconds per peer run; torch.compile's first compile on a fresh machine takes minutes).
set -uo pipefail
cd "$(dirname "$0")/.."
DEST="${DEST:-.devdata/lead}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT" /tmp/l /work
tar -xJf "$DEST/libs.tar.xz" -C /tmp/l
if [ -d "$DEST/lib" ]; then cp "$DEST/lib/"* /tmp/l/; fi
BIN="$DEST"
if [ -f "$DEST/bins.tar.xz" ]; then mkdir -p /tmp/b && tar -xJf "$DEST/bins.tar.xz" -C /tmp/b && BIN=/tmp/b; fi
ln -sfn "$PWD" /work/main
export LD_LIBRARY_PATH=/tmp/l
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
LLM_ARGS="${LLM_ARGS:---train-shape qwen2-1.5b --seq 2048 --batch 2}"
VLM_ARGS="${VLM_ARGS:---vlm --train-shape qwen2-1.5b --seq 2048 --batch 2}"
limit="${TORCH_LIMIT:-150}"
for what in ${WHAT:-llm vlm}; do
  if [ "$what" = llm ]; then ours="$LLM_ARGS"; peer="${TORCH_LLM_ARGS:---shape qwen2-1.5b --seq 2048 --batch 2}"
  else ours="$VLM_ARGS"; peer="${TORCH_VLM_ARGS:---vlm --shape qwen2-1.5b --seq 2048 --batch 2}"; fi
  timeout 150 "$BIN/vila" bench --train $ours --json "$OUT/ours_$what.json" 2>&1 | tee "$OUT/ours_$what.txt"
  timeout $((limit + 30)) python3 scripts/bench_torch_train.py $peer --time-limit "$limit" \
    --json "$OUT/torch_$what.json" >"$OUT/torch_$what.txt" 2>&1
  echo "torch $what rc=$?"; grep -v Warning "$OUT/torch_$what.txt" | tail -12
done
