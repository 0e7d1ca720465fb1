"""Pooling ablation: how the token states of a run become one vector, probed on the
domain-shift renditions (benchmarks/domain_shift.py's probes and data).

    .venv/bin/python benchmarks/pooling.py runs/ds/object-norm [--data runs/renditions]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from domain_shift import early_late_auc, ridge_r2  # noqa: E402

from astroloom.data.multiset import load_multimodal_set  # noqa: E402
from astroloom.model.foundation import load_foundation  # noqa: E402


def poolings(model, batch) -> dict[str, np.ndarray]:
    plan = model.canonical_plan(batch, model.embedding_objective())
    with torch.no_grad():
        states, _ = model.hidden_states(batch, plan)
    layer, last = model.default_layer(), len(states) - 1
    mean = {k: states[k].mean(1).numpy() for k in range(1, len(states))}
    return {
        "mean": mean[layer],
        "mean, last block": mean[last],
        "mean, middle and last block": np.concatenate([mean[layer], mean[last]], 1),
        "mean and spread": np.concatenate(
            [mean[layer], states[layer].std(1, correction=0).numpy()], 1
        ),
        "mean of every block": np.concatenate([mean[k] for k in mean], 1),
        "mean, spread and quadrupole moments": model.embed(batch, pool="moments").numpy(),
        "mean of the 16 central patches": states[layer][:, :16].mean(1).numpy(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", type=Path, default=Path("runs/renditions"))
    parser.add_argument("--rendition", action="append", default=None)
    args = parser.parse_args()
    f = load_foundation(args.run)
    print("| rendition | pooling | dims | early/late ROC-AUC | log size R² | ellipticity R² |")
    print("|---|---|---:|---:|---:|---:|")
    for name in args.rendition or ["survey", "photo"]:
        data = load_multimodal_set(args.data / name, ["image"])
        y = data.labels
        for pooling, x in poolings(f.model, f.tokens_from_set(data, ["image"])).items():
            auc = early_late_auc(x, y["is_early"].astype(int))
            size = ridge_r2(x, np.log10(y["half_light_radius"]))
            ell = ridge_r2(x, y["ellipticity"])
            print(f"| {name} | {pooling} | {x.shape[1]} | {auc:.3f} | {size:.3f} | {ell:.3f} |")


if __name__ == "__main__":
    main()
