#!/usr/bin/env bash
# Training speed with and without model.keep_context on the reference recipe
# (benchmarks/reference_run.sh, training only, on its survey of 10,000 galaxies and 2,000
# stars): $STEPS steps each, steps per second from the second half of each run's metrics
# (warm-up left out).
#
#   bash benchmarks/keep_context_speed.sh      # DATA=runs/reference/data, STEPS=300
#   PYTHONPATH=OLD_CHECKOUT/src VARIANTS=keep_context bash benchmarks/keep_context_speed.sh
set -euo pipefail
DATA=$(realpath "${DATA:-runs/reference/data}")
STEPS=${STEPS:-300}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for variant in ${VARIANTS:-plain keep_context}; do
  extra=()
  [ "$variant" = keep_context ] && extra=(--set "model.keep_context=['lightcurve']")
  mkdir -p "$WORK/$variant" && ln -s "$DATA" "$WORK/$variant/data"
  OUT="$WORK/$variant" STEPS="$STEPS" BENCH=0 bash benchmarks/reference_run.sh "${extra[@]}" \
    > "$WORK/$variant.log" 2>&1
  .venv/bin/python - "$WORK/$variant/run/metrics.jsonl" "$variant" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
rows = [r for r in rows if "loss" in r and "elapsed_s" in r]
a, b = rows[len(rows) // 2], rows[-1]
print(f"{sys.argv[2]}: {(b['step'] - a['step']) / (b['elapsed_s'] - a['elapsed_s']):.2f} steps/s")
PY
done
