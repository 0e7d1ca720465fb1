"""How steady is fine-tuning with a few hundred labels, by where the head starts?
(docs/benchmarks.md, "A head that starts from the frozen probe").

    .venv/bin/python benchmarks/finetune_head_start.py [--model astroloom/mock-tiny] \
        [--data DIR] [--label redshift] [--steps 300] [--seeds 14] \
        [--recipe random:1e-3 --recipe random:3e-4 --recipe probe:1e-3 --recipe probe:3e-4] \
        [--objects N] [--out runs/finetune-head-start.json]

Without ``--data`` the test suite's small survey is simulated (320 galaxies, seed 5: 288
spectra to train on, 32 held out). Each recipe (``HEAD_INIT:LR``) fine-tunes the spectrum
model for ``--label`` once per seed through :func:`astroloom.interpret.tuned.fine_tune`
(what ``astroloom explain --fine-tune STEPS --head-init H --lr L`` runs) and records the
held-out score beside the frozen probe's. ``--objects N``: only N spectra of the data,
drawn at random (seed 0), a tenth of them held out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from astroloom.data.multiset import keep, load_multimodal_set
from astroloom.data.sim.survey import simulate_survey
from astroloom.interpret.tuned import fine_tune
from astroloom.model.foundation import Foundation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="astroloom/mock-tiny")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--label", default="redshift")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=14)
    parser.add_argument("--recipe", action="append", default=None)
    parser.add_argument("--objects", type=int, default=None,
                        help="fine-tune on N spectra of the data drawn at random")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("runs/finetune-head-start.json"))
    args = parser.parse_args()
    recipes = args.recipe or ["random:1e-3", "random:3e-4", "probe:1e-3", "probe:3e-4"]

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data
        if data_dir is None:
            data_dir = Path(scratch) / "survey"
            simulate_survey(data_dir, n_galaxies=320, n_stars=48, seed=5, shard_size=200,
                            workers=1, progress=False)  # fmt: skip
        foundation = Foundation.from_pretrained(args.model)
        data = load_multimodal_set(data_dir, ["spectrum"])
        data = keep(data, data.present["spectrum"])
        if args.objects is not None:
            if not 10 < args.objects <= len(data.ids):
                parser.error(f"--objects must lie in 11 … {len(data.ids)}")
            drawn = np.random.default_rng(0).choice(len(data.ids), args.objects, replace=False)
            data = keep(data, np.isin(np.arange(len(data.ids)), drawn))
        rows = []
        for recipe in recipes:
            head_init, lr = recipe.split(":")
            for seed in range(args.seeds):
                start = time.perf_counter()
                tuned = fine_tune(foundation, data, args.label, ["spectrum"], steps=args.steps,
                                  lr=float(lr), seed=seed, head_init=head_init,
                                  progress=False)  # fmt: skip
                row = {"head_init": head_init, "lr": float(lr), "seed": seed,
                       "seconds": time.perf_counter() - start, **tuned.held_out}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"steps": args.steps, "label": args.label,
                                    "model": args.model, "objects": len(data.ids),
                                    "rows": rows}, indent=1))  # fmt: skip
    frozen = rows[0]["frozen probe"]
    print(f"\n{args.label}, {args.steps} steps, {rows[0]['n']} held out; frozen probe "
          f"{rows[0]['metric']} {frozen:.3f}")  # fmt: skip
    print(f"{'head':<8}{'lr':>8}{'mean':>8}{'min':>8}{'max':>8}  below frozen")
    for recipe in recipes:
        head_init, lr = recipe.split(":")
        got = np.array([r["fine-tuned"] for r in rows
                        if r["head_init"] == head_init and r["lr"] == float(lr)])  # fmt: skip
        print(f"{head_init:<8}{float(lr):>8.0e}{got.mean():>8.3f}{got.min():>8.3f}"
              f"{got.max():>8.3f}  {int((got < frozen).sum())} of {len(got)}")


if __name__ == "__main__":
    main()
