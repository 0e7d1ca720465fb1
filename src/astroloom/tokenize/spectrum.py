"""Spectrum tokenizer: patches of flux placed by their wavelength.

Each token is ``patch_size`` consecutive flux pixels, arcsinh-stretched, and its position
is the log10 of the patch's central wavelength in Å. The model sees where in wavelength a
patch lies, not its index on one instrument's grid, so spectra sampled differently share
one model. Pixels with zero or non-finite inverse variance are masked.

Two normalisations, as for images:

* ``survey`` (astroloom ≤ 0.2): one softening for every spectrum, the training survey's
  median per-pixel noise, in the training survey's flux unit. Spectra recorded in another
  unit astropy knows (W m⁻² nm⁻¹, mJy, …) are converted to it first; a dataset whose unit
  is recorded as unknown is refused, since its values would mean nothing to the model.
* ``object`` (unit-free): each spectrum is stretched by its own softening, its
  pixel-to-pixel noise (the median absolute difference of neighbouring pixels, which a
  line or the continuum's slope hardly moves), never less than 1 % of its 99th-percentile
  flux. Any flux unit, or none, gives the same tokens. The brightness this takes out is
  handed to the model as a context value, log10 of the softening in the model's flux unit,
  when the data's unit is known (NaN, "unknown", when not).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import numpy as np
import torch

from astroloom.data.schema import UNKNOWN_UNITS, DataError, spectrum_unit_factor
from astroloom.tokenize.tokens import ModalityTokens

SPECTRUM_NORMS = ("survey", "object")
MIN_SOFT_FRACTION = 0.01  # object normalisation: softening ≥ 1 % of the 99th-percentile flux


def object_softening(flux: torch.Tensor, good: torch.Tensor) -> torch.Tensor:
    """``(B,)`` each spectrum's softening: its pixel-to-pixel noise, 1.4826 × the median
    absolute difference of neighbouring measured pixels / √2, floored at 1 % of its
    99th-percentile |flux| (a noiseless template); 1 for a spectrum with no flux at all."""
    f = torch.where(good, flux, torch.full((), float("nan")))
    diff = (f[:, 1:] - f[:, :-1]).abs()
    noise = 1.4826 * torch.nanmedian(diff, dim=1).values / 2**0.5
    peak = torch.nanquantile(f.abs().double(), 0.99, dim=1).float()
    soft = torch.fmax(torch.nan_to_num(noise, nan=0.0), MIN_SOFT_FRACTION * peak)
    return torch.where(torch.isfinite(soft) & (soft > 0), soft, torch.ones(()))


@dataclass
class SpectrumTokenizer:
    patch_size: int
    scale: float  # arcsinh softening in the flux unit
    wavelength_start: float  # Å, first pixel
    wavelength_step: float  # Å per pixel
    n_pixels: int
    flux_unit: str = ""
    normalisation: str = "survey"  # see the module's docstring; "survey" in older runs

    def __post_init__(self) -> None:
        if self.patch_size <= 0 or self.n_pixels <= 0:
            raise ValueError("spectrum patch_size and n_pixels must be positive")
        if not np.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"spectrum arcsinh scale must be positive, got {self.scale}")
        if self.normalisation not in SPECTRUM_NORMS:
            raise ValueError(
                f"spectrum normalisation must be one of {SPECTRUM_NORMS}, "
                f"got {self.normalisation!r}"
            )

    @property
    def n_context(self) -> int:
        """Per-object context values the model is told: the brightness (object norm)."""
        return 1 if self.normalisation == "object" else 0

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
        unit: str | None = None,
    ) -> ModalityTokens:
        """``(B, n)`` flux (and inverse variance) → token block. ``wavelength`` (Å): one grid
        ``(n,)`` for all, one per object ``(B, n)`` (NaN past an object's last pixel), or the
        tokenizer's own grid when None. Tokens are placed by wavelength, so a spectrum need
        not share the grid the model was trained on. ``unit``: the flux unit (None: the
        model's own; ``"unknown"``: none known, which only an ``object``-normalised model
        reads)."""
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
            # An inverse variance past float32's range (a spectrum in W m⁻² nm⁻¹ has ~1e38)
            # overflows to inf: still a measured pixel.
            good &= ~torch.isnan(ivar) & (ivar > 0)
        if present is not None:
            good &= present.bool()[:, None]
        if wavelength is not None:
            good &= torch.isfinite(torch.as_tensor(wavelength)).expand(b, width)
        grid = self.wavelength[:width] if wavelength is None else np.asarray(wavelength)
        factor = spectrum_unit_factor(unit, self.flux_unit, grid)
        legacy = self.normalisation == "survey" and self.flux_unit.strip().lower() in UNKNOWN_UNITS
        if factor is None and legacy:
            factor = 1.0  # a model that never knew its own unit reads spectra as it always has
        if factor is None and self.normalisation == "survey":
            raise DataError(
                f"the spectra's flux unit is {unit!r}: this model reads spectra in "
                f"{self.flux_unit or 'its training survey’s unit'} and cannot read them "
                "without knowing theirs (record flux_unit in dataset.json, or use a model "
                "trained with model.spectrum_norm = 'object')"
            )
        if factor is not None and not (np.ndim(factor) == 0 and factor == 1.0):
            flux = flux * torch.as_tensor(factor, dtype=torch.float32)
        context = None
        if self.normalisation == "object":
            soft = object_softening(flux, good)
            known = factor is not None
            context = (torch.log10(soft) if known else torch.full_like(soft, float("nan")))[:, None]
            stretched = torch.asinh(flux / soft[:, None])
        else:
            stretched = torch.asinh(flux / self.scale)
        values = torch.where(good, stretched, torch.zeros(()))
        values = self._pad(values, 0.0, width).view(b, -1, self.patch_size)
        valid = self._pad(good, False, width).view(b, -1, self.patch_size)
        pos = self.positions(wavelength)
        pos = pos.expand(b, -1, 1) if pos.ndim == 2 else pos
        return ModalityTokens(values, valid, valid.any(dim=2), pos, context=context)

    def decode(self, values: torch.Tensor, soft: torch.Tensor | None = None) -> torch.Tensor:
        """Token values ``(B, n_tokens, patch_size)`` → flux ``(B, n_pixels)``, in the
        model's flux unit. Object-normalised values are scaled back by each spectrum's
        softening ``soft`` ``(B,)`` when it is known, else by the training survey's typical
        one (a spectrum predicted for an object that has none)."""
        flat = values.reshape(values.shape[0], -1)[:, : self.n_pixels]
        if soft is None or self.normalisation == "survey":
            return torch.sinh(flat) * self.scale
        return torch.sinh(flat) * torch.as_tensor(soft, dtype=flat.dtype).view(-1, 1)

    def to_dict(self) -> dict:
        return {"kind": "spectrum", **asdict(self)}


def spectrum_noise_scale(ivar: np.ndarray) -> float:
    """Median per-pixel noise of the measured pixels: the arcsinh softening."""
    ivar = np.asarray(ivar, dtype=np.float64)
    good = np.isfinite(ivar) & (ivar > 0)
    if not good.any():
        raise ValueError("no spectrum pixel has a positive inverse variance")
    return float(np.median(1.0 / np.sqrt(ivar[good])))


def stretch_tokens(
    tokens: ModalityTokens, log_stretch: torch.Tensor, low: torch.Tensor, high: torch.Tensor
) -> ModalityTokens:
    """The spectra of a token block as if each galaxy lay at ``(1 + z) × 10**log_stretch``
    (``(B,)``), seen on the same grid and kept between ``low`` and ``high`` Å (``(B,)``).

    Each pixel takes the value found at its wavelength ÷ the stretch, linearly interpolated
    between the grid's pixels (token values, that is arcsinh-stretched flux); a pixel whose
    source lies off the spectrum or next to a masked pixel is masked. The grid is read off
    the tokens' positions and taken as linear in wavelength, as the model's own is.
    """
    values, valid = tokens.values, tokens.valid
    b, n, p = values.shape
    centre = torch.pow(10.0, tokens.position[..., 0].double())  # (B, N) Å
    step = (centre[:, 1] - centre[:, 0]) / p  # Å per pixel
    # From the first token's centre: a last, partly filled token's centre is off the grid.
    offset = torch.arange(n * p, dtype=torch.float64, device=values.device) - (p - 1) / 2
    wave = centre[:, :1] + offset * step[:, None]
    source = wave / torch.pow(10.0, log_stretch.double())[:, None]
    u = (source - wave[:, :1]) / step[:, None]
    i0 = u.floor().long()
    w = (u - i0).float()
    inside = (i0 >= 0) & (i0 + 1 < n * p)
    i0 = i0.clamp(0, n * p - 2)
    flat_v, flat_ok = values.reshape(b, n * p), valid.reshape(b, n * p)
    v = (1 - w) * flat_v.gather(1, i0) + w * flat_v.gather(1, i0 + 1)
    ok = inside & flat_ok.gather(1, i0) & flat_ok.gather(1, i0 + 1)
    ok &= (wave >= low.double()[:, None]) & (wave <= high.double()[:, None])
    v = torch.where(ok, v, torch.zeros((), dtype=v.dtype, device=v.device))
    ok = ok.reshape(b, n, p)
    return dataclasses.replace(
        tokens, values=v.reshape(b, n, p).to(values.dtype), valid=ok, present=ok.any(2)
    )
