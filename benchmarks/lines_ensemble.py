"""Does the redshift map of an ensemble of fine-tuned runs find the lines more often, and
more reliably, than one run? (issue [interpret]; docs/benchmarks.md, "the map of an
ensemble of fine-tuned runs").

    .venv/bin/python benchmarks/lines_ensemble.py --model RUN --data DATA \
        [--seeds 0,1,2] [--steps 4000] [--flat-views 0.5 [--flat-lines-sigma 5]] \
        [--keep runs/lines-tuned] [--out runs/lines-ensemble.json]

Each seed's run is :func:`astroloom.interpret.tuned.fine_tune` on the split of
``benchmarks/lines_finetuned.py``; it is kept in ``--keep`` as ``seedS-STEPS`` and read back
instead of trained when it is there. Integrated gradients are linear in the function they
explain, so the map of the ensemble's mean redshift is the mean of its members' maps (each
from the spectrum's continuum). For every subset of the seeds: the held-out R² of the mean
redshift, its median error on the late types whose lines stand out with and without those
lines and with their continuum flattened (the lines alone left to read), and how often the
mean map peaks within 20 Å of a line; and how alike the maps of two disjoint sets of as many
runs are (``agreement``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).parent))
from interpret import rate  # noqa: E402
from lines_finetuned import setup  # noqa: E402

from astroloom.data.multiset import keep  # noqa: E402
from astroloom.interpret.known import near_lines, without_lines  # noqa: E402
from astroloom.interpret.tuned import TunedProbe, fine_tune, flat_continuum  # noqa: E402


def member(
    f, data, gone, flat_rows, wave, rows, test, train, seed: int, steps: int, folder: Path,
    flat: float, sigma: float,
) -> dict:
    """One run's continuum-fill maps of ``rows`` and its redshifts: on the held-out galaxies,
    on ``rows``, on ``gone`` (``rows`` with their lines replaced by the continuum) and on
    ``flat_rows`` (``rows`` with their continuum flattened: only the lines left to read)."""
    if (folder / "probe.json").exists():
        tuned = TunedProbe.load(folder, f)
    else:
        start = time.perf_counter()
        tuned = fine_tune(
            f, keep(data, train), "redshift", ["spectrum"], steps=steps, hold_out=0, seed=seed,
            flat_views=flat, flat_lines_sigma=sigma,
        )
        print(f"seed {seed}: trained in {time.perf_counter() - start:.0f} s", flush=True)
        tuned.save(folder)
    ex, target = tuned.explainer(data, fill="continuum"), tuned.target()
    maps = np.stack(
        [
            ex.integrated_gradients(str(data.ids[i]), target).values["spectrum"].reshape(-1)
            for i in rows
        ]
    )[:, : len(wave)]
    out = {"maps": np.nan_to_num(maps)}
    with torch.no_grad():
        for name, idx in (("test", test), ("rows", rows)):
            batch = {m: t.take(torch.as_tensor(idx)) for m, t in ex.tokens.items()}
            out[name] = target(ex.embed(batch)).numpy()
        for name, changed in (("rows without lines", gone), ("rows flattened", flat_rows)):
            out[name] = target(
                ex.embed(ex.foundation.tokens_from_set(changed, ["spectrum"]))
            ).numpy()
    return out


def agreement(runs: dict, seeds: list[int]) -> dict:
    """How alike the maps of two disjoint sets of k runs are, for each k: Spearman's ρ between
    the two mean maps of a galaxy, averaged over the galaxies and over every way of drawing
    the two sets from ``seeds``. A map that does not depend on the draw of its runs gives 1."""
    out = {}
    for k in range(1, len(seeds) // 2 + 1):
        rhos = []
        for one in itertools.combinations(seeds, k):
            for two in itertools.combinations([s for s in seeds if s not in one], k):
                if one > two:
                    continue  # each unordered pair once
                a = np.mean([runs[s]["maps"] for s in one], axis=0)
                b = np.mean([runs[s]["maps"] for s in two], axis=0)
                rhos.append(np.mean([spearmanr(x, y)[0] for x, y in zip(a, b, strict=True)]))
        out[str(k)] = {"rho": float(np.mean(rhos)), "spread": float(np.std(rhos)),
                       "pairs": len(rhos)}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a run or model name with spectra")
    parser.add_argument("--data", type=Path, required=True, help="a mock survey")
    parser.add_argument("--seeds", default="0,1,2", help="the runs' seeds, comma-separated")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--lines", type=int, default=240, help="late types scored (held out)")
    parser.add_argument("--flat-views", type=float, default=0.0,
                        help="share of the spectra with a line shown flattened")  # fmt: skip
    parser.add_argument("--flat-lines-sigma", type=float, default=5.0,
                        help="a line stands this many σ above the continuum; 0: flatten any "
                        "spectrum (the first recipe, --flat-views 0.2)")  # fmt: skip
    parser.add_argument("--keep", type=Path, default=Path("runs/lines-tuned"))
    parser.add_argument("--out", type=Path, default=Path("runs/lines-ensemble.json"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    f, data, wave, late, strong, test, train = setup(args.model, args.data, args.lines)
    rows = late[strong]
    gone = without_lines(keep(data, rows), wave)
    flat_rows = flat_continuum(keep(data, rows))
    runs = {
        s: member(f, data, gone, flat_rows, wave, rows, test, train, s, args.steps,
                  args.keep / f"seed{s}-{args.steps}", args.flat_views, args.flat_lines_sigma)
        for s in seeds
    }  # fmt: skip
    z = data.labels["redshift"].astype(float)
    near = np.stack([near_lines(wave, z[i]) for i in rows])
    result: dict = {"model": str(args.model), "data": str(args.data.resolve()),
                    "steps": args.steps, "flat_views": args.flat_views,
                    "flat_lines_sigma": args.flat_lines_sigma,
                    "galaxies": len(rows)}  # fmt: skip
    for size in range(1, len(seeds) + 1):
        for combo in itertools.combinations(seeds, size):

            def mean(key: str, combo: tuple = combo) -> np.ndarray:
                return np.mean([runs[s][key] for s in combo], axis=0)

            peaks = np.abs(mean("maps")).argmax(axis=1)
            error = np.median(np.abs(mean("rows") - z[rows]))
            without = np.median(np.abs(mean("rows without lines") - z[rows]))
            flattened = np.median(np.abs(mean("rows flattened") - z[rows]))
            result["+".join(map(str, combo))] = {
                "r2 held out": float(1 - np.mean((mean("test") - z[test]) ** 2) / np.var(z[test])),
                "median error": float(error),
                "median error, lines removed": float(without),
                "median error, continuum flattened": float(flattened),
                "peak on a line": rate(near[np.arange(len(rows)), peaks]),
            }
            print(combo, json.dumps(result["+".join(map(str, combo))]), flush=True)
    result["agreement"] = agreement(runs, seeds)
    print("agreement", json.dumps(result["agreement"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
