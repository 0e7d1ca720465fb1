"""What the model sees: its prediction of each of an object's tokens from the rest,
assembled back into an image or a spectrum beside the observed one."""

from __future__ import annotations

import numpy as np
import torch

from astroloom.model.multimodal import MultimodalModel
from astroloom.tokenize.tokens import ModalityTokens


@torch.no_grad()
def reconstruct_tokens(
    model: MultimodalModel, batch: dict[str, ModalityTokens], modality: str, passes: int = 4
) -> torch.Tensor:
    """``(B, N, V)`` predicted values of ``modality``'s tokens: each from every other token
    of every modality in ``batch``, with it hidden (a masked model: every ``passes``-th
    token hidden per pass), or from the tokens before it (an autoregressive model, in the
    canonical modality order)."""
    model.eval()
    device = next(model.parameters()).device
    batch = {m: t.to(device) for m, t in batch.items()}
    tokens = batch[modality]
    out = torch.zeros_like(tokens.values)
    objective = model.embedding_objective()
    j = model.modalities.index(modality)
    n = tokens.n_tokens
    groups = (
        [torch.arange(n)]
        if objective == "autoregressive"
        else [torch.arange(k, n, passes) for k in range(passes)]
    )
    for group in groups:
        plan = model.canonical_plan(batch, objective)
        if objective == "masked":
            hide = torch.zeros_like(tokens.present)
            hide[:, group] = True
            plan.mask = {**plan.mask, modality: hide & tokens.present}
        seq, h = model.predictions(batch, plan)
        wanted = seq.present if objective == "autoregressive" else seq.hidden
        rows, slots = (wanted & (seq.modality == j)).nonzero(as_tuple=True)
        out[rows, seq.source[rows, slots]] = model.decoders[modality](h[rows, slots]).float()
    return out.cpu()


def explained_variance(
    predicted: torch.Tensor, tokens: ModalityTokens, pairs: np.ndarray | None = None
) -> float:
    """1 − Σ(prediction − value)² / Σ(value − mean)² over the valid token values: the share
    of the values' spread the reconstruction explains. ``pairs`` compares each object's
    prediction with another object's values (a control: it should explain nothing)."""
    truth, valid = tokens.values.float(), tokens.valid & tokens.present[..., None]
    if pairs is not None:
        truth, valid = truth[pairs], valid[pairs]
    pick = valid & torch.isfinite(predicted)
    t, p = truth[pick], predicted[pick]
    return float(1 - ((p - t) ** 2).sum() / ((t - t.mean()) ** 2).sum())
