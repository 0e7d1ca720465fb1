"""The token batch every tokenizer produces and the multimodal model reads.

Each modality becomes a ``(B, N, V)`` block of normalised values with a per-value mask, a
per-token presence flag (absent modalities and padding are simply not present) and the
token's position: continuous coordinates in physical units (arcsec from the cutout
centre, log10 wavelength in Å, days) and/or a discrete field (a band, a catalogue column).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ModalityTokens:
    values: torch.Tensor  # (B, N, V) float, 0 where not valid
    valid: torch.Tensor  # (B, N, V) bool: which values are measured
    present: torch.Tensor  # (B, N) bool: which tokens exist for this object
    position: torch.Tensor | None = None  # (B, N, P) float, physical coordinates
    field: torch.Tensor | None = None  # (B, N) long, band or catalogue column
    # Set by a tokenizer that knows every token is present and every value measured (an
    # image batch without missing pixels): the model may then skip masks and sorting. A
    # Python flag, not a test of the data, so that it costs nothing and compiles.
    dense: bool = False
    # Per-object values the model is told beside the tokens (an image's brightness when
    # its values were normalised per object): (B, K), NaN where unknown.
    context: torch.Tensor | None = None

    def __post_init__(self) -> None:
        b, n, _ = self.values.shape
        if self.valid.shape != self.values.shape or self.present.shape != (b, n):
            raise ValueError(
                f"token block shapes disagree: values {tuple(self.values.shape)}, valid "
                f"{tuple(self.valid.shape)}, present {tuple(self.present.shape)}"
            )

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]

    @property
    def n_tokens(self) -> int:
        return self.values.shape[1]

    def take(self, index: torch.Tensor | slice) -> ModalityTokens:
        """The same tokens for a subset of objects."""

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            if t.shape[0] and t.stride(0) == 0:  # one row shared by all (a patch grid)
                n = torch.arange(t.shape[0])[index].numel()
                return t[:1].expand(n, *t.shape[1:])
            return t[index]

        return ModalityTokens(
            self.values[index],
            self.valid[index],
            self.present[index],
            pick(self.position),
            pick(self.field),
            self.dense,
            pick(self.context),
        )

    def to(self, device: torch.device | str) -> ModalityTokens:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return ModalityTokens(
            move(self.values),
            move(self.valid),
            move(self.present),
            move(self.position),
            move(self.field),
            self.dense,
            move(self.context),
        )


def concat_tokens(blocks: list[ModalityTokens]) -> ModalityTokens:
    """Stack blocks of the same modality along the batch axis."""

    def cat(name: str) -> torch.Tensor | None:
        parts = [getattr(b, name) for b in blocks]
        return None if parts[0] is None else torch.cat(parts)

    return ModalityTokens(
        cat("values"),
        cat("valid"),
        cat("present"),
        cat("position"),
        cat("field"),
        all(b.dense for b in blocks),
        cat("context"),
    )
