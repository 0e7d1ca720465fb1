"""Side by side with the reference AstroPT 2.0.9 on CPU, same shape, same run.

Shape: 6 layers, 8 heads, width 256, 64 tokens of 8×8×3 patches, batch 32, fp32, 2 threads.
AstroPT lives in the benchmark's own environment, outside the project's dependencies:

    .venv/bin/pip install --no-deps --target .bench-site astropt==2.0.9 loralib
    PYTHONPATH=.bench-site .venv/bin/python benchmarks/vs_astropt.py

AstroPT runs twice: with its default "aim" tokeniser (an MLP patch encoder and decoder,
hence more parameters) and with "affine" (linear, as astroloom's).
Training: forward + backward + AdamW step on the next-patch Huber loss. Embedding: AstroPT's
``generate_embeddings`` (mean over tokens of its centre block) against astroloom's
``model.embed`` (mean over tokens after block 3 of 6), on the same tokens. Rounds of the two
alternate so that machine noise hits both alike; the median round is reported. MFU uses the
same FLOPs per token for both and the fp32 matmul peak measured in this run.
"""

from __future__ import annotations

import statistics
import time

import torch
from astropt.model import GPT, GPTConfig, ModalityConfig, ModalityRegistry

from astroloom.config import ModelConfig, RunConfig
from astroloom.model.gpt import FoundationModel, next_patch_error
from astroloom.train.loop import make_optimizer, measure_matmul_peak

N_LAYER, N_HEAD, N_EMBD, TOKENS, PATCH, BATCH = 6, 8, 256, 64, 8 * 8 * 3, 32


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


def main(tokeniser: str, compiled: bool = False, rounds: int = 5, steps: int = 10) -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    ours = FoundationModel(ModelConfig(n_layer=N_LAYER, n_head=N_HEAD, n_embd=N_EMBD))
    theirs = astropt_model(tokeniser)
    print(f"AstroPT tokeniser {tokeniser!r}, {'both torch.compile-d' if compiled else 'eager'}")
    # The optimizers are built on the parameters before compiling (compile shares them).
    fwd_ours, fwd_theirs = (
        (torch.compile(ours), torch.compile(theirs)) if compiled else (ours, theirs)
    )
    x = torch.randn(BATCH, TOKENS, PATCH)
    positions = torch.arange(TOKENS).expand(BATCH, TOKENS)
    inputs = {"images": x[:, :-1], "images_positions": positions[:, :-1]}
    targets = {"images": x[:, 1:]}
    # Each with the optimizer its own training loop builds: astroloom's fused AdamW, AstroPT's
    # configure_optimizers (fused only on CUDA).
    opt_ours = make_optimizer(ours, RunConfig(model=ours.cfg))
    opt_theirs = theirs.configure_optimizers(0.1, 1e-4, (0.9, 0.95), "cpu")

    def step_ours() -> None:
        total, count = next_patch_error(fwd_ours(x), x, None)
        loss = total / count
        opt_ours.zero_grad()
        loss.backward()
        opt_ours.step()

    def step_theirs() -> None:
        _, loss = fwd_theirs(inputs, targets)
        opt_theirs.zero_grad()
        loss.backward()
        opt_theirs.step()

    big = torch.randn(256, TOKENS, PATCH)
    big_inputs = {"images": big, "images_positions": torch.arange(TOKENS).expand(256, TOKENS)}

    def embed_ours() -> None:
        with torch.no_grad():
            ours.embed(big)

    def embed_theirs() -> None:
        theirs.generate_embeddings(big_inputs)

    for fn in (step_ours, step_theirs, embed_ours, embed_theirs):
        fn()  # warm-up
    ours.train()
    theirs.train()
    train = {"astroloom": [], "AstroPT": []}
    embed = {"astroloom": [], "AstroPT": []}
    for _ in range(rounds):
        train["astroloom"].append(timed(step_ours, steps))
        train["AstroPT"].append(timed(step_theirs, steps))
        ours.eval()
        theirs.eval()
        embed["astroloom"].append(timed(embed_ours, 3))
        embed["AstroPT"].append(timed(embed_theirs, 3))
        ours.train()
        theirs.train()
    peak = measure_matmul_peak(torch.device("cpu"), seconds=1.0)
    flops_per_token = ours.flops_per_token()
    n_theirs = sum(p.numel() for p in theirs.parameters())
    print(
        f"params: astroloom {ours.num_parameters():,}, AstroPT {n_theirs:,}; "
        f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s"
    )
    rates = {}
    for name in train:
        step_s = statistics.median(train[name])
        tok_s = BATCH * TOKENS / step_s
        img_s = 256 / statistics.median(embed[name])
        rates[name] = (tok_s, img_s)
        print(
            f"{name:>10}: train {tok_s:,.0f} tokens/s (MFU {tok_s * flops_per_token / peak:.1%}), "
            f"embed {img_s:,.0f} images/s"
        )
    print(
        f"ratios astroloom / AstroPT: train {rates['astroloom'][0] / rates['AstroPT'][0]:.2f}x, "
        f"embed {rates['astroloom'][1] / rates['AstroPT'][1]:.2f}x"
    )


if __name__ == "__main__":
    # AstroPT's default MLP patch encoder ("aim"), then a linear one ("affine") like ours.
    main("aim")
    main("affine")
    main("affine", compiled=True)
