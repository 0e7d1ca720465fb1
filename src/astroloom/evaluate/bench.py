"""``astroloom bench``: every target of the mock survey × every method × every label budget.

For a run and a dataset it embeds every image-bearing object with the pretrained model,
builds the baselines on the same objects (PCA of the pixels, the untrained transformer,
hand-crafted photutils photometry and morphology),
draws label-efficiency curves for the regression and classification targets that the
dataset has, and scores anomaly detection against the rare-object labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from astroloom.data.multiset import MultimodalSet, load_multimodal_set
from astroloom.data.neighbours import masks_neighbours
from astroloom.data.normalise import robust_noise_scale
from astroloom.data.schema import LABELS_FROM_CATALOGUE, DataError, DatasetInfo
from astroloom.data.shards import ImageSet, load_image_set
from astroloom.discover.anomaly import (
    ANOMALY_METHODS,
    LOF_RANGE,
    anomaly_scores,
    either_scores,
)
from astroloom.evaluate.embed import (
    EMBED_ORIENTATIONS,
    EMBED_POOL,
    embed_images,
    embed_images_by_layer,
    read_embeddings,
)
from astroloom.evaluate.fewshot import BUDGETS, METHODS, Curve, few_shot_curve
from astroloom.evaluate.finetune import finetune_curve
from astroloom.evaluate.handcrafted import handcrafted_features
from astroloom.evaluate.lightcurve_features import lightcurve_features
from astroloom.evaluate.metrics import anomaly_metrics, paired_auc_difference
from astroloom.evaluate.probe import (
    baseline_feature_sets,
    baseline_features,
    ridge_probes,
    same_objects,
    save_tables,
)
from astroloom.interpret.surprise import image_surprise_scores
from astroloom.model.checkpoint import load_checkpoint
from astroloom.model.foundation import Foundation
from astroloom.model.multimodal import build_model
from astroloom.paths import record_run
from astroloom.tokenize.image import image_zooms
from astroloom.tokenize.multimodal import image_description, info_modalities

REGRESSION_TARGETS = [
    "redshift",
    "log_stellar_mass",
    "mag_r",
    "g_r",
    "bulge_to_total",
    "half_light_radius",
    "ellipticity",
]
MAIN_METRIC = {"regression": "r2", "classification": "macro_f1"}
PROBES = ("linear", "knn", "mlp")  # for every feature set alike


def paired_difference(
    curve: Curve, metric: str, probe: str, budget: int, baseline: str
) -> dict[str, float | int | None]:
    """Foundation − ``baseline`` draw by draw: both are probed on the same labelled objects
    of each seed, so the difference of each draw is free of the draw's luck, which the two
    means share. Its mean, standard error and how many draws the foundation won (≥); the
    standard error is None for a single draw."""
    by_seed: dict[str, dict[int, float]] = {"foundation": {}, baseline: {}}
    for row in curve.rows:
        if row["method"] == probe and row["budget"] == budget and row["feature"] in by_seed:
            if metric in row and np.isfinite(row[metric]):
                by_seed[row["feature"]][row["seed"]] = row[metric]
    seeds = sorted(set(by_seed["foundation"]) & set(by_seed[baseline]))
    diff = np.array([by_seed["foundation"][s] - by_seed[baseline][s] for s in seeds])
    if not len(diff):
        return {"draws": 0, "difference": None, "difference_se": None, "draws_won": 0}
    return {
        "draws": len(diff),
        "difference": float(diff.mean()),
        "difference_se": float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else None,
        "draws_won": int((diff >= 0).sum()),
    }


def _cell_table(rows: list[dict], budgets: list[int], cell: Callable[[dict], str]) -> list[str]:
    """A Markdown table of the ``versus`` rows: one line per target, one column per budget
    ("all" for every label), ``cell`` of each row, "–" where a target has none."""
    lines = [
        "| target | " + " | ".join("all" if b < 0 else str(b) for b in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for target in dict.fromkeys(r["target"] for r in rows):
        cells = []
        for b in budgets:
            r = next((r for r in rows if r["target"] == target and r["budget"] == b), None)
            cells.append("–" if r is None else cell(r))
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    return lines


def _paired_markdown(rows: list[dict], budgets: list[int]) -> list[str]:
    """The table of paired differences, and which lost cells are within two standard
    errors of level: the few-draw cells whose ✗ the draws cannot tell from a tie."""
    paired = [r for r in rows if r.get("difference_se") is not None]
    if not paired:
        return []
    shown = [b for b in budgets if any(r["budget"] == b for r in paired)]
    lines = [
        "",
        "Foundation − that baseline, draw by draw on the same labelled objects (mean ± "
        "standard error over the draws; draws won):",
        "",
        *_cell_table(
            paired,
            shown,
            lambda r: f"{r['difference']:+.4f} ± {r['difference_se']:.4f} "
            f"({r['draws_won']}/{r['draws']})",
        ),
    ]
    level = [
        f"{r['target']} at {r['budget']}"
        for r in paired
        if not r["win"] and r["difference"] >= -2 * r["difference_se"]
    ]
    if level:
        lines += [
            "",
            f"Lost, but within two standard errors of level: {', '.join(level)}.",
        ]
    return lines + [""]


def best_anomaly_scores(
    anomalies: dict[str, dict[str, dict]],
) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """(feature, method) of the foundation's best anomaly score by ROC-AUC — its
    embeddings' or its own surprise's — and of the best other feature set's: the two the
    bench's anomaly verdict compares. None without a foundation and a rival."""
    scored = [
        (m["roc_auc"], feature, method)
        for feature, by in anomalies.items()
        for method, m in by.items()
        if np.isfinite(m.get("roc_auc", np.nan))
    ]
    ours = [s for s in scored if s[1].startswith("foundation")]
    theirs = [s for s in scored if not s[1].startswith("foundation")]
    if not ours or not theirs:
        return None
    # Ties go to the earlier-listed score, as the verdict has always read them.
    best = max(ours, key=lambda s: s[0])
    rival = max(theirs, key=lambda s: s[0])
    return best[1:], rival[1:]


