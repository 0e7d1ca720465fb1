"""The one model (``MultimodalModel`` with ``modalities=['image']``) against astroloom 0.1's
image-only GPT (benchmarks/gpt_v01.py), without AstroPT in the loop: many short rounds,
alternating, so that the median of per-round ratios is steady on a shared machine. Same
shape as benchmarks/vs_astropt.py (6 layers, 8 heads, width 256, 64 patches of 8×8×3;
training batch 32, embedding batch 256 with tokenising included).

    .venv/bin/python benchmarks/one_model_speed.py [--rounds 15] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from astroloom.config import ModelConfig
from astroloom.tokenize.image import ImageTokenizer

sys.path.insert(0, str(Path(__file__).parent))
from image_contenders import gpt_v01, one_model  # noqa: E402


def timed(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    cfg = ModelConfig(n_layer=6, n_head=8, n_embd=256)
    tok = ImageTokenizer(8, [1.0, 1.0, 1.0], pixel_scale=0.262)
    g = torch.Generator().manual_seed(0)
    images, big = torch.randn(32, 3, 64, 64, generator=g), torch.randn(256, 3, 64, 64, generator=g)
    wrap = torch.compile if args.compile else (lambda m: m)

    train_ours, embed_ours, _ = one_model(cfg, tok, images, big, wrap)
    train_old, embed_old, _ = gpt_v01(cfg, tok, images, big, wrap)
    for fn in (train_ours, train_old, embed_ours, embed_old):  # warm-up (and compile)
        fn()
        fn()
    ratios = {"train": [], "embed": []}
    for r in range(args.rounds):
        # Who goes first alternates, so that a drift of the shared machine's speed
        # between the two back-to-back timings does not always count against one model.
        for what, old, ours, n in (
            ("train", train_old, train_ours, 5),
            ("embed", embed_old, embed_ours, 2),
        ):
            if r % 2 == 0:
                t_old, t_ours = timed(old, n), timed(ours, n)
            else:
                t_ours, t_old = timed(ours, n), timed(old, n)
            ratios[what].append(t_old / t_ours)
    print(
        f"one model / astroloom 0.1 GPT, {torch.get_num_threads()} threads, "
        f"{'compiled' if args.compile else 'eager'}, {args.rounds} rounds "
        "(speed ratio; > 1 = faster)"
    )
    for what, r in ratios.items():
        q = statistics.quantiles(r, n=4)
        print(f"{what:<6} median {statistics.median(r):.3f}  quartiles [{q[0]:.3f}, {q[2]:.3f}]")


if __name__ == "__main__":
    main()
