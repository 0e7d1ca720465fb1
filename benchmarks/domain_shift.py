"""Domain shift: do a model's image embeddings survive a change of instrument?

The same mock galaxies are rendered three ways (astroloom.data.sim.renditions): by the
training survey, by a second instrument (0.40″/px, broader PSF, twice the noise, ADU with
zero point 27 on a sky pedestal) and as 8-bit JPEG colour photographs (unit and pixel scale
unknown, the galaxy filling 15–60 % of the frame). On each rendition the model's image
embeddings (pooled as every embedding product is, and averaged over the cutout's four
quarter turns unless --orientations says otherwise, and — for the photographs, whose pixel
scale is unknown — over their centre 1, 1.5, 2 and 3 times closer unless --zooms says
otherwise, with every source but the central one masked: as `astroloom embed` makes them),
the hand-crafted photutils features and pixel PCA (of the unit-free normalised pixels, 128
components) are probed for early/late type (logistic, ROC-AUC), half-light
radius and ellipticity (ridge, R²) with 5-fold cross-validation, the same folds for every
feature set; and, as in the held-out test on real photographs, with 175 galaxies per draw
(10 draws, mean ± std of the 5-fold ROC-AUC).

    .venv/bin/python benchmarks/domain_shift.py --data runs/renditions \\
        --run runs/demo/run [--run OTHER …] [--n 2000] [--out runs/domain_shift.json] \\
        [--no-baselines] [--device cuda] [--pool moments --pool meanstd …]

The renditions are simulated into --data the first time (2,000 galaxies: ~2 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from astroloom.data.multiset import load_multimodal_set
from astroloom.data.normalise import robust_noise_scale
from astroloom.data.sim.renditions import RENDITIONS, simulate_renditions
from astroloom.evaluate.embed import EMBED_ORIENTATIONS, EMBED_POOL, embed_images
from astroloom.evaluate.fewshot import _LOGISTIC_CV_QUIET
from astroloom.evaluate.handcrafted import handcrafted_features
from astroloom.model.foundation import load_foundation
from astroloom.model.multimodal import POOLS
from astroloom.tokenize.image import ImageTokenizer, check_zooms
from astroloom.tokenize.multimodal import image_description

ALPHAS = np.logspace(-3, 4, 15)


def early_late_auc(x: np.ndarray, early: np.ndarray, seed: int = 0) -> float:
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    probe = make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(
            Cs=10, cv=3, max_iter=3000, scoring="roc_auc", **_LOGISTIC_CV_QUIET
        ),
    )
    proba = cross_val_predict(probe, x, early, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(early, proba))


def ridge_r2(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    folds = KFold(5, shuffle=True, random_state=seed)
    pred = cross_val_predict(make_pipeline(StandardScaler(), RidgeCV(ALPHAS)), x, y, cv=folds)
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def small_sample_auc(x: np.ndarray, early: np.ndarray, n: int = 175, draws: int = 10):
    """As the held-out real-photograph test: n galaxies, 5-fold logistic ROC-AUC."""
    scores = []
    for d in range(draws):
        pick = np.random.default_rng([d, 175]).choice(len(early), n, replace=False)
        scores.append(early_late_auc(x[pick], early[pick], seed=d))
    return float(np.mean(scores)), float(np.std(scores))


def scores(x: np.ndarray, labels: dict[str, np.ndarray]) -> dict[str, float]:
    early = labels["is_early"].astype(int)
    mean175, std175 = small_sample_auc(x, early)
    return {
        "early_late_auc": early_late_auc(x, early),
        "early_late_auc_175": mean175,
        "early_late_auc_175_std": std175,
        "size_r2": ridge_r2(x, np.log10(labels["half_light_radius"])),
        "ellipticity_r2": ridge_r2(x, labels["ellipticity"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("runs/renditions"))
    parser.add_argument("--run", type=Path, action="append", default=[])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument(
        "--orientations", type=int, default=EMBED_ORIENTATIONS, choices=(1, 4, 8),
        help="turns of each cutout the embedding is averaged over (as astroloom embed)",
    )
    parser.add_argument("--device", default="cpu", help="where the models embed (cpu, cuda)")
    parser.add_argument(
        "--pool", action="append", choices=POOLS, default=None,
        help=f"pooling of the embeddings (repeatable; default {EMBED_POOL}, as astroloom embed)",
    )
    parser.add_argument(
        "--zooms", default=None,
        help="closer views of each image's centre to average over, comma-separated "
        "(default as astroloom embed: 1,1.5,2,3 for the photographs, 1 for the rest)",
    )  # fmt: skip
    args = parser.parse_args()
    zooms = None if args.zooms is None else check_zooms(args.zooms.split(","))
    if not (args.data / "photo" / "dataset.json").is_file():
        simulate_renditions(args.data, n=args.n, seed=args.seed)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in RENDITIONS:
        began = time.perf_counter()
        data = load_multimodal_set(args.data / name, ["image"])
        images = data.arrays["image"]
        labels = data.labels
        rows: dict[str, dict[str, float]] = {}
        pixel_scale, zero_point = image_description(data.info)
        for run in args.run:
            f = load_foundation(run, map_location=args.device)
            for pool in args.pool or [EMBED_POOL]:
                x = embed_images(
                    f.model, f.tokenizer, images, pool=pool, progress=False,
                    orientations=args.orientations, pixel_scale=pixel_scale,
                    zero_point=zero_point, zooms=zooms,
                )  # fmt: skip
                tag = "" if args.pool is None else f", {pool}"
                rows[f"foundation {run}{tag}"] = scores(x, labels)
        if not args.no_baselines:
            noise = robust_noise_scale(images)
            rows["hand-crafted"] = scores(
                handcrafted_features(images, noise, progress=False), labels
            )
            view = ImageTokenizer(8, noise, normalisation="object").stretch(images)
            flat = np.nan_to_num(view.numpy()).reshape(len(images), -1)
            pca = PCA(128, random_state=0, svd_solver="randomized").fit_transform(flat)
            rows["pixel PCA"] = scores(pca, labels)
        results[name] = rows
        print(f"[{name}] {time.perf_counter() - began:.0f} s", flush=True)
    print(markdown(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")


def markdown(results: dict) -> str:
    lines = [
        "| rendition | features | early/late ROC-AUC | … 175 galaxies | size R² | ellipticity R² |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        for feature, s in rows.items():
            lines.append(
                f"| {name} | {feature} | {s['early_late_auc']:.3f} | "
                f"{s['early_late_auc_175']:.3f} ± {s['early_late_auc_175_std']:.3f} | "
                f"{s['size_r2']:.3f} | {s['ellipticity_r2']:.3f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