@dataclass
class BenchResult:
    curves: list[Curve]
    anomalies: dict[str, dict[str, dict]]  # feature → method → metrics
    meta: dict
    layers: dict[int, dict[str, float]] = field(default_factory=dict)  # layer → target → R²
    # The anomaly verdict's two scores, their ROC-AUC difference and its bootstrap interval.
    anomaly_versus: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "meta": self.meta,
            "anomalies": self.anomalies,
            "anomaly_versus_best_baseline": self.anomaly_versus,
            "layers": self.layers,
            "curves": [
                {"target": c.target, "task": c.task, "notes": c.notes, "rows": c.rows}
                for c in self.curves
            ],
            "versus_best_baseline": self.versus(),
        }

    def versus(self, probe: str = "linear") -> list[dict]:
        """Per target and label budget: the foundation embeddings against the best baseline
        (every other feature set), both read by the same ``probe``."""
        out = []
        for curve in self.curves:
            metric = MAIN_METRIC[curve.task]
            summary = curve.summary(metric)
            budgets = sorted({b for (_, _, b) in summary}, key=lambda b: (b < 0, b))
            for budget in budgets:
                ours = summary.get(("foundation", probe, budget))
                rivals = {
                    f: v[0]
                    for (f, m, b), v in summary.items()
                    if m == probe and b == budget and f != "foundation" and np.isfinite(v[0])
                }
                if ours is None or not rivals:
                    continue
                best = max(rivals, key=rivals.get)
                out.append(
                    {
                        "target": curve.target,
                        "metric": metric,
                        "budget": budget,
                        "foundation": ours[0],
                        "baseline": best,
                        "baseline_value": rivals[best],
                        "win": ours[0] >= rivals[best],
                        **paired_difference(curve, metric, probe, budget, best),
                    }
                )
        return out

    def versus_markdown(self, probe: str = "linear") -> list[str]:
        rows = self.versus(probe)
        if not rows:
            return []
        budgets = sorted({r["budget"] for r in rows}, key=lambda b: (b < 0, b))
        lines = [
            f"## Foundation vs best baseline ({probe} probes; ✓ = foundation ≥ the best of "
            "the other feature sets)",
            "",
            *_cell_table(
                rows,
                budgets,
                lambda r: f"{'✓' if r['win'] else '✗'} {r['foundation']:.3f} vs "
                f"{r['baseline_value']:.3f} ({r['baseline']})",
            ),
        ]
        wins = [
            f"{'all' if b < 0 else b}: {sum(r['win'] for r in rows if r['budget'] == b)}/"
            f"{sum(r['budget'] == b for r in rows)}"
            for b in budgets
        ]
        total = sum(r["win"] for r in rows)
        lines += ["", f"Wins per budget — {'; '.join(wins)}; in all {total}/{len(rows)}."]
        lines += _paired_markdown(rows, budgets)
        lines += self._anomaly_verdict()
        return lines + [""]

    def _anomaly_verdict(self) -> list[str]:
        """One line: the foundation's best anomaly score against the best other one, and
        whether the gap between them is more than the draw of rare objects would make."""
        picked = best_anomaly_scores(self.anomalies)
        if picked is None:
            return []
        (ours, our_method), (rival, their_method) = picked
        mine = self.anomalies[ours][our_method]["roc_auc"]
        theirs = self.anomalies[rival][their_method]["roc_auc"]
        line = (
            f"Anomalies (best method's ROC-AUC): {'✓' if mine >= theirs else '✗'} {ours} "
            f"{mine:.3f} vs {theirs:.3f} ({rival})."
        )
        v = self.anomaly_versus
        if v.get("draws"):
            within = "within" if v["low"] <= 0 <= v["high"] else "outside"
            line += (
                f" Difference {v['difference']:+.4f}, 95 % interval {v['low']:+.4f} to "
                f"{v['high']:+.4f} over {v['draws']} bootstrap draws of the objects "
                f"(rare and ordinary resampled apart; the foundation ahead in "
                f"{100 * v['share_ahead']:.0f} % of them): level is {within} it."
            )
        return [line]

    def markdown(self) -> str:
        lines = [f"# astroloom bench: {self.meta['run']}", ""]
        for note in self.meta.get("dropped_targets", []):
            lines.append(f"- target left out: {note}")
        if self.meta.get("dropped_targets"):
            lines.append("")
        lines += self.versus_markdown()
        for curve in self.curves:
            metric = MAIN_METRIC[curve.task]
            summary = curve.summary(metric)
            budgets = sorted({b for (_, _, b) in summary}, key=lambda b: (b < 0, b))
            head = [f"{'all' if b < 0 else b}" for b in budgets]
            lines += [
                f"## {curve.target} ({metric}, mean ± std over seeds — over bootstrap resamples "
                "of the test set for 'all', a single draw; columns: labelled objects)",
                "",
                "| features | probe | " + " | ".join(head) + " |",
                "|---|---|" + "---:|" * len(budgets),
            ]
            for feature, method in dict.fromkeys((f, m) for (f, m, _) in summary):
                cells = []
                for b in budgets:
                    mean, std = summary.get((feature, method, b), (np.nan, np.nan))
                    cells.append(f"{mean:.3f} ± {std:.3f}" if np.isfinite(mean) else "–")
                lines.append(f"| {feature} | {method} | " + " | ".join(cells) + " |")
            lines += [f"- {n}" for n in curve.notes] + [""]
        if self.layers:
            names = list(next(iter(self.layers.values())))
            lines += [
                "## Layer sweep (5-fold ridge R² with every label; layer 0 = patch embeddings)",
                "",
                "| layer | " + " | ".join(names) + " |",
                "|---|" + "---:|" * len(names),
            ]
            for layer, by in self.layers.items():
                lines.append(f"| {layer} | " + " | ".join(f"{by[n]:.3f}" for n in names) + " |")
            lines.append("")
        if self.anomalies:
            kinds = sorted(
                {
                    k
                    for by in self.anomalies.values()
                    for m in by.values()
                    for k in m.get("roc_auc_by_kind", {})
                }
            )
            lines += [
                "## Anomalies (rare objects)",
                "",
                "| features | method | ROC-AUC | precision@10 | precision@50 | random |"
                + "".join(f" {k} |" for k in kinds),
                "|---|---|---:|---:|---:|---:|" + "---:|" * len(kinds),
            ]
            for feature, by in self.anomalies.items():
                for method, m in by.items():
                    per_kind = m.get("roc_auc_by_kind", {})
                    lines.append(
                        f"| {feature} | {method} | {m.get('roc_auc', np.nan):.3f} | "
                        f"{m.get('precision_at_10', np.nan):.2f} | "
                        f"{m.get('precision_at_50', np.nan):.2f} | "
                        f"{m.get('random_precision', np.nan):.3f} |"
                        + "".join(f" {per_kind.get(k, np.nan):.3f} |" for k in kinds)
                    )
            if kinds:
                lines += [
                    "",
                    "(each kind's column: the ROC-AUC of that kind of rare object alone "
                    "against the ordinary galaxies)",
                ]
        return "\n".join(lines) + "\n"

    def save(self, out: str | Path) -> tuple[Path, Path]:
        """bench.json and bench.md in ``out``; the run, data and embeddings bench.json names
        are recorded relative to ``out`` (a model name, not a local path, as given), so
        they resolve from any working directory (``paths.resolve_recorded``)."""
        meta = dict(self.meta)  # this result keeps the paths as they were given
        for key in ("run", "data", "embeddings"):
            if meta.get(key):
                meta[key] = record_run(meta[key], out)
        return save_tables(out, "bench", {**self.to_json(), "meta": meta}, self.markdown())


