"""Anomaly scores in embedding space: isolation forest and distance to the k-th neighbour."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

ANOMALY_METHODS = ("iforest", "knn")


def anomaly_scores(
    vectors: np.ndarray, method: str = "iforest", k: int = 10, seed: int = 0
) -> np.ndarray:
    """Higher means more unusual."""
    x = StandardScaler().fit_transform(vectors)
    if method == "iforest":
        forest = IsolationForest(n_estimators=300, random_state=seed).fit(x)
        return -forest.score_samples(x)
    if method == "knn":
        distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
        return distances[:, 1:].mean(axis=1)  # column 0 is the object itself
    raise ValueError(f"unknown anomaly method {method!r}; choose from {', '.join(ANOMALY_METHODS)}")
