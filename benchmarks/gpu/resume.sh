#!/bin/bash
# SIGKILL mid-run on the GPU, --resume, and the same run whole: losses and final weights
# compared (docs/benchmarks.md, "On a GPU"). The Python process itself is killed: killing
# a shell function that started it leaves the training running.
set -u
DEV=${DEV:-cuda}; OUT=${OUT:-/tmp/gpuout}; T=${T:-/tmp/gpuwork2}; F=${F:-1}; R=$T/res; mkdir -p "$OUT" $R
DATA=${DATA:-gpu/data}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src:${PYTHONPATH:-}
PY=${PY:-python3}
ARGS=(configs/tiny.toml --set "model.modalities=['image','spectrum','photometry','lightcurve']" --set "model.objective='mixed'"
  --set model.spectrum_patch=64 --set "augment.preset='photo'" --set model.image_colours=true
  --set "model.keep_context=['lightcurve','image']" --set model.keep_context_rows=8
  --set data.path=$DATA --set train.device=$DEV --set train.lr=2e-3 --set train.warmup_steps=20
  --set train.steps=$((200/F)) --set train.eval_every=$((50/F)) --set train.checkpoint_every=$((20/F)))
echo "== $(date +%T) B: killed with SIGKILL once step $((100/F)) is checkpointed"
$PY -m astroloom.cli train "${ARGS[@]}" --set out=$T/B >$T/B.log 2>&1 & pid=$!
want=$T/B/checkpoints/step-$(printf %07d $((100/F)))
for i in $(seq 1 1200); do [ -d $want ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.05; done
kill -9 $pid; wait $pid; echo "killed rc $?"; ls $T/B/checkpoints
test -e $T/B/final && echo "B FINISHED BEFORE THE KILL: no resume check"
echo "== $(date +%T) B resumed"
$PY -m astroloom.cli train "${ARGS[@]}" --set out=$T/B --resume 2>&1 | tr '\r' '\n' | tail -1
echo "== $(date +%T) C: whole"
$PY -m astroloom.cli train "${ARGS[@]}" --set out=$T/C 2>&1 | tr '\r' '\n' | tail -1
cp $T/B/metrics.jsonl $R/B-metrics.jsonl; cp $T/C/metrics.jsonl $R/C-metrics.jsonl
$PY - $T <<'PY' | tee $OUT/resume.json
import json, sys
from pathlib import Path
import numpy as np
from safetensors.numpy import load_file
T = Path(sys.argv[1])
rows = lambda r: {x["step"]: x["loss"] for x in map(json.loads, (T / r / "metrics.jsonl").read_text().splitlines())}
b, c = rows("B"), rows("C")
wb, wc = load_file(T / "B/final/model.safetensors"), load_file(T / "C/final/model.safetensors")
d = max(float(np.abs(wb[k].astype(np.float64) - wc[k]).max()) for k in wc)
print(json.dumps({"steps_equal": sorted(b) == sorted(c), "n": len(c),
  "max_abs_loss_diff": max(abs(b[s] - c[s]) for s in c), "max_abs_weight_diff": d,
  "final_loss_B": b[max(b)], "final_loss_C": c[max(c)]}))
PY
