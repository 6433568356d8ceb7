# Shared by run_variant.sh and run_hinted.sh (sourced): results and the evaluation of one exp2 arm.
# Needs VILA, SEED, RESULTS, EVAL_SAMPLES and WORK set by the caller.

# record RUN WHAT JSON: appends one result line to $RESULTS and echoes it.
record() {
  echo "{\"seed\": $SEED, \"run\": \"$1\", \"what\": \"$2\", \"result\": $3}" >> "$RESULTS"
  echo "  $1 $2: $3"
}

# eval_arm RUN MODEL: caption accuracy, then few-shot accuracy with 0 shots, 4 shots and 4 shots
# of which one shows the query's class.
eval_arm() {
  local run=$1 model=$2
  record "$run" caption "$("$VILA" eval --model "$model" --data fashion \
    --samples "$EVAL_SAMPLES" --work-dir "$WORK" --json 2>/dev/null)"
  for SHOTS in "0" "4" "4 --hint"; do
    set -- $SHOTS
    record "$run" "fewshot_k$1${2:+_hint}" \
      "$("$VILA" eval --model "$model" --data fewshot --shots $SHOTS \
         --samples "$EVAL_SAMPLES" --work-dir "$WORK" --json 2>/dev/null)"
  done
}