def _described(images: ImageSet) -> dict[str, float | None]:
    """The data's pixel scale and zero point, as `astroloom embed` reads them: without them
    the model is told the brightness is unknown (reference-colours run, 100 labels:
    early/late macro-F1 0.931 without, 0.943 with; docs/benchmarks.md, "Reference run",
    "A bench bug found on the way")."""
    pixel_scale, zero_point = image_description(images.info)
    return {"pixel_scale": pixel_scale, "zero_point": zero_point}


def bench_features(
    model,
    cfg,
    tokenizer,
    images: ImageSet,
    layer: int,
    orientations: int = EMBED_ORIENTATIONS,
    progress: bool = True,
    foundation: np.ndarray | None = None,
    jobs: int = 1,
    zooms: Sequence[float] | None = None,
    neighbours: bool | None = None,
    pool: str = EMBED_POOL,
) -> dict[str, np.ndarray]:
    """Every galaxy feature set the bench compares, row-aligned with ``images``: the
    foundation's embeddings (exactly those `astroloom embed --pool POOL` writes for the
    images; given as ``foundation`` when already made), pixel PCA (as many components as
    the default embedding has dimensions), the same network with random weights pooled
    alike, and hand-crafted photutils features (measured ``jobs`` chunks at a time)."""
    described = _described(images)
    if foundation is None:
        foundation = embed_images(
            model,
            tokenizer,
            images.images,
            layer,
            pool,
            progress=progress,
            orientations=orientations,
            zooms=zooms,
            neighbours=neighbours,
            **described,
        )
    features = {"foundation": foundation}
    features.update(
        baseline_feature_sets(
            cfg,
            tokenizer,
            images.images,
            model.embedding_dim(EMBED_POOL),
            layer,
            progress,
            pool,
            orientations=orientations,
            zooms=zooms,
            neighbours=neighbours,
            **described,
        )
    )
    # The first wave: photometry and morphology measured by photutils, not learned.
    # Measured on the bench data's own sky noise, not the model's training survey's.
    features["hand-crafted"] = handcrafted_features(
        images.images, robust_noise_scale(images.images), progress, jobs
    )
    return features


