#!/usr/bin/env bash
# Evaluate a seed suite with EleutherAI's lm-evaluation-harness, then hand it to mb-stats.
#
# Run on a machine with a GPU and the harness (pip install "lm-eval>=0.4.3"); every (seed, step)
# is one harness run writing <OUT>/<model_name_sanitized>/results_<date>.json and
# samples_<task>_<date>.jsonl. --log_samples is what mb-stats needs: the per-example output.
# On a cluster, make each (seed, step) one array task (the loop body below) and run the import
# once after the last one; a run that died is simply run again (the import refuses two samples
# files for the same model, step and task, so delete the partial one first).
#
#   experiments/lm-eval/run-polypythias.sh out/polypythias
#   mb-stats import lm-eval out/polypythias -o polypythias.parquet
#   mb-stats curve polypythias.parquet --by task --metric mean
set -euo pipefail
out="${1:?usage: run-polypythias.sh OUT_DIR}"
size="${SIZE:-160m}"
tasks="${TASKS:-arc_easy,lambada_openai}"
seeds="${SEEDS:-1 2 3 4 5 6 7 8 9}"
steps="${STEPS:-1000 3000 13000 33000 143000}"
for seed in $seeds; do
    for step in $steps; do
        lm_eval --model hf \
            --model_args "pretrained=EleutherAI/pythia-${size}-seed${seed},revision=step${step},dtype=float32" \
            --tasks "$tasks" --batch_size auto --log_samples --output_path "$out"
    done
done
# The original Pythia is seed 0 of the suite: its name has no seed, so name it at import time:
#   mb-stats import lm-eval out/polypythias --seed EleutherAI/pythia-160m=0 -o polypythias.parquet
