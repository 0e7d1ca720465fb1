"""Real galaxy photographs: does an embedding know a galaxy again when it is re-observed?

The Hubble eXtreme Deep Field colour picture that scikit-image ships
(``skimage.data.hubble_deep_field``, 1000 × 872 px, 8-bit RGB) holds a few hundred real
galaxies: red spheroids, blue spirals, irregulars, mergers. No Hubble types come with it,
so this benchmark asks a question that needs none. Each of the ~200 largest sources is cut
out (a square five equivalent radii wide, resized to 64 × 64, as a user's cutout service
would) and cut out a second time, re-observed: turned by a random quarter turn, mirrored,
JPEG-compressed again (quality 70–95), framed 0.8–1.25 times as wide, or shifted by up to
3 source pixels — one nuisance at a time, then all together. Both sets are brought in as a
user would (`astroloom data ingest images … --bands g,r,z`: unit and pixel scale unknown)
and embedded from the image alone. Score: the share of re-observed cutouts whose nearest
neighbour among the originals (cosine similarity of standardised features) is the same
galaxy (top-1; chance 1/N), beside random weights, pixel PCA (64 components) and the
hand-crafted photutils features on the same pixels.

    .venv/bin/python benchmarks/real_photos.py --run runs/demo/run [--run OTHER …] \\
        [--work runs/real-photos] [--out runs/real_photos.json]

Needs scikit-image (``pip install scikit-image``) for the picture.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from sklearn.preprocessing import StandardScaler

from astroloom.data.normalise import robust_noise_scale
from astroloom.data.shards import load_image_set
from astroloom.evaluate.embed import embed_images
from astroloom.evaluate.handcrafted import handcrafted_features
from astroloom.evaluate.probe import baseline_feature_sets
from astroloom.model.checkpoint import load_checkpoint
from astroloom.tokenize.multimodal import image_description

NUISANCES = ("turn", "mirror", "jpeg", "framing", "shift", "all")
PCA_COMPONENTS = 64


def deep_field() -> np.ndarray:
    try:
        from skimage import data
    except ImportError as err:
        raise SystemExit("this benchmark reads skimage.data: pip install scikit-image") from err
    return data.hubble_deep_field()


def sources(picture: np.ndarray, threshold: float = 40.0, min_area: float = 60.0):
    """(area, row, column) of the connected bright regions, largest first."""
    light = ndimage.gaussian_filter(picture.astype(float).mean(2), 2)
    labels, n = ndimage.label(light > threshold)
    index = np.arange(1, n + 1)
    area = ndimage.sum(np.ones_like(light), labels, index)
    centre = ndimage.center_of_mass(light, labels, index)
    found = sorted(zip(area, centre, strict=True), key=lambda t: -t[0])
    return [(a, cy, cx) for a, (cy, cx) in found if a >= min_area]


def cutout_side(area: float) -> int:
    """Source pixels of a galaxy's square cutout: five equivalent radii, 24 to 200."""
    return int(np.clip(5 * np.sqrt(area / np.pi), 24, 200))


def cutout(picture: np.ndarray, cy: float, cx: float, side: int) -> Image.Image | None:
    y0, x0 = int(round(cy - side / 2)), int(round(cx - side / 2))
    if y0 < 0 or x0 < 0 or y0 + side > picture.shape[0] or x0 + side > picture.shape[1]:
        return None
    return Image.fromarray(picture[y0 : y0 + side, x0 : x0 + side]).resize((64, 64), Image.LANCZOS)


