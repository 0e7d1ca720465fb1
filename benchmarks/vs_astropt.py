"""astroloom's model side by side with astroloom 0.1's image GPT and the reference AstroPT
2.0.9, on CPU, same shape, same run.

Shape: 6 layers, 8 heads, width 256, 64 tokens of 8×8×3 patches, batch 32, fp32, 2 threads.
"astroloom" is the one model users train (``MultimodalModel`` with ``modalities =
["image"]``, autoregressive, its tokens from the image tokenizer); "astroloom 0.1 GPT" is
the separate image GPT it replaced (benchmarks/gpt_v01.py), the speed the one model must
stay within 5 % of. AstroPT lives in the benchmark's own environment:

    .venv/bin/pip install --no-deps --target .bench-site astropt==2.0.9 loralib
    PYTHONPATH=.bench-site .venv/bin/python benchmarks/vs_astropt.py

AstroPT runs with its default "aim" tokeniser (an MLP patch encoder and decoder, hence
more parameters) and with "affine" (linear, as astroloom's).
Training: forward + backward + AdamW step on the next-patch Huber loss. Embedding: AstroPT's
``generate_embeddings`` (mean over tokens of its centre block) against astroloom's
``model.embed`` (mean over tokens after block 3 of 6), on the same images. Rounds of the
models alternate so that machine noise hits all alike; the median round is reported, and
each ratio is the median of the per-round ratios (both measured within seconds of each
other), with the spread of those ratios. MFU uses the same FLOPs per token for all and the
fp32 matmul peak measured in this run.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from astropt.model import GPT, GPTConfig, ModalityConfig, ModalityRegistry

from astroloom.config import ModelConfig
from astroloom.tokenize.image import ImageTokenizer
from astroloom.train.loop import measure_matmul_peak

sys.path.insert(0, str(Path(__file__).parent))
from image_contenders import gpt_v01, one_model  # noqa: E402

N_LAYER, N_HEAD, N_EMBD, TOKENS, PATCH, BATCH = 6, 8, 256, 64, 8 * 8 * 3, 32
EMBED_BATCH = 256


def astropt_model(tokeniser: str) -> GPT:
    images = ModalityConfig(
        name="images", input_size=PATCH, pos_input_size=1, patch_size=8, embed_pos=True
    )
    config = GPTConfig(
        block_size=TOKENS,
        n_layer=N_LAYER,
        n_head=N_HEAD,
        n_embd=N_EMBD,
        n_chan=3,
        dropout=0.0,
        bias=False,
        tokeniser=tokeniser,
        modalities=[images],
    )
    return GPT(config, ModalityRegistry([images]), master_process=False)


def timed(fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def contenders(tokeniser: str, compiled: bool) -> dict[str, tuple]:
    """name → (train step, embed call, model): each on the same images."""
    cfg = ModelConfig(n_layer=N_LAYER, n_head=N_HEAD, n_embd=N_EMBD)
    tok = ImageTokenizer(8, [1.0, 1.0, 1.0], pixel_scale=0.262)
    images = torch.randn(BATCH, 3, 64, 64)
    big_images = torch.randn(EMBED_BATCH, 3, 64, 64)
    x, _ = tok.encode(images)
    big, _ = tok.encode(big_images)
    wrap = torch.compile if compiled else (lambda m: m)
    out = {}

    out["astroloom"] = one_model(cfg, tok, images, big_images, wrap)
    out["astroloom 0.1 GPT"] = gpt_v01(cfg, tok, images, big_images, wrap)

    theirs = astropt_model(tokeniser)
    fwd_theirs = wrap(theirs)
    positions = torch.arange(TOKENS).expand(BATCH, TOKENS)
    inputs = {"images": x[:, :-1], "images_positions": positions[:, :-1]}
    targets = {"images": x[:, 1:]}
    # AstroPT with the optimizer its own loop builds (configure_optimizers; fused on CUDA only).
    opt_theirs = theirs.configure_optimizers(0.1, 1e-4, (0.9, 0.95), "cpu")
    big_inputs = {
        "images": big,
        "images_positions": torch.arange(TOKENS).expand(EMBED_BATCH, TOKENS),
    }

    def step_theirs() -> None:
        _, loss = fwd_theirs(inputs, targets)
        opt_theirs.zero_grad()
        loss.backward()
        opt_theirs.step()

    def embed_theirs() -> None:
        theirs.generate_embeddings(big_inputs)

    out[f"AstroPT ({tokeniser})"] = (step_theirs, embed_theirs, theirs)
    return out


def main(tokeniser: str, compiled: bool = False, rounds: int = 9, steps: int = 8) -> None:
    torch.set_num_threads(2)
    print(f"AstroPT tokeniser {tokeniser!r}, {'all torch.compile-d' if compiled else 'eager'}")
    models = contenders(tokeniser, compiled)
    for step, embed, _ in models.values():
        step()  # warm-up (and compilation)
        embed()
    train = {name: [] for name in models}
    embed_t = {name: [] for name in models}
    for _ in range(rounds):
        for name, (step, embed, model) in models.items():
            model.train()
            train[name].append(timed(step, steps))
            model.eval()
            embed_t[name].append(timed(embed, 3))
    peak = measure_matmul_peak(torch.device("cpu"), seconds=1.0)
    flops_per_token = models["astroloom 0.1 GPT"][2].flops_per_token()
    print(f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    rates = {}
    for name, (_, _, model) in models.items():
        tok_s = BATCH * TOKENS / statistics.median(train[name])
        img_s = EMBED_BATCH / statistics.median(embed_t[name])
        rates[name] = (tok_s, img_s)
        n = sum(p.numel() for p in model.parameters())
        print(
            f"{name:>18}: {n:,} params, train {tok_s:,.0f} tokens/s "
            f"(MFU {tok_s * flops_per_token / peak:.1%}), embed {img_s:,.0f} images/s"
        )
    for name in models:
        if name == "astroloom":
            continue
        cells = []
        for what, times in (("train", train), ("embed", embed_t)):
            ratios = sorted(b / a for a, b in zip(times["astroloom"], times[name], strict=True))
            q1, q3 = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
            cells.append(f"{what} {statistics.median(ratios):.3f}x [{q1:.3f}, {q3:.3f}]")
        print(f"astroloom / {name} (median per-round ratio [quartiles]): " + ", ".join(cells))


if __name__ == "__main__":
    # AstroPT's default MLP patch encoder ("aim"), then a linear one ("affine") like ours.
    main("aim")
    main("affine")
    main("affine", compiled=True)
