"""Linear probes: cross-validated ridge regression per label, beside baselines.

Every method is scored on the same folds. The baselines answer two questions a reader of
the table asks: would plain PCA of the pixels do as well (same dimension), and how much
comes from the architecture alone (the same transformer with random weights)?
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict

from astroloom.data.neighbours import mask_neighbours, masks_neighbours
from astroloom.data.schema import LABELS_FROM_CATALOGUE, DataError
from astroloom.data.shards import load_image_set
from astroloom.evaluate.embed import (
    EMBED_ORIENTATIONS,
    EMBED_POOL,
    Embeddings,
    embed_images,
    read_embeddings,
)
from astroloom.evaluate.fewshot import standardised
from astroloom.model.checkpoint import load_checkpoint
from astroloom.model.multimodal import build_model
from astroloom.tokenize.image import image_zooms
from astroloom.tokenize.multimodal import image_description

ALPHAS = np.logspace(-3, 4, 15)


@dataclass
class ProbeScore:
    r2: float
    rmse: float
    n: int
    predictions: np.ndarray = field(repr=False)
    truth: np.ndarray = field(repr=False)


def ridge_probe(
    features: np.ndarray, target: np.ndarray, folds: int = 5, seed: int = 0
) -> ProbeScore:
    """Out-of-fold predictions of a standardised ridge (regularisation chosen per fold)."""
    if len(features) != len(target):
        raise ValueError(f"{len(features)} feature rows but {len(target)} targets")
    return ridge_probes(features, np.asarray(target)[:, None], folds, seed)[0]


def ridge_probes(
    features: np.ndarray, targets: np.ndarray, folds: int = 5, seed: int = 0
) -> list[ProbeScore]:
    """:func:`ridge_probe` of each column of ``targets`` ``(N, K)`` at once: one
    decomposition of each fold's features serves every target, and each target still gets
    its own penalty (``alpha_per_target``), so the scores equal K separate probes. The
    decomposition is the design matrix's SVD, whose leave-one-out diagonal costs N × D per
    penalty instead of N × D² (the demo's probe stage: 194 s → 49 s; docs/benchmarks.md,
    "Probe harness speed")."""
    targets = np.asarray(targets, dtype=float)
    if len(features) != len(targets):
        raise ValueError(f"{len(features)} feature rows but {len(targets)} targets")
    if len(targets) < 2 * folds:
        raise ValueError(f"{len(targets)} labelled objects are too few for {folds}-fold probing")
    model = standardised(RidgeCV(alphas=ALPHAS, gcv_mode="svd", alpha_per_target=True))
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    pred = cross_val_predict(model, features, targets, cv=splitter).reshape(targets.shape)
    out = []
    for k in range(targets.shape[1]):
        y, p = targets[:, k], pred[:, k]
        resid = y - p
        r2 = 1.0 - float(np.sum(resid**2) / np.sum((y - y.mean()) ** 2))
        out.append(
            ProbeScore(
                r2=r2, rmse=float(np.sqrt(np.mean(resid**2))), n=len(y), predictions=p, truth=y
            )
        )
    return out


def same_objects(
    labels: dict[str, np.ndarray], targets: list[str]
) -> list[tuple[np.ndarray, list[str]]]:
    """``targets`` grouped by the objects whose value is finite: (mask, targets) per
    group, in the order asked; each group can be probed at once by :func:`ridge_probes`."""
    groups: dict[bytes, tuple[np.ndarray, list[str]]] = {}
    for target in targets:
        keep = np.isfinite(np.asarray(labels[target], dtype=float))
        groups.setdefault(np.packbits(keep).tobytes(), (keep, []))[1].append(target)
    return list(groups.values())


@dataclass
class ClassScore:
    """Out-of-fold scores of a logistic probe of a categorical label."""

    accuracy: float
    macro_f1: float
    roc_auc: float  # one-vs-rest macro for more than two classes; NaN if undefined
    n: int
    classes: list[str]


def logistic_probe(
    features: np.ndarray, target: np.ndarray, folds: int = 5, seed: int = 0
) -> ClassScore:
    """Out-of-fold class probabilities of a standardised logistic regression whose penalty
    is chosen by inner cross-validation, on stratified folds."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    from astroloom.evaluate.fewshot import _LOGISTIC_CV_QUIET
    from astroloom.evaluate.metrics import classification_metrics

    target = np.asarray([str(v) for v in target], dtype=object)
    classes, counts = np.unique(target, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"a class probe needs two classes or more; got {list(classes)}")
    if counts.min() < folds:
        raise ValueError(
            f"class {classes[counts.argmin()]!r} has {counts.min()} objects; {folds}-fold "
            "probing needs at least one per fold"
        )
    # Penalty by log-loss, as the few-shot probes: accuracy (the old default) favours the
    # strongest penalty whenever one class is rare, and says nothing of the ranking.
    model = standardised(
        LogisticRegressionCV(
            Cs=10, cv=3, max_iter=3000, scoring="neg_log_loss", **_LOGISTIC_CV_QUIET
        )
    )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(model, features, target, cv=splitter, method="predict_proba")
    pred = classes[proba.argmax(1)]
    m = classification_metrics(target, pred, proba, classes)
    return ClassScore(
        m["accuracy"], m["macro_f1"], m.get("roc_auc", float("nan")), len(target), list(classes)
    )


