"""Which quadrupole moments to pool: the ablation behind the ``moments`` pooling.

On 3,000 ordinary galaxies of a survey (early or late type), the token states of a run at
its middle block are pooled several ways and probed beside the hand-crafted photutils
features: ellipticity and log half-light radius by ridge (R², 5-fold with every label;
100 and 300 labels: mean of 5 draws, tested on the rest), early/late type by logistic
regression (macro-F1; 3 draws).

    .venv/bin/python benchmarks/pooling_moments.py runs/reference/run runs/reference/data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).parent))
from domain_shift import ridge_r2  # noqa: E402

from astroloom.data.multiset import keep, load_multimodal_set  # noqa: E402
from astroloom.data.normalise import robust_noise_scale  # noqa: E402
from astroloom.evaluate.fewshot import _LOGISTIC_CV_QUIET  # noqa: E402
from astroloom.evaluate.handcrafted import handcrafted_features  # noqa: E402
from astroloom.model.foundation import load_foundation  # noqa: E402
from astroloom.tokenize.image import spiral_order  # noqa: E402


def angular_moment(h: np.ndarray, angle: np.ndarray, n: int, m: int) -> np.ndarray:
    """Per channel |Σ (h − mean) e^{imθ}| / n over the first ``n`` tokens (centre-out order)."""
    a = h[:, :n] - h[:, :n].mean(1, keepdims=True)
    return np.abs((a * np.exp(1j * m * angle[:n])[None, :, None]).sum(1)) / n


def poolings(h: np.ndarray) -> dict[str, np.ndarray]:
    g = round(h.shape[1] ** 0.5)
    order = np.array(spiral_order(g))
    angle = np.angle((order % g - (g - 1) / 2) + 1j * (order // g - (g - 1) / 2))
    base = np.c_[h.mean(1), h.std(1)]
    q = {n: angular_moment(h, angle, n, 2) for n in (4, 16, 36)}
    out = {
        "mean and spread": base,
        "+ quadrupole of the central 2 × 2": np.c_[base, q[4]],
        "+ quadrupole of the central 4 × 4": np.c_[base, q[16]],
        "+ quadrupole of the central 6 × 6": np.c_[base, q[36]],
        "+ quadrupole of the central 2 × 2 and 4 × 4 (`moments`)": np.c_[base, q[4], q[16]],
        "+ those and the dipole of the central 2 × 2": np.c_[
            base, q[4], q[16], angular_moment(h, angle, 4, 1)
        ],
    }
    moments = out["+ those and the dipole of the central 2 × 2"]
    centre = {n: h[:, :n].mean(1) for n in (4, 16)}
    out["+ the mean of the central 2 × 2"] = np.c_[moments, centre[4]]
    out["+ the means of the central 2 × 2 and 4 × 4"] = np.c_[moments, centre[4], centre[16]]
    out["+ the mean of the central 4 × 4"] = np.c_[moments, centre[16]]
    return out


def few_r2(x: np.ndarray, y: np.ndarray, n: int, draws: int = 5) -> float:
    out = []
    for d in range(draws):
        p = np.random.default_rng(d).permutation(len(y))
        train, test = p[:n], p[n:]
        probe = make_pipeline(StandardScaler(), RidgeCV(np.logspace(-2, 6, 17)))
        pred = probe.fit(x[train], y[train]).predict(x[test])
        out.append(1 - np.sum((y[test] - pred) ** 2) / np.sum((y[test] - y[test].mean()) ** 2))
    return float(np.mean(out))


def few_f1(x: np.ndarray, y: np.ndarray, n: int, draws: int = 3) -> float:
    out = []
    for d in range(draws):
        p = np.random.default_rng(d).permutation(len(y))
        train, test = p[:n], p[n:]
        probe = make_pipeline(
            StandardScaler(), LogisticRegressionCV(Cs=8, cv=3, max_iter=3000, **_LOGISTIC_CV_QUIET)
        )
        out.append(
            f1_score(y[test], probe.fit(x[train], y[train]).predict(x[test]), average="macro")
        )
    return float(np.mean(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    data = load_multimodal_set(args.data, ["image"])
    ordinary = np.isin(data.labels["morph_type"], ["early", "late"]) & data.present["image"]
    pick = np.sort(np.random.default_rng(0).choice(np.flatnonzero(ordinary), args.n, replace=False))
    data = keep(data, pick)
    f = load_foundation(args.run)
    model = f.model.eval()
    tokens = f.tokens_from_set(data, ["image"])
    states = []
    with torch.no_grad():
        for lo in range(0, args.n, 500):
            part = {k: t.take(slice(lo, lo + 500)) for k, t in tokens.items()}
            hidden, _ = model.hidden_states(
                part, model.canonical_plan(part, model.embedding_objective())
            )
            states.append(hidden[model.default_layer()].numpy())
    h = np.concatenate(states)
    images = np.asarray(data.arrays["image"], np.float32)
    rows = {
        "hand-crafted (photutils)": handcrafted_features(
            images, robust_noise_scale(images), progress=False
        )
    }
    rows.update(poolings(h))
    ell = data.labels["ellipticity"].astype(float)
    size = np.log10(data.labels["half_light_radius"].astype(float))
    early = (data.labels["morph_type"] == "early").astype(int)
    print(
        "| features | dims | ellipticity R²: all | 300 | 100 | log size R²: all | 300 | 100 "
        "| early/late F1: 300 | 100 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, x in rows.items():
        print(
            f"| {name} | {x.shape[1]} | {ridge_r2(x, ell):.3f} | {few_r2(x, ell, 300):.3f} | "
            f"{few_r2(x, ell, 100):.3f} | {ridge_r2(x, size):.3f} | {few_r2(x, size, 300):.3f} | "
            f"{few_r2(x, size, 100):.3f} | {few_f1(x, early, 300):.3f} | "
            f"{few_f1(x, early, 100):.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
