#!/usr/bin/env bash
# Training speed with and without model.keep_context on the reference recipe (the mock
# survey of benchmarks/reference_run.sh: 10,000 galaxies, 2,000 stars): $STEPS steps each,
# steps per second from the second half of each run's metrics (warm-up left out).
#
#   bash benchmarks/keep_context_speed.sh      # DATA=runs/reference/data, STEPS=300
#   PYTHONPATH=OLD_CHECKOUT/src VARIANTS=keep_context bash benchmarks/keep_context_speed.sh
set -euo pipefail
A=.venv/bin/astroloom
DATA=${DATA:-runs/reference/data}
STEPS=${STEPS:-300}
OUT=$(mktemp -d)
for variant in ${VARIANTS:-plain keep_context}; do
  extra=()
  [ "$variant" = keep_context ] && extra=(--set "model.keep_context=['lightcurve']")
  $A train \
    --set "model.preset='tiny'" \
    --set "model.modalities=['image','spectrum','photometry','lightcurve']" \
    --set "model.objective='mixed'" --set model.spectrum_patch=64 \
    --set "augment.preset='photo'" --set "data.path='$DATA'" --set "out='$OUT/$variant'" \
    --set train.steps="$STEPS" --set train.warmup_steps=20 --set train.eval_every=100000 \
    --set train.checkpoint_every=100000 "${extra[@]}" > "$OUT/$variant.log" 2>&1
  .venv/bin/python - "$OUT/$variant/metrics.jsonl" "$variant" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if '"elapsed_s"' in line]
rows = [r for r in rows if "loss" in r]
a, b = rows[len(rows) // 2], rows[-1]
print(f"{sys.argv[2]}: {(b['step'] - a['step']) / (b['elapsed_s'] - a['elapsed_s']):.2f} steps/s")
PY
done
rm -rf "$OUT"
