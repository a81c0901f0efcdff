#!/usr/bin/env bash
# The learning ablation of self-evolving memory, on the eval harness (a benchmark: it prints the
# report's tables; nothing fails when a number is bad).
#
# Protocol (same model, tasks and seeds in every condition, so runs are paired):
#   1. train: for each learning condition, an evolving run over TRAIN_PASSES passes of the tasks
#      with TRAIN_SEED (new instances every pass);
#   2. held-out: a frozen run of the same tasks from that run's memory with EVAL_SEED — task
#      instances and seeds never seen in training — over EVAL_PASSES passes;
#   3. memory off on the same held-out instances.
# Conditions (the harness's --learn switches): experiences only; + insights; + skills;
# + evolving recall (tuned weights) and conflicts, i.e. everything.
#
#   MODEL=local//path/to/model.gguf benchmarks/learning_ablation.sh OUT_DIR [task …]
#
# Environment: MODEL (default: as `agentforge run`), SUITE (miniwob), TRAIN_SEED (11),
# EVAL_SEED (22), TRAIN_PASSES (3), EVAL_PASSES (2), MAX_STEPS (5), LEARN_TOKENS (3000),
# EPISODE_TIMEOUT (300 s); on a busy machine also raise AGENTFORGE_MODEL_TIMEOUT (60 s per call).
# Rerunning resumes every run where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: benchmarks/learning_ablation.sh OUT_DIR [task …]}
shift
tasks=("$@")
if [[ ${#tasks[@]} -eq 0 ]]; then
  tasks=(click-button click-dialog click-link click-tab enter-text focus-text)
fi
af=.venv/bin/agentforge
suite=${SUITE:-miniwob}
common=(--max-steps "${MAX_STEPS:-5}" --timeout "${EPISODE_TIMEOUT:-300}")
[[ -n ${MODEL:-} ]] && common+=(--model "$MODEL")
for t in "${tasks[@]}"; do common+=(--task "$t"); done

declare -A learn=(
  [experiences]=experiences
  [insights]=experiences,insights
  [skills]=experiences,insights,skills
  [full]=experiences,conflicts,insights,skills,weights
)
order=(experiences insights skills full)
mkdir -p "$out"

for c in "${order[@]}"; do
  $af eval run "$suite" --out "$out/train-$c" --memory evolving --learn "${learn[$c]}" \
    --learn-tokens "${LEARN_TOKENS:-3000}" --passes "${TRAIN_PASSES:-3}" \
    --seed "${TRAIN_SEED:-11}" "${common[@]}"
done
$af eval run "$suite" --out "$out/heldout-off" --memory off --passes "${EVAL_PASSES:-2}" \
  --seed "${EVAL_SEED:-22}" "${common[@]}"
for c in "${order[@]}"; do
  $af eval run "$suite" --out "$out/heldout-$c" --memory frozen --memory-from "$out/train-$c" \
    --passes "${EVAL_PASSES:-2}" --seed "${EVAL_SEED:-22}" "${common[@]}"
done

echo "== training (evolving) =="
$af eval report "${order[@]/#/$out/train-}" --html "$out/train.html"
echo "== held-out instances (frozen memory vs off) =="
$af eval report "$out/heldout-off" "${order[@]/#/$out/heldout-}" --html "$out/heldout.html"
