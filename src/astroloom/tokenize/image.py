"""Image tokenizer: arcsinh stretch, square patches, centre-out spiral order.

Galaxies sit at the centre of their cutouts, so the sequence starts where the signal is
and walks outward into sky, as AstroPT does. The stretch is ``asinh(x / s_b)`` with one
softening scale ``s_b`` per band (about the sky noise), recorded so that tokens can be
turned back into fluxes in the survey's unit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from astroloom.tokenize.tokens import ModalityTokens


@lru_cache(maxsize=16)
def spiral_order(n: int) -> tuple[int, ...]:
    """Row-major indices of an ``n × n`` grid in centre-out spiral order.

    The walk starts at the cell just above-left of the centre (the centre itself for odd
    ``n``) and steps right, down, left, left, up, up, … with run lengths 1, 1, 2, 2, 3, 3, …
    """
    if n <= 0:
        raise ValueError(f"grid size must be positive, got {n}")
    row = col = (n - 1) // 2
    order = [row * n + col]
    directions = ((0, 1), (1, 0), (0, -1), (-1, 0))
    run, turn = 1, 0
    while len(order) < n * n:
        for _ in range(2):
            d_row, d_col = directions[turn % 4]
            for _ in range(run):
                row, col = row + d_row, col + d_col
                if 0 <= row < n and 0 <= col < n:
                    order.append(row * n + col)
            turn += 1
        run += 1
    return tuple(order)


def _asinh(x: torch.Tensor) -> torch.Tensor:
    # torch.asinh runs scalar code on CPU; NumPy's arcsinh is vectorised and measured 20×
    # faster on 256 cutouts (benchmarks/data_loading.py, docs/benchmarks.md).
    if x.device.type == "cpu" and not x.requires_grad:
        return torch.from_numpy(np.arcsinh(x.numpy()))
    return torch.asinh(x)


@dataclass
class ImageTokenizer:
    """Turns ``(B, C, H, W)`` flux images into ``(B, N, p·p·C)`` patch tokens and back."""

    patch_size: int
    scale: list[float]  # arcsinh softening per band, in the image's flux unit
    bands: list[str] | None = None
    pixel_scale: float = 1.0  # arcsec per pixel: patch positions are offsets on the sky

    def __post_init__(self) -> None:
        if any(not np.isfinite(s) or s <= 0 for s in self.scale):
            raise ValueError(f"arcsinh scales must be positive and finite, got {self.scale}")

    @property
    def n_bands(self) -> int:
        return len(self.scale)

    def _scale_tensor(self, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.scale, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)

    def stretch(self, images: torch.Tensor) -> torch.Tensor:
        return _asinh(images / self._scale_tensor(images))

    def unstretch(self, stretched: torch.Tensor) -> torch.Tensor:
        return torch.sinh(stretched) * self._scale_tensor(stretched)

    def _check(self, images: torch.Tensor) -> None:
        if images.ndim != 4:
            raise ValueError(
                f"images must have shape (batch, bands, H, W); got {tuple(images.shape)}"
            )
        _, c, h, w = images.shape
        p = self.patch_size
        if c != self.n_bands:
            raise ValueError(f"tokenizer expects {self.n_bands} bands, images have {c}")
        if h != w or h % p:
            raise ValueError(f"images must be square with side a multiple of {p}; got {h}×{w}")

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(tokens, valid)``; NaN/inf pixels are 0 in ``tokens``, False in ``valid``."""
        images = torch.as_tensor(images, dtype=torch.float32)
        self._check(images)
        b, c, h, _ = images.shape
        p, g = self.patch_size, h // self.patch_size
        # A NaN or inf anywhere makes the sum non-finite, so one cheap reduction tells
        # complete batches (the common case) from ones that need a per-pixel mask.
        complete = bool(torch.isfinite(images.sum()))
        valid = None if complete else torch.isfinite(images)
        x = self.stretch(images if complete else torch.where(valid, images, images.new_zeros(())))
        order = torch.tensor(spiral_order(g), device=images.device)
        rows, cols = order // g, order % g

        def patchify(t: torch.Tensor) -> torch.Tensor:
            # (B, C, g, p, g, p) viewed as (B, g, g, p, p, C); one gather picks the patches in
            # spiral order and makes the only copy; the last reshape is a view.
            t = t.reshape(b, c, g, p, g, p).permute(0, 2, 4, 3, 5, 1)
            return t[:, rows, cols].reshape(b, g * g, p * p * c)

        tokens = patchify(x)
        # Complete cutouts (the common case) need no mask copy: a broadcast view will do.
        mask = torch.ones((), dtype=torch.bool, device=images.device).expand(tokens.shape)
        return tokens, mask if complete else patchify(valid)

    def positions(self, image_size: int) -> torch.Tensor:
        """``(N, 2)`` offsets of the patch centres from the cutout centre in arcsec, in token
        order: the same patch of sky has the same position whatever the cutout's size."""
        g = image_size // self.patch_size
        order = torch.tensor(spiral_order(g))
        centre = (torch.arange(g, dtype=torch.float32) + 0.5) * self.patch_size - image_size / 2
        xy = torch.stack([centre[order % g], centre[order // g]], dim=1)
        return xy * self.pixel_scale

    def tokens(self, images: torch.Tensor, present: torch.Tensor | None = None) -> ModalityTokens:
        """Token block of the model; ``present`` marks objects that have an image."""
        values, valid = self.encode(images)
        b, n, _ = values.shape
        pos = self.positions(images.shape[-1]).expand(b, n, 2)
        if valid.stride(0) == 0 and (present is None or bool(present.all())):
            # Complete cutouts, every object has one: the mask stays a broadcast view.
            present_all = torch.ones((), dtype=torch.bool).expand(b, n)
            return ModalityTokens(values, valid, present_all, pos, dense=True)
        valid = valid.expand(values.shape)
        present_obj = torch.ones(b, dtype=torch.bool) if present is None else present.bool()
        token_present = present_obj[:, None] & valid.any(dim=2)
        return ModalityTokens(values, valid & present_obj[:, None, None], token_present, pos)

    def decode(self, tokens: torch.Tensor, image_size: int) -> torch.Tensor:
        """Inverse of :meth:`encode` for valid pixels: tokens → fluxes ``(B, C, H, W)``."""
        b, n, _ = tokens.shape
        p, c, g = self.patch_size, self.n_bands, image_size // self.patch_size
        if n != g * g:
            raise ValueError(
                f"{n} tokens do not tile a {image_size}-pixel image with {p}-pixel patches"
            )
        inverse = torch.argsort(torch.tensor(spiral_order(g), device=tokens.device))
        t = tokens[:, inverse].reshape(b, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return self.unstretch(t.reshape(b, c, image_size, image_size))

    def to_dict(self) -> dict:
        return {"kind": "image", **asdict(self)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ImageTokenizer:
        raw = json.loads(Path(path).read_text())
        raw.pop("kind", None)
        return cls(**raw)
