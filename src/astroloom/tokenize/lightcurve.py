"""Light-curve tokenizer: one token per observation, placed by its time and band.

A light curve is irregularly sampled, so a token's position is its time in days (since the
first observation in the sequence) rather than an index, plus the band it was taken in.
The model's surrogate task is to predict the next observation's magnitude at its known
next time and band. Long curves are subsampled to ``max_tokens`` observations: a random
sorted subset during training (an augmentation that keeps the whole time baseline), an
evenly spaced one otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from astroloom.tokenize.tokens import ModalityTokens


@dataclass
class PaddedCurves:
    """Ragged curves as padded tensors: ``(N, L)`` time (days), mag, band and a count."""

    time: torch.Tensor
    mag: torch.Tensor
    band: torch.Tensor
    count: torch.Tensor

    def __len__(self) -> int:
        return len(self.count)

    def take(self, index: torch.Tensor) -> PaddedCurves:
        return PaddedCurves(self.time[index], self.mag[index], self.band[index], self.count[index])


def pad_curves(
    times: Sequence[np.ndarray | None],
    mags: Sequence[np.ndarray | None],
    bands: Sequence[np.ndarray | None],
) -> PaddedCurves:
    """Pad ragged curves (``None`` for an object without one); drop non-finite epochs."""
    kept = []
    for t, m, b in zip(times, mags, bands, strict=True):
        if t is None or m is None:
            kept.append((np.zeros(0), np.zeros(0), np.zeros(0, np.int64)))
            continue
        t, m = np.asarray(t, np.float64), np.asarray(m, np.float64)
        b = np.zeros(len(t), np.int64) if b is None else np.asarray(b, np.int64)
        good = np.isfinite(t) & np.isfinite(m)
        order = np.argsort(t[good], kind="stable")
        kept.append((t[good][order], m[good][order], b[good][order]))
    n, width = len(kept), max([len(k[0]) for k in kept] + [1])
    time = np.zeros((n, width))
    mag = np.zeros((n, width), np.float32)
    band = np.zeros((n, width), np.int64)
    count = np.zeros(n, np.int64)
    for i, (t, m, b) in enumerate(kept):
        count[i] = len(t)
        if len(t):
            time[i, : len(t)] = t - t[0]
            mag[i, : len(t)], band[i, : len(t)] = m, b
    return PaddedCurves(
        torch.from_numpy(time.astype(np.float32)),
        torch.from_numpy(mag),
        torch.from_numpy(band),
        torch.from_numpy(count),
    )


@dataclass
class LightCurveTokenizer:
    bands: list[str]
    max_tokens: int = 64
    mag_zero: float = 16.0  # magnitudes are stored as (mag - mag_zero) / mag_scale
    mag_scale: float = 2.0

    def __post_init__(self) -> None:
        if self.max_tokens <= 0 or self.mag_scale <= 0 or not self.bands:
            raise ValueError("light-curve max_tokens and mag_scale must be positive, bands given")

    @property
    def n_tokens(self) -> int:
        return self.max_tokens

    def select(self, count: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``(B, max_tokens)`` indices of the epochs to keep (sorted; padding repeats 0)."""
        b, k = len(count), self.max_tokens
        slots = torch.arange(k, dtype=torch.float64)
        if generator is None:
            # Evenly spaced over the whole curve: deterministic, keeps the full baseline.
            spaced = (slots[None] * count[:, None].double() / k).floor().long()
            short = torch.arange(k)[None].expand(b, k)
            index = torch.where((count > k)[:, None], spaced, short)
        else:
            width = int(count.max()) if len(count) else 1
            keys = torch.rand(b, max(width, k), generator=generator)
            keys[torch.arange(keys.shape[1])[None] >= count[:, None]] = 2.0  # padding last
            index = keys.argsort(dim=1)[:, :k].sort(dim=1).values
        return torch.where(
            torch.arange(k)[None] < count[:, None], index, torch.zeros((), dtype=torch.long)
        )

    def tokens(
        self, curves: PaddedCurves, generator: torch.Generator | None = None
    ) -> ModalityTokens:
        if (curves.band >= len(self.bands)).any() or (curves.band < 0).any():
            raise ValueError(
                f"light-curve band codes must lie in 0…{len(self.bands) - 1} ({self.bands})"
            )
        index = self.select(curves.count, generator)
        present = torch.arange(self.max_tokens)[None] < curves.count[:, None]
        time = curves.time.gather(1, index)
        time = time - time[:, :1]
        mag = curves.mag.gather(1, index)
        values = torch.where(present, (mag - self.mag_zero) / self.mag_scale, torch.zeros(()))
        band = torch.where(present, curves.band.gather(1, index), torch.zeros((), dtype=torch.long))
        return ModalityTokens(values[..., None], present[..., None], present, time[..., None], band)

    def decode(self, values: torch.Tensor) -> torch.Tensor:
        """Token values ``(B, N, 1)`` → magnitudes."""
        return values[..., 0] * self.mag_scale + self.mag_zero

    def to_dict(self) -> dict:
        return {"kind": "lightcurve", **asdict(self)}
