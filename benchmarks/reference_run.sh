#!/usr/bin/env bash
# The reference run of the transfer issue: the final bench tables (docs/benchmarks.md,
# "Reference run") from a run of at most an hour on this 2-core machine. A mock survey of
# 10,000 galaxies and 2,000 OGLE-III variable stars; the multimodal tiny model with the
# demo's objective, the unit-free normalisation, period-aware light-curve tokens and the
# demo's "photo" augmentations, trained for $STEPS steps; then the whole bench.
#
#   bash benchmarks/reference_run.sh              # OUT=runs/reference, STEPS=6000
#   OUT=runs/reference-ctx bash benchmarks/reference_run.sh --set "model.keep_context=['lightcurve']"
#
# Extra arguments go to `astroloom train` (an ablation of the reference recipe); a data
# folder already under $OUT is reused (a symlink to another run's data works); BENCH=0
# stops after training.
set -euo pipefail
A=.venv/bin/astroloom
OUT=${OUT:-runs/reference}
STEPS=${STEPS:-6000}
mkdir -p "$OUT"
start=$(date +%s)
[ -f "$OUT/data/dataset.json" ] || $A data simulate --out "$OUT/data" --n 10000 --stars 2000 --seed 3
echo "simulate: $(( $(date +%s) - start )) s" | tee "$OUT/timings.txt"
t=$(date +%s)
if [ ! -f "$OUT/run/final/model.safetensors" ]; then
  $A train \
    --set "model.preset='tiny'" \
    --set "model.modalities=['image','spectrum','photometry','lightcurve']" \
    --set "model.objective='mixed'" --set model.spectrum_patch=64 \
    --set "augment.preset='photo'" \
    --set "data.path='$OUT/data'" --set "out='$OUT/run'" \
    --set train.steps="$STEPS" --set train.warmup_steps=200 --set train.lr=2e-3 \
    --set train.eval_every=500 --set train.checkpoint_every=1000 "$@"
fi
echo "train: $(( $(date +%s) - t )) s" | tee -a "$OUT/timings.txt"
[ "${BENCH:-1}" = 0 ] && exit 0
t=$(date +%s)
$A bench "$OUT/run" "$OUT/data" --out "$OUT/bench"
echo "bench: $(( $(date +%s) - t )) s" | tee -a "$OUT/timings.txt"
echo "total: $(( $(date +%s) - start )) s" | tee -a "$OUT/timings.txt"
