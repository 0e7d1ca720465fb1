"""Attribution, attention and surprise maps measured (docs/benchmarks.md, "Attribution").

    .venv/bin/python benchmarks/interpret.py [--data DIR] [--survey runs/reference/data]

With the shipped model ``astroloom/mock-tiny`` (5 blocks × 128, the ``tiny`` preset) on a
mock survey (simulated into ``--data`` when that folder is empty):

1. speed of one object's map per method (64 image patches), median over objects;
2. a label planted in four patches: share of the attribution mass that lands there;
3. the redshift probe from spectra (``--lines`` late-type galaxies, 60 by default; ``--fill``
   one fill only; the ``spectrum`` model of a run given as ``--model``): how often the
   integrated-gradient peak lies within 20 Å of an emission line at the galaxy's
   redshift, beside the chance rate and the same network with every weight re-drawn, for
   all of them and for those with a line pixel above 5σ; and, without any map, how far the
   probe's redshift moves when those galaxies' lines are replaced by their continuum;
4. surprise maps of painted satellite trails and lensed arcs: how often the most
   surprising patch lies on the painted light;
5. the sanity checks (Adebayo et al. 2018): rank correlations after randomisation;
6. with ``--survey``: surprise anomaly scores against the survey's rare objects, per kind.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from astroloom.data.multiset import keep, load_multimodal_set
from astroloom.data.shards import load_image_set
from astroloom.data.sim.survey import simulate_survey
from astroloom.evaluate.metrics import anomaly_metrics
from astroloom.interpret.attribution import EXPLAIN_POOL, FILLS, Explainer
from astroloom.interpret.known import (
    line_hits,
    line_significance,
    lines_removed,
    near_lines,
    paint_rare,
    plant_source,
    region_share,
    surprise_hits,
)
from astroloom.interpret.sanity import sanity_checks
from astroloom.interpret.surprise import image_surprise_scores
from astroloom.model.foundation import Foundation
from astroloom.model.multimodal import build_model

IMAGE_FILLS = ("inpaint", "empty")  # an image has no continuum
SPECTRUM_FILLS = ("empty", "continuum", "inpaint")


def speed(f: Foundation, galaxies, n: int) -> dict:
    ex = Explainer(f, galaxies, use=["image"])
    target = ex.probe("redshift")
    ex.reference()
    out = {}
    for method in ("occlusion", "integrated-gradients", "attention", "surprise"):
        times = []
        for object_id in galaxies.ids[:n]:
            start = time.perf_counter()
            ex.explain(
                str(object_id),
                method,
                target if method in ("occlusion", "integrated-gradients") else None,
            )
            times.append(time.perf_counter() - start)
        out[method] = statistics.median(times)
    return out


def planted(f: Foundation, galaxies, n: int) -> dict:
    data, has = plant_source(f, galaxies)
    out = {}
    for fill in IMAGE_FILLS:
        ex = Explainer(f, data, use=["image"], fill=fill)
        target = ex.probe("planted", "source")
        for method in ("occlusion", "integrated-gradients"):
            shares = [
                region_share(ex.explain(str(i), method, target).tokens["image"])
                for i in data.ids[has][:n]
            ]
            out[f"{method}, fill {fill}"] = {
                "mean": float(np.mean(shares)),
                "median": float(np.median(shares)),
                "min": float(np.min(shares)),
                "n": len(shares),
            }
    return out


def rate(hits: np.ndarray) -> dict:
    r = float(hits.mean()) if len(hits) else float("nan")
    return {
        "hit_rate": r,
        "standard_error": float(np.sqrt(r * (1 - r) / max(len(hits), 1))),
        "n": len(hits),
    }


def spectral_lines(
    f: Foundation, data_dir: Path, n: int, fills=SPECTRUM_FILLS, pool: str = EXPLAIN_POOL
) -> dict:
    """Per fill: how often the redshift probe's integrated-gradient peak lies within 20 Å
    of a line, for the late types and for those whose lines stand out (a pixel above 5σ),
    beside the same network with every weight re-drawn (the probe refitted); and, without
    any map, how much the probe's redshift needs the lines at all."""
    data = load_multimodal_set(data_dir, ["spectrum"])
    data = keep(data, data.present["spectrum"])
    wave = f.tokenizer["spectrum"].wavelength
    late = np.flatnonzero(data.labels["morph_type"] == "late")[:n]
    strong = np.array(
        [
            line_significance(
                data.arrays["spectrum_flux"][i][: len(wave)],
                data.arrays["spectrum_ivar"][i][: len(wave)],
                wave,
                data.labels["redshift"][i],
            )
            > 5
            for i in late
        ]
    )
    chance = float(np.mean([near_lines(wave, data.labels["redshift"][i]).mean() for i in late]))
    torch.manual_seed(0)
    untrained = Foundation(build_model(f.model.cfg).eval(), f.tokenizer)
    out = {}
    for fill in fills:
        row = {"chance": chance}
        for name, model in (("trained", f), ("weights re-drawn", untrained)):
            ex = Explainer(model, data, use=["spectrum"], fill=fill, pool=pool)
            target = ex.probe("redshift")
            hits = line_hits(ex, target, late, wave)
            row[name] = {"late types": rate(hits), "with a line above 5 sigma": rate(hits[strong])}
            if fill == fills[0] and name == "trained":
                out["lines removed (no map)"] = lines_removed(ex, target, late[strong], wave)
        out[f"fill {fill}"] = row
    return out


