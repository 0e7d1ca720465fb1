#!/bin/bash
# GPU checks for astroloom (docs/benchmarks.md, "On a GPU"): training in bf16 autocast,
# SIGKILL + --resume (resume.sh), throughput eager and compiled, embeddings on the GPU
# against the CPU's, the diffusion simulator. From the repository root:
#   astroloom data simulate --out gpu/data --n 340 --stars 60
#   DATA=gpu/data bash benchmarks/gpu/check.sh      # DEV=cpu F=10 COMPILE=false rehearses it
# A machine without the package installed can carry its missing wheels in $WHEELS.
set -u
DEV=${DEV:-cuda}; OUT=${OUT:-/tmp/gpuout}; T=${T:-/tmp/gpuwork}; mkdir -p "$OUT" "$T"
DATA=${DATA:-gpu/data}
export PYTHONUNBUFFERED=1
F=${F:-1}; R=$T/res; mkdir -p $R
if [ -d ${WHEELS:-gpu/whl} ] && [ "$DEV" != cpu ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site ${WHEELS:-gpu/whl}/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-}
PY=${PY:-python3}
AL="$PY -m astroloom.cli"
log() { echo "== $(date +%T) $*"; }
quiet() { tr '\r' '\n' | grep -v -E "it/s|step/s|obj/s|part/s|batch/s|^\s*$" | tail -${1:-3}; }
now() { date +%s%N; }
ms() { echo $(( ($(now) - $1) / 1000000 )) ms; }
log env; nvidia-smi -L 2>/dev/null; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
COMMON=(--set "model.modalities=['image','spectrum','photometry','lightcurve']" --set "model.objective='mixed'"
  --set model.spectrum_patch=64 --set "augment.preset='photo'" --set model.image_colours=true
  --set "model.keep_context=['lightcurve','image']" --set model.keep_context_rows=8
  --set data.path=$DATA --set train.device=$DEV --set train.lr=2e-3 --set train.warmup_steps=20)
train() { local out=$1 steps=$2; shift 2; ${TO:-} $AL train configs/tiny.toml "${COMMON[@]}" --set out=$out --set train.steps=$steps --set train.eval_every=$((steps/4)) "$@"; }

log "A: the demo recipe, 400 steps"; s=$(now)
train $T/A $((400/F)) --set train.checkpoint_every=200 2>&1 | quiet 4
echo "A wall $(ms $s)"; cp $T/A/impact.json $R/A-impact.json; cp $T/A/metrics.jsonl $R/A-metrics.jsonl

log "B: SIGKILL and --resume"
DEV=$DEV DATA=$DATA F=$F PY=$PY OUT=$R T=$T/resume bash benchmarks/gpu/resume.sh 2>&1 | tail -8

throughput() {
for c in "$@"; do
  train $T/D-$c $((150/F)) --set "model.preset='small'" --set train.batch_size=128 --set train.compile=$c --set train.checkpoint_every=1000 2>&1 | quiet 4
  cp $T/D-$c/metrics.jsonl $R/D-$c-metrics.jsonl; cp $T/D-$c/impact.json $R/D-$c-impact.json
done
}
log "D: throughput, small preset, batch 128, 150 steps, eager"
throughput false

log "E: embeddings on $DEV and on the CPU"
for d in $DEV cpu; do s=$(now)
  $AL embed $T/A $DATA --out $T/emb-$d.parquet --device $d 2>&1 | quiet 2
  echo "embed $d wall $(ms $s)"
done
$PY benchmarks/gpu/compare.py $T/emb-$DEV.parquet $T/emb-cpu.parquet | tee $R/compare.txt

log "F: diffusion simulator, 300 steps, then 8 samples"; s=$(now)
$AL generate train $T/A $DATA --out $T/den --steps $((300/F)) --device $DEV 2>&1 | tr '\r' '\n' | grep -E "loss=|wrote" | sed -n '2p;$p'
echo "F train wall $(ms $s)"; s=$(now)
$AL generate sample $T/den --n 8 --steps 25 --out $T/samples --device $DEV 2>&1 | quiet 3
echo "F sample wall $(ms $s)"; ls $T/samples
tar czf $OUT/results.tgz -C $T res; $PY benchmarks/gpu/summary.py $R > $OUT/summary.json
if [ "${COMPILE:-true}" = true ]; then
  log "D: the same, compiled (torch.compile), at most 150 s"
  TO="timeout 150" throughput true
fi
log done
tar czf $OUT/results.tgz -C $T res; $PY benchmarks/gpu/summary.py $R | tee $OUT/summary.json
