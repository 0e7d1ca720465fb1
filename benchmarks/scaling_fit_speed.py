"""Speed of the scaling-law fit on synthetic runs drawn from the published constants.

.venv/bin/python benchmarks/scaling_fit_speed.py
"""

from __future__ import annotations

import time

import numpy as np

from astroloom.scaling.fit import bootstrap_fit, fit_law
from astroloom.scaling.law import PUBLISHED


def main() -> None:
    rng = np.random.default_rng(0)
    n, d = np.meshgrid(np.geomspace(1e7, 1e10, 5), np.geomspace(1e9, 1e12, 5))
    n, d = n.ravel(), d.ravel()
    loss = PUBLISHED.loss(n, d) * np.exp(rng.normal(0, 0.003, n.size))
    start = time.perf_counter()
    law = fit_law(n, d, loss)
    print(f"fit_law on {n.size} runs: {time.perf_counter() - start:.2f} s -> {law}")
    start = time.perf_counter()
    fit = bootstrap_fit(n, d, loss, n_boot=50, progress=False)
    print(f"bootstrap_fit, 50 resamples: {time.perf_counter() - start:.1f} s")
    print({k: tuple(round(x, 3) for x in v) for k, v in fit.intervals.items()})


if __name__ == "__main__":
    main()
