"""Sanity checks for attribution maps (Adebayo et al. 2018): a map that explains the model
must change when the model's weights are randomised, block by block from the top, and when
the probe is trained on shuffled labels. Reported as the Spearman rank correlation of the
maps' magnitudes with the original ones (1: unchanged, 0: unrelated)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import spearmanr

from astroloom.interpret.attribution import Explainer
from astroloom.model.foundation import Foundation
from astroloom.model.multimodal import MultimodalModel, build_model


def randomised(model: MultimodalModel, blocks: Sequence[int], seed: int = 0) -> MultimodalModel:
    """A copy of ``model`` with the given blocks re-drawn from their initial distribution."""
    out = copy.deepcopy(model)
    torch.manual_seed(seed)
    for k in blocks:
        out.blocks[k].apply(MultimodalModel._init_weights)
        for module in out.blocks[k].modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.reset_parameters()
    return out.eval()


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman ρ of two maps' magnitudes over the tokens both have."""
    a, b = np.abs(np.asarray(a, float)), np.abs(np.asarray(b, float))
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return 0.0
    return float(spearmanr(a[ok], b[ok]).statistic)


def _maps(explainer: Explainer, ids: Sequence[str], method: str, label: str, **probe) -> list:
    target = explainer.probe(label, **probe)
    return [np.concatenate(list(explainer.explain(i, method, target).tokens.values())) for i in ids]


def sanity_checks(
    explainer: Explainer, object_ids: Sequence[str], label: str, method: str = "occlusion"
) -> list[dict]:
    """Rank correlation of each object's map with the original: cascading randomisation of
    the blocks the embedding is read through (top first; the probe refitted each time, as
    a user would), every weight at its initial draw, and a probe trained on shuffled
    labels. One row per check: mean and standard deviation over the objects."""
    original = _maps(explainer, object_ids, method, label)
    rows = []

    def record(name: str, maps: list) -> None:
        rho = [rank_correlation(a, b) for a, b in zip(original, maps, strict=True)]
        rows.append({"check": name, "rho_mean": float(np.mean(rho)), "rho_std": float(np.std(rho))})

    depth = explainer.layer

    def rerun(model: MultimodalModel) -> list:
        again = Explainer(
            Foundation(model, explainer.foundation.tokenizer),
            explainer.data,
            explainer.use,
            explainer.layer,
            explainer.pool,
            fill=explainer.fill,
            orientations=explainer.orientations,
        )
        return _maps(again, object_ids, method, label)

    for top in range(depth - 1, -1, -1):
        name = f"block {top}" if top == depth - 1 else f"blocks {top}–{depth - 1}"
        record(f"{name} randomised", rerun(randomised(explainer.model, range(top, depth))))
    torch.manual_seed(0)
    record("every weight randomised", rerun(build_model(explainer.model.cfg).eval()))
    record("probe on shuffled labels", _maps(explainer, object_ids, method, label, shuffle_seed=0))
    return rows
