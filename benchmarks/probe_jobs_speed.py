"""Few-shot probes in one process against probes spread over worker processes (`--jobs`).

A bench-shaped workload: one regression and one classification curve over feature sets
the size of the reference run's (10,000 objects × 640 dimensions, the tiny model's
``moments`` embedding), every probe type, budgets 10 … all, 5 seeds. Checks that both
give the same rows, and prints the two times and their ratio (measured in one run, so a
shared machine slows both alike).

.venv/bin/python benchmarks/probe_jobs_speed.py [--n 10000] [--dim 640] [--jobs 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from astroloom.evaluate.fewshot import METHODS, few_shot_curve


def main(n: int, dim: int, jobs: int, features: int) -> None:
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(n, 8))
    mix = rng.normal(size=(8, dim)) / np.sqrt(8)
    sets = {
        f"set {i}": (signal @ mix + rng.normal(size=(n, dim))).astype(np.float32)
        for i in range(features)
    }
    y = signal[:, 0] + 0.5 * signal[:, 1] ** 2 + 0.3 * rng.normal(size=n)
    kinds = np.where(signal[:, 2] + 0.5 * rng.normal(size=n) > 0, "early", "late").astype(object)
    times, rows = {}, {}
    for j in (1, jobs):
        start = time.perf_counter()
        curves = [
            few_shot_curve(sets, y, "y", "regression", methods=METHODS, jobs=j),
            few_shot_curve(sets, kinds, "kind", "classification", methods=METHODS, jobs=j),
        ]
        times[j] = time.perf_counter() - start
        rows[j] = [pd.DataFrame(c.rows) for c in curves]
        print(f"jobs={j}: {times[j]:.1f} s for {sum(len(r) for r in rows[j])} probes", flush=True)
    for one, many in zip(rows[1], rows[jobs], strict=True):
        pd.testing.assert_frame_equal(one, many, rtol=1e-9)
    print(
        f"same rows; {features} feature sets of {n:,} × {dim}, {len(METHODS)} probe types: "
        f"{times[1]:.1f} s → {times[jobs]:.1f} s with {jobs} jobs, "
        f"{times[1] / times[jobs]:.2f}× faster"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=640)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--features", type=int, default=2)
    args = parser.parse_args()
    main(args.n, args.dim, args.jobs, args.features)
