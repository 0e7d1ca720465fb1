"""Spectra in any flux unit: the survey normalisation against the unit-free one
(docs/benchmarks.md, "Spectra in any flux unit").

    .venv/bin/python benchmarks/spectrum_units.py [--data runs/reference/data] [--seeds 0 1]

For each training seed, two spectrum-only ``tiny`` models (mixed objective, 64-pixel
spectrum tokens, 2,000 steps of 32; ≈ 2.5 min each here) are trained on the reference
survey's spectra, one per ``model.spectrum_norm``, unless their run folders exist. Their
spectrum embeddings (mean and spread of the token states at the middle block) of the
survey's first 4,000 spectra are probed with a standardised ``RidgeCV`` trained on 100, 300
or 1,000 of them and scored (R²) on the last 2,000, over 5 draws; three readings:

* *own unit*: the spectra as the survey recorded them;
* *unit unknown*: every flux × 37 (counts of an uncalibrated instrument) — the
  survey-normalised model reads them as if in its unit (what it must assume), the unit-free
  one with the unit recorded as ``unknown``.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from astroloom.config import load_config
from astroloom.data.multiset import keep, load_multimodal_set
from astroloom.model.foundation import Foundation
from astroloom.train.loop import train

TARGETS = ("redshift", "log_stellar_mass", "g_r", "mag_r")
BUDGETS = (100, 300, 1000)
GAIN = 37.0  # counts per survey flux unit of the "uncalibrated instrument"


def trained(data: Path, norm: str, seed: int, out: Path) -> Path:
    if not (out / "final" / "model.safetensors").exists():
        cfg = load_config(
            None,
            [
                "model.preset='tiny'",
                "model.modalities=['spectrum']",
                "model.objective='mixed'",
                "model.spectrum_patch=64",
                f"model.spectrum_norm='{norm}'",
                f"data.path='{data}'",
                f"out='{out}'",
                f"train.seed={seed}",
                "train.steps=2000",
                "train.eval_every=500",
                "train.checkpoint_every=1000",
            ],
        )
        train(cfg)
    return out


def rescaled(data, unit: str | None, gain: float):
    out = copy.deepcopy(data)
    out.arrays["spectrum_flux"] = (data.arrays["spectrum_flux"] * gain).astype(np.float32)
    out.arrays["spectrum_ivar"] = (data.arrays["spectrum_ivar"] / gain**2).astype(np.float32)
    if unit is not None:
        out.info.modalities["spectrum"]["flux_unit"] = unit
    return out


def probe_scores(emb: np.ndarray, data) -> dict[str, dict[int, list[float]]]:
    out: dict[str, dict[int, list[float]]] = {}
    for target in TARGETS:
        y = data.labels[target].astype(float)
        out[target] = {}
        for n in BUDGETS:
            scores = []
            for draw in range(5):
                order = np.random.default_rng(draw).permutation(len(y))
                fit_rows, test_rows = order[:n], order[-2000:]
                model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 6, 17)))
                model.fit(emb[fit_rows], y[fit_rows])
                residual = model.predict(emb[test_rows]) - y[test_rows]
                spread = y[test_rows] - y[test_rows].mean()
                scores.append(float(1 - (residual**2).sum() / (spread**2).sum()))
            out[target][n] = scores
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("runs/reference/data"))
    parser.add_argument("--runs", type=Path, default=Path("runs/spectrum-units"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=Path("runs/spectrum-units.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = load_multimodal_set(args.data, ["spectrum"])
    data = keep(data, data.present["spectrum"])
    data = keep(data, np.arange(len(data.ids)) < 4000)
    readings = {
        ("survey", "own unit"): data,
        ("survey", "unit unknown"): rescaled(data, None, GAIN),
        ("object", "own unit"): data,
        ("object", "unit unknown"): rescaled(data, "unknown", GAIN),
    }
    results: dict[str, dict] = {}
    for (norm, reading), rows in readings.items():
        per_seed = []
        for seed in args.seeds:
            run = trained(args.data, norm, seed, args.runs / f"{norm}-seed{seed}")
            f = Foundation.from_pretrained(run)
            emb = f.embed(f.tokens_from_set(rows, ["spectrum"]), pool="meanstd")
            per_seed.append(probe_scores(emb, rows))
        key = f"{norm} normalisation, {reading}"
        results[key] = {
            t: {n: float(np.mean([s[t][n] for s in per_seed])) for n in BUDGETS} for t in TARGETS
        }
        cells = " | ".join(f"{results[key][t][n]:.3f}" for t in TARGETS for n in BUDGETS)
        print(f"| {key} | {cells} |", flush=True)
    args.out.write_text(json.dumps({"seeds": args.seeds, "r2": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