def painted(f: Foundation, galaxies, n: int) -> dict:
    data, where = paint_rare(galaxies, n)
    hits = surprise_hits(Explainer(f, data, use=["image"]), where)
    scores = image_surprise_scores(f.model, f.tokenizer.image, data.arrays["image"])
    truth = np.isin(data.ids, list(where))
    return {
        "hit_rate": {k: float(np.mean(v)) for k, v in hits.items()},
        "n": {k: len(v) for k, v in hits.items()},
        "roc_auc": {k: float(roc_auc_score(truth, s)) for k, s in scores.items()},
    }


def survey_anomalies(f: Foundation, survey: Path) -> dict:
    images = load_image_set(survey)
    is_rare = images.labels["is_rare"] == 1
    kinds = images.labels["morph_type"].astype(str)
    scores = image_surprise_scores(f.model, f.tokenizer.image, images.images)
    out = {}
    for name, s in scores.items():
        out[name] = anomaly_metrics(s, is_rare)
        for kind in np.unique(kinds[is_rare]):
            keep_rows = (~is_rare) | (kinds == kind)
            out[name][f"roc_auc_{kind}"] = float(roc_auc_score(is_rare[keep_rows], s[keep_rows]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("runs/interpret-survey"))
    parser.add_argument("--survey", type=Path, default=None)
    parser.add_argument("--model", default="astroloom/mock-tiny")
    parser.add_argument(
        "--pool", default=EXPLAIN_POOL, help="the spectrum maps' pooling (the probe reads it)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/interpret.json"))
    parser.add_argument(
        "--only", choices=["planted", "lines", "sanity"], default=None, help="measure one part only"
    )
    parser.add_argument(
        "--lines", type=int, default=60, help="late-type galaxies whose spectrum maps are scored"
    )
    parser.add_argument(
        "--fill", choices=FILLS, default=None, help="the spectrum maps' fill (default all three)"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    if not (args.data / "dataset.json").exists():
        simulate_survey(args.data, n_galaxies=600, n_stars=0, seed=5, workers=2, progress=True)
    f = Foundation.from_pretrained(args.model)
    data = load_multimodal_set(args.data, ["image"])
    galaxies = keep(data, data.present["image"] & (data.labels["is_rare"] == 0))
    result = {"model": args.model, "n_galaxies": len(galaxies.ids)}
    wanted = lambda part: args.only in (None, part)  # noqa: E731
    if wanted(None):
        result["seconds_per_map"] = speed(f, galaxies, 20)
        print("seconds per map:", result["seconds_per_map"])
    if wanted("planted"):
        result["planted"] = planted(f, galaxies, 32)
        print("planted source, share of |attribution| in its 4 patches:", result["planted"])
    if wanted("lines"):
        fills = SPECTRUM_FILLS if args.fill is None else (args.fill,)
        result["spectral_lines"] = spectral_lines(f, args.data, args.lines, fills, args.pool)
        print("redshift IG peak within 20 Å of a line:", result["spectral_lines"])
    if wanted(None):
        result["painted"] = painted(f, galaxies, 100)
        print("surprise on painted trails/arcs:", result["painted"])
    if wanted("sanity"):
        ids = [str(i) for i in galaxies.ids[:16]]
        result["sanity"] = {
            f"{m}, fill {fill}": sanity_checks(
                Explainer(f, galaxies, use=["image"], fill=fill), ids, "redshift", m
            )
            for fill in IMAGE_FILLS
            for m in ("occlusion", "integrated-gradients")
        }
        for m, rows in result["sanity"].items():
            for r in rows:
                print(f"sanity {m}: {r['check']}: ρ {r['rho_mean']:.3f} ± {r['rho_std']:.3f}")
    if args.survey is not None and wanted(None):
        result["survey_anomalies"] = survey_anomalies(f, args.survey)
        print("surprise anomalies on", args.survey, json.dumps(result["survey_anomalies"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
