"""DDIM sampling (Song et al. 2021) with classifier-free guidance, and its deterministic
inversion (η = 0), used for latent interpolation between two objects."""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from astroloom.generate.schedule import CosineSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def guided_output(
    net: Denoiser, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None, guidance: float
) -> torch.Tensor:
    """Classifier-free guidance: out_uncond + w · (out_cond − out_uncond); w = 1 is plain
    conditional sampling, w = 0 unconditional."""
    if cond is None or guidance == 1.0:
        return net(x, t, cond)
    if guidance == 0.0:
        return net(x, t, None)
    both = net(
        torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, torch.full_like(cond, float("nan"))])
    )
    c, u = both.chunk(2)
    return u + guidance * (c - u)


@torch.no_grad()
def ddim_sample(
    net: Denoiser,
    schedule: CosineSchedule,
    noise: torch.Tensor,
    cond: torch.Tensor | None = None,
    steps: int = 25,
    eta: float = 0.0,
    guidance: float = 1.0,
    prediction: str = "v",
    generator: torch.Generator | None = None,
    progress: bool = False,
    clip: float | None = None,
) -> torch.Tensor:
    """Denoise ``noise`` (x_T) to x₀ in ``steps`` DDIM steps; η = 0 is deterministic, η = 1
    matches DDPM's posterior variance; ``clip`` bounds x̂₀ under ε-prediction
    (:meth:`CosineSchedule.split`)."""
    x = noise
    ts = schedule.timesteps(steps)
    for i, t in enumerate(tqdm(ts, desc="sample", unit="step", disable=not progress)):
        tt = torch.full((len(x),), t, device=x.device)
        out = guided_output(net, x, tt, cond, guidance)
        x0, eps = schedule.split(out, x, tt, prediction, clip)
        t_prev = ts[i + 1] if i + 1 < len(ts) else 0
        ab = schedule._ab(tt, x)
        ab_prev = schedule._ab(torch.full_like(tt, t_prev), x)
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp_min(0).sqrt()
        direction = (1 - ab_prev - sigma**2).clamp_min(0).sqrt() * eps
        x = ab_prev.sqrt() * x0 + direction
        if eta > 0 and t_prev > 0:
            z = torch.randn(x.shape, generator=generator, device="cpu").to(x)
            x = x + sigma * z
    return x


@torch.no_grad()
def ddim_invert(
    net: Denoiser,
    schedule: CosineSchedule,
    x0: torch.Tensor,
    cond: torch.Tensor | None = None,
    steps: int = 25,
    prediction: str = "v",
    clip: float | None = None,
) -> torch.Tensor:
    """Run deterministic DDIM backwards: the latent x_T that η = 0 sampling maps to ≈ x₀."""
    x = x0
    ts = schedule.timesteps(steps)[::-1]
    t_prev = 0
    for t in ts:
        tp = torch.full((len(x),), t_prev, device=x.device)
        tt = torch.full((len(x),), t, device=x.device)
        # The noise estimate at the current (less noisy) point stands in for the next one's.
        out = net(x, tp.clamp_min(1), cond)
        x0_hat, eps = schedule.split(out, x, tp.clamp_min(1), prediction, clip)
        if t_prev == 0:
            x0_hat, eps = x, eps
        ab = schedule._ab(tt, x)
        x = ab.sqrt() * x0_hat + (1 - ab).sqrt() * eps
        t_prev = t
    return x


def slerp(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    """Spherical interpolation between two Gaussian latents (keeps their norm typical)."""
    af, bf = a.flatten(1), b.flatten(1)
    cos = (af * bf).sum(1) / (af.norm(dim=1) * bf.norm(dim=1))
    omega = torch.arccos(cos.clamp(-1, 1)).view(-1, *([1] * (a.ndim - 1)))
    so = torch.sin(omega)
    near = so.abs() < 1e-6
    mixed = (torch.sin((1 - w) * omega) * a + torch.sin(w * omega) * b) / torch.where(
        near, torch.ones_like(so), so
    )
    return torch.where(near, (1 - w) * a + w * b, mixed)
