#!/usr/bin/env bash
# Which multimodal objective gives the best embeddings at a fixed budget? Trains the tiny
# preset for 1500 steps on a 4,000-galaxy + 400-star mock survey three ways (random-order
# autoregressive, mixed autoregressive/masked, and the image-only GPT), then ridge-probes
# galaxy labels from image-only and all-modality embeddings. ~1 h on 2 CPU cores.
set -euo pipefail
OUT=${OUT:-runs/bench-multimodal}
PY=.venv/bin/python
mkdir -p "$OUT"
$PY -c "from astroloom.data.sim.survey import simulate_survey; simulate_survey('$OUT/data', n_galaxies=4000, n_stars=400, seed=3, progress=False)"
common="--set model.preset=tiny --set data.path=$OUT/data --set train.steps=1500 --set train.batch_size=32 --set train.eval_every=250 --set train.checkpoint_every=1500 --set train.warmup_steps=75 --set train.lr=2e-3"
mm="--set model.modalities=['image','spectrum','photometry','lightcurve'] --set model.spectrum_patch=64"
.venv/bin/astroloom train $common $mm --set model.objective='autoregressive' --set out=$OUT/ar
.venv/bin/astroloom train $common $mm --set model.objective='mixed' --set out=$OUT/mixed
.venv/bin/astroloom train $common --set out=$OUT/image
$PY benchmarks/probe_runs.py "$OUT/data" "$OUT/ar" "$OUT/mixed" "$OUT/image"
