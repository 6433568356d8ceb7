#!/usr/bin/env bash
# Runs the two experiments of docs/experiments.md end to end on the CPU and writes the plots.
#
#   bash experiments/run.sh            # seed 1
#   SEEDS="1 2" bash experiments/run.sh     # what docs/experiments.md reports (~20 min, 2 cores)
#
# Per seed S, under $RUNS/seedS: base (text-only "LLM"), then from its saved model the four
# arms exp1_pairs, exp1_interleaved, exp2_llm_frozen, exp2_llm_trained (configs
# experiments/*.yaml with @SEED@ / @RUNS@ filled in). Measurements through the saved models
# (`vila eval`, the inference path): held-out GCIDE text loss (nats/token) of the base and of the
# exp1 arms at steps 400 / 800 / 1200, caption accuracy (held-out images), few-shot accuracy at
# k = 0, k = 4 and k = 4 with the hint. Results: $RUNS/results.jsonl (one JSON object per
# measurement) and a table on stdout; plots of the first seed: docs/img/exp*.svg. Then, for the
# first seed, experiment 2's two variants (run_variant.sh, run_hinted.sh; they need python3).
set -euo pipefail
cd "$(dirname "$0")/.."

VILA=${VILA:-build/cpu/bin/vila}
RUNS=${RUNS:-build/experiments}
SEEDS=${SEEDS:-1}
TEXT_DOCS=${TEXT_DOCS:-300}  # held-out GCIDE paragraphs
EVAL_SAMPLES=${EVAL_SAMPLES:-200}
IMG=docs/img
ARMS="exp1_pairs exp1_interleaved exp2_llm_frozen exp2_llm_trained"

[ -x "$VILA" ] || { echo "error: $VILA not built (cmake --build ... --target vila_cli)" >&2; exit 1; }
mkdir -p "$RUNS" "$IMG"
RESULTS=$RUNS/results.jsonl
: > "$RESULTS"

# record SEED RUN WHAT JSON: one line of results.jsonl.
record() {
  echo "{\"seed\": $1, \"run\": \"$2\", \"what\": \"$3\", \"result\": $4}" >> "$RESULTS"
  echo "  $2 $3: $4"
}

render() {  # render CONFIG SEED DIR -> DIR/CONFIG
  sed -e "s|@SEED@|$2|g" -e "s|@RUNS@|$3|g" "experiments/$1" > "$3/$1"
}

# The plots of one seed's runs (the first seed), written as soon as that seed is done.
plots() {
  local D=$1
  "$VILA" plot --metrics "$D/exp1_pairs/metrics.jsonl" --label "pairs only" \
    --metrics "$D/exp1_interleaved/metrics.jsonl" --label "interleaved + text" --smooth 0.9 \
    --title "Experiment 1: training loss (each arm on its own data)" --width 700 \
    --panel-height 300 --output "$IMG/exp1_train_loss.svg" > /dev/null
  "$VILA" plot --metrics "$D/exp1_pairs/text_loss.jsonl" --label "pairs only" \
    --metrics "$D/exp1_interleaved/text_loss.jsonl" --label "interleaved + text" --y text_loss \
    --title "Experiment 1: held-out GCIDE text loss (nats/token)" --width 700 \
    --panel-height 300 --output "$IMG/exp1_text_loss.svg" > /dev/null
  "$VILA" plot --metrics "$D/exp2_llm_frozen/metrics.jsonl" --label "LLM frozen" \
    --metrics "$D/exp2_llm_trained/metrics.jsonl" --label "LLM trained" --smooth 0.9 \
    --title "Experiment 2: training loss (interleaved few-shot + captions)" --width 700 \
    --panel-height 300 --output "$IMG/exp2_train_loss.svg" > /dev/null
}

FIRST=1
for SEED in $SEEDS; do
  DIR=$RUNS/seed$SEED
  rm -rf "$DIR" && mkdir -p "$DIR"
  WORK=$DIR/eval_images
  echo "== seed $SEED: base (text only)"
  render base_text.yaml "$SEED" "$DIR"
  "$VILA" train --config "$DIR/base_text.yaml" 2> "$DIR/base.log" > /dev/null
  record "$SEED" base text_loss_step0 \
    "$("$VILA" eval --model "$DIR/base/model" --data gcide --samples "$TEXT_DOCS" --json)"

  for ARM in $ARMS; do
    echo "== seed $SEED: $ARM"
    render "$ARM.yaml" "$SEED" "$DIR"
    "$VILA" train --config "$DIR/$ARM.yaml" 2> "$DIR/$ARM.log" > /dev/null
    MODEL=$DIR/$ARM/model
    record "$SEED" "$ARM" caption \
      "$("$VILA" eval --model "$MODEL" --data fashion --samples "$EVAL_SAMPLES" \
         --work-dir "$WORK" --json 2>/dev/null)"
    record "$SEED" "$ARM" text_loss \
      "$("$VILA" eval --model "$MODEL" --data gcide --samples "$TEXT_DOCS" --json)"
    case $ARM in
      exp1_*)
        # Held-out text loss along the run: base (step 0), checkpoints 400 and 800, the end.
        CURVE=$DIR/$ARM/text_loss.jsonl
        BASE_LOSS=$(grep '"base"' "$RESULTS" | grep "\"seed\": $SEED," | tail -1 |
                    sed 's/.*"text_loss":\([0-9.e+-]*\).*/\1/')
        echo "{\"step\": 0, \"text_loss\": $BASE_LOSS}" > "$CURVE"
        for STEP in 400 800; do
          CK=$DIR/$ARM/checkpoint-$(printf %06d $STEP)
          L=$("$VILA" eval --model "$CK" --data gcide --samples "$TEXT_DOCS" --json |
              sed 's/.*"text_loss":\([0-9.e+-]*\).*/\1/')
          echo "{\"step\": $STEP, \"text_loss\": $L}" >> "$CURVE"
        done
        L=$(tail -1 "$RESULTS" | sed 's/.*"text_loss":\([0-9.e+-]*\).*/\1/')
        echo "{\"step\": 1200, \"text_loss\": $L}" >> "$CURVE"
        ;;
      exp2_*)
        for SHOTS in "0" "4" "4 --hint"; do
          set -- $SHOTS
          record "$SEED" "$ARM" "fewshot_k$1${2:+_hint}" \
            "$("$VILA" eval --model "$MODEL" --data fewshot --shots $SHOTS \
               --samples "$EVAL_SAMPLES" --work-dir "$WORK" --json 2>/dev/null)"
        done
        ;;
    esac
  done
  if [ "$FIRST" = 1 ]; then plots "$DIR"; FIRST=0; fi
done

# Experiment 2's variants, first seed only: a base that knows the class words, and hinted
# few-shot training documents.
S=$(echo "$SEEDS" | awk '{print $1}')
VILA=$VILA RUNS=$RUNS SEED=$S bash experiments/run_variant.sh
VILA=$VILA RUNS=$RUNS SEED=$S bash experiments/run_hinted.sh
python3 experiments/summary.py "$RESULTS"
echo "results: $RESULTS; plots: $IMG/exp*.svg"
