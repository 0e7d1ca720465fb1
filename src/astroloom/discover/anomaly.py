"""Anomaly scores in embedding space (isolation forest, distance to the k nearest
neighbours, local outlier factor) and their combination with the model's own surprise."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

ANOMALY_METHODS = ("iforest", "knn", "lof", "lof-range")
# Neighbours each method compares an object with: the k-NN distance's 10 as before; the
# local outlier factor's 20 is scikit-learn's default, chosen before it was measured here.
NEIGHBOURS = {"knn": 10, "lof": 20}
# lof-range: the largest local outlier factor over these neighbourhood sizes (Breunig et al.
# 2000, section 7), so that no one k has to be guessed.
LOF_RANGE = tuple(range(10, 51, 5))


def anomaly_scores(
    vectors: np.ndarray, method: str = "iforest", k: int | None = None, seed: int = 0
) -> np.ndarray:
    """Higher means more unusual. ``k``: neighbours for ``knn`` and ``lof`` (default
    :data:`NEIGHBOURS`).

    ``lof`` (Breunig et al. 2000) divides an object's neighbour distance by its neighbours'
    own: a merger or a ring lies a little outside the dense crowd of ordinary galaxies of
    its colour, nearer to it than ordinary members of a sparse part of the survey are to
    each other, so the plain distance ranks it below them and the local outlier factor
    above (docs/benchmarks.md, "Anomalies: the local outlier factor").

    ``lof-range`` keeps each object's largest factor over :data:`LOF_RANGE` (10 to 50
    neighbours), the paper's own heuristic: a group of rare objects larger than k (twenty
    identical stars) are each other's neighbours and look ordinary at that k, but not at a
    larger one; a single k that suits one feature set can fail another (hand-crafted
    features: ROC-AUC 0.735 at k = 10, 0.991 at k = 50 on the reference survey;
    docs/benchmarks.md, "Anomalies: the largest factor over a range of neighbourhoods")."""
    x = StandardScaler().fit_transform(vectors)
    if method == "iforest":
        forest = IsolationForest(n_estimators=300, random_state=seed).fit(x)
        return -forest.score_samples(x)
    if method == "lof-range":
        if k is not None:
            raise ValueError(
                f"lof-range looks at {LOF_RANGE[0]}–{LOF_RANGE[-1]} neighbours; "
                "give k to lof or knn instead"
            )
        if len(vectors) <= LOF_RANGE[-1]:
            raise ValueError(
                f"lof-range compares each object with up to {LOF_RANGE[-1]} nearest "
                f"neighbours: it needs more than {LOF_RANGE[-1]} objects, not {len(vectors)}"
            )
        return np.max(list(local_outlier_factors(x, LOF_RANGE).values()), axis=0)
    if method in NEIGHBOURS:
        k = NEIGHBOURS[method] if k is None else k
        if len(vectors) <= k:
            raise ValueError(
                f"the {method} score compares each object with its {k} nearest neighbours: "
                f"it needs more than {k} objects, not {len(vectors)}"
            )
        if method == "lof":
            return local_outlier_factors(x, (k,))[k]
        distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
        return distances[:, 1:].mean(axis=1)  # column 0 is the object itself
    raise ValueError(f"unknown anomaly method {method!r}; choose from {', '.join(ANOMALY_METHODS)}")


def nearest_others(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows by Euclidean distance, nearest first: indices and
    distances, ``(N, k)`` each. An exhaustive search (FAISS's flat index) in float32: local
    outlier factors from it differ from scikit-learn's float64 ones by up to 1.1e-3
    (relative; 10,000 × 640) and 3.3e-3 (100,000 × 128), ``benchmarks/lof_speed.py``.
    Measuring the k found again in float64 brought that to 2.2e-4 at 4.5 times the cost,
    and was left out: ranks, not the fourth digit, are what an anomaly list needs."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    squared, found = index.search(x, k + 1)
    # Drop the row itself; with more than k exact duplicates it may not be among the k + 1
    # found, and then the farthest goes instead.
    rows = np.arange(len(x))
    is_self = found == rows[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones(found.shape, dtype=bool)
    keep[rows, drop] = False
    found = found[keep].reshape(len(x), k)
    distance = np.sqrt(np.clip(squared[keep].reshape(len(x), k), 0.0, None))
    return found, distance.astype(np.float64)


def local_outlier_factors(x: np.ndarray, ks: Sequence[int]) -> dict[int, np.ndarray]:
    """The local outlier factor (Breunig et al. 2000) of every row at each k in ``ks``, as
    scikit-learn's ``LocalOutlierFactor`` computes it, from one neighbour search for the
    largest k: a range of neighbourhoods costs one search, not one per k, and FAISS's
    search is the faster one (docs/benchmarks.md, "Anomalies: the largest factor …")."""
    found, distance = nearest_others(x, max(ks))
    factors = {}
    for k in ks:
        neighbours, d = found[:, :k], distance[:, :k]
        reach = np.maximum(d, d[:, -1][neighbours])  # reachability distance to each neighbour
        density = 1.0 / (reach.mean(axis=1) + 1e-10)  # scikit-learn's guard for duplicates
        factors[k] = density[neighbours].mean(axis=1) / density
    return factors


def tail_scaled(score: np.ndarray, quantile: float = 0.99) -> np.ndarray:
    """(score − median) / (its ``quantile`` − median): 1 where the top ``1 − quantile`` of
    the objects begins. Scores whose tails differ in shape are made comparable where it
    matters for finding the rare few — at the edge of the bulk, not in its middle."""
    if not 0.5 < quantile < 1:
        raise ValueError(f"quantile must lie between 0.5 and 1, not {quantile}")
    score = np.asarray(score, float)
    mid, edge = np.nanpercentile(score, [50, 100 * quantile])  # an unscored object stays NaN
    return (score - mid) / max(edge - mid, 1e-12)


def either_scores(*scores: np.ndarray, quantile: float = 0.99) -> np.ndarray:
    """An object is unusual when any one of several scores says so: each put on one scale
    (:func:`tail_scaled`), the largest kept. The model's surprise finds what it cannot
    predict or predicts too well (trails, bright stars); a neighbour score in embedding
    space (the bench pairs it with the local outlier factor) finds objects unlike the
    others (rings, arcs) but misses a rare kind that forms its own tight cluster (twenty
    identical stars are each other's neighbours).

    Why the tail and not the interquartile range: among ordinary galaxies the surprise has a
    far longer tail than the neighbour distance (its 99th percentile lies 9.5 interquartile
    ranges above the median, the distance's 4.5), so on an interquartile scale the most
    surprising ordinary galaxies outrank the rings and mergers that only the distance sees.
    On the reference survey the pair scores ROC-AUC 0.971 scaled by the tail against 0.965
    by the interquartile range; on a second survey (seed 21) 0.963 against 0.954
    (docs/benchmarks.md, "Anomalies: either score scaled by its tail")."""
    if not scores:
        raise ValueError("either_scores needs at least one score")
    # fmax: an object one score could not rate keeps the others' verdict.
    return np.fmax.reduce(np.stack([tail_scaled(s, quantile) for s in scores]), axis=0)
