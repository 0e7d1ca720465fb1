"""Real photographs with real Hubble types: does a 5-fold logistic probe on an embedding tell
early (E, S0) from late (S, Irr) galaxies?

This is the held-out test of issue [transfer] (175 real photographs, catalogue Hubble
types, 64 × 64 PNGs ingested with ``--bands g,r,z``, a plain 5-fold logistic probe; two
colour numbers reach ROC-AUC 0.69 there) rebuilt from data anyone can install: Debian's
``stellarium-data`` package (``apt-get install stellarium-data``) ships ~150 colour
photographs of nearby galaxies (amateur and observatory images, each placed on the sky by
its corner coordinates) beside Stellarium's deep-sky catalogue, which gives each galaxy's
position, size and morphological type (NED/RC3 notation or a numerical stage).

Each galaxy is cut out of its picture as a square ``--frame`` times its catalogued major
axis, centred on its catalogued position (the picture's corners give the tangent-plane
mapping), resized to 64 × 64 (Lanczos) and saved as PNG. The catalogue's types go in a CSV
beside them, and the pictures are ingested as a user would:
``astroloom data ingest images DIR --catalog types.csv --bands g,r,z``, which reads the
types into ``morph_early`` (``astroloom.data.morphology``). Dwarf spheroidals (resolved
star fields with no light to classify at 64 px) and greyscale pictures are left out.

Scored: ROC-AUC of out-of-fold probabilities of scikit-learn's default logistic regression
on the raw vectors (as the held-out test), 5-fold stratified, mean ± std over ``--shuffles``
fold draws, and beside it what ``astroloom probe`` reports (standardised, penalty by inner
cross-validation), for two colour numbers, pixel PCA (32), the hand-crafted
photutils features, random weights (the first run's network, untrained) and each run's
image embeddings under each pooling — as ``astroloom embed`` makes them (the mean over
the picture and its centre 1.5, 2 and 3 times closer, since a photograph's pixel scale is
unknown, every source but the central one masked first) and from the picture as given
(``--zooms 1``, still masked), for the random weights too. Then
a paired bootstrap over galaxies (the sample is small, so its own draw is the larger
error): each feature set against the best baseline.

    apt-get install stellarium-data
    .venv/bin/python benchmarks/real_galaxy_types.py --run runs/demo/run [--run …] \\
        [--frame 1.5] [--work runs/real-galaxy-types] [--out runs/real_galaxy_types.json]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import re
import shutil
import struct
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_photos import ingest, write_result  # noqa: E402
from real_photos_few_labels import colour_numbers  # noqa: E402

from astroloom.data.morphology import is_early  # noqa: E402
from astroloom.data.normalise import robust_noise_scale  # noqa: E402
from astroloom.data.shards import load_image_set  # noqa: E402
from astroloom.evaluate.embed import embed_images  # noqa: E402
from astroloom.evaluate.handcrafted import handcrafted_features  # noqa: E402
from astroloom.evaluate.probe import baseline_feature_sets, logistic_probe  # noqa: E402
from astroloom.model.checkpoint import load_checkpoint  # noqa: E402
from astroloom.tokenize.multimodal import image_description  # noqa: E402

STELLARIUM = Path("/usr/share/stellarium/nebulae/default")
CATALOGUE_VERSIONS = ("3.16",)  # the record layout read below (Stellarium 0.22)
GALAXY_TYPES = (0, 1, 2, 3)  # Stellarium's galaxy, active, radio and interacting galaxy
TEXTURE_NAME = re.compile(r"^(ic|m|n|u|p)(\d+)")
TEXTURE_CATALOGUE = {"m": "M", "n": "NGC", "ic": "IC", "u": "UGC", "p": "PGC"}
BASELINES = (
    "two colour numbers",
    "pixel PCA (32)",
    "hand-crafted",
    "random weights",
    "random weights, as given",
)


def read_catalogue(path: Path) -> list[dict]:
    """Stellarium's deep-sky catalogue (``catalog.dat``: gzip, Qt data stream, big-endian;
    numbers as doubles, strings as UTF-16 with a byte length)."""
    data = gzip.open(path).read()
    at = 0

    def u32() -> int:
        nonlocal at
        at += 4
        return struct.unpack_from(">I", data, at - 4)[0]

    def f64() -> float:
        nonlocal at
        at += 8
        return struct.unpack_from(">d", data, at - 8)[0]

    def text() -> str:
        nonlocal at
        n = u32()
        if n == 0xFFFFFFFF:
            return ""
        at += n
        return data[at - n : at].decode("utf-16-be")

    version, _edition = text(), text()
    if version not in CATALOGUE_VERSIONS:
        raise SystemExit(f"{path}: catalogue version {version}; this reader knows "
                         f"{CATALOGUE_VERSIONS}")  # fmt: skip
    rows = []
    while at < len(data):
        row = {"id": u32(), "ra": f64(), "dec": f64(), "bmag": f64(), "vmag": f64()}
        row |= {"otype": u32(), "mtype": text(), "major": f64(), "minor": f64(), "pa": u32()}
        row |= {k: f64() for k in ("z", "z_err", "plx", "plx_err", "dist", "dist_err")}
        row |= {k: u32() for k in "NGC IC M C B Sh2 VdB RCW LDN LBN Cr Mel PGC UGC".split()}
        row |= {"Ced": text(), "Arp": u32(), "VV": u32()}
        row |= {k: text() for k in "PK PNG SNRG ACO HCG ESO VdBH".split()}
        row |= {k: u32() for k in "DWB Tr St Ru VdBHa".split()}
        rows.append(row)
    return rows


def read_textures(path: Path) -> list[dict]:
    """``textures.json``, whose numbers may lack the leading zero (``.9794``)."""
    text = re.sub(r"([\[,:]\s*)(-?)\.(\d)", r"\g<1>\g<2>0.\3", path.read_text())
    return json.loads(text)["subTiles"]


def tangent_plane(ra, dec, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic projection about (ra0, dec0), degrees in, arcmin out (x towards east)."""
    ra, dec, ra0, dec0 = (np.radians(v) for v in (ra, dec, ra0, dec0))
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    x = np.cos(dec) * np.sin(ra - ra0) / cos_c
    y = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cos_c
    return np.degrees(x) * 60, np.degrees(y) * 60


