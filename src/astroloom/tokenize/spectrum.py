"""Spectrum tokenizer: patches of flux placed by their wavelength.

Each token is ``patch_size`` consecutive flux pixels, arcsinh-stretched with a recorded
softening (about the typical per-pixel noise), and its position is the log10 of the
patch's central wavelength in Å. The model sees where in wavelength a patch lies, not
its index on one instrument's grid, so spectra sampled differently share one model.
Pixels with zero or non-finite inverse variance are masked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from astroloom.tokenize.tokens import ModalityTokens


@dataclass
class SpectrumTokenizer:
    patch_size: int
    scale: float  # arcsinh softening in the flux unit
    wavelength_start: float  # Å, first pixel
    wavelength_step: float  # Å per pixel
    n_pixels: int
    flux_unit: str = ""

    def __post_init__(self) -> None:
        if self.patch_size <= 0 or self.n_pixels <= 0:
            raise ValueError("spectrum patch_size and n_pixels must be positive")
        if not np.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"spectrum arcsinh scale must be positive, got {self.scale}")

    @property
    def n_tokens(self) -> int:
        return -(-self.n_pixels // self.patch_size)

    @property
    def wavelength(self) -> np.ndarray:
        return self.wavelength_start + self.wavelength_step * np.arange(self.n_pixels)

    def _pad(self, x: torch.Tensor, fill: float, width: int | None = None) -> torch.Tensor:
        n_tokens = self.n_tokens if width is None else -(-width // self.patch_size)
        extra = n_tokens * self.patch_size - x.shape[1]
        return torch.nn.functional.pad(x, (0, extra), value=fill)

    def positions(self, wavelength: np.ndarray | None = None) -> torch.Tensor:
        """``(n_tokens, 1)`` log10 central wavelength of each patch of the tokenizer's grid
        or of ``wavelength`` (one grid ``(n,)``, or one per object ``(B, n)`` → ``(B, n_tokens,
        1)``; NaN-padded pixels are left out of a patch's centre)."""
        wl = torch.as_tensor(
            self.wavelength if wavelength is None else wavelength, dtype=torch.float64
        )
        rows = wl if wl.ndim == 2 else wl[None]
        width = rows.shape[1]
        if wavelength is None and width != self.n_pixels:
            raise ValueError(f"wavelength grid has {width} pixels, spectra have {self.n_pixels}")
        edge = self._pad(rows, float("nan"), width).view(rows.shape[0], -1, self.patch_size)
        centre = torch.nanmean(edge, dim=2, keepdim=True)
        # A patch of padding only has no wavelength; it is never present, so any will do.
        centre = torch.where(torch.isfinite(centre), centre, torch.ones(()))
        out = torch.log10(centre).float()
        return out if wl.ndim == 2 else out[0]

    def tokens(
        self,
        flux: torch.Tensor,
        ivar: torch.Tensor | None = None,
        present: torch.Tensor | None = None,
        wavelength: np.ndarray | torch.Tensor | None = None,
    ) -> ModalityTokens:
        """``(B, n)`` flux (and inverse variance) → token block. ``wavelength`` (Å): one grid
        ``(n,)`` for all, one per object ``(B, n)`` (NaN past an object's last pixel), or the
        tokenizer's own grid when None. Tokens are placed by wavelength, so a spectrum need
        not share the grid the model was trained on."""
        flux = torch.as_tensor(flux, dtype=torch.float32)
        if flux.ndim != 2 or (wavelength is None and flux.shape[1] != self.n_pixels):
            raise ValueError(
                f"spectra must have shape (batch, {self.n_pixels}); got {tuple(flux.shape)}"
            )
        b, width = flux.shape
        if wavelength is not None and np.shape(wavelength)[-1] != width:
            raise ValueError(
                f"spectra have {width} pixels but their wavelength grid has "
                f"{np.shape(wavelength)[-1]}"
            )
        good = torch.isfinite(flux)
        if ivar is not None:
            ivar = torch.as_tensor(ivar, dtype=torch.float32)
            good &= torch.isfinite(ivar) & (ivar > 0)
        if present is not None:
            good &= present.bool()[:, None]
        if wavelength is not None:
            good &= torch.isfinite(torch.as_tensor(wavelength)).expand(b, width)
        values = torch.where(good, torch.asinh(flux / self.scale), torch.zeros(()))
        values = self._pad(values, 0.0, width).view(b, -1, self.patch_size)
        valid = self._pad(good, False, width).view(b, -1, self.patch_size)
        pos = self.positions(wavelength)
        pos = pos.expand(b, -1, 1) if pos.ndim == 2 else pos
        return ModalityTokens(values, valid, valid.any(dim=2), pos)

    def decode(self, values: torch.Tensor) -> torch.Tensor:
        """Token values ``(B, n_tokens, patch_size)`` → flux ``(B, n_pixels)``."""
        flat = values.reshape(values.shape[0], -1)[:, : self.n_pixels]
        return torch.sinh(flat) * self.scale

    def to_dict(self) -> dict:
        return {"kind": "spectrum", **asdict(self)}


def spectrum_noise_scale(ivar: np.ndarray) -> float:
    """Median per-pixel noise of the measured pixels: the arcsinh softening."""
    ivar = np.asarray(ivar, dtype=np.float64)
    good = np.isfinite(ivar) & (ivar > 0)
    if not good.any():
        raise ValueError("no spectrum pixel has a positive inverse variance")
    return float(np.median(1.0 / np.sqrt(ivar[good])))
