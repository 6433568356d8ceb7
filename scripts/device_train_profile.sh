#!/usr/bin/env bash
# One device call: a per-kernel time profile (Nsight Compute, gpu__time_duration only) of one
# `vila bench --train` step for the Qwen2-1.5B LLM and the NVILA-Lite-2B VLM. Binaries come as in
# scripts/device_train_bench.sh (DEST with bins.tar.xz, libs.tar.xz, lib/; carried). The bench runs
# 1 warm-up step and 1 timed step, so every total below is 2 steps' worth; the summary divides by
# 2. Writes $OUT/prof_{llm,vlm}.csv (raw) and $OUT/prof_{llm,vlm}.txt (kernels by total time).
# Environment: DEST, WHAT ("llm vlm"), NCU (path of ncu).
set -uo pipefail
cd "$(dirname "$0")/.."
DEST="${DEST:-.devdata/lead}"
OUT="${OUT:-/tmp/out}"
NCU="${NCU:-/opt/nvidia/nsight-compute/2025.3.1/ncu}"
mkdir -p "$OUT" /tmp/l /tmp/b /work
tar -xJf "$DEST/libs.tar.xz" -C /tmp/l
if [ -d "$DEST/lib" ]; then cp "$DEST/lib/"* /tmp/l/; fi
tar -xJf "$DEST/bins.tar.xz" -C /tmp/b
ln -sfn "$PWD" /work/main
export LD_LIBRARY_PATH=/tmp/l
for what in ${WHAT:-llm vlm}; do
  args="--train-shape qwen2-1.5b --seq 2048 --batch 2 --train-steps 1 --train-warmup 1"
  if [ "$what" = vlm ]; then args="--vlm $args"; fi
  timeout 280 "$NCU" --metrics gpu__time_duration.sum --csv /tmp/b/vila bench --train $args \
    >"$OUT/prof_$what.csv" 2>"$OUT/prof_$what.err"
  echo "$what ncu rc=$?"
  python3 - "$OUT/prof_$what.csv" >"$OUT/prof_$what.txt" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
head, body = rows[0], rows[1:]
name_i, val_i, unit_i = head.index("Kernel Name"), head.index("Metric Value"), head.index("Metric Unit")
tot, cnt = collections.Counter(), collections.Counter()
scale = {"ns": 1e-6, "us": 1e-3, "usecond": 1e-3, "nsecond": 1e-6, "ms": 1.0, "msecond": 1.0}
for r in body:
    name = r[name_i].split("(")[0][:90]
    tot[name] += float(r[val_i].replace(",", "")) * scale.get(r[unit_i], 1.0)
    cnt[name] += 1
all_ms = sum(tot.values()) / 2
print(f"total kernel time per step {all_ms:.2f} ms over {sum(cnt.values()) // 2} launches")
for name, ms in tot.most_common(45):
    print(f"{ms / 2:9.3f} ms {cnt[name] // 2:6d}x  {name}")
PY
  head -50 "$OUT/prof_$what.txt"
done
