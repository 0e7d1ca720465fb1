"""Catalogue values: one token per field (a band's flux, a catalogue column).

A value is arcsinh-stretched with its field's recorded softening (for fluxes, about the
catalogue noise: the stretch is then linear for faint objects and logarithmic, like a
magnitude, for bright ones). The field is a discrete id the model learns an embedding
for; a missing value (NaN or zero inverse variance) is simply an absent token.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from astroloom.tokenize.tokens import ModalityTokens


@dataclass
class ScalarTokenizer:
    fields: list[str]
    scale: list[float]  # arcsinh softening per field
    unit: str = ""

    def __post_init__(self) -> None:
        if len(self.fields) != len(self.scale) or not self.fields:
            raise ValueError("need one arcsinh scale per catalogue field")
        if any(not np.isfinite(s) or s <= 0 for s in self.scale):
            raise ValueError(f"catalogue scales must be positive, got {self.scale}")

    @property
    def n_tokens(self) -> int:
        return len(self.fields)

    def tokens(
        self,
        values: torch.Tensor,
        ivar: torch.Tensor | None = None,
        present: torch.Tensor | None = None,
    ) -> ModalityTokens:
        """``(B, n_fields)`` values → token block with one token per field."""
        values = torch.as_tensor(values, dtype=torch.float32)
        if values.ndim != 2 or values.shape[1] != self.n_tokens:
            raise ValueError(
                f"catalogue values must have shape (batch, {self.n_tokens}) for fields "
                f"{self.fields}; got {tuple(values.shape)}"
            )
        b = values.shape[0]
        good = torch.isfinite(values)
        if ivar is not None:
            ivar = torch.as_tensor(ivar, dtype=torch.float32)
            good &= torch.isfinite(ivar) & (ivar > 0)
        if present is not None:
            good &= present.bool()[:, None]
        scale = torch.tensor(self.scale)
        stretched = torch.where(good, torch.asinh(values / scale), torch.zeros(()))
        field = torch.arange(self.n_tokens).expand(b, -1)
        return ModalityTokens(stretched[..., None], good[..., None], good, None, field)

    def decode(self, values: torch.Tensor) -> torch.Tensor:
        """Token values ``(B, n_fields, 1)`` → values in the catalogue's unit."""
        return torch.sinh(values[..., 0]) * torch.tensor(self.scale, dtype=values.dtype)

    def to_dict(self) -> dict:
        return {"kind": "scalars", **asdict(self)}


def catalogue_noise_scale(ivar: np.ndarray) -> list[float]:
    """Median 1σ error per field (column of ``ivar``)."""
    ivar = np.asarray(ivar, dtype=np.float64)
    scales = []
    for column in ivar.T:
        good = column[np.isfinite(column) & (column > 0)]
        scales.append(float(np.median(1.0 / np.sqrt(good))) if good.size else 1.0)
    return scales
