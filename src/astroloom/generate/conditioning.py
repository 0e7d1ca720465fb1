"""What the denoiser is conditioned on: the frozen foundation model's embedding of an
object, from whichever of its modalities are given.

Sources: ``image`` (the image's own embedding: variations of one object), ``others``
(every modality but the image, e.g. spectrum + photometry: "draw the galaxy that has this
spectrum") and ``all``. The denoiser is trained on a random source per object, so one
network serves each conditioning mode. Vectors are standardised with statistics recorded
beside the denoiser.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from astroloom.data.multiset import MultimodalSet
from astroloom.model.foundation import Foundation

SOURCES = ("image", "others", "all")


def source_modalities(foundation: Foundation, source: str) -> list[str]:
    mods = foundation.modalities
    if source == "image":
        return ["image"]
    if source == "others":
        return [m for m in mods if m not in ("image", "lightcurve")]
    if source == "all":
        return [m for m in mods if m != "lightcurve"]
    raise ValueError(f"conditioning source must be one of {SOURCES}, got {source!r}")


def available_sources(foundation: Foundation) -> list[str]:
    return ["image"] if len(source_modalities(foundation, "all")) == 1 else list(SOURCES)


def condition_vectors(
    foundation: Foundation,
    data: MultimodalSet,
    source: str,
    batch_size: int = 512,
    progress: bool = False,
) -> np.ndarray:
    """``(N, n_embd)`` embeddings of ``data``'s objects from ``source``'s modalities; NaN
    rows for objects that have none of them (no condition: the null embedding)."""
    use = source_modalities(foundation, source)
    has = np.any([data.present.get(m, np.zeros(len(data), bool)) for m in use], axis=0)
    out = np.full((len(data), foundation.model.cfg.n_embd), np.nan, np.float32)
    idx = np.flatnonzero(has)
    tokens = foundation.tokens_from_set(data, use)
    for lo in tqdm(
        range(0, len(idx), batch_size), desc=f"condition ({source})", disable=not progress
    ):
        part = idx[lo : lo + batch_size]
        chunk = {m: t.take(torch.from_numpy(part)) for m, t in tokens.items()}
        out[part] = foundation.embed(chunk)
    return out
