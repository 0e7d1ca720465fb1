"""Train the conditional diffusion decoder on a dataset's images, save and load it.

Images enter in the foundation model's own arcsinh stretch, divided by the stretched
pixels' standard deviation (recorded), so that the diffusion runs on unit-scale data and
generated images convert back to fluxes exactly. Conditions are the frozen foundation
model's embeddings (conditioning.py), standardised; each training object gets a random
source and, with probability ``cond_drop``, none at all (for classifier-free guidance).
Weights are an exponential moving average of the training weights, saved as safetensors
with a JSON description beside them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from astroloom.data.multiset import MultimodalSet, keep, load_multimodal_set
from astroloom.data.schema import DataError
from astroloom.generate.conditioning import (
    SOURCES,
    available_sources,
    condition_vectors,
    source_modalities,
)
from astroloom.generate.schedule import CosineSchedule
from astroloom.generate.unet import UNet, UNetConfig
from astroloom.model.device import pick_device
from astroloom.model.foundation import Foundation, load_foundation
from astroloom.paths import record_path, resolve_recorded


@dataclass
class DenoiserConfig:
    steps: int = 1000
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 50
    ema: float = 0.995
    cond_drop: float = 0.1
    conditional: bool = True
    prediction: str = "v"  # or "epsilon"
    schedule_steps: int = 1000
    channels: list[int] = field(default_factory=lambda: [32, 64, 96])
    held_out: float = 0.1
    seed: int = 0
    threads: int = 0
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:N; bf16 autocast on CUDA

    def validate(self) -> None:
        if self.prediction not in ("v", "epsilon"):
            raise ValueError(f"prediction must be 'v' or 'epsilon', got {self.prediction!r}")
        if not 0 <= self.cond_drop < 1 or not 0 <= self.held_out < 1:
            raise ValueError("cond_drop and held_out must lie in [0, 1)")
        if self.steps <= 0 or self.batch_size <= 0:
            raise ValueError("steps and batch_size must be positive")


@dataclass
class Denoiser:
    """A trained denoiser with everything needed to sample in physical units."""

    net: UNet
    schedule: CosineSchedule
    prediction: str
    scale: list[float]  # arcsinh softening per band (the foundation model's)
    sigma_data: float
    cond_mean: np.ndarray | None
    cond_std: np.ndarray | None
    meta: dict

    @property
    def clip(self) -> float | None:
        """Bound on x̂₀ while sampling: the training images' largest |value| in the
        denoiser's units, with a margin (None for denoisers saved before it was recorded)."""
        top = self.meta.get("x0_abs_max")
        return None if top is None else 1.5 * float(top)

    def to_unit(self, flux: np.ndarray | torch.Tensor) -> torch.Tensor:
        flux = torch.as_tensor(flux, dtype=torch.float32)
        s = torch.tensor(self.scale).view(1, -1, 1, 1)
        return torch.nan_to_num(torch.asinh(flux / s)) / self.sigma_data

    def to_flux(self, x: torch.Tensor) -> np.ndarray:
        s = torch.tensor(self.scale).view(1, -1, 1, 1)
        return (torch.sinh(x.float().cpu() * self.sigma_data) * s).numpy()

    def standardise(self, cond: np.ndarray | None) -> torch.Tensor | None:
        if cond is None or self.cond_mean is None:
            return None
        return torch.from_numpy(((cond - self.cond_mean) / self.cond_std).astype(np.float32))

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """The network's output for ``x`` wherever ``x`` lives: the network runs on its own
        device (bf16 autocast on CUDA), the sampler's arithmetic stays in fp32 beside it."""
        dev = self.device
        with autocast_for(dev):
            out = self.net(x.to(dev), t.to(dev), None if cond is None else cond.to(dev))
        return out.float().to(x.device)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    return pick_device(name)


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA; on CPU, fp32 (bf16 matmul there is far slower)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def orientation_augment(
    x: torch.Tensor, fixed: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """A random flip and quarter turn per image — a galaxy seen from another side is still
    a galaxy — except where ``fixed``: an image whose condition was computed from that very
    image (its embedding carries the orientation) must stay as the condition saw it, or
    orientation could not be learned and variations would come out randomly turned."""
    flip = (torch.rand(len(x), generator=generator) < 0.5) & ~fixed
    turns = torch.randint(4, (len(x),), generator=generator).masked_fill(fixed, 0)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    out = x.clone()
    for k in (1, 2, 3):
        chosen = turns == k
        if chosen.any():
            out[chosen] = torch.rot90(x[chosen], k, dims=(-2, -1))
    return out


def galaxies(data: MultimodalSet) -> MultimodalSet:
    if "image" not in data.present or not data.present["image"].any():
        raise DataError("the dataset has no images to train a denoiser on")
    return keep(data, data.present["image"])


def split(n: int, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    k = int(round(n * held_out))
    return np.sort(perm[k:]), np.sort(perm[:k])


def train_denoiser(
    foundation_run: str | Path,
    data_dir: str | Path,
    out: str | Path,
    cfg: DenoiserConfig | None = None,
    progress: bool = True,
) -> Path:
    """Train a denoiser for ``data_dir``'s images conditioned through the frozen model in
    ``foundation_run``; write it to ``out``."""
    cfg = cfg or DenoiserConfig()
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    began = time.perf_counter()
    foundation: Foundation = load_foundation(foundation_run)
    if "image" not in foundation.modalities:
        raise DataError(
            "the foundation model was not trained on images; it cannot condition an image denoiser"
        )
    data = galaxies(load_multimodal_set(data_dir, foundation.modalities))
    train_idx, held_idx = split(len(data), cfg.held_out, cfg.seed)
    image_tok = foundation.tokenizer["image"]
    c, h, w = data.arrays["image"].shape[1:]
    stretched = np.nan_to_num(
        np.arcsinh(data.arrays["image"] / np.array(image_tok.scale)[:, None, None])
    )
    sigma = float(stretched[train_idx].std())
    x_all = torch.from_numpy((stretched / sigma).astype(np.float32))

    sources = available_sources(foundation) if cfg.conditional else []
    # Conditions made from the image carry its orientation; the others do not.
    sees_image = torch.tensor(
        [
            "image" in source_modalities(foundation, s)
            for s in (sources or ["image"])  # (unused when unconditional)
        ]
    )
    conds = {s: condition_vectors(foundation, data, s, progress=progress) for s in sources}
    if conds:
        stack = np.concatenate([v[train_idx] for v in conds.values()])
        stack = stack[np.isfinite(stack).all(axis=1)]
        mean, std = stack.mean(0), stack.std(0) + 1e-6
    else:
        mean = std = None
    cond_t = {s: torch.from_numpy(((v - mean) / std).astype(np.float32)) for s, v in conds.items()}

    ucfg = UNetConfig(
        in_channels=c,
        image_size=h,
        cond_dim=foundation.model.cfg.n_embd if conds else 0,
        channels=list(cfg.channels),
    )
    device = resolve_device(cfg.device)
    net = UNet(ucfg).to(device)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    schedule = CosineSchedule(cfg.schedule_steps)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_t = torch.from_numpy(train_idx)
    log = []
    bar = tqdm(range(cfg.steps), desc="train denoiser", unit="step", disable=not progress)
    for step in bar:
        lr = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
        lr *= 0.5 * (1 + math.cos(math.pi * step / cfg.steps)) * 0.9 + 0.1
        for g in opt.param_groups:
            g["lr"] = lr
        pick = train_t[torch.randint(len(train_t), (cfg.batch_size,), generator=gen)]
        cond = None
        fixed = torch.zeros(cfg.batch_size, dtype=torch.bool)
        if cond_t:
            which = torch.randint(len(sources), (cfg.batch_size,), generator=gen)
            cond = torch.stack(
                [cond_t[sources[int(k)]][int(i)] for k, i in zip(which, pick, strict=True)]
            )
            drop = torch.rand(cfg.batch_size, generator=gen) < cfg.cond_drop
            cond[drop] = float("nan")
            fixed = sees_image[which] & ~drop
        x0 = orientation_augment(x_all[pick], fixed, gen)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(1, cfg.schedule_steps + 1, (cfg.batch_size,), generator=gen)
        xt = schedule.add_noise(x0, noise, t)
        target = noise if cfg.prediction == "epsilon" else schedule.v_target(x0, noise, t)
        xt, t, target = xt.to(device), t.to(device), target.to(device)
        with autocast_for(device):
            pred = net(xt, t, None if cond is None else cond.to(device))
        loss = F.mse_loss(pred.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        decay = min(cfg.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)
        if step % 10 == 0 or step == cfg.steps - 1:
            log.append({"step": step + 1, "loss": loss.item(), "lr": lr})
            bar.set_postfix(loss=f"{log[-1]['loss']:.4f}", refresh=False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        # Relative to this denoiser's folder: found from any working directory.
        "foundation_run": record_path(foundation_run, out),
        "data": record_path(data_dir, out),
        "config": asdict(cfg),
        "unet": ucfg.to_dict(),
        "scale": list(image_tok.scale),
        "bands": image_tok.bands,
        "pixel_scale_arcsec": image_tok.pixel_scale,
        "sigma_data": sigma,
        "x0_abs_max": float(x_all[train_idx].abs().max()),
        "sources": sources,
        "train_ids": [str(i) for i in data.ids[train_idx]],
        "held_out_ids": [str(i) for i in data.ids[held_idx]],
        "n_parameters": net.num_parameters(),
        "train_time_s": time.perf_counter() - began,
        "final_loss": log[-1]["loss"],
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in ema.state_dict().items()}
    if mean is not None:
        tensors["cond_mean"] = torch.from_numpy(mean.astype(np.float32))
        tensors["cond_std"] = torch.from_numpy(std.astype(np.float32))
    tmp = out / "denoiser.safetensors.tmp"
    save_file(tensors, tmp)
    tmp.replace(out / "denoiser.safetensors")
    (out / "denoiser.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "denoiser_loss.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    return out


def load_denoiser(path: str | Path, device: str = "auto") -> Denoiser:
    path = Path(path)
    if not (path / "denoiser.json").is_file() or not (path / "denoiser.safetensors").is_file():
        raise DataError(f"{path} holds no denoiser (denoiser.json + denoiser.safetensors)")
    meta = json.loads((path / "denoiser.json").read_text())
    for key in ("foundation_run", "data"):
        meta[key] = str(resolve_recorded(meta[key], path))
    tensors = load_file(path / "denoiser.safetensors")
    mean, std = tensors.pop("cond_mean", None), tensors.pop("cond_std", None)
    net = UNet(UNetConfig(**meta["unet"]))
    net.load_state_dict(tensors)
    return Denoiser(
        net=net.eval().to(resolve_device(device)),
        schedule=CosineSchedule(meta["config"]["schedule_steps"]),
        prediction=meta["config"]["prediction"],
        scale=meta["scale"],
        sigma_data=meta["sigma_data"],
        cond_mean=None if mean is None else mean.numpy(),
        cond_std=None if std is None else std.numpy(),
        meta=meta,
    )


__all__ = ["SOURCES", "Denoiser", "DenoiserConfig", "load_denoiser", "train_denoiser"]
