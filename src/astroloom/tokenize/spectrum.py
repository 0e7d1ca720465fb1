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

    def _pad(self, x: torch.Tensor, fill: float) -> torch.Tensor:
        extra = self.n_tokens * self.patch_size - x.shape[1]
        return torch.nn.functional.pad(x, (0, extra), value=fill)

    def positions(self, wavelength: np.ndarray | None = None) -> torch.Tensor:
        """``(n_tokens, 1)`` log10 central wavelength of each patch."""
        wl = torch.as_tensor(
            self.wavelength if wavelength is None else wavelength, dtype=torch.float64
        )
        if len(wl) != self.n_pixels:
            raise ValueError(f"wavelength grid has {len(wl)} pixels, spectra have {self.n_pixels}")
        edge = self._pad(wl[None], float("nan"))[0].view(self.n_tokens, self.patch_size)
        return torch.log10(torch.nanmean(edge, dim=1, keepdim=True)).float()

    def tokens(
        self,
        flux: torch.Tensor,
        ivar: torch.Tensor | None = None,
        present: torch.Tensor | None = None,
        wavelength: np.ndarray | None = None,
    ) -> ModalityTokens:
        """``(B, n_pixels)`` flux (and inverse variance) → token block."""
        flux = torch.as_tensor(flux, dtype=torch.float32)
        if flux.ndim != 2 or flux.shape[1] != self.n_pixels:
            raise ValueError(
                f"spectra must have shape (batch, {self.n_pixels}); got {tuple(flux.shape)}"
            )
        b = flux.shape[0]
        good = torch.isfinite(flux)
        if ivar is not None:
            ivar = torch.as_tensor(ivar, dtype=torch.float32)
            good &= torch.isfinite(ivar) & (ivar > 0)
        if present is not None:
            good &= present.bool()[:, None]
        values = torch.where(good, torch.asinh(flux / self.scale), torch.zeros(()))
        values = self._pad(values, 0.0).view(b, self.n_tokens, self.patch_size)
        valid = self._pad(good, False).view(b, self.n_tokens, self.patch_size)
        pos = self.positions(wavelength).expand(b, self.n_tokens, 1)
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
