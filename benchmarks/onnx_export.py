"""Embedding throughput of the exported ONNX graph (onnxruntime) against the PyTorch path,
on the shipped model and the same cutouts; interleaved rounds, median of per-round ratios.

    .venv/bin/python benchmarks/onnx_export.py [--model astroloom/mock-tiny] [--n 512]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from astroloom.model.export import export_onnx, image_embedder


def cutouts(n: int, bands: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size / 2 + 0.5
    width = rng.uniform(1.5, 6.0, n)[:, None, None, None]
    flux = rng.lognormal(0.0, 1.0, (n, bands))[:, :, None, None]
    blob = flux * np.exp(-(x**2 + y**2) / (2 * width**2))
    return (blob + rng.normal(0, 0.01, (n, bands, size, size))).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="astroloom/mock-tiny")
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    embedder = image_embedder(args.model)
    cfg = embedder.model.cfg
    images = cutouts(args.n, cfg.n_bands, cfg.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(args.model, Path(tmp) / "m.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

        def run_torch() -> np.ndarray:
            with torch.no_grad():
                return np.concatenate(
                    [
                        embedder(torch.from_numpy(images[i : i + args.batch])).numpy()
                        for i in range(0, args.n, args.batch)
                    ]
                )

        def run_onnx() -> np.ndarray:
            return np.concatenate(
                [
                    session.run(None, {"images": images[i : i + args.batch]})[0]
                    for i in range(0, args.n, args.batch)
                ]
            )

        diff = float(np.abs(run_torch() - run_onnx()).max())  # also warms both up
        ratios, rates = [], {"pytorch": [], "onnxruntime": []}
        for _ in range(args.rounds):
            t = time.perf_counter()
            run_torch()
            a = time.perf_counter() - t
            t = time.perf_counter()
            run_onnx()
            b = time.perf_counter() - t
            rates["pytorch"].append(args.n / a)
            rates["onnxruntime"].append(args.n / b)
            ratios.append(a / b)
    print(f"model {args.model}, {args.n} cutouts of {cfg.n_bands}×{cfg.image_size}², "
          f"batch {args.batch}, {threads} threads, {args.rounds} rounds")
    for k, v in rates.items():
        print(f"{k:<12} {statistics.median(v):8.0f} cutouts/s (median)")
    print(f"onnxruntime / pytorch throughput: {statistics.median(ratios):.2f}× (median of "
          f"per-round ratios); largest embedding difference {diff:.2g}")


if __name__ == "__main__":
    main()
