"""Anomaly scores against the neighbourhood they look at: the k-NN distance and the local
outlier factor at k = 10, 20 and 50, and the largest factor over 10–50 (``lof-range``),
for the foundation's image embeddings (alone and paired with the model's surprise, as
`astroloom bench` pairs them) and for the hand-crafted photutils features, per rare kind
(docs/benchmarks.md, "Anomalies: the local outlier factor").

    .venv/bin/python benchmarks/anomaly_neighbours.py RUN DATA [--out table.json]

The features are the bench's own (`bench_features`: four turns, the data's brightness;
`--pool radial` adds the patches' radial profile), so with the default pooling the k = 10
k-NN and k = 20 LOF rows equal `astroloom bench`'s anomaly table; the
gap between the two `lof-range` scores comes with a paired bootstrap interval over the
objects. Several minutes on a 10,000-galaxy survey (embedding, surprise, photutils).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from astroloom.data.shards import load_image_set
from astroloom.discover.anomaly import anomaly_scores, either_scores
from astroloom.evaluate.bench import bench_features
from astroloom.evaluate.metrics import anomaly_metrics, paired_auc_difference
from astroloom.interpret.surprise import image_surprise_scores
from astroloom.model.checkpoint import load_checkpoint
from astroloom.model.multimodal import EMBED_POOL
from astroloom.tokenize.multimodal import image_description

KS = (10, 20, 50)


def per_kind(score: np.ndarray, rare: np.ndarray, kind: np.ndarray) -> dict[str, float]:
    """ROC-AUC of all rare objects, and of each rare kind alone, against the ordinary."""
    metrics = anomaly_metrics(score, rare, kind)
    return {"all": metrics["roc_auc"], **metrics["roc_auc_by_kind"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--pool", default=EMBED_POOL, help="The embeddings' pooling.")
    args = parser.parse_args()
    model, cfg, tokenizer = load_checkpoint(args.run)
    images = load_image_set(args.data)
    features = bench_features(
        model, cfg, tokenizer, images, model.default_layer(), pool=args.pool
    )
    pixel_scale, zero_point = image_description(images.info)
    surprise = image_surprise_scores(
        model, tokenizer.image, images.images, pixel_scale=pixel_scale, zero_point=zero_point
    )["two-sided"]
    labels = images.labels
    rare = labels["is_rare"] == 1
    kind = np.asarray(labels["morph_type"]).astype(str)
    rows: dict[str, dict[str, float]] = {}
    for k in KS:
        for method in ("knn", "lof"):
            ours = anomaly_scores(features["foundation"], method, k=k)
            rows[f"foundation {method}, k = {k}"] = per_kind(ours, rare, kind)
            rows[f"surprise or {method}, k = {k}"] = per_kind(
                either_scores(surprise, ours), rare, kind
            )
            hand = anomaly_scores(features["hand-crafted"], method, k=k)
            rows[f"hand-crafted {method}, k = {k}"] = per_kind(hand, rare, kind)
    # The largest factor over 10–50 neighbours: one setting, no k guessed for either side.
    ours = anomaly_scores(features["foundation"], "lof-range")
    rows["foundation lof-range"] = per_kind(ours, rare, kind)
    rows["surprise or lof-range"] = per_kind(either_scores(surprise, ours), rare, kind)
    hand = anomaly_scores(features["hand-crafted"], "lof-range")
    rows["hand-crafted lof-range"] = per_kind(hand, rare, kind)
    # Is the gap between the two lof-range scores more than the draw of rare objects?
    gap = paired_auc_difference(ours, hand, rare)
    kinds = [k for k in next(iter(rows.values())) if k != "all"]
    print("| score | all | " + " | ".join(kinds) + " |")
    print("|---|---:|" + "---:|" * len(kinds))
    for name, by in rows.items():
        print(f"| {name} | {by['all']:.3f} | " + " | ".join(f"{by[k]:.3f}" for k in kinds) + " |")
    print(
        f"foundation − hand-crafted lof-range: {gap['difference']:+.4f}, 95 % interval "
        f"{gap['low']:+.4f} to {gap['high']:+.4f} (paired bootstrap of the objects, "
        f"{gap['draws']} draws; foundation ahead in {100 * gap['share_ahead']:.0f} %)"
    )
    if args.out:
        where = {"run": str(args.run.resolve()), "data": str(args.data.resolve())}
        args.out.write_text(json.dumps({**where, **rows, "lof_range_gap": gap}))


if __name__ == "__main__":
    main()
