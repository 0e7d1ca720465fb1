"""The two astroloom image models that benchmarks/vs_astropt.py and
benchmarks/one_model_speed.py time side by side: the one model users train
(``MultimodalModel``, ``modalities=['image']``) and astroloom 0.1's image GPT
(benchmarks/gpt_v01.py). Each builder returns ``(train step, embed call, model)`` on the
given images; embedding includes tokenising, which is what ``astroloom embed`` pays."""

from __future__ import annotations

from collections.abc import Callable

import torch
from gpt_v01 import ImageGPT, next_patch_error  # callers put benchmarks/ on sys.path

from astroloom.config import ModelConfig, RunConfig
from astroloom.model.multimodal import MultimodalModel
from astroloom.tokenize.image import ImageTokenizer
from astroloom.train.loop import make_optimizer

Contender = tuple[Callable[[], None], Callable[[], None], torch.nn.Module]


def one_model(
    cfg: ModelConfig, tok: ImageTokenizer, images: torch.Tensor, big: torch.Tensor, wrap
) -> Contender:
    torch.manual_seed(0)
    model = MultimodalModel(cfg)
    fwd, opt = wrap(model), make_optimizer(model, RunConfig(model=cfg))
    batch = {"image": tok.tokens(images)}
    plan = model.canonical_plan(batch, "autoregressive")

    def step() -> None:
        total, count = fwd(batch, plan)["image"]
        opt.zero_grad()
        (total / count).backward()
        opt.step()

    def embed() -> None:
        with torch.no_grad():
            model.embed({"image": tok.tokens(big)})

    return step, embed, model


def gpt_v01(
    cfg: ModelConfig, tok: ImageTokenizer, images: torch.Tensor, big: torch.Tensor, wrap
) -> Contender:
    torch.manual_seed(0)
    model = ImageGPT(cfg)
    fwd, opt = wrap(model), make_optimizer(model, RunConfig(model=cfg))
    x = tok.encode(images)[0]

    def step() -> None:
        loss = next_patch_error(fwd(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def embed() -> None:
        with torch.no_grad():
            model.embed(tok.encode(big)[0])

    return step, embed, model
