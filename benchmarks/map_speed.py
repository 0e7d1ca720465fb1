"""UMAP map of embeddings: UMAP's own NN-descent neighbours vs the FAISS neighbour graph that
`astroloom map` passes in. Each variant runs in a fresh process, as a user's command does, so
numba's compilation counts. Usage: map_speed.py [EMBEDDINGS.parquet] (default: 6,300 × 128
Gaussian vectors)."""

import json
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time, warnings
import numpy as np
began = time.perf_counter()
import umap
from astroloom.discover.embedding_map import neighbour_recall, umap_map
from astroloom.evaluate.embed import read_embeddings
warnings.simplefilter("ignore")
path, variant = sys.argv[1], sys.argv[2]
x = (read_embeddings(path).vectors if path != "-"
     else np.random.default_rng(0).normal(size=(6300, 128)).astype(np.float32))
start = time.perf_counter()
if variant == "faiss":
    coords = umap_map(x, seed=0).coords
else:
    coords = umap.UMAP(n_neighbors=15, metric="cosine", random_state=0).fit_transform(x)
done = time.perf_counter()
print(json.dumps({"variant": variant, "n": len(x), "dim": x.shape[1],
                  "import_s": start - began, "fit_s": done - start,
                  "recall": neighbour_recall(x, coords, 15)}))
"""


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "-"
    for variant in ("nndescent", "faiss"):
        began = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, path, variant], capture_output=True, text=True, check=True
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["process_s"] = time.perf_counter() - began
        print(json.dumps(row))


if __name__ == "__main__":
    main()
