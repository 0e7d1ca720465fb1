"""Metrics astronomers quote: R², RMSE, bias; NMAD and outlier fraction for redshifts;
accuracy, macro-F1 and ROC-AUC for classes; precision at k and ROC-AUC for anomalies."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

OUTLIER_THRESHOLD = 0.15


def regression_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    resid = pred - truth
    total = np.sum((truth - truth.mean()) ** 2)
    return {
        "r2": float(1.0 - np.sum(resid**2) / total) if total > 0 else float("nan"),
        "rmse": float(np.sqrt(np.mean(resid**2))),
        "bias": float(np.mean(resid)),
    }


def redshift_metrics(z_true: np.ndarray, z_pred: np.ndarray) -> dict[str, float]:
    """NMAD = 1.4826 · median(|Δz − median(Δz)| / (1 + z)); outliers |Δz| / (1 + z) > 0.15."""
    dz = z_pred - z_true
    scaled = np.abs(dz - np.median(dz)) / (1.0 + z_true)
    return {
        **regression_metrics(z_true, z_pred),
        "nmad": float(1.4826 * np.median(scaled)),
        "outlier_fraction": float(np.mean(np.abs(dz) / (1.0 + z_true) > OUTLIER_THRESHOLD)),
    }


def classification_metrics(
    truth: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy, macro-F1 and (given class probabilities) one-vs-rest macro ROC-AUC."""
    out = {
        "accuracy": float(accuracy_score(truth, pred)),
        "macro_f1": float(f1_score(truth, pred, average="macro")),
    }
    if proba is not None and classes is not None:
        present = np.isin(classes, np.unique(truth))
        try:
            if len(classes) == 2:
                out["roc_auc"] = float(roc_auc_score(truth == classes[1], proba[:, 1]))
            elif present.all():
                out["roc_auc"] = float(
                    roc_auc_score(truth, proba, multi_class="ovr", average="macro", labels=classes)
                )
        except ValueError:  # a class absent from a small test split: AUC undefined
            pass
    return out


def precision_at_k(scores: np.ndarray, is_positive: np.ndarray, k: int) -> float:
    """Share of true positives among the ``k`` highest-scoring objects."""
    top = np.argsort(-scores)[:k]
    return float(np.mean(is_positive[top]))


def anomaly_metrics(
    scores: np.ndarray, is_positive: np.ndarray, kinds: np.ndarray | None = None
) -> dict:
    """ROC-AUC and precision at 10, 50 and the number of positives. With ``kinds`` (each
    object's class name; only the positives' are read), also ``roc_auc_by_kind``: each kind
    of positive alone against all the negatives — which rare kinds a score finds."""
    positives = int(is_positive.sum())
    out: dict = {"n_positive": positives}
    if 0 < positives < len(scores):
        out["roc_auc"] = float(roc_auc_score(is_positive, scores))
        for k in (10, 50, positives):
            out[f"precision_at_{k}"] = precision_at_k(scores, is_positive, min(k, len(scores)))
        out["random_precision"] = positives / len(scores)
        if kinds is not None:
            kinds = np.asarray(kinds).astype(str)
            out["roc_auc_by_kind"] = {
                kind: float(roc_auc_score(is_positive[keep], scores[keep]))
                for kind in sorted(set(kinds[is_positive]))
                for keep in [(kinds == kind) | ~is_positive]
            }
    return out


def paired_auc_difference(
    ours: np.ndarray,
    theirs: np.ndarray,
    is_positive: np.ndarray,
    draws: int = 2000,
    seed: int = 0,
) -> dict[str, float | int]:
    """ROC-AUC of ``ours`` − that of ``theirs`` on the same objects, with a 95 % interval
    from a paired, stratified bootstrap: each draw resamples the positives and the negatives
    (with replacement, their counts kept) and scores both on the same resampled objects, so
    what the two share — which rare objects happen to be in the survey — cancels. With a
    hundred rare objects a ROC-AUC moves by several thousandths from the draw of objects
    alone; this says whether a gap of that size is one. ``share_ahead``: the share of draws
    in which ``ours`` ≥ ``theirs``."""
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    is_positive = np.asarray(is_positive, bool)
    if ours.shape != theirs.shape or ours.shape != is_positive.shape:
        raise ValueError(
            f"the two scores and the labels must be one per object: {ours.shape}, "
            f"{theirs.shape}, {is_positive.shape}"
        )
    n_pos, n_neg = int(is_positive.sum()), int((~is_positive).sum())
    if not n_pos or not n_neg:
        raise ValueError("a ROC-AUC needs both positives and negatives")
    rng = np.random.default_rng(seed)
    diffs = np.empty(draws)
    chunk = max(1, 4_000_000 // len(ours))  # draws at a time: ~32 MB of counts each
    for start in range(0, draws, chunk):
        n = min(chunk, draws - start)
        # How often each object is drawn: the same multiplicities for both scores.
        times_pos = rng.multinomial(n_pos, np.full(n_pos, 1 / n_pos), size=n)
        times_neg = rng.multinomial(n_neg, np.full(n_neg, 1 / n_neg), size=n)
        diffs[start : start + n] = _weighted_auc(
            ours, is_positive, times_pos, times_neg
        ) - _weighted_auc(theirs, is_positive, times_pos, times_neg)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {
        "difference": float(roc_auc_score(is_positive, ours) - roc_auc_score(is_positive, theirs)),
        "low": float(low),
        "high": float(high),
        "share_ahead": float(np.mean(diffs >= 0)),
        "draws": draws,
    }


def _weighted_auc(
    scores: np.ndarray, is_positive: np.ndarray, times_pos: np.ndarray, times_neg: np.ndarray
) -> np.ndarray:
    """ROC-AUC per row of multiplicities (``times_pos``: draws × positives, ``times_neg``:
    draws × negatives): the share of (positive, negative) pairs the positive wins, ties a
    half, each object counted as often as it was drawn. One sort per score, then cumulative
    counts per draw — no ranking of every resampled survey."""
    positive, negative = scores[is_positive], scores[~is_positive]
    order = np.argsort(negative, kind="stable")
    below = np.searchsorted(negative[order], positive, side="left")
    not_above = np.searchsorted(negative[order], positive, side="right")
    counted = np.zeros((len(times_neg), len(negative) + 1))
    np.cumsum(times_neg[:, order], axis=1, out=counted[:, 1:])
    wins = (counted[:, below] + counted[:, not_above]) / 2  # draws × positives
    return (times_pos * wins).sum(axis=1) / (times_pos.sum(axis=1) * times_neg.sum(axis=1))
