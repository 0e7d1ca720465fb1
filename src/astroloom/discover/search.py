"""Similarity search over embeddings with FAISS (exact inner product on unit vectors)."""

from __future__ import annotations

import numpy as np

from astroloom.data.schema import DataError


class SimilarityIndex:
    """Cosine-similarity nearest neighbours; ``query`` returns ids and cosine distances."""

    def __init__(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        import faiss

        if len(vectors) != len(ids):
            raise DataError(f"{len(vectors)} vectors but {len(ids)} ids")
        unit = np.ascontiguousarray(vectors, dtype=np.float32)
        unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
        self.ids = np.asarray(ids)
        self.position = {str(obj): i for i, obj in enumerate(self.ids)}
        self.vectors = unit
        self.index = faiss.IndexFlatIP(unit.shape[1])
        self.index.add(unit)

    def query(self, like: str, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        if like not in self.position:
            raise DataError(f"id {like!r} is not among the {len(self.ids)} embedded objects")
        if k < 1:
            raise DataError(f"the number of neighbours must be at least 1, got {k}")
        k = min(k, len(self.ids) - 1)
        sims, hits = self.index.search(self.vectors[[self.position[like]]], k + 1)
        keep = hits[0] != self.position[like]  # the object itself is not its own neighbour
        return self.ids[hits[0][keep][:k]], (1.0 - sims[0][keep][:k])
