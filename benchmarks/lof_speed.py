"""Local outlier factors over a range of neighbourhoods: scikit-learn (one fit per k)
against ``discover/anomaly.py:local_outlier_factors`` (one exact FAISS search for the largest
k), on standardised Gaussian-mixture vectors shaped like the bench's (10,000 × 640) and the
explorer's (100,000 × 128) embeddings (docs/benchmarks.md, "Anomalies: the largest factor
over a range of neighbourhoods").

    .venv/bin/python benchmarks/lof_speed.py [--big]

Without ``--big`` only the 10,000-object case runs (~1 min on 2 cores). With it, the
100,000-object case too, where scikit-learn is timed for one k (k = 20) only: the range
would take about nine of those.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import StandardScaler

from astroloom.discover.anomaly import LOF_RANGE, local_outlier_factors


def mixture(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(20, dim))
    x = centres[rng.integers(0, 20, n)] + rng.normal(size=(n, dim))
    return StandardScaler().fit_transform(x).astype(np.float32)


def timed(fn):
    began = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", action="store_true", help="Also 100,000 × 128.")
    args = parser.parse_args()
    print(
        "| objects × dims | scikit-learn | s | FAISS, one search | s | time ratio "
        "| max rel. diff. |"
    )
    print("|---|---|---:|---|---:|---:|---:|")
    cases = [(10_000, 640, LOF_RANGE)] + ([(100_000, 128, (20,))] if args.big else [])
    for n, dim, sk_ks in cases:
        x = mixture(n, dim)
        ours, t_ours = timed(lambda x=x: local_outlier_factors(x, LOF_RANGE))
        theirs, t_sk = timed(
            lambda x=x, ks=sk_ks: {
                k: -LocalOutlierFactor(n_neighbors=k).fit(x).negative_outlier_factor_ for k in ks
            }
        )
        diff = max(float(np.max(np.abs(ours[k] / theirs[k] - 1))) for k in sk_ks)
        what = f"{len(sk_ks)} fit{'s' if len(sk_ks) > 1 else ''} (k = {', '.join(map(str, sk_ks))})"
        print(
            f"| {n:,} × {dim} | {what} | {t_sk:.1f} | all {len(LOF_RANGE)} k | {t_ours:.1f} | "
            f"{t_sk / t_ours:.1f}× | {diff:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
