"""A compact U-Net denoiser for multi-band images, conditioned on a vector.

The image is first folded 2×2 into channels (pixel-unshuffle), so the network works at
half resolution: four times cheaper, which is what lets a demo denoiser train on two CPU
cores, and unfolded again at the end. Each level has a residual block whose normalised
activations are scaled and shifted by the embedding of (timestep, condition); the lowest
level adds self-attention. The condition is a foundation-model embedding; a row of NaN
(or ``cond=None``) means "no condition" and selects a learned null embedding, which
classifier-free guidance needs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class UNetConfig:
    in_channels: int = 3
    image_size: int = 64
    cond_dim: int = 128  # 0: unconditional
    channels: list[int] = field(default_factory=lambda: [48, 96, 128])
    emb_dim: int = 192
    fold: int = 2  # pixel-unshuffle factor

    def validate(self) -> None:
        if self.image_size % (self.fold * 2 ** (len(self.channels) - 1)):
            raise ValueError(
                f"image_size {self.image_size} must be divisible by fold × 2^(levels−1) = "
                f"{self.fold * 2 ** (len(self.channels) - 1)}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class Attention(nn.Module):
    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attn(seq, seq, seq, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        ch, e = cfg.channels, cfg.emb_dim
        self.time = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        if cfg.cond_dim:
            self.cond = nn.Sequential(nn.Linear(cfg.cond_dim, e), nn.SiLU(), nn.Linear(e, e))
            self.null = nn.Parameter(torch.zeros(e))
        folded = cfg.in_channels * cfg.fold**2
        self.stem = nn.Conv2d(folded, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        for i, c in enumerate(ch):
            self.down.append(ResBlock(ch[i - 1] if i else ch[0], c, e))
            self.pool.append(
                nn.Conv2d(c, c, 3, stride=2, padding=1) if i < len(ch) - 1 else nn.Identity()
            )
        self.mid = ResBlock(ch[-1], ch[-1], e)
        self.mid_attn = Attention(ch[-1])
        self.mid2 = ResBlock(ch[-1], ch[-1], e)
        self.up = nn.ModuleList()
        for i in reversed(range(len(ch))):
            c_in = (ch[i + 1] if i + 1 < len(ch) else ch[-1]) + ch[i]
            self.up.append(ResBlock(c_in, ch[i], e))
        self.out_norm = nn.GroupNorm(8, ch[0])
        self.out = nn.Conv2d(ch[0], folded, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # Channels-last activations feed oneDNN's convolutions without a layout change per
        # layer: faster training and sampling on CPU (benchmarks/generate_speed.py).
        self.memory_format = torch.channels_last

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embedding(self, t: torch.Tensor, cond: torch.Tensor | None, b: int) -> torch.Tensor:
        emb = self.time(timestep_embedding(t, self.cfg.emb_dim))
        if not self.cfg.cond_dim:
            return emb
        if cond is None:
            return emb + self.null.expand(b, -1)
        null = torch.isnan(cond).all(dim=1, keepdim=True)
        c = self.cond(torch.nan_to_num(cond))
        return emb + torch.where(null, self.null.expand(b, -1), c)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (
            self.cfg.in_channels,
            self.cfg.image_size,
            self.cfg.image_size,
        ):
            raise ValueError(
                f"the denoiser reads ({self.cfg.in_channels}, {self.cfg.image_size}, "
                f"{self.cfg.image_size}) images; got {tuple(x.shape[1:])}"
            )
        if cond is not None and cond.shape[-1] != self.cfg.cond_dim:
            raise ValueError(
                f"condition vectors must have {self.cfg.cond_dim} values, got {cond.shape[-1]}"
            )
        emb = F.silu(self.embedding(t, cond, len(x)))
        folded = F.pixel_unshuffle(x, self.cfg.fold).contiguous(memory_format=self.memory_format)
        h = self.stem(folded)
        skips = []
        for block, pool in zip(self.down, self.pool, strict=True):
            h = block(h, emb)
            skips.append(h)
            h = pool(h)
        h = self.mid2(self.mid_attn(self.mid(h, emb)), emb)
        for block in self.up:
            skip = skips.pop()
            if h.shape[-1] != skip.shape[-1]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), emb)
        return F.pixel_shuffle(self.out(F.silu(self.out_norm(h))), self.cfg.fold)
