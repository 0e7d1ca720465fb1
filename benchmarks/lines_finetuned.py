"""Does the redshift map find the lines when the model reads them? (issue [interpret];
docs/benchmarks.md, "Attribution").

    .venv/bin/python benchmarks/lines_finetuned.py --model RUN --data DATA \
        [--steps 4000] [--lr 1e-3] [--head-init random] [--seed 0] [--lines 240] \
        [--out runs/lines-finetuned.json] [--keep runs/lines-tuned]

The frozen ridge probe of a pretrained spectrum model reads redshift from the continuum
(``benchmarks/interpret.py --only lines``). Here a copy of the spectrum model of ``RUN`` and a
linear head on its mean-pooled state at the embedding layer are trained together for
redshift by :func:`astroloom.interpret.tuned.fine_tune` (what ``astroloom explain
--fine-tune`` runs: AdamW, 50 warm-up steps then a cosine, batches of 32, gradients clipped
at 1) on every galaxy but the first ``--lines`` late types and 1,000 others held out. Then, on the
held-out late types whose lines stand out (a pixel above 5σ over the continuum):

1. without any map: how far the predicted redshift moves when the lines' pixels become
   the continuum (:func:`~astroloom.interpret.known.without_lines`), against the same
   windows moved clear of every line; the median error with and without the lines;
2. how often the integrated-gradient peak lies within 20 Å of a line, with the empty and
   the continuum fills, beside the same network with every weight re-drawn (a ridge probe
   refitted on its embeddings).

Both are also given for the frozen ridge probe of the model as pretrained.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from interpret import rate  # noqa: E402

from astroloom.data.multiset import keep, load_multimodal_set  # noqa: E402
from astroloom.interpret.attribution import Explainer, Target  # noqa: E402
from astroloom.interpret.known import (  # noqa: E402
    line_hits,
    line_significance,
    lines_removed,
    near_lines,
)
from astroloom.interpret.tuned import HEAD_INITS, fine_tune  # noqa: E402
from astroloom.interpret.tuned import TUNED_POOL as POOL  # noqa: E402
from astroloom.model.foundation import Foundation  # noqa: E402
from astroloom.model.multimodal import build_model  # noqa: E402


@torch.no_grad()
def r2(ex: Explainer, target: Target, rows: np.ndarray) -> float:
    batch = {m: t.take(torch.as_tensor(rows)) for m, t in ex.tokens.items()}
    pred = target(ex.embed(batch)).numpy()
    z = ex.data.labels["redshift"][rows].astype(float)
    return float(1 - np.mean((pred - z) ** 2) / np.var(z))


def maps(f: Foundation, data, target: Target | None, late, strong, wave) -> dict:
    """Line hit rates of one network's redshift maps, per fill; ``target`` None: a ridge
    probe fitted on the network's embeddings."""
    out = {}
    for fill in ("empty", "continuum"):
        ex = Explainer(f, data, use=["spectrum"], fill=fill, pool=POOL)
        hits = line_hits(ex, target or ex.probe("redshift"), late, wave)
        out[f"fill {fill}"] = {
            "late types": rate(hits),
            "with a line above 5 sigma": rate(hits[strong]),
        }
    return out


def setup(model: str, path: Path, lines: int) -> tuple:
    """The model, the survey's spectra, their wavelengths, the first ``lines`` late types
    (scored, never trained on), which of them have a line above 5σ, and the other galaxies
    split into 1,000 held out and the rest to train on."""
    torch.manual_seed(0)
    f = Foundation.from_pretrained(model)
    data = load_multimodal_set(path, ["spectrum"])
    data = keep(data, data.present["spectrum"])
    wave = f.tokenizer["spectrum"].wavelength
    late = np.flatnonzero(data.labels["morph_type"] == "late")[:lines]
    flux, ivar, z = (
        data.arrays["spectrum_flux"],
        data.arrays["spectrum_ivar"],
        data.labels["redshift"],
    )
    strong = np.array([line_significance(flux[i], ivar[i], wave, z[i]) > 5 for i in late])
    rest = np.setdiff1d(np.arange(len(data.ids)), late)
    np.random.default_rng(0).shuffle(rest)
    return f, data, wave, late, strong, rest[:1000], rest[1000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a run or model name with spectra")
    parser.add_argument("--data", type=Path, required=True, help="a mock survey")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate (default: the head start's, fine_tune's)")
    parser.add_argument("--head-init", choices=HEAD_INITS, default="random",
                        help="where the linear head starts (fine_tune's head_init)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="the fine-tuning's seed")
    parser.add_argument("--train-on", choices=("all", "late"), default="all",
                        help="fine-tune on every galaxy, or on the late types only")  # fmt: skip
    parser.add_argument("--tuned-only", action="store_true",
                        help="skip the frozen probe and the re-drawn network")  # fmt: skip
    parser.add_argument("--lines", type=int, default=240, help="late types scored (held out)")
    parser.add_argument("--out", type=Path, default=Path("runs/lines-finetuned.json"))
    parser.add_argument("--keep", type=Path, help="save the fine-tuned probe in this folder")
    args = parser.parse_args()
    f, data, wave, late, strong, test, train = setup(args.model, args.data, args.lines)
    z = data.labels["redshift"]
    late_test = data.labels["morph_type"][test] == "late"
    if args.train_on == "late":
        train = train[data.labels["morph_type"][train] == "late"]
    chance = float(np.mean([near_lines(wave, z[i]).mean() for i in late]))
    result: dict = {
        "model": str(args.model), "data": str(args.data.resolve()), "chance": chance,
        "seed": args.seed, "train_on": args.train_on, "trained_on": len(train),
        "head_init": args.head_init,
    }  # fmt: skip

    if not args.tuned_only:
        ex = Explainer(f, data, use=["spectrum"], fill="empty", pool=POOL)
        frozen = ex.probe("redshift")
        result["frozen ridge probe"] = {
            "r2 held out": r2(ex, frozen, test),
            "lines removed (no map)": lines_removed(ex, frozen, late[strong], wave),
            **maps(f, data, frozen, late, strong, wave),
        }
        print(json.dumps(result["frozen ridge probe"]), flush=True)

    start = time.perf_counter()
    tuned = fine_tune(
        f, keep(data, train), "redshift", ["spectrum"], steps=args.steps, lr=args.lr,
        hold_out=0, seed=args.seed, head_init=args.head_init,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if args.keep:
        tuned.save(args.keep)
    after = tuned.explainer(data, fill="empty")
    target = tuned.target()
    result["fine-tuned"] = {
        "steps": args.steps,
        "train_s": seconds,
        "r2 held out": r2(after, target, test),
        "r2 held out, late types": r2(after, target, test[late_test]),
        "lines removed (no map)": lines_removed(after, target, late[strong], wave),
        **maps(tuned.foundation, data, target, late, strong, wave),
    }
    print(json.dumps(result["fine-tuned"]), flush=True)

    if not args.tuned_only:
        torch.manual_seed(0)
        untrained = Foundation(build_model(f.model.cfg).eval(), f.tokenizer)
        result["weights re-drawn, ridge probe refitted"] = maps(
            untrained, data, None, late, strong, wave
        )
        print(json.dumps(result["weights re-drawn, ridge probe refitted"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
