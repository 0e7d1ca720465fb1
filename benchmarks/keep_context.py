"""Light-curve embeddings with and without ``model.keep_context`` (docs/benchmarks.md,
"Keeping the period in the embedding").

    .venv/bin/python benchmarks/keep_context.py [--data runs/reference/data] [--steps 1500]

Two light-curve-only ``tiny`` models (mixed objective, period-aware tokens, ``--steps``
steps of 32; ≈ 4–5 min each here) are trained on the reference survey's variable stars,
one with ``model.keep_context=['lightcurve']``, unless their run folders exist. Their
embeddings (the default pooling at the middle block) and the Lomb–Scargle features are
probed by the bench's own harness (``few_shot_curve``: linear probes, 5 label draws per
budget) for log10 period (R²) and variable class (macro-F1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from astroloom.config import load_config
from astroloom.data.multiset import load_multimodal_set
from astroloom.evaluate.fewshot import few_shot_curve
from astroloom.evaluate.lightcurve_features import lightcurve_features
from astroloom.model.foundation import Foundation
from astroloom.model.multimodal import EMBED_POOL
from astroloom.train.loop import train

BUDGETS = (10, 30, 100, 300)


def train_pilot(data: Path, out: Path, steps: int, seed: int, overrides: list[str]) -> Path:
    """A ``tiny`` model (mixed objective, ``steps`` steps of 32, the pilots' schedule) with
    ``overrides`` on top, trained into ``out`` unless its weights are there already."""
    if not (out / "final" / "model.safetensors").exists():
        cfg = load_config(
            None,
            [
                "model.preset='tiny'",
                "model.objective='mixed'",
                f"data.path='{data}'",
                f"out='{out}'",
                f"train.seed={seed}",
                f"train.steps={steps}",
                "train.warmup_steps=100",
                "train.lr=2e-3",
                f"train.eval_every={steps // 3}",
                f"train.checkpoint_every={steps}",
                *overrides,
            ],
        )
        train(cfg)
    return out


def probe_table(
    features: dict[str, np.ndarray], targets: list[tuple], budgets: tuple[int, ...]
) -> dict[str, dict]:
    """The bench's linear probes (5 label draws) of every (name, labels, task, metric) target
    on every feature set: one Markdown row per pair printed, the means and spreads returned."""
    results: dict[str, dict] = {}
    for target, y, task, metric in targets:
        curve = few_shot_curve(features, y, target, task, list(budgets), ("linear",), 5)
        summary = curve.summary(metric)
        results[target] = {
            k: {n: list(summary[(k, "linear", n)]) for n in budgets} for k in features
        }
        for k in features:
            cells = " | ".join(
                f"{summary[(k, 'linear', n)][0]:.3f} ± {summary[(k, 'linear', n)][1]:.3f}"
                for n in budgets
            )
            print(f"| {target} | {k} | {cells} |", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("runs/reference/data"))
    parser.add_argument("--runs", type=Path, default=Path("runs/keep-context"))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/keep-context.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    stars = load_multimodal_set(args.data, ["lightcurve"])
    features = {}
    for keep in (False, True):
        name = "keep_context" if keep else "plain"
        overrides = ["model.modalities=['lightcurve']"]
        overrides += ["model.keep_context=['lightcurve']"] if keep else []
        out = args.runs / f"{name}-seed{args.seed}"
        run = train_pilot(args.data, out, args.steps, args.seed, overrides)
        f = Foundation.from_pretrained(run)
        features[name] = f.embed(f.tokens_from_set(stars, ["lightcurve"]), pool=EMBED_POOL)
    c = stars.curves
    n_bands = len(f.tokenizer["lightcurve"].bands)
    features["Lomb–Scargle"] = lightcurve_features(
        c["lc_time"], c["lc_mag"], c["lc_band"], n_bands, False
    )
    period = stars.labels["period"].astype(float)
    log_period = np.where(period > 0, np.log10(np.where(period > 0, period, 1.0)), np.nan)
    targets = [
        ("log10_period", log_period, "regression", "r2"),
        ("var_class", stars.labels["var_class"], "classification", "macro_f1"),
    ]
    results = probe_table(features, targets, BUDGETS)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
