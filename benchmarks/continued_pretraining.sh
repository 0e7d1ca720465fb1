#!/usr/bin/env bash
# Continued pretraining (train --init) on a new instrument's unlabelled cutouts: how much of
# the domain-shift gap it recovers over the frozen model. Starts from the demo-configuration
# run of benchmarks/transfer_runs.sh and continues for $STEPS steps on each rendition's
# images (no labels), then runs the domain-shift probes on those renditions.
#
#   bash benchmarks/continued_pretraining.sh      # BASE=runs/ds/object-photo, STEPS=300
set -euo pipefail
A=.venv/bin/astroloom
BASE=${BASE:-runs/ds/object-photo}
STEPS=${STEPS:-300}
runs=(--run "$BASE")
for rendition in second photo; do
  out=runs/ds/init-$rendition
  if [ ! -f "$out/final/model.safetensors" ]; then
    $A train --init "$BASE" --set "data.path='runs/renditions/$rendition'" --set "out='$out'" \
      --set train.steps="$STEPS" --set train.warmup_steps=30 --set train.lr=5e-4 \
      --set train.min_lr=5e-5 --set train.eval_every=100 --set train.checkpoint_every="$STEPS"
  fi
  runs+=(--run "$out")
done
.venv/bin/python benchmarks/domain_shift.py --data runs/renditions "${runs[@]}" --no-baselines \
  --out runs/ds/continued.json