def run_bench(
    run: str | Path,
    data: str | Path,
    budgets: Sequence[int | None] = BUDGETS,
    seeds: int = 5,
    targets: Sequence[str] | None = None,
    layer_sweep: bool = True,
    progress: bool = True,
    cnn_steps: int = 0,
    orientations: int = EMBED_ORIENTATIONS,
    jobs: int = -1,
    layer: int | None = None,
    zooms: Sequence[float] | None = None,
    neighbours: bool | None = None,
) -> BenchResult:
    """Every target × feature set × probe × label budget, anomalies and a layer sweep.
    Image embeddings (the foundation's and the random network's) are averaged over
    ``orientations`` turns of each cutout and over ``zooms`` (default: closer views of
    pictures of unknown pixel scale), their neighbours masked or not as ``neighbours``
    says (default: masked in pictures of unknown pixel scale), as ``astroloom embed``
    makes them.
    ``cnn_steps`` > 0 adds the second wave: a ResNet trained from scratch on the pixels for
    each regression target, budget and seed (the same splits), for that many steps.
    ``jobs`` probes are fitted at a time (-1: one per core; the scores do not depend on
    it). ``layer`` is the block whose output the foundation's embeddings pool, as
    ``astroloom embed --layer`` (default: the model's middle block)."""
    model, cfg, tokenizer = load_checkpoint(run)
    if layer is None:
        layer = model.default_layer()
    elif not 0 <= layer <= cfg.model.n_layer:
        raise DataError(
            f"layer {layer} is not a block of this model: choose 0 (the patch embeddings) "
            f"to {cfg.model.n_layer}"
        )
    galaxy_targets = set(REGRESSION_TARGETS) | {"morph_type", "is_rare"}
    star_targets = {"var_class", "period"}
    known = galaxy_targets | star_targets
    # A dataset's own catalogue labels (a user's Hubble types, say) are benched too: numbers
    # as regression, classes as classification; by default only where the data has none of
    # the survey targets above, so the mock survey's bench stays what it was.
    info = DatasetInfo.load(data)
    own = [k for k in info.label_names if k not in known]
    if targets is not None:
        unknown = [t for t in targets if t not in known and t not in own]
        if unknown:
            raise DataError(
                f"unknown bench target(s) {unknown}; bench scores {sorted(known)} and the "
                f"data's own labels {own}"
            )
        own_asked = [t for t in targets if t in own]
    else:
        own_asked = own if not set(info.label_names) & galaxy_targets else []
    own_classes = [t for t in own_asked if info.is_categorical(t)]
    if targets is not None and not set(targets) & (galaxy_targets | set(own)):
        curves = lightcurve_curves(
            model, cfg, tokenizer, data, budgets, seeds, progress, jobs, layer
        )
        if not curves:
            raise DataError(f"{data} has no light curves to score {list(targets)} on")
        meta = {"run": str(run), "data": str(data), "layer": layer, "seeds": seeds}
        return BenchResult(curves=curves, anomalies={}, meta=meta)
    images = load_image_set(data)
    described = _described(images)  # the surprise and the layer sweep read them the same way
    seconds: dict[str, float] = {}

    @contextmanager
    def stage(name: str):  # where a bench's time goes, in bench.json's meta
        began = time.perf_counter()
        yield
        seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - began, 1)

    labels = images.labels
    # Galaxy targets here: numeric labels the galaxies have (the stars' are scored below).
    asked = [t for t in (targets or REGRESSION_TARGETS) if t in REGRESSION_TARGETS] + [
        t for t in own_asked if t not in own_classes
    ]
    wanted = [
        t
        for t in asked
        if t in labels and labels[t].dtype != object and np.isfinite(labels[t]).any()
    ]
    dropped = [
        f"{t}: not a label of {data}" if t not in labels else f"{t}: no finite value"
        for t in asked
        if t not in wanted
    ]
    has_types = "morph_type" in labels and any(k in ("early", "late") for k in labels["morph_type"])
    has_rare = "is_rare" in labels and np.nansum(labels["is_rare"]) > 0
    if not (wanted or own_classes or has_types or has_rare or has_lightcurves(data)):
        # Before any embedding: a folder of pictures ingested without a catalogue.
        raise DataError(
            f"nothing to bench in {data}: it has no labels of its own, none of the survey's "
            f"({', '.join(REGRESSION_TARGETS)}, morph_type, is_rare) and no light curves; "
            + LABELS_FROM_CATALOGUE
        )
    # The sweep probes the regression targets: with none to probe (--target morph_type) it
    # is skipped. When it runs, every block's embedding comes from the one pass that makes
    # the foundation's: no more forward passes than the foundation's own embedding.
    sweep = layer_sweep and bool(wanted)
    depths = list(range(cfg.model.n_layer + 1)) if sweep else [layer]
    with stage("foundation embeddings"):
        by_layer = embed_images_by_layer(
            model,
            tokenizer,
            images.images,
            depths,
            progress=progress,
            orientations=orientations,
            zooms=zooms,
            neighbours=neighbours,
            **described,
        )
    with stage("baseline features"):
        features = bench_features(
            model,
            cfg,
            tokenizer,
            images,
            layer,
            orientations,
            progress,
            foundation=by_layer[layer],
            jobs=jobs,
            zooms=zooms,
            neighbours=neighbours,
        )
    curves = []
    for target in wanted:
        # Every feature set, the baselines' as the foundation's, read by every probe.
        with stage("galaxy probes"):
            curves.append(
                few_shot_curve(
                    features,
                    labels[target],
                    target,
                    "regression",
                    budgets,
                    PROBES,
                    seeds=seeds,
                    jobs=jobs,
                )
            )
        if cnn_steps > 0:
            cnn = finetune_curve(
                run,
                data,
                target,
                budgets,
                seeds,
                methods=("cnn",),
                steps=cnn_steps,
                progress=progress,
            )
            curves[-1].rows += [
                {**r, "feature": "supervised CNN", "method": "resnet"} for r in cnn.rows
            ]
    classes: dict[str, np.ndarray] = {}
    if "morph_type" in labels and (targets is None or "morph_type" in targets):
        # The early/late split of ordinary galaxies; rare kinds are the anomaly task's.
        classes["morph_type"] = np.array(
            [k if k in ("early", "late") else None for k in labels["morph_type"]], dtype=object
        )
    classes.update({t: labels[t] for t in own_classes})  # the data's own (None: unlabelled)
    for target, kinds in classes.items():
        with stage("galaxy probes"):
            curves.append(
                few_shot_curve(
                    features,
                    kinds,
                    target,
                    "classification",
                    budgets,
                    PROBES,
                    seeds=seeds,
                    jobs=jobs,
                )
            )
    if "lightcurve" in getattr(model, "modalities", []) and (
        targets is None or {"var_class", "period"} & set(targets)
    ):
        with stage("light-curve features"):
            stars = lightcurve_feature_sets(model, cfg, tokenizer, data, progress, layer)
        if stars is not None:
            with stage("light-curve probes"):
                curves += lightcurve_probe_curves(*stars, budgets, seeds, jobs)
    anomalies: dict[str, dict[str, dict]] = {}
    anomaly_versus: dict = {}
    with stage("anomalies"):
        if "is_rare" in labels and np.nansum(labels["is_rare"]) > 0:
            rare = labels["is_rare"] == 1
            # Which kinds of rare object each score finds, where the data names them.
            kinds = labels.get("morph_type")
            # lof-range needs more objects than its largest neighbourhood: a small survey
            # is scored by the others.
            methods = [m for m in ANOMALY_METHODS if m != "lof-range" or len(rare) > LOF_RANGE[-1]]
            scores = {
                name: {m: anomaly_scores(x, m) for m in methods} for name, x in features.items()
            }
            # The model's own prediction errors (astroloom explain --method surprise) score
            # anomalies without any embedding: listed as the foundation's too.
            surprise = image_surprise_scores(model, tokenizer.image, images.images, **described)
            scores["foundation surprise"] = surprise
            # Either signal: what the model cannot predict, or what lies outside its
            # neighbours' crowd (the local outlier factor; the plain k-NN distance before).
            either = either_scores(surprise["two-sided"], scores["foundation"]["lof"])
            scores["foundation surprise or LOF"] = {"max": either}
            anomalies = {
                name: {m: anomaly_metrics(s, rare, kinds) for m, s in by.items()}
                for name, by in scores.items()
            }
            picked = best_anomaly_scores(anomalies)
            if picked is not None:
                (ours, mine), (rival, theirs) = picked
                anomaly_versus = {
                    "foundation": [ours, mine],
                    "baseline": [rival, theirs],
                    **paired_auc_difference(scores[ours][mine], scores[rival][theirs], rare),
                }
    layers: dict[int, dict[str, float]] = {}
    with stage("layer sweep"):
        # Targets known for the same galaxies share each fold's decomposition
        # (ridge_probes), with the scores of one probe per target.
        groups = same_objects(labels, wanted)
        for depth in depths if sweep else ():
            layers[depth] = {}
            for keep, group in groups:
                y = np.stack([labels[t][keep].astype(float) for t in group], axis=1)
                found = ridge_probes(by_layer[depth][keep], y, seed=0)
                layers[depth].update({t: s.r2 for t, s in zip(group, found, strict=True)})
            layers[depth] = {t: layers[depth][t] for t in wanted}  # in the order asked
    meta = {
        "run": str(run),
        "data": str(data),
        "layer": layer,
        "orientations": orientations,
        "pool": EMBED_POOL,
        "zooms": list(image_zooms(described["pixel_scale"], zooms)),
        "mask_neighbours": masks_neighbours(described["pixel_scale"], neighbours),
        "n_objects": len(images),
        "seeds": seeds,
        "budgets": [b if b is not None else "all" for b in budgets],
        "dropped_targets": dropped,
        "seconds": seconds,
    }
    return BenchResult(
        curves=curves,
        anomalies=anomalies,
        meta=meta,
        layers=layers,
        anomaly_versus=anomaly_versus,
    )


