"""Ridge-probe galaxy labels from each run's embeddings: image-only, and (multimodal runs)
from every modality a galaxy has. Usage: probe_runs.py DATA RUN [RUN …]"""

import sys

import numpy as np

from astroloom.data.multiset import keep, load_multimodal_set
from astroloom.evaluate.probe import ridge_probe
from astroloom.model.checkpoint import load_checkpoint
from astroloom.model.foundation import Foundation
from astroloom.model.multimodal import EMBED_ORIENTATIONS

TARGETS = ["redshift", "log_stellar_mass", "g_r", "half_light_radius", "ellipticity", "mag_r"]


def scores(x: np.ndarray, labels: dict) -> dict:
    out = {}
    for t in TARGETS:
        ok = np.isfinite(labels[t])
        out[t] = round(ridge_probe(x[ok], labels[t][ok]).r2, 3)
    return out


def main() -> None:
    data_dir, runs = sys.argv[1], sys.argv[2:]
    data = load_multimodal_set(data_dir, ["image", "spectrum", "photometry"])
    data = keep(data, np.flatnonzero(data.present["image"])[:3000])
    print("| run | embedding | " + " | ".join(TARGETS) + " |")
    print("|---" * (len(TARGETS) + 2) + "|")
    for run in runs:
        model, _, tok = load_checkpoint(run)
        f = Foundation(model, tok)
        # Tokenised from the set, so that its pixel scale and zero point are read as
        # `astroloom embed` reads them.
        image = f.embed(f.tokens_from_set(data, ["image"]), orientations=EMBED_ORIENTATIONS)
        rows = {"image": scores(image, data.labels)}
        if len(model.modalities) > 1:
            rows["all modalities"] = scores(f.embed(f.tokens_from_set(data)), data.labels)
        for kind, r in rows.items():
            print(f"| {run} | {kind} | " + " | ".join(f"{r[t]:.3f}" for t in TARGETS) + " |")


if __name__ == "__main__":
    main()
