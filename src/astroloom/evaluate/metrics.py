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


def anomaly_metrics(scores: np.ndarray, is_positive: np.ndarray) -> dict[str, float]:
    positives = int(is_positive.sum())
    out = {"n_positive": positives}
    if 0 < positives < len(scores):
        out["roc_auc"] = float(roc_auc_score(is_positive, scores))
        for k in (10, 50, positives):
            out[f"precision_at_{k}"] = precision_at_k(scores, is_positive, min(k, len(scores)))
        out["random_precision"] = positives / len(scores)
    return out