def probe_curves(
    embeddings: str | Path,
    targets: Sequence[str] | None = None,
    budgets: Sequence[int | None] = BUDGETS,
    methods: Sequence[str] = PROBES,
    seeds: int = 5,
    baselines: bool = True,
    progress: bool = True,
    jobs: int = -1,
) -> BenchResult:
    """``astroloom probe --budget``: label-efficiency curves of an embeddings file's labels
    (numbers: regression; classes: classification), every feature set (the embeddings and,
    with ``baselines``, pixel PCA and random weights) read by every probe in ``methods``,
    ``jobs`` probes at a time (-1: one per core)."""
    unknown_methods = [m for m in methods if m not in METHODS]
    if unknown_methods:
        raise DataError(f"unknown probe(s) {unknown_methods}; choose from {list(METHODS)}")
    emb = read_embeddings(embeddings)
    targets = list(targets or emb.labels)
    unknown = [t for t in targets if t not in emb.labels]
    if unknown:
        raise DataError(
            f"label(s) {unknown} are not in the embeddings; available: {sorted(emb.labels)}"
        )
    features = {"foundation": emb.vectors}
    if baselines:
        features.update(baseline_features(emb, progress))
    curves = []
    for target in targets:
        y = emb.labels[target]
        task = "classification" if y.dtype == object else "regression"
        curves.append(few_shot_curve(features, y, target, task, budgets, methods, seeds, jobs=jobs))
    meta = {
        **emb.meta,
        "embeddings": str(embeddings),
        "run": emb.meta.get("run", str(embeddings)),
        "seeds": seeds,
        "budgets": [b if b is not None else "all" for b in budgets],
        "methods": list(methods),
    }
    return BenchResult(curves=curves, anomalies={}, meta=meta)


