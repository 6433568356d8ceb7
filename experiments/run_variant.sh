#!/usr/bin/env bash
# Experiment 2, variant "the base LLM knows the class words": the text-only base also reads
# catalogue sentences ("This is a bag. This is a coat.", make_text_with_classes.py), then the two
# exp2 arms (LLM frozen / trained) start from it. Called by run.sh; appends to
# $RUNS/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
VILA=${VILA:-build/cpu/bin/vila}
RUNS=${RUNS:-build/experiments}
SEED=${SEED:-1}
EVAL_SAMPLES=${EVAL_SAMPLES:-200}
TEXT_DOCS=${TEXT_DOCS:-300}
DIR=$RUNS/variant_seed$SEED
RESULTS=$RUNS/results.jsonl
rm -rf "$DIR" && mkdir -p "$DIR"
WORK=$DIR/eval_images

source experiments/lib.sh

python3 experiments/make_text_with_classes.py "$DIR/text_with_classes.txt" "$SEED"
sed -e "s|@SEED@|$SEED|g" -e "s|@RUNS@|$DIR|g" \
    -e "s|text: gcide|text: $DIR/text_with_classes.txt|" -e "s|text_samples: 4000|text_samples: 0|" \
    -e "s|$DIR/base$|$DIR/base_classes|" experiments/base_text.yaml > "$DIR/base_classes.yaml"
echo "== variant seed $SEED: base_classes"
"$VILA" train --config "$DIR/base_classes.yaml" 2> "$DIR/base_classes.log" > /dev/null
record base_classes text_loss_step0 \
  "$("$VILA" eval --model "$DIR/base_classes/model" --data gcide --samples "$TEXT_DOCS" --json)"
for ARM in exp2_llm_frozen exp2_llm_trained; do
  echo "== variant seed $SEED: ${ARM}_classes"
  sed -e "s|@SEED@|$SEED|g" -e "s|@RUNS@|$DIR|g" -e "s|$DIR/base/|$DIR/base_classes/|g" \
      -e "s|output: .*|output: $DIR/${ARM}_classes|" "experiments/$ARM.yaml" > "$DIR/$ARM.yaml"
  "$VILA" train --config "$DIR/$ARM.yaml" 2> "$DIR/$ARM.log" > /dev/null
  eval_arm "${ARM}_classes" "$DIR/${ARM}_classes/model"
done
