#!/usr/bin/env bash
# The CPU scaling benchmark recorded in docs/benchmarks.md: 3 model sizes x 4 token
# budgets on a 36,000-galaxy mock survey (so that even the largest budget, 2e6 tokens, is
# under one pass over the training galaxies: D counts distinct tokens), then the
# approach-3 fit with bootstrap intervals.
#   bash benchmarks/scaling_sweep.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/bench-scaling}
bin=${ASTROLOOM:-.venv/bin/astroloom}
"$bin" data simulate --out "$out/data" --n 36000 --seed 0
"$bin" scaling sweep configs/tiny.toml --sizes nano,micro,tiny --tokens 2.5e5,5e5,1e6,2e6 \
  --out "$out/sweep" --set "data.path='$out/data'" --set train.warmup_steps=50
"$bin" scaling fit "$out/sweep" --bootstrap 200 --plan 1e15