def has_lightcurves(data: str | Path) -> bool:
    """Whether the dataset has a light-curve column at all (its dataset.json says)."""
    return "lightcurve" in info_modalities(DatasetInfo.load(data))


def lightcurve_feature_sets(
    model, cfg, tokenizer, data, progress: bool, layer: int | None = None
) -> tuple[MultimodalSet, dict[str, np.ndarray]] | None:
    """The variable stars of ``data`` and their feature sets: the light-curve embeddings,
    the untrained model's, and Lomb–Scargle with summary statistics (the hand-crafted
    baseline); None when the data has fewer than 20 light curves."""
    if not has_lightcurves(data):
        return None
    stars = load_multimodal_set(data, ["lightcurve"])
    if len(stars) < 20:
        return None
    foundation = Foundation(model, tokenizer)
    tokens = foundation.tokens_from_set(stars, ["lightcurve"])
    torch.manual_seed(cfg.train.seed + 1)
    random_model = Foundation(build_model(cfg.model).eval(), tokenizer)
    features = {
        "foundation": foundation.embed(tokens, layer, pool=EMBED_POOL),
        "random weights": random_model.embed(tokens, layer, pool=EMBED_POOL),
        "hand-crafted": lightcurve_features(
            stars.curves["lc_time"],
            stars.curves["lc_mag"],
            stars.curves["lc_band"],
            len(tokenizer["lightcurve"].bands),
            progress,
        ),
    }
    return stars, features


