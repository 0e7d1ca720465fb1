"""A survey whose spectra keep only their lines: each spectrum less its running median.

A control for issue [interpret]'s emission-line target. A model trained on the full mock
spectra reads redshift from their continuum, so its redshift map need not sit on a line
whatever the attribution method. A model trained on these spectra can read redshift only
from lines (and what is left of the 4000 Å break); docs/benchmarks.md ("A model that can
read only lines") has what its maps show, beside the same network untrained:

    .venv/bin/python benchmarks/line_only_spectra.py runs/reference-shape-q3/data \\
        runs/line-only/data
    .venv/bin/astroloom train --set "model.preset='tiny'" --set "model.modalities=['spectrum']" \\
        --set "model.objective='mixed'" --set model.spectrum_patch=16 \\
        --set "data.path='runs/line-only/data'" --set "out='runs/line-only/run'" \\
        --set train.steps=2000 --set train.warmup_steps=200 --set train.lr=2e-3
    .venv/bin/python benchmarks/interpret.py --model runs/line-only/run --only lines \\
        --lines 240 --data runs/line-only/data

Everything but ``spectrum_flux`` is copied as it is: images, labels, inverse variances
(a running median adds next to no noise) and the stars' shards.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.ndimage import median_filter

WINDOW = 31  # pixels (124 Å on the mock's grid): wider than any line, narrower than the break


def lines_only(flux: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """``flux`` less its running median over ``window`` pixels; missing pixels stay missing
    (and are filled with the spectrum's median for the running median only)."""
    flux = np.asarray(flux, dtype=float)
    bad = ~np.isfinite(flux)
    if bad.all():
        return flux.astype(np.float32)
    filled = np.where(bad, np.nanmedian(flux), flux)
    out = filled - median_filter(filled, size=window, mode="nearest")
    out[bad] = np.nan
    return out.astype(np.float32)


def write(source: Path, out: Path, window: int = WINDOW) -> int:
    """Copy the dataset at ``source`` to ``out`` with its spectra reduced to their lines;
    returns how many spectra were changed."""
    info = json.loads((source / "dataset.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copy(source / "dataset.json", out / "dataset.json")
    changed = 0
    for shard in info["shards"]:
        table = pq.read_table(source / shard)
        column = table.schema.get_field_index("spectrum_flux")
        if column >= 0:
            spectra = table.column(column).to_pylist()
            reduced = [None if s is None else lines_only(s, window).tolist() for s in spectra]
            changed += sum(s is not None for s in spectra)
            field = table.schema.field(column)
            table = table.set_column(column, field, pa.array(reduced, type=field.type))
        pq.write_table(table, out / shard)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="A simulated or ingested dataset folder.")
    parser.add_argument("out", type=Path, help="Folder for the copy (replaced).")
    parser.add_argument("--window", type=int, default=WINDOW, help="Running-median width.")
    args = parser.parse_args()
    if not (args.source / "dataset.json").exists():
        raise SystemExit(f"no dataset.json in {args.source}")
    n = write(args.source, args.out, args.window)
    print(f"wrote {args.out}: {n} spectra reduced to their lines ({args.window}-pixel median)")


if __name__ == "__main__":
    main()
