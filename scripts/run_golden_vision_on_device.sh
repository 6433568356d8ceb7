#!/usr/bin/env bash
# Regenerates the VISION golden fixtures (tests/fixtures/vision/<model>/) on the lent GPU machine
# (PyTorch + transformers + safetensors + Pillow + numpy there; everything runs on its CPU in float32).
# Run from the repo root; carry .devdata (for .devdata/vision_plan.json, the dev machine's tiling plan,
# which the run compares tile by tile; optional):
#   PYTHONUNBUFFERED=1 bash scripts/run_golden_vision_on_device.sh
# The images (tests/fixtures/vision/images/) are made on the dev machine with
#   python3 scripts/make_golden_vision.py --images   (and --plan for the tiling plan)
# Writes $OUT/vision.tar.gz (paths tests/fixtures/vision/<model>/...) and $OUT/golden_vision_log.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export CUDA_VISIBLE_DEVICES=""   # references are computed on the CPU (no TF32 anywhere)
LOG="${OUT:-/tmp}/golden_vision_log.txt"
{
  echo "== versions"
  python3 -c 'import sys, torch, transformers, safetensors, numpy, PIL; from PIL import features; print("python", sys.version.split()[0], "| torch", torch.__version__, "| transformers", transformers.__version__, "| safetensors", safetensors.__version__, "| numpy", numpy.__version__, "| Pillow", PIL.__version__, "| libjpeg-turbo", features.version("libjpeg_turbo"))'
  echo "== vision fixtures"
  python3 scripts/make_golden_vision.py "$@"; rc=$?
  echo "== summary (make_golden_vision rc=$rc)"
  du -sh tests/fixtures/vision tests/fixtures/vision/* 2>/dev/null
  find tests/fixtures/vision -type f | sort | xargs ls -l | awk '{print $5, $9}'
  echo "rc=$rc" > /tmp/golden_vision_rc
} 2>&1 | tee "$LOG"
. /tmp/golden_vision_rc
if [ -n "${OUT:-}" ]; then
  tar czf "$OUT/vision.tar.gz" --exclude=tests/fixtures/vision/images tests/fixtures/vision && ls -l "$OUT"
fi
[ "$rc" = 0 ]