def lightcurve_probe_curves(
    stars: MultimodalSet, features: dict[str, np.ndarray], budgets, seeds: int, jobs: int = 1
) -> list[Curve]:
    """Variable-star log period and class, every feature set read by every probe."""
    period = stars.labels["period"].astype(float)
    log_period = np.where(period > 0, np.log10(np.where(period > 0, period, 1.0)), np.nan)
    small = [b for b in budgets if b is None or b <= len(stars)]
    regression = few_shot_curve(
        features, log_period, "log10_period", "regression", small, PROBES, seeds, jobs=jobs
    )
    classes = few_shot_curve(
        features,
        stars.labels["var_class"],
        "var_class",
        "classification",
        small,
        PROBES,
        seeds,
        jobs=jobs,
    )
    return [regression, classes]


def lightcurve_curves(
    model,
    cfg,
    tokenizer,
    data,
    budgets,
    seeds: int,
    progress: bool,
    jobs: int = 1,
    layer: int | None = None,
) -> list[Curve]:
    """Variable-star class and period from light-curve embeddings, against Lomb–Scargle
    and summary statistics (the hand-crafted baseline) and the untrained model."""
    found = lightcurve_feature_sets(model, cfg, tokenizer, data, progress, layer)
    if found is None:
        return []
    return lightcurve_probe_curves(*found, budgets, seeds, jobs)
