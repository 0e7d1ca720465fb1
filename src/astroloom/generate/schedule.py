"""The noise schedule as a small math object, separate from the network and the sampler
(as in diffusers): the cosine schedule of Nichol & Dhariwal (2021), forward noising, and
the conversions between ε-, v- and x₀-prediction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class CosineSchedule:
    """``ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2) / cos²(s/(1 + s) · π/2)`` for t = 0…T, with
    per-step β clipped at 0.999 so the last step stays invertible."""

    steps: int = 1000
    offset: float = 0.008

    def __post_init__(self) -> None:
        if self.steps < 2:
            raise ValueError(f"a schedule needs at least 2 steps, got {self.steps}")
        t = torch.arange(self.steps + 1, dtype=torch.float64) / self.steps
        f = torch.cos((t + self.offset) / (1 + self.offset) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        beta = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
        # ᾱ_t for t = 1…T (index t-1), rebuilt from the clipped βs.
        self.alpha_bar = torch.cumprod(1 - beta, 0).float()

    def _ab(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """ᾱ at integer timesteps ``t`` (1…T), shaped to broadcast over ``like``; t = 0 is
        the clean image (ᾱ = 1)."""
        ab = torch.cat([torch.ones(1), self.alpha_bar]).to(like.device)[t.long()]
        return ab.view(-1, *([1] * (like.ndim - 1))).to(like.dtype)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε."""
        ab = self._ab(t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def v_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v = √ᾱ_t ε − √(1 − ᾱ_t) x₀ (Salimans & Ho 2022)."""
        ab = self._ab(t, x0)
        return ab.sqrt() * noise - (1 - ab).sqrt() * x0

    def split(
        self,
        output: torch.Tensor,
        x_t: torch.Tensor,
        t: torch.Tensor,
        prediction: str,
        clip: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's output as (x̂₀, ε̂) under ``prediction`` = "epsilon" or "v".

        Under ε-prediction x̂₀ = (x_t − √(1−ᾱ) ε̂)/√ᾱ divides by √ᾱ_T ≈ 5e-5 at the first
        sampling step, so any error in ε̂ is blown up 2·10⁴ times; ``clip`` bounds x̂₀ to
        ±clip (the training data's range) and ε̂ is re-derived from the bounded x̂₀, which
        keeps the DDIM update consistent. The v-form needs no such help."""
        ab = self._ab(t, x_t)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        if prediction == "epsilon":
            eps = output
            x0 = (x_t - s * eps) / a
            if clip is not None:
                x0 = x0.clamp(-clip, clip)
                eps = (x_t - a * x0) / s
        elif prediction == "v":
            x0 = a * x_t - s * output
            eps = s * x_t + a * output
        else:
            raise ValueError(f"prediction must be 'epsilon' or 'v', got {prediction!r}")
        return x0, eps

    def timesteps(self, n: int) -> list[int]:
        """``n`` evenly spaced timesteps from T down to 1, for DDIM."""
        if not 1 <= n <= self.steps:
            raise ValueError(f"sampling steps must lie in 1…{self.steps}, got {n}")
        return sorted({round(x) for x in torch.linspace(self.steps, 1, n).tolist()}, reverse=True)
