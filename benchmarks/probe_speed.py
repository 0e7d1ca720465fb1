"""The probe harness on 50,000 × 256 embeddings: ridge probes and few-shot curves.

.venv/bin/python benchmarks/probe_speed.py
"""

from __future__ import annotations

import time

import numpy as np

from astroloom.evaluate.embed import Embeddings
from astroloom.evaluate.fewshot import few_shot_curve
from astroloom.evaluate.probe import probe


def main(n: int = 50_000, dim: int = 256) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    labels = {f"y{i}": vectors @ rng.normal(size=dim) + rng.normal(size=n) for i in range(5)}
    kinds = np.where(vectors[:, 0] + 0.5 * rng.normal(size=n) > 0, "early", "late").astype(object)
    emb = Embeddings(np.arange(n).astype(str), vectors, labels)

    start = time.perf_counter()
    report = probe(emb, baselines=False, progress=False)
    ridge_s = time.perf_counter() - start
    print(
        f"5-fold ridge probes of 5 labels: {ridge_s:.1f} s "
        f"(R² {min(s['foundation'].r2 for s in report.scores.values()):.3f}+)"
    )

    start = time.perf_counter()
    few_shot_curve({"emb": vectors}, labels["y0"], "y0", methods=("linear", "knn"))
    curve_s = time.perf_counter() - start
    print(f"few-shot curve, 1 target, linear + kNN, 6 budgets × 5 seeds: {curve_s:.1f} s")

    start = time.perf_counter()
    few_shot_curve({"emb": vectors}, kinds, "kind", "classification", methods=("linear",))
    class_s = time.perf_counter() - start
    print(f"few-shot curve, classification, logistic: {class_s:.1f} s")
    print(f"total {ridge_s + curve_s + class_s:.1f} s for {n:,} × {dim} embeddings")


if __name__ == "__main__":
    main()
