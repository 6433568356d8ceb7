#!/usr/bin/env bash
# Regenerates the golden fixtures on the lent GPU machine (PyTorch + transformers + tokenizers +
# sentencepiece + safetensors installed there; everything runs on its CPU in float32).
# Run from the repo root, with .devdata/tokenizers carried (see docs/fixtures.md):
#   PYTHONUNBUFFERED=1 bash scripts/run_golden_on_device.sh
# Writes tests/fixtures/tokenizer/ref_*.jsonl and tests/fixtures/models/*, then (when $OUT is set)
# $OUT/fixtures.tar.gz (paths tests/fixtures/...) and $OUT/golden_log.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export CUDA_VISIBLE_DEVICES=""   # references are computed on the CPU (no TF32 anywhere)
LOG="${OUT:-/tmp}/golden_log.txt"
{
  echo "== versions"
  python3 -c 'import sys, torch, transformers, tokenizers, sentencepiece, safetensors, numpy; print("python", sys.version.split()[0], "| torch", torch.__version__, "| transformers", transformers.__version__, "| tokenizers", tokenizers.__version__, "| sentencepiece", sentencepiece.__version__, "| safetensors", safetensors.__version__, "| numpy", numpy.__version__)'
  echo "== tokenizer references"
  python3 scripts/make_tokenizer_refs.py; rc1=$?
  echo "== tiny models"
  python3 scripts/make_golden.py; rc2=$?
  echo "== summary (make_tokenizer_refs rc=$rc1, make_golden rc=$rc2)"
  du -sh tests/fixtures tests/fixtures/* tests/fixtures/models/* 2>/dev/null
  find tests/fixtures -type f | sort | xargs ls -l | awk '{print $5, $9}'
  echo "rc1=$rc1 rc2=$rc2" > /tmp/golden_rc
} 2>&1 | tee "$LOG"
. /tmp/golden_rc
if [ -n "${OUT:-}" ]; then
  tar czf "$OUT/fixtures.tar.gz" tests/fixtures && ls -l "$OUT"
fi
[ "$rc1" = 0 ] && [ "$rc2" = 0 ]