def pixel_pca_features(images: np.ndarray, stretch, n_components: int, seed: int = 0) -> np.ndarray:
    """PCA of the arcsinh-stretched pixels, the same view of the data the model gets."""
    flat = stretch(torch.from_numpy(np.nan_to_num(images))).reshape(len(images), -1).numpy()
    n_components = min(n_components, *flat.shape)
    return PCA(n_components=n_components, random_state=seed, svd_solver="randomized").fit_transform(
        flat
    )


def save_tables(out_dir: str | Path, stem: str, payload: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``stem.json`` and ``stem.md`` side by side; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    js.write_text(json.dumps(payload, indent=1) + "\n")
    md.write_text(markdown)
    return js, md


@dataclass
class ProbeReport:
    methods: list[str]
    scores: dict[str, dict[str, ProbeScore]]  # label → method → score
    dropped: dict[str, int]
    meta: dict[str, Any]
    classes: dict[str, dict[str, ClassScore]] = field(default_factory=dict)  # categorical

    def to_json(self) -> dict[str, Any]:
        return {
            "methods": self.methods,
            "meta": self.meta,
            "dropped_nan_labels": self.dropped,
            "labels": {
                label: {m: {"r2": s.r2, "rmse": s.rmse, "n": s.n} for m, s in by.items()}
                for label, by in self.scores.items()
            },
            "classes": {
                label: {m: vars(s) for m, s in by.items()} for label, by in self.classes.items()
            },
        }

    def markdown(self) -> str:
        head = "| label | " + " | ".join(f"{m} R²" for m in self.methods) + " | best |"
        rule = "|---" * (len(self.methods) + 2) + "|"
        rows = [head, rule]
        for label, by in self.scores.items():
            best = max(by, key=lambda m: by[m].r2)
            cells = " | ".join(f"{by[m].r2:.3f}" for m in self.methods)
            rows.append(f"| {label} | {cells} | {best} |")
        if self.classes:
            rows += [
                "",
                "| class label | " + " | ".join(f"{m} ROC-AUC / F1" for m in self.methods) + " |",
                "|---" * (len(self.methods) + 1) + "|",
            ]
            for label, by in self.classes.items():
                cells = " | ".join(
                    f"{by[m].roc_auc:.3f} / {by[m].macro_f1:.3f}" for m in self.methods
                )
                rows.append(f"| {label} | {cells} |")
        for label, n in self.meta.get("skipped_labels", {}).items():
            rows.append(f"- {label}: left out, {n} finite values are too few to probe")
        return "\n".join(rows) + "\n"

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        return save_tables(out_dir, "probe", self.to_json(), self.markdown())

    @property
    def foundation_methods(self) -> list[str]:
        """The columns that are the model's own embeddings (the image alone, all
        modalities, …); every other column is a baseline."""
        return [m for m in self.methods if m.startswith("foundation")]

    def margins(self) -> dict[str, dict[str, float]]:
        """label → foundation column → its R² minus the best *baseline's* (never another
        foundation column's)."""
        out = {}
        for label, by in self.scores.items():
            baselines = [by[m].r2 for m in self.methods if m not in self.foundation_methods]
            best = max(baselines, default=float("nan"))
            out[label] = {m: by[m].r2 - best for m in self.foundation_methods}
        return out


def baseline_feature_sets(
    cfg,
    tokenizer,
    pixels: np.ndarray,
    n_components: int,
    layer: int | None,
    progress: bool = True,
    pool: str = EMBED_POOL,
    orientations: int = EMBED_ORIENTATIONS,
    pixel_scale: float | None = None,
    zero_point: float | None = None,
    zooms: Sequence[float] | None = None,
    neighbours: bool | None = None,
) -> dict[str, np.ndarray]:
    """The two baselines for ``pixels``: PCA of the stretched pixels (``n_components``) and
    the same transformer, untrained (seeded), embedded at ``layer`` as the foundation was
    (``pool``, ``orientations``, ``zooms``, ``neighbours``, the data's ``pixel_scale`` and
    ``zero_point``)
    — and, where that means closer views, also from the pictures as given."""
    torch.manual_seed(cfg.train.seed + 1)
    random_model = build_model(cfg.model).eval()
    stretch = tokenizer.image.stretch
    views = image_zooms(pixel_scale, zooms)
    # Masked once for both of the untrained network's embeddings; PCA reads the pixels.
    seen = mask_neighbours(pixels) if masks_neighbours(pixel_scale, neighbours) else pixels

    def untrained(desc: str, zooms: Sequence[float]) -> np.ndarray:
        return embed_images(
            random_model,
            tokenizer,
            seen,
            layer,
            pool,
            progress=progress,
            desc=desc,
            orientations=orientations,
            pixel_scale=pixel_scale,
            zero_point=zero_point,
            zooms=zooms,
            neighbours=False,
        )

    out = {
        "pixel PCA": pixel_pca_features(pixels, stretch, n_components, cfg.train.seed),
        "random weights": untrained("embed (random weights)", views),
    }
    if views != (1.0,):
        # Closer views help a trained model and cost the untrained one (real photographs:
        # docs/benchmarks.md, "Photographs embedded from closer views"), so the untrained
        # network is also scored on the pictures as given: the stronger of the two is the
        # baseline to beat.
        out["random weights, as given"] = untrained("embed (random weights, as given)", (1.0,))
    return out


def baseline_features(emb: Embeddings, progress: bool = True) -> dict[str, np.ndarray]:
    """Baseline features for the objects of ``emb``, row-aligned with its vectors."""
    run, data = emb.meta.get("run"), emb.meta.get("data")
    if not run or not data:
        raise DataError(
            "the embeddings file does not record its run and data; cannot build baselines"
        )
    _, cfg, tokenizer = load_checkpoint(run)
    images = load_image_set(data)
    position = {obj: i for i, obj in enumerate(images.ids)}
    missing = [obj for obj in emb.ids if obj not in position]
    if missing:
        raise DataError(f"{len(missing)} embedded ids are not in {data}, e.g. {missing[:3]}")
    pixels = images.images[[position[obj] for obj in emb.ids]]
    pixel_scale, zero_point = image_description(images.info)
    return baseline_feature_sets(
        cfg,
        tokenizer,
        pixels,
        emb.vectors.shape[1],
        emb.meta.get("layer"),
        progress,
        emb.meta.get("pool", "mean"),
        # Files written before orientation averaging embedded each cutout as it lay.
        emb.meta.get("orientations", 1),
        pixel_scale,
        zero_point,
        # and each picture as given, whatever its pixel scale, with its neighbours.
        emb.meta.get("zooms", [1.0]),
        emb.meta.get("mask_neighbours", False),
    )


def probe(
    embeddings: str | Path | Embeddings,
    targets: list[str] | None = None,
    baselines: bool = True,
    folds: int = 5,
    seed: int = 0,
    progress: bool = True,
    extra: dict[str, Embeddings] | None = None,
) -> ProbeReport:
    """Probe each target label with the foundation embeddings and the baselines: ridge for
    numeric labels, logistic (accuracy, macro-F1, ROC-AUC) for categorical ones.

    ``extra`` adds named feature sets (e.g. the same model's embeddings from every
    modality), matched to the objects by id."""
    emb = embeddings if isinstance(embeddings, Embeddings) else read_embeddings(embeddings)
    numeric = [k for k, v in emb.labels.items() if v.dtype != object]
    # Asked for nothing in particular: every numeric label that can be probed; the rest
    # (a star's period among galaxies) is left out and listed, not an error.
    skipped = {}
    if targets is None:
        finite = {k: int(np.isfinite(emb.labels[k]).sum()) for k in numeric}
        skipped = {k: n for k, n in finite.items() if n < 2 * folds}
        targets = [k for k in numeric if k not in skipped]
        if not targets:
            few = f" ({', '.join(f'{k}: {n}' for k, n in skipped.items())} labelled objects)"
            raise DataError(
                "nothing to probe: the embeddings carry no numeric label with at least "
                f"{2 * folds} labelled objects{few if skipped else ''}; "
                f"{LABELS_FROM_CATALOGUE}, and a class label is probed when named (--target)"
            )
    unknown = [t for t in targets if t not in emb.labels]
    if unknown:
        raise DataError(
            f"label(s) {unknown} are not in the embeddings; available: {sorted(emb.labels)}"
        )
    categorical = [t for t in targets if t not in numeric]
    features = {"foundation": emb.vectors}
    for name, other in (extra or {}).items():
        position = {obj: i for i, obj in enumerate(other.ids)}
        missing = [obj for obj in emb.ids if obj not in position]
        if missing:
            raise DataError(f"{len(missing)} objects lack {name!r} features, e.g. {missing[:3]}")
        features[name] = other.vectors[[position[obj] for obj in emb.ids]]
    if baselines:
        features.update(baseline_features(emb, progress))
    scores: dict[str, dict[str, ProbeScore]] = {}
    classes: dict[str, dict[str, ClassScore]] = {}
    dropped: dict[str, int] = {}
    for label in categorical:  # a logistic probe: accuracy, macro-F1, ROC-AUC
        y = emb.labels[label]
        keep = np.array([v is not None and v == v for v in y])
        # A class with fewer members than folds cannot be scored: left out and counted.
        names, counts = np.unique(y[keep].astype(str), return_counts=True)
        rare = set(names[counts < folds])
        keep &= np.array([str(v) not in rare for v in y])
        dropped[label] = int((~keep).sum())
        try:
            classes[label] = {
                name: logistic_probe(x[keep], y[keep], folds=folds, seed=seed)
                for name, x in features.items()
            }
        except ValueError as err:
            raise DataError(f"label {label!r}: {err}") from err
    found_scores: dict[str, dict[str, ProbeScore]] = {}
    for label in [t for t in targets if t in numeric]:
        y = emb.labels[label]
        keep = np.isfinite(y)
        dropped[label] = int((~keep).sum())
        if keep.sum() < 2 * folds:
            raise DataError(
                f"label {label!r} has {int(keep.sum())} finite values among {len(y)} objects; "
                f"{folds}-fold probing needs at least {2 * folds}"
            )
    # Labels measured for the same objects are probed together (ridge_probes).
    for keep, labels in same_objects(emb.labels, [t for t in targets if t in numeric]):
        y = np.stack([np.asarray(emb.labels[label], float)[keep] for label in labels], axis=1)
        by_feature = {
            name: ridge_probes(x[keep], y, folds=folds, seed=seed) for name, x in features.items()
        }
        for k, label in enumerate(labels):
            found_scores[label] = {name: found[k] for name, found in by_feature.items()}
    for label in [t for t in targets if t in numeric]:  # in the order asked
        scores[label] = found_scores[label]
    meta = {
        **emb.meta,
        "folds": folds,
        "seed": seed,
        "probe": "StandardScaler + RidgeCV; StandardScaler + LogisticRegressionCV for classes",
    }
    if skipped:
        meta["skipped_labels"] = skipped  # label → its finite values, too few to probe
    return ProbeReport(list(features), scores, dropped, meta, classes)