def cut_out(picture: Image.Image, tile: dict, ra0: float, dec0: float, side_arcmin: float):
    """The square of ``side_arcmin`` centred on (ra0, dec0), 64 × 64, or None when less
    than 32 of the picture's pixels across remain inside it."""
    corners = np.array(tile["worldCoords"][0], dtype=float)
    uv = np.array(tile["textureCoords"][0], dtype=float)
    x, y = tangent_plane(corners[:, 0], corners[:, 1], ra0, dec0)
    design = np.c_[uv, np.ones(len(uv))]  # texture (u, v) → sky (x, y), affine
    cx = np.linalg.lstsq(design, x, rcond=None)[0]
    cy = np.linalg.lstsq(design, y, rcond=None)[0]
    linear = np.array([[cx[0], cx[1]], [cy[0], cy[1]]])
    u0, v0 = np.linalg.solve(linear, -np.array([cx[2], cy[2]]))
    width, height = picture.size
    px, py = u0 * width, (1 - v0) * height  # texture v runs up, picture rows down
    arcmin_per_pixel = np.sqrt(abs(np.linalg.det(linear)) / (width * height))
    half = min(side_arcmin / arcmin_per_pixel / 2, px, width - px, py, height - py)
    if half < 16:
        return None
    box = (px - half, py - half, px + half, py + half)
    return picture.crop(box).resize((64, 64), Image.LANCZOS)


