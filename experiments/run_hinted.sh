#!/usr/bin/env bash
# Experiment 2, in-context variant: the exp2 arms (LLM frozen / trained) from the base that knows
# the class words (run_variant.sh's base_classes), trained on few-shot documents where one
# example always shows the query's class (make_hinted_fewshot.py, MMC4 JSONL) + captions, so
# that using the context pays off. Called by run.sh after run_variant.sh; appends to
# $RUNS/results.jsonl and writes docs/img/exp2h_train_loss.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
VILA=${VILA:-build/cpu/bin/vila}
RUNS=${RUNS:-build/experiments}
SEED=${SEED:-1}
EVAL_SAMPLES=${EVAL_SAMPLES:-200}
BASE=$RUNS/variant_seed$SEED/base_classes
DIR=$RUNS/hinted_seed$SEED
RESULTS=$RUNS/results.jsonl
[ -d "$BASE/model" ] || { echo "error: $BASE: run experiments/run_variant.sh first" >&2; exit 1; }
rm -rf "$DIR" && mkdir -p "$DIR"
WORK=$DIR/eval_images

source experiments/lib.sh

python3 experiments/make_hinted_fewshot.py "$DIR/data" 4000 "$SEED"
for ARM in exp2_llm_frozen exp2_llm_trained; do
  echo "== hinted seed $SEED: ${ARM}_hinted"
  sed -e "s|@SEED@|$SEED|g" -e "s|@RUNS@/base/|$BASE/|g" \
      -e "s|    few_shot: 4000|  jsonl:\n    - path: $DIR/data/fewshot_hinted.jsonl\n      format: mmc4|" \
      -e "s|output: .*|output: $DIR/${ARM}_hinted|" "experiments/$ARM.yaml" > "$DIR/$ARM.yaml"
  "$VILA" train --config "$DIR/$ARM.yaml" 2> "$DIR/$ARM.log" > /dev/null
  eval_arm "${ARM}_hinted" "$DIR/${ARM}_hinted/model"
done
"$VILA" plot --metrics "$DIR/exp2_llm_frozen_hinted/metrics.jsonl" --label "LLM frozen" \
  --metrics "$DIR/exp2_llm_trained_hinted/metrics.jsonl" --label "LLM trained" --smooth 0.9 \
  --title "Experiment 2 (hinted few-shot training documents): training loss" --width 700 \
  --panel-height 300 --output docs/img/exp2h_train_loss.svg > /dev/null
