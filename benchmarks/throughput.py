"""Throughput of the skeleton's stages on this machine: simulate, train step, embed.

    .venv/bin/python benchmarks/throughput.py --threads 2 --out FILE.json

Figures go into docs/benchmarks.md with the command, machine and date. Never part of
`make test`: timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from astroloom.config import MODEL_PRESETS, ModelConfig
from astroloom.data.shards import load_image_set
from astroloom.data.sim.galaxies import render_galaxy, simulate_galaxies
from astroloom.model.multimodal import MultimodalModel
from astroloom.tokenize.image import ImageTokenizer


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} threads",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }

    n = 300
    one_core = best_of(lambda: [render_galaxy(i, seed=0) for i in range(n)], repeats=2)
    results["simulate_galaxies_per_s_one_core"] = n / one_core
    with tempfile.TemporaryDirectory() as tmp:
        n_all = 4000
        elapsed = best_of(
            lambda: simulate_galaxies(tmp, n=n_all, shard_size=500, progress=False), repeats=1
        )
        results["simulate_galaxies_per_s_all_cores"] = n_all / elapsed
        shard_bytes = sum(p.stat().st_size for p in Path(tmp).glob("*.parquet"))
        results["bytes_per_object_on_disk"] = shard_bytes / n_all
        images = load_image_set(tmp).images[:512]

    tokenizer = ImageTokenizer(patch_size=8, scale=[0.01, 0.014, 0.035])
    for name in MODEL_PRESETS:
        cfg = ModelConfig(**MODEL_PRESETS[name])
        model = MultimodalModel(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        tokens = {"image": tokenizer.tokens(torch.from_numpy(images[:32]))}
        plan = model.canonical_plan(tokens, "autoregressive")

        def step(model=model, opt=opt, tokens=tokens, plan=plan) -> None:
            loss, _ = model.loss(tokens, plan)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()
        per_step = best_of(lambda step=step: [step() for _ in range(5)]) / 5
        results[f"train_{name}_tokens_per_s_batch32"] = 32 * cfg.n_patches / per_step
        model.eval()

        def embed(model=model) -> None:
            for start in range(0, len(images), 256):
                chunk = torch.from_numpy(images[start : start + 256])
                model.embed({"image": tokenizer.tokens(chunk)})

        embed()
        results[f"embed_{name}_images_per_s"] = len(images) / best_of(embed)

    text = json.dumps(
        {k: (round(v, 1) if isinstance(v, float) else v) for k, v in results.items()}, indent=2
    )
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
