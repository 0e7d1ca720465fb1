"""Image embeddings with and without the image's context kept (``model.keep_context``) and
with the object's colours as context (``model.image_colours``): docs/benchmarks.md,
"Colours as context".

    .venv/bin/python benchmarks/image_context.py [--data runs/reference/data] [--steps 1500]

Image-only ``tiny`` models (mixed objective, the reference recipe's ``photo``
augmentations, ``--steps`` steps of 32) are trained on the reference survey's galaxies,
one per variant, unless their run folders exist:

* ``plain`` — the brightness as context, nothing kept;
* ``keep`` — ``model.keep_context=['image']`` (the brightness read back from the embedding);
* ``colours+keep`` — ``model.image_colours=true`` as well (brightness and colours kept);
* ``colours+keep-8`` — the same with only each batch's first 8 galaxies read back
  (``model.keep_context_rows=8``, the demo's setting), not all 32.

Their embeddings (the default pooling at the middle block) and the hand-crafted photutils
features are probed by the bench's own harness (``few_shot_curve``: linear probes, 5 label
draws per budget) for early/late type (macro-F1) and g − r, r magnitude and redshift (R²).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from keep_context import probe_table, train_pilot  # noqa: E402

from astroloom.data.normalise import robust_noise_scale  # noqa: E402
from astroloom.data.shards import load_image_set  # noqa: E402
from astroloom.evaluate.embed import embed_images  # noqa: E402
from astroloom.evaluate.handcrafted import handcrafted_features  # noqa: E402
from astroloom.model.checkpoint import load_checkpoint  # noqa: E402
from astroloom.model.multimodal import EMBED_POOL  # noqa: E402
from astroloom.tokenize.multimodal import image_description  # noqa: E402

BUDGETS = (30, 100, 300)
VARIANTS = {
    "plain": [],
    "keep": ["model.keep_context=['image']"],
    "colours+keep": ["model.keep_context=['image']", "model.image_colours=true"],
    # Each batch's first 8 galaxies read back, not all 32 (the demo's setting).
    "colours+keep-8": [
        "model.keep_context=['image']",
        "model.image_colours=true",
        "model.keep_context_rows=8",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("runs/reference/data"))
    parser.add_argument("--runs", type=Path, default=Path("runs/image-context"))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("runs/image-context.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    images = load_image_set(args.data)
    features = {}
    for name in args.variants.split(","):
        if name not in VARIANTS:
            parser.error(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        overrides = ["model.modalities=['image']", "augment.preset='photo'", *VARIANTS[name]]
        out = args.runs / f"{name}-seed{args.seed}"
        run = train_pilot(args.data, out, args.steps, args.seed, overrides)
        model, _, tokenizer = load_checkpoint(run)
        # The data's pixel scale and zero point, as `astroloom embed` and the bench read them
        # (before 2026-12-03 this pilot left them out: every brightness read as unknown).
        pixel_scale, zero_point = image_description(images.info)
        features[name] = embed_images(
            model,
            tokenizer,
            images.images,
            model.default_layer(),
            EMBED_POOL,
            progress=False,
            pixel_scale=pixel_scale,
            zero_point=zero_point,
        )
    cached = args.runs / "handcrafted.npy"
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        hand = handcrafted_features(images.images, robust_noise_scale(images.images), False)
        np.save(cached, hand)
    features["hand-crafted"] = np.load(cached)
    labels = images.labels
    kinds = np.array(
        [k if k in ("early", "late") else None for k in labels["morph_type"]], dtype=object
    )
    targets = [
        ("morph_type", kinds, "classification", "macro_f1"),
        ("g_r", labels["g_r"].astype(float), "regression", "r2"),
        ("mag_r", labels["mag_r"].astype(float), "regression", "r2"),
        ("redshift", labels["redshift"].astype(float), "regression", "r2"),
    ]
    results = probe_table(features, targets, BUDGETS)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
