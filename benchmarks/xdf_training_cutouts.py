"""Unlabelled real galaxy pictures for continued pretraining: the Hubble XDF's sources, each
cut out several times at another framing and centre, ingested as a user's pictures.

scikit-image ships the XDF colour picture; its 489 sources above a lower threshold than
``real_photos.py``'s (30 counts, 30 px) are each cut out ``--per-source`` times, a square
0.7–2 times the five-equivalent-radii side and shifted by up to 3 px, resized to 64 × 64,
then ingested (``astroloom data ingest images … --bands g,r,z``). These are other galaxies
than any benchmark's, so a model continued on them can be scored on the real galaxy types
of ``real_galaxy_types.py`` without having seen those pictures:

    .venv/bin/python benchmarks/xdf_training_cutouts.py --out runs/xdf-train
    .venv/bin/astroloom train --init runs/demo/run --set "data.path='runs/xdf-train/data'" \\
        --set "out='runs/xdf-train/run'" --set train.steps=1000 --set train.warmup_steps=50 \\
        --set train.lr=5e-4 --set train.min_lr=5e-5
    .venv/bin/python benchmarks/real_galaxy_types.py --run runs/demo/run --run runs/xdf-train/run
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_photos import cutout, cutout_side, deep_field, ingest, sources  # noqa: E402


def write_cutouts(folder: Path, per_source: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    picture = deep_field()
    written = 0
    for area, cy, cx in sources(picture, threshold=30.0, min_area=30.0):
        for _ in range(per_source):
            side = int(cutout_side(area) * rng.uniform(0.7, 2.0))
            dy, dx = rng.uniform(-3, 3, 2)
            image = cutout(picture, cy + dy, cx + dx, side)
            if image is not None:
                image.save(folder / f"x{written:05d}.png")
                written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/xdf-train", help="Folder for png/ and data/.")
    parser.add_argument("--per-source", type=int, default=6, help="Cut-outs of each source.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    n = write_cutouts(out / "png", args.per_source, args.seed)
    ingest(out / "png", out / "data")
    print(f"wrote {n} cut-outs to {out / 'png'} and ingested them into {out / 'data'}")


if __name__ == "__main__":
    main()