def write_galaxies(root: Path, folder: Path, frame: float) -> list[dict]:
    """Cut-outs as PNGs in ``folder`` and ``types.csv`` beside them; one row per galaxy."""
    catalogue = read_catalogue(root / "catalog.dat")
    by_name = {}
    for row in catalogue:
        for key in TEXTURE_CATALOGUE.values():
            if row[key]:
                by_name.setdefault((key, row[key]), row)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rows = []
    for tile in read_textures(root / "textures.json"):
        match = TEXTURE_NAME.match(tile["imageUrl"])
        if not match:
            continue
        row = by_name.get((TEXTURE_CATALOGUE[match.group(1)], int(match.group(2))))
        if row is None or row["otype"] not in GALAXY_TYPES or row["major"] <= 0:
            continue
        if row["mtype"].startswith("dSph") or not np.isfinite(is_early(row["mtype"])):
            continue
        with Image.open(root / tile["imageUrl"]) as picture:
            if picture.mode not in ("RGB", "RGBA"):
                continue
            image = cut_out(
                picture.convert("RGB"), tile, np.degrees(row["ra"]), np.degrees(row["dec"]),
                frame * row["major"] * 60,
            )  # fmt: skip
        if image is None:
            continue
        name = Path(tile["imageUrl"]).stem
        image.save(folder / f"{name}.png")
        rows.append({"id": name, "morph": row["mtype"], "major_arcmin": row["major"] * 60})
    with (folder / "types.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, ["id", "morph", "major_arcmin"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def out_of_fold(x: np.ndarray, y: np.ndarray, shuffles: int) -> np.ndarray:
    """``(shuffles, N)`` out-of-fold probabilities of a default logistic probe."""
    scores = []
    for draw in range(shuffles):
        folds = StratifiedKFold(5, shuffle=True, random_state=draw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unscaled fits on 640 dimensions converge slowly
            p = cross_val_predict(
                LogisticRegression(max_iter=5000), x, y, cv=folds, method="predict_proba"
            )
        scores.append(p[:, 1])
    return np.array(scores)


def paired_bootstrap(y, a, b, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """ROC-AUC of ``a`` minus that of ``b`` (scores averaged over the fold draws), its 5 and
    95 % points over galaxies drawn with replacement, and the share of draws it is > 0."""
    rng = np.random.default_rng(seed)
    diffs = []
    while len(diffs) < n:
        i = rng.integers(0, len(y), len(y))
        if y[i].min() == y[i].max():
            continue
        diffs.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
    low, high = np.percentile(diffs, [5, 95])
    return float(low), float(high), float(np.mean(np.array(diffs) > 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, help="A trained run (repeatable).")
    parser.add_argument("--stellarium", default=str(STELLARIUM), help="Its nebulae folder.")
    parser.add_argument("--frame", type=float, default=1.5, help="Cut-out side / major axis.")
    parser.add_argument("--shuffles", type=int, default=10, help="Draws of the 5 folds.")
    parser.add_argument("--work", default="runs/real-galaxy-types", help="Folder for the cut-outs.")
    parser.add_argument("--out", default="runs/real_galaxy_types.json")
    args = parser.parse_args()
    root = Path(args.stellarium)
    if not (root / "catalog.dat").exists():
        raise SystemExit(f"no Stellarium catalogue in {root}: apt-get install stellarium-data")
    began = time.perf_counter()
    work = Path(args.work) / f"frame-{args.frame:g}"
    rows = write_galaxies(root, work / "png", args.frame)
    ingest(work / "png", work / "data", work / "png" / "types.csv")
    data = load_image_set(work / "data")
    index = {str(obj): k for k, obj in enumerate(data.ids)}
    order = [index[row["id"]] for row in rows]
    pixels = data.images[order]
    y = (data.labels["morph_early"][order] == "early").astype(int)
    eight_bit = np.stack(
        [np.asarray(Image.open(work / "png" / f"{row['id']}.png"), float) for row in rows]
    )
    pixel_scale, zero_point = image_description(data.info)
    features = {
        "two colour numbers": colour_numbers(eight_bit),
        "pixel PCA (32)": PCA(32, random_state=0).fit_transform(eight_bit.reshape(len(y), -1)),
        "hand-crafted": np.nan_to_num(
            handcrafted_features(pixels, robust_noise_scale(pixels), False)
        ),
    }
    for i, run in enumerate(args.run):
        model, cfg, tokenizer = load_checkpoint(run)
        layer = model.default_layer()
        if i == 0:  # the untrained network from closer views and from the pictures as given
            untrained = baseline_feature_sets(
                cfg, tokenizer, pixels, 32, layer, False,
                pixel_scale=pixel_scale, zero_point=zero_point,
            )  # fmt: skip
            for name in ("random weights", "random weights, as given"):
                features[name] = untrained[name]
        for pool in ("moments", "meanstd", "mean"):
            for views, tag in ((None, ""), ((1.0,), ", as given")):
                features[f"{run}, {pool}{tag}"] = embed_images(
                    model, tokenizer, pixels, layer, pool, progress=False,
                    pixel_scale=pixel_scale, zero_point=zero_point, zooms=views,
                )  # fmt: skip
    scores = {name: out_of_fold(x, y, args.shuffles) for name, x in features.items()}
    auc = {name: [roc_auc_score(y, s) for s in by] for name, by in scores.items()}
    classes = np.where(y == 1, "early", "late")
    probe_auc = {  # what `astroloom probe --target morph_early` reports, per fold draw
        name: [logistic_probe(x, classes, seed=d).roc_auc for d in range(args.shuffles)]
        for name, x in features.items()
    }
    best = max(BASELINES, key=lambda name: np.mean(auc[name]))
    lines = [
        f"{len(y)} galaxies ({y.sum()} early), frame {args.frame:g} × major axis; 5-fold "
        f"logistic ROC-AUC, mean ± std over {args.shuffles} fold draws; best baseline: {best}",
        "",
        f"| features | dimensions | ROC-AUC | minus {best}: 5–95 % over galaxies | share > 0 "
        "| `astroloom probe` ROC-AUC |",
        "|---|---:|---:|---|---:|---:|",
    ]
    result = {"n_galaxies": len(y), "n_early": int(y.sum()), "frame": args.frame,
              "runs": args.run, "best_baseline": best, "roc_auc": {}}  # fmt: skip
    for name, values in auc.items():
        low, high, share = paired_bootstrap(y, scores[name].mean(0), scores[best].mean(0))
        cell = "—" if name == best else f"{low:+.3f} to {high:+.3f}"
        lines.append(
            f"| {name} | {features[name].shape[1]} | {np.mean(values):.3f} ± "
            f"{np.std(values):.3f} | {cell} | {'—' if name == best else f'{share:.2f}'} | "
            f"{np.mean(probe_auc[name]):.3f} ± {np.std(probe_auc[name]):.3f} |"
        )
        result["roc_auc"][name] = {"values": values, "minus_best": [low, high], "share": share,
                                   "astroloom_probe": probe_auc[name]}  # fmt: skip
    print("\n".join(lines))
    write_result(args.out, result, began)


if __name__ == "__main__":
    main()