def write_pairs(picture: np.ndarray, nuisance: str, folder: Path, seed: int = 0) -> int:
    """Originals and re-observed copies as PNGs in folder/orig and folder/copy."""
    rng = np.random.default_rng(seed)
    shutil.rmtree(folder, ignore_errors=True)  # no cutouts left over from another run
    for part in ("orig", "copy"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    kept = 0
    for area, cy, cx in sources(picture):
        side = cutout_side(area)
        # Every draw is made whatever the nuisance, so that each galaxy's copy differs from
        # its original by the named nuisance alone.
        widen, dy, dx = rng.uniform(0.8, 1.25), rng.uniform(-3, 3), rng.uniform(-3, 3)
        turns, mirror, quality = int(rng.integers(4)), rng.random() < 0.5, int(rng.integers(70, 96))
        use = {nuisance} if nuisance != "all" else set(NUISANCES)
        original = cutout(picture, cy, cx, side)
        copy = cutout(
            picture,
            cy + (dy if "shift" in use else 0.0),
            cx + (dx if "shift" in use else 0.0),
            int(side * widen) if "framing" in use else side,
        )
        if original is None or copy is None:
            continue
        if "turn" in use:
            copy = copy.rotate(90 * turns)
        if "mirror" in use and mirror:
            copy = copy.transpose(Image.FLIP_LEFT_RIGHT)
        if "jpeg" in use:
            buffer = io.BytesIO()
            copy.save(buffer, "JPEG", quality=quality)
            copy = Image.open(buffer).convert("RGB")
        original.save(folder / "orig" / f"xdf{kept:03d}.png")
        copy.save(folder / "copy" / f"xdf{kept:03d}.png")
        kept += 1
    return kept


def ingest(folder: Path, out: Path, catalog: Path | None = None) -> None:
    """``astroloom data ingest images`` as a user types it, with a catalogue if given."""
    subprocess.run(
        [sys.executable, "-m", "astroloom.cli", "data", "ingest", "images", str(folder)]
        + ["--out", str(out), "--bands", "g,r,z"]
        + (["--catalog", str(catalog)] if catalog is not None else []),
        check=True,
        capture_output=True,
    )


def retrieval(x: np.ndarray, n: int) -> dict[str, float]:
    """Rows n: are re-observed copies of rows :n; top-1 and top-5 of each copy's original."""
    x = StandardScaler().fit_transform(np.nan_to_num(x.astype(np.float64)))
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    similarity = x[n:] @ x[:n].T
    rank = (similarity > similarity[np.arange(n), np.arange(n)][:, None]).sum(1)
    return {"top1": float(np.mean(rank == 0)), "top5": float(np.mean(rank < 5))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, help="A trained run (repeatable).")
    parser.add_argument("--work", default="runs/real-photos", help="Folder for the cutouts.")
    parser.add_argument("--out", default="runs/real_photos.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    began = time.perf_counter()
    picture = deep_field()
    models = {run: load_checkpoint(run) for run in args.run}
    table: dict[str, dict[str, dict[str, float]]] = {}
    counts: dict[str, int] = {}  # galaxies whose second cutout stays inside the picture
    for nuisance in NUISANCES:
        folder = Path(args.work) / nuisance
        n_galaxies = counts[nuisance] = write_pairs(picture, nuisance, folder, args.seed)
        for part in ("orig", "copy"):
            ingest(folder / part, folder / f"data-{part}")
        a, b = load_image_set(folder / "data-orig"), load_image_set(folder / "data-copy")
        assert list(a.ids) == list(b.ids)
        pixels = np.concatenate([a.images, b.images])
        pixel_scale, zero_point = image_description(a.info)
        features = {}
        described = {"pixel_scale": pixel_scale, "zero_point": zero_point}
        for i, (run, (model, cfg, tokenizer)) in enumerate(models.items()):
            layer = model.default_layer()
            # As `astroloom embed` makes them (closer views of a photograph) and as given.
            for zooms, tag in ((None, ""), ((1.0,), ", as given")):
                features[f"foundation: {Path(run).name}{tag}"] = embed_images(
                    model, tokenizer, pixels, layer, progress=False, zooms=zooms, **described
                )
            if i == 0:  # the baselines once (random weights also as given), first run's shape
                features.update(
                    baseline_feature_sets(
                        cfg, tokenizer, pixels, PCA_COMPONENTS, layer, False, **described
                    )
                )
        features["hand-crafted"] = handcrafted_features(pixels, robust_noise_scale(pixels), False)
        for name, x in features.items():
            table.setdefault(name, {})[nuisance] = retrieval(x, n_galaxies)
        print(nuisance, {k: round(v[nuisance]["top1"], 3) for k, v in table.items()}, flush=True)
    lines = [
        "Re-observed real galaxies found again (top-1 among "
        + ", ".join(f"{counts[k]} ({k})" for k in NUISANCES)
        + f"), Hubble XDF, seed {args.seed}",
        "",
        "| features | " + " | ".join(NUISANCES) + " |",
        "|---|" + "---:|" * len(NUISANCES),
    ]
    for name, by in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{by[k]['top1']:.3f}" for k in NUISANCES) + " |")
    print("\n".join(lines))
    write_result(args.out, {"n_galaxies": counts, "runs": args.run, "retrieval": table}, began)


def write_result(out: str | Path, result: dict, began: float) -> None:
    """``result`` and the seconds since ``began`` as JSON in ``out``."""
    seconds = time.perf_counter() - began
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps({**result, "seconds": seconds}, indent=1))
    print(f"wrote {out} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
