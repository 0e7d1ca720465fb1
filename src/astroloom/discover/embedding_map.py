"""A 2-D UMAP map of embeddings, with the neighbour graph built by FAISS.

UMAP's own nearest-neighbour search (NN-descent) is compiled by numba afresh in every
process, about a minute on a 2-core machine before any work is done; an exact FAISS search
over unit vectors takes a fraction of a second at survey-cutout scale and gives the same
cosine neighbours that ``astroloom search`` uses, so the map and the search agree.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from astroloom.data.schema import DataError


@dataclass
class EmbeddingMap:
    coords: np.ndarray  # (n, 2)
    neighbour_recall: float  # share of each object's k neighbours that are still neighbours in 2-D
    n_neighbors: int


def _unit(vectors: np.ndarray) -> np.ndarray:
    unit = np.ascontiguousarray(vectors, dtype=np.float32)
    return unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)


def cosine_neighbours(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest rows by cosine distance, itself first (index, distance)."""
    import faiss

    unit = _unit(vectors)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    sims, hits = index.search(unit, k)
    return hits, np.clip(1.0 - sims, 0.0, 2.0)


def neighbour_recall(
    vectors: np.ndarray, coords: np.ndarray, k: int = 15, high: np.ndarray | None = None
) -> float:
    """Mean share of an object's k cosine neighbours in embedding space that are among its k
    nearest in the map: 1 is a perfect local picture, k/n is what a random layout gives.
    ``high``: those neighbours (self first, k + 1 columns) if already found."""
    import faiss

    if high is None:
        high, _ = cosine_neighbours(vectors, k + 1)
    flat = np.ascontiguousarray(coords, dtype=np.float32)
    index = faiss.IndexFlatL2(2)
    index.add(flat)
    _, low = index.search(flat, k + 1)
    shared = [len(set(h[1:]) & set(lo[1:])) for h, lo in zip(high, low, strict=True)]
    return float(np.mean(shared) / k)


def umap_map(
    vectors: np.ndarray,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
) -> EmbeddingMap:
    """Project embeddings to 2-D with UMAP (cosine neighbours); deterministic for a seed."""
    import umap

    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise DataError(f"expected a 2-D array of embeddings, got shape {vectors.shape}")
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} of {len(vectors)} embeddings hold NaN or infinite values; "
            "re-embed those objects or drop them before mapping"
        )
    if len(vectors) <= n_neighbors:
        raise DataError(
            f"a UMAP map of {len(vectors)} objects needs more than n_neighbors={n_neighbors}; "
            "embed more objects or lower n_neighbors"
        )
    # One search serves both UMAP (self + n_neighbors − 1 others) and the recall (self + k).
    hits, dists = cosine_neighbours(vectors, n_neighbors + 1)
    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric="cosine",
        random_state=seed,
        precomputed_knn=(hits[:, :n_neighbors], dists[:, :n_neighbors], None),
    )
    with warnings.catch_warnings():
        # UMAP warns that a seed forces one thread and that precomputed neighbours leave it
        # unable to place new points; both are what we ask for.
        warnings.simplefilter("ignore", UserWarning)
        coords = reducer.fit_transform(vectors)
    coords = np.asarray(coords, dtype=np.float32)
    return EmbeddingMap(
        coords=coords,
        neighbour_recall=neighbour_recall(vectors, coords, n_neighbors, high=hits),
        n_neighbors=n_neighbors,
    )


def label_colours(
    labels: dict[str, np.ndarray], names: list[str]
) -> tuple[list[tuple[str, np.ndarray]], dict[str, int]]:
    """The label columns to colour a map by, and how many objects lack each one."""
    unknown = [n for n in names if n not in labels]
    if unknown:
        raise DataError(
            f"the embeddings carry no label {', '.join(map(repr, unknown))}; "
            f"available: {', '.join(sorted(labels)) or 'none'}"
        )
    missing = {}
    for name in names:
        values = labels[name]
        if values.dtype == object:
            missing[name] = int(sum(v is None or v == "" for v in values))
        else:
            missing[name] = int((~np.isfinite(values)).sum())
    return [(n, labels[n]) for n in names], missing
