#!/usr/bin/env bash
# Ablations of the transfer work (docs/benchmarks.md, "Transfer"): the demo's multimodal
# configuration (tiny preset, four modalities, mixed objective, 1,500 steps) trained on the
# same mock survey with astroloom 0.1's survey normalisation, with the unit-free per-object
# normalisation, and with it plus the "transfer" augmentations; then the domain-shift
# benchmark on all three.  About 25 min on 2 cores, plus ~2 min the first time for each
# simulation.
#
#   bash benchmarks/transfer_runs.sh            # RUNS=runs/ds by default
#   RUNS=runs/ds-seed1 SEED=1 VARIANTS="object-photo object-colours" bash benchmarks/transfer_runs.sh
set -euo pipefail
A=.venv/bin/astroloom
RUNS=${RUNS:-runs/ds}
DATA=$RUNS/data
[ -f "$DATA/dataset.json" ] || $A data simulate --out "$DATA" --n 6000 --stars 300 --seed 0
common=(
  --set "model.preset='tiny'"
  --set "model.modalities=['image','spectrum','photometry','lightcurve']"
  --set "model.objective='mixed'" --set model.spectrum_patch=64
  --set "data.path='$DATA'" --set train.steps="${STEPS:-1500}" --set train.warmup_steps=75
  --set train.lr=2e-3 --set train.eval_every=150 --set train.checkpoint_every=375
  --set train.seed="${SEED:-0}"
)
for variant in ${VARIANTS:-survey-norm object-norm object-aug}; do
  [ -f "$RUNS/$variant/final/model.safetensors" ] && continue
  case $variant in
    survey-norm) extra=(--set "model.image_norm='survey'") ;;
    object-norm) extra=() ;;
    object-aug) extra=(--set "augment.preset='transfer'") ;;
    object-photo) extra=(--set "augment.preset='photo'") ;;
    # The demo's configuration with the object's colours as context, kept in the embedding
    # (docs/benchmarks.md, "Colours as context").
    object-colours) extra=(--set "augment.preset='photo'" --set model.image_colours=true
                           --set "model.keep_context=['lightcurve','image']"
                           --set model.keep_context_rows=8) ;;
    # ... and with the image-only embedding aligned to the spectrum's (model.align;
    # docs/benchmarks.md, "Masking ratio, objective and image–spectrum alignment").
    object-colours-align) extra=(--set "augment.preset='photo'" --set model.image_colours=true
                           --set "model.keep_context=['lightcurve','image']"
                           --set model.keep_context_rows=8 --set model.align=0.1) ;;
    # ... and with framing changes: shifts of up to 4 pixels and zooms of up to 1.3×, half
    # the time (docs/benchmarks.md, "Real photographs: the Hubble XDF").
    object-colours-frame) extra=(--set "augment.preset='photo'" --set model.image_colours=true
                           --set "model.keep_context=['lightcurve','image']"
                           --set model.keep_context_rows=8 --set augment.shift=4.0
                           --set augment.zoom=1.3 --set augment.p_geometry=0.5) ;;
    # ... and with each cutout's shape statistics read back from its embedding
    # (model.keep_shape; docs/benchmarks.md, "Shape read-out").
    object-colours-shape) extra=(--set "augment.preset='photo'" --set model.image_colours=true
                           --set "model.keep_context=['lightcurve','image']"
                           --set model.keep_context_rows=8 --set model.keep_shape=0.3) ;;
    object-colours-nokeep) extra=(--set "augment.preset='photo'" --set model.image_colours=true) ;;
    object-colours-allrows) extra=(--set "augment.preset='photo'" --set model.image_colours=true
                           --set "model.keep_context=['lightcurve','image']"
                           --set model.keep_context_rows=0) ;;
    *) echo "unknown variant $variant" >&2; exit 2 ;;
  esac
  $A train "${common[@]}" "${extra[@]}" --set "out='$RUNS/$variant'"
done
runs=()
for variant in ${VARIANTS:-survey-norm object-norm object-aug}; do runs+=(--run "$RUNS/$variant"); done
.venv/bin/python benchmarks/domain_shift.py --data runs/renditions "${runs[@]}" \
  --out "$RUNS/domain_shift.json" ${BENCH_ARGS:-}
