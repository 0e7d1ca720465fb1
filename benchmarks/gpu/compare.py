"""How far two embedding files of the same objects differ (GPU against CPU)."""

import json
import sys

import numpy as np

sys.path.insert(0, "src")
from astroloom.evaluate.embed import read_embeddings

a, b = read_embeddings(sys.argv[1]), read_embeddings(sys.argv[2])
assert (a.ids == b.ids).all()
x, y = a.vectors.astype(np.float64), b.vectors.astype(np.float64)
cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
rel = np.abs(x - y).max() / np.abs(y).max()
print(
    json.dumps(
        {
            "n": len(x),
            "dim": x.shape[1],
            "min_cosine": float(cos.min()),
            "max_abs_diff": float(np.abs(x - y).max()),
            "max_rel_to_scale": float(rel),
        }
    )
)
