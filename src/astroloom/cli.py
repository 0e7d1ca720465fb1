"""The ``astroloom`` command: parse, call the library, print. No logic lives here."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from astroloom.config import ConfigError, load_config
from astroloom.data.schema import DataError
from astroloom.model.checkpoint import CheckpointError
from astroloom.model.multimodal import EMBED_ORIENTATIONS, EMBED_POOL
from astroloom.paths import record_path
from astroloom.tokenize.image import check_orientations, check_zooms

# Where this process sits in a torchrun job: only rank 0 reports (one summary per job,
# with the job's wall time); every rank still reports its own errors, naming itself.
RANK = int(os.environ.get("RANK", "0"))
WORLD = int(os.environ.get("WORLD_SIZE", "1"))


RUN_HELP = (
    "run directory or checkpoint, or a model name: shipped (astroloom/mock-tiny) or on the "
    "Hugging Face Hub (owner/name[@revision]); also given as --model NAME_OR_PATH."
)
ZOOMS_HELP = (
    "Average each image's vector over these magnifications of its centre, comma-separated "
    "(1: as given). Default: 1,1.5,2,3 for pictures of unknown pixel scale (photographs), "
    "1 for the rest."
)


NeighboursOption = Annotated[
    bool | None,
    typer.Option(
        "--mask-neighbours/--keep-neighbours",
        help="Mask every source but the central one as missing before embedding an image. "
        "Default: masked in pictures of unknown pixel scale (photographs), kept in the rest.",
        show_default=False,
    ),
]


def parse_zooms(text: str | None) -> tuple[float, ...] | None:
    """``--zooms 1,1.5``: the magnifications, checked (None: the default for the data)."""
    return None if text is None else check_zooms(text.split(","), typer.BadParameter)


JOBS_HELP = "Worker processes for the probes (and bench's photutils features); -1: one per core."


def check_jobs(jobs: int) -> None:
    """Refuse a --jobs that is neither a positive count nor -1, before any work."""
    from astroloom.evaluate.fewshot import probe_jobs

    try:
        probe_jobs(jobs)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--jobs") from err


def _number_pair(text: str, option: str) -> tuple[float, float] | None:
    """``LOW,HIGH`` as two numbers; an empty text gives None."""
    if not text.strip():
        return None
    values = _floats(text)
    if len(values) != 2:
        raise typer.BadParameter(f"expected LOW,HIGH, got {text!r}", param_hint=option)
    return values[0], values[1]


LayerOption = Annotated[
    int | None, typer.Option(help="Block whose output to pool (default: middle).")
]
# Sub-command groups: their commands are two words long ("generate train").
GROUPS = ("data", "scaling", "generate")


def model_option_as_argument(argv: list[str]) -> list[str]:
    """``astroloom embed --model NAME DATA`` → ``astroloom embed NAME DATA``: every command
    that takes a run takes it first, so ``--model`` names that argument."""
    for i, arg in enumerate(argv):
        if arg == "--model" or arg.startswith("--model="):
            value = arg.split("=", 1)[1] if "=" in arg else None
            rest = argv[:i] + argv[i + (1 if value is not None else 2) :]
            if value is None:
                if i + 1 >= len(argv):
                    raise ConfigError("--model needs a value: a run folder or a model name")
                value = argv[i + 1]
            words = 2 if rest and rest[0] in GROUPS else 1
            return rest[:words] + [value] + rest[words:]
    return argv


def output_home(run: Path) -> Path:
    """Where a command writes by default: the run itself, or, for a model given by name
    (shipped or from the Hub: folders that are not ours to write in), a folder of that name
    in the working directory."""
    if Path(run).exists():
        return Path(run)
    return Path(str(run).replace("/", "--").replace("@", "--"))


def say(text: str = "") -> None:
    """Print for the user: once per job, from rank 0."""
    if RANK == 0:
        typer.echo(text)


app = typer.Typer(
    help="astroloom: an open foundation-model toolkit for astronomy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Make, bring in and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
scaling_app = typer.Typer(
    help="Scaling laws: sweeps, fits and compute plans.", no_args_is_help=True
)
app.add_typer(scaling_app, name="scaling")
generate_app = typer.Typer(
    help="Diffusion simulator conditioned on the foundation model: train, sample, evaluate.",
    no_args_is_help=True,
)
app.add_typer(generate_app, name="generate")

USER_ERRORS = (ConfigError, DataError, CheckpointError, FileNotFoundError, ValueError)


@data_app.command("simulate")
def data_simulate(
    out: Annotated[Path, typer.Option(help="Directory for the shards and dataset.json.")] = Path(
        "data/mock"
    ),
    n: Annotated[int, typer.Option("--n", help="Number of galaxies.")] = 4000,
    stars: Annotated[
        int, typer.Option(help="Variable stars with light curves (survey only).")
    ] = 1000,
    kind: Annotated[
        str, typer.Option(help="survey: multimodal sky; galaxies: images only.")
    ] = "survey",
    rare_fraction: Annotated[
        float, typer.Option(help="Fraction of rare galaxies (survey).")
    ] = 0.01,
    filters: Annotated[
        str, typer.Option(help="decam (g r z) or lsst (ugrizy) (survey).")
    ] = "decam",
    nan_fraction: Annotated[
        float, typer.Option(help="Fraction of images with masked pixels.")
    ] = 0.0,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives the same survey.")
    ] = 0,
    shard_size: Annotated[int, typer.Option(help="Objects per Parquet shard.")] = 1000,
    workers: Annotated[int, typer.Option(help="Processes (0: all cores).")] = 0,
    image_depth: Annotated[
        str,
        typer.Option(
            help="LOW,HIGH: each galaxy image's sky noise × a log-uniform factor in this "
            "range (0.1,1: exposures up to 10× deeper); empty: one depth (survey)."
        ),
    ] = "",
) -> None:
    """Simulate the mock survey: galaxies, rare objects and variable stars.

    Galaxies with images, spectra and photometry, rare objects, and OGLE-III variable
    stars with light curves (or, with --kind galaxies, images only)."""
    if kind == "survey":
        from astroloom.data.sim.survey import simulate_survey

        info = simulate_survey(
            out,
            n_galaxies=n,
            n_stars=stars,
            seed=seed,
            rare_fraction=rare_fraction,
            filters=filters,
            nan_fraction=nan_fraction,
            shard_size=shard_size,
            workers=workers or None,
            image_depth=_number_pair(image_depth, "--image-depth"),
        )
    elif kind == "galaxies":
        from astroloom.data.sim.galaxies import simulate_galaxies

        info = simulate_galaxies(
            out, n=n, seed=seed, shard_size=shard_size, workers=workers or None
        )
    else:
        raise typer.BadParameter(f"--kind must be survey or galaxies, got {kind!r}")
    say(f"wrote {info.n_objects} objects in {len(info.shards)} shards to {out}")


@data_app.command("ingest")
def data_ingest(
    fmt: Annotated[
        str,
        typer.Argument(
            help="fits-folder, fits-image, hdf5, images, parquet, spectra or lightcurves."
        ),
    ],
    source: Annotated[Path, typer.Argument(help="The file or folder to read.")],
    out: Annotated[Path, typer.Option(help="Directory for the shards and dataset.json.")],
    catalog: Annotated[
        Path | None, typer.Option(help="Catalogue/labels table (FITS, CSV, ECSV).")
    ] = None,
    id_column: Annotated[str, typer.Option(help="Catalogue column holding object ids.")] = "id",
    bands: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated band names. For PNG/JPEG colour pictures, the blue channel "
            "becomes the bluest named band and red the reddest (astronomical colour "
            "composites show the longest wavelength in red)."
        ),
    ] = None,
    pixel_scale: Annotated[
        float, typer.Option(help="Arcsec per pixel (leave out if unknown).")
    ] = float("nan"),
    unit: Annotated[
        str,
        typer.Option(
            help="Pixel unit: nanomaggy, uJy, nJy, … (astropy units), ADU/counts with "
            "--zero-point, or unknown (an 8-bit picture, say)."
        ),
    ] = "unknown",
    zero_point: Annotated[
        float, typer.Option(help="AB magnitude of one pixel unit, for ADU or counts.")
    ] = float("nan"),
    shape: Annotated[
        str | None, typer.Option(help="Image shape C,H,W for flat Parquet images.")
    ] = None,
    stamp: Annotated[int, typer.Option(help="Cutout size for fits-image.")] = 64,
    size: Annotated[
        int | None,
        typer.Option(
            help="images: resample every picture to SIZE × SIZE pixels (64: what the shipped "
            "and demo models were trained on)."
        ),
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option(help="Skip and log bad objects instead of stopping.")
    ] = False,
    max_bad_fraction: Annotated[
        float, typer.Option(help="Most NaN/inf pixels an image may have.")
    ] = 0.5,
    spectrum_unit: Annotated[
        str,
        typer.Option(
            help="Flux unit of ingested spectra (astropy units: per Å, per nm or per Hz), or "
            "unknown (only models with model.spectrum_norm = 'object' read those)."
        ),
    ] = "1e-17 erg s-1 cm-2 Angstrom-1",
) -> None:
    """Bring your own data in: check every object and write shards plus dataset.json."""
    from astroloom.data import readers

    if size is not None and fmt != "images":
        raise typer.BadParameter(f"--size resamples pictures (images), not {fmt}")
    if fmt == "fits-folder":
        if catalog is None:
            raise typer.BadParameter("fits-folder needs --catalog")
        records = readers.read_fits_folder(source, catalog, id_column, max_bad_fraction)
    elif fmt == "fits-image":
        records = readers.read_fits_image(source, stamp=stamp, max_bad=max_bad_fraction)
    elif fmt == "hdf5":
        records = readers.read_hdf5(source, max_bad=max_bad_fraction)
    elif fmt == "images":
        records = readers.read_image_folder(
            source, catalog, id_column, max_bad_fraction, bands.split(",") if bands else None,
            size=size,
        )
    elif fmt == "parquet":
        dims = tuple(int(x) for x in shape.split(",")) if shape else None
        records = readers.read_parquet(
            source, id_column=id_column, shape=dims, max_bad=max_bad_fraction
        )
    elif fmt == "spectra":
        records = readers.read_sdss_spectra(source)
    elif fmt == "lightcurves":
        records = readers.read_light_curves(source)
    else:
        raise typer.BadParameter(
            f"unknown format {fmt!r}; choose from {', '.join(readers.FORMATS)}"
        )
    label_meta: dict[str, dict[str, str]] = {}
    if catalog is not None and fmt in ("fits-folder", "images"):
        label_meta, derived, left_out = readers.describe_catalogue(catalog, id_column)
        if derived:
            say(f"morphological types read as the labels {', '.join(derived)}")
        if left_out:
            say(f"text columns that are no label (not numbers, not types): {', '.join(left_out)}")
    report = readers.ingest(
        records,
        out,
        name=source.stem,
        label_meta=label_meta,
        bands=bands.split(",") if bands else None,
        pixel_scale=pixel_scale,
        unit=unit,
        zero_point=zero_point,
        skip_bad=skip_bad,
        spectrum_unit=spectrum_unit,
        # Relative to the dataset's folder, as every recorded path (astroloom.paths).
        provenance={"format": fmt, "source": record_path(source, out)},
    )
    say(f"wrote {report.written} objects to {out}")
    if report.masked_pixels:
        say(
            f"kept {report.masked_pixels:,} NaN/inf pixels as masked, in "
            f"{report.masked_objects} of the images"
        )
    if report.skipped:
        say(f"skipped {len(report.skipped)} bad objects; reasons in {out / 'skipped.jsonl'}")


@data_app.command("show")
def data_show(
    path: Annotated[Path, typer.Argument(help="A dataset directory.")],
    out: Annotated[
        Path,
        typer.Option(
            help="PNG to write (a second, -modalities.png, for spectra and light curves)."
        ),
    ] = Path("show.png"),
    n: Annotated[int, typer.Option(help="Objects to show.")] = 24,
    labels: Annotated[str, typer.Option(help="Comma-separated labels for the captions.")] = "",
) -> None:
    """A PNG grid of objects with their labels; spectra and light curves plotted too."""
    from astroloom.data.shards import load_image_set
    from astroloom.report.plots import plot_object_grid, plot_survey_modalities

    if n < 1:
        raise DataError(f"--n must be at least 1 object, got {n}")
    data = load_image_set(path, limit=n)
    names = [x for x in labels.split(",") if x] or list(data.labels)[:2]
    unknown = [x for x in names if x not in data.labels]
    if unknown:
        raise DataError(f"labels {unknown} are not in {path}; available: {sorted(data.labels)}")

    def fmt(value) -> str:
        return value if isinstance(value, str) else f"{value:.3g}"

    captions = [
        "\n".join([str(obj)[-12:], *(f"{k}={fmt(data.labels[k][i])}" for k in names)])
        for i, obj in enumerate(data.ids[:n])
    ]
    scale = data.info.normalisation.get("image", {}).get("scale") or [1.0] * data.images.shape[1]
    plot_object_grid(data.images[:n], captions, scale, out)
    say(f"wrote {out}")
    if {"spectrum", "lightcurve"} <= set(data.info.modalities):
        extra = out.with_name(out.stem + "-modalities.png")
        plot_survey_modalities(path, extra)
        say(f"wrote {extra}")


@data_app.command("info")
def data_info(path: Annotated[Path, typer.Argument(help="A dataset directory.")]) -> None:
    """Print a dataset's schema, size and label statistics.

    Read one row group at a time: label columns only, never the pixels."""
    from astroloom.data.multiset import summarise_dataset
    from astroloom.data.schema import DatasetInfo

    info = DatasetInfo.load(path)
    summary = summarise_dataset(path)
    meta = info.image
    held = ", ".join(f"{n:,} with {m}" for m, n in summary.modalities.items())
    say(
        f"{info.name}: {summary.n_objects:,} objects in {len(info.shards)} shards"
        + (f", {held}" if held else "")
    )
    if meta.shape:
        say(
            f"image: bands {meta.bands}, shape {meta.shape}, {meta.pixel_scale_arcsec}″/px, "
            f"unit {meta.unit} (zero point {meta.zero_point_mag})"
        )
    for extra, meta in info.modalities.items():
        say(f"{extra}: " + ", ".join(f"{k}={v}" for k, v in meta.items() if k != "columns"))
    say(f"{'label':<20}{'unit':<12}{'min':>10}{'median':>10}{'max':>10}{'NaN':>8}")
    for name, values in summary.labels.items():
        unit = info.labels[name].get("unit", "")
        if info.is_categorical(name):
            kinds, counts = np.unique([v for v in values if v is not None], return_counts=True)
            pairs = ", ".join(f"{k}: {c}" for k, c in zip(kinds, counts, strict=True))
            say(f"{name:<20}{pairs or '(no values)'}")
            continue
        finite = values[np.isfinite(values)]
        lo, mid, hi = np.percentile(finite, [0, 50, 100]) if finite.size else (np.nan,) * 3
        say(
            f"{name:<20}{unit:<12}{lo:>10.3f}{mid:>10.3f}{hi:>10.3f}{values.size - finite.size:>8}"
        )


@app.command()
def train(
    config: Annotated[Path | None, typer.Argument(help="A TOML run config (see configs/).")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override: section.key=value.")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the run's newest checkpoint.")
    ] = False,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Continue pretraining from this run's weights and tokenizer on CONFIG's "
            "data (your own survey), with a fresh optimizer and schedule."
        ),
    ] = None,
) -> None:
    """Pretrain the foundation model described by CONFIG.

    With --init RUN (and no CONFIG) the run's own settings are the defaults: `astroloom train
    --init runs/demo/run --set data.path=data/mine --set out=runs/mine` continues the demo
    model's pretraining on your survey."""
    from astroloom.report.plots import plot_loss
    from astroloom.train.loop import train as run_training

    if init is not None and config is None:
        # The model's own settings by default; --set names the new data and run folder.
        from astroloom.model.checkpoint import find_checkpoint

        config = find_checkpoint(init) / "config.json"
    cfg = load_config(config, set_ or [])
    if init is not None:
        cfg.train.init = str(init)
    result = run_training(cfg, resume=resume)
    plot_loss(result.run_dir / "metrics.jsonl", result.run_dir / "loss.png")
    say(
        f"trained {result.n_parameters:,} parameters for {result.steps} steps in "
        f"{result.wall_time_s:.0f} s; final loss {result.final_train_loss:.4f}; "
        f"run in {result.run_dir}"
    )


@app.command()
def embed(
    run: Annotated[Path, typer.Argument(help=RUN_HELP)],
    data: Annotated[Path, typer.Argument(help="A dataset directory.")],
    out: Annotated[
        Path | None, typer.Option(help="Output Parquet (default RUN/embeddings.parquet).")
    ] = None,
    layer: LayerOption = None,
    pool: Annotated[
        str,
        typer.Option(
            help="moments (mean and spread of the token states, a light curve's spread "
            "left at zero, and, with an image, the "
            "angular moments of its central patches: 5 × width), radial (those and the "
            "radial profile of the patches, 7 × width: rings stand out more in anomaly "
            "searches), meanstd (mean and spread, 2 × width), mean, or last."
        ),
    ] = EMBED_POOL,
    batch_size: Annotated[int, typer.Option(help="Objects per forward pass.")] = 256,
    random_weights: Annotated[
        bool, typer.Option(help="Use the untrained architecture (baseline).")
    ] = False,
    modality: Annotated[
        list[str] | None,
        typer.Option(help="Modality to embed from (repeatable; default all the model reads)."),
    ] = None,
    orientations: Annotated[
        int,
        typer.Option(
            help="Average each image's vector over 4 quarter turns, 8 (turns and mirrors) "
            "or 1 (the cutout as it lies)."
        ),
    ] = EMBED_ORIENTATIONS,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:N; fp32 on either.")
    ] = "auto",
    zooms: Annotated[str | None, typer.Option(help=ZOOMS_HELP)] = None,
    neighbours: NeighboursOption = None,
) -> None:
    """Embed every object of DATA with the model in RUN."""
    from astroloom.evaluate.embed import embed_dataset

    path = embed_dataset(
        run,
        data,
        out or output_home(run) / "embeddings.parquet",
        layer=layer,
        pool=pool,
        batch_size=batch_size,
        random_weights=random_weights,
        modalities=modality or None,
        orientations=orientations,
        device=device,
        zooms=parse_zooms(zooms),
        neighbours=neighbours,
    )
    say(f"wrote {path}")


@app.command()
def finetune(
    run: Annotated[Path, typer.Argument(help=RUN_HELP)],
    data: Annotated[Path, typer.Argument(help="A dataset directory with labelled images.")],
    target: Annotated[str, typer.Option(help="Numeric label to learn.")],
    budget: Annotated[
        list[int] | None, typer.Option(help="Label count (repeatable; default 30 100 300 1000).")
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option(help="frozen, lora, full, cnn (repeatable; default all).")
    ] = None,
    seeds: Annotated[int, typer.Option(help="Draws per label count.")] = 3,
    steps: Annotated[int, typer.Option(help="Optimiser steps per fit.")] = 300,
    out: Annotated[
        Path | None, typer.Option(help="Directory for the tables (default RUN).")
    ] = None,
) -> None:
    """LoRA and full fine-tuning vs the frozen probe vs a supervised CNN, by label count."""
    from astroloom.evaluate.finetune import METHODS, finetune_curve
    from astroloom.evaluate.probe import save_tables

    result = finetune_curve(
        run,
        data,
        target,
        budgets=tuple(budget or (30, 100, 300, 1000)),
        seeds=seeds,
        methods=tuple(method or METHODS),
        steps=steps,
    )
    payload = {"target": target, "rows": result.rows, "notes": result.notes}
    save_tables(out or output_home(run), f"finetune_{target}", payload, result.markdown())
    say(result.markdown())


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="A multimodal " + RUN_HELP)],
    data: Annotated[Path, typer.Argument(help="A dataset directory.")],
    target: Annotated[str, typer.Option(help="Modality to generate: spectrum, photometry, image.")],
    use: Annotated[
        list[str] | None,
        typer.Option(help="Modality the model may see (repeatable; default image)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output Parquet (default RUN/predicted-TARGET.parquet).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N objects.")] = None,
    method: Annotated[str, typer.Option(help="auto, masked or autoregressive.")] = "auto",
) -> None:
    """Generate a modality for the objects of DATA from the ones in --use."""
    from astroloom.evaluate.predict import predict_dataset, redshift_from_spectra

    out = out or output_home(run) / f"predicted-{target}.parquet"
    use = list(use or ["image"])
    pred = predict_dataset(run, data, target, use, out, limit=limit, method=method)
    say(f"predicted {target} of {len(pred.ids)} objects from {use}; wrote {out}")
    if pred.meta.get("absolute_level_measured") is False:
        say(
            f"the images' unit is {pred.meta['input_image_unit']!r}: how bright the objects are "
            f"is not measured, so the predicted {target}'s level is the model's guess from the "
            "pictures, not a measurement; its shape is the prediction"
        )
    if target == "spectrum" and "redshift" in pred.labels and len(pred.ids) >= 20:
        scores = redshift_from_spectra(pred)
        line = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if k != "n")
        say(f"redshift ridge-probe R² from spectra ({scores['n']} objects): {line}")


def label_budget(text: str) -> int | None:
    """One --budget: a positive number of labelled objects, or "all" (None)."""
    if text.strip() == "all":
        return None
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise DataError(f"a label budget is a positive number of labels or 'all', not {text!r}")
    return size


@app.command()
def probe(
    embeddings: Annotated[Path, typer.Argument(help="Embeddings Parquet from `astroloom embed`.")],
    target: Annotated[
        list[str] | None, typer.Option(help="Label to probe (repeatable; default all).")
    ] = None,
    baselines: Annotated[
        bool, typer.Option(help="Also score pixel PCA and random weights.")
    ] = True,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the fold split.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Directory for probe.json and probe.md.")] = None,
    budget: Annotated[
        list[str] | None,
        typer.Option(
            help="Labelled objects per probe (repeatable, 'all' for every one): draws the "
            "few-shot curve, as `bench` does, instead of cross-validating."
        ),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(help="Probe types for the curve: linear, knn, mlp (default: all three)."),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Label subsets per budget for the curve.")] = 5,
    jobs: Annotated[int, typer.Option(help=JOBS_HELP)] = -1,
) -> None:
    """Cross-validated probes of labels from embeddings, beside baselines.

    Ridge for numbers, logistic for classes; with --budget, few-shot curves of every
    probe type."""
    from astroloom.evaluate.probe import probe as run_probe

    if folds < 2:
        raise DataError(f"--folds must be 2 or more (train on some, test on the rest), got {folds}")
    if budget:
        from astroloom.evaluate.bench import MAIN_METRIC, PROBES, probe_curves
        from astroloom.evaluate.fewshot import check_budgets
        from astroloom.evaluate.probe import save_tables
        from astroloom.report.plots import plot_label_curves

        sizes = [label_budget(b) for b in budget]
        check_budgets(sizes, seeds)
        check_jobs(jobs)
        result = probe_curves(
            embeddings, target, sizes, tuple(method or PROBES), seeds, baselines, jobs=jobs
        )
        home = out or embeddings.parent
        js, md = save_tables(home, "probe_curves", result.to_json(), result.markdown())
        panels = [
            (c.target, MAIN_METRIC[c.task], c.summary(MAIN_METRIC[c.task])) for c in result.curves
        ]
        plot_label_curves(panels, home / "probe_curves.png")
        say(result.markdown())
        say(f"wrote {js}, {md} and {home / 'probe_curves.png'}")
        return

    report = run_probe(embeddings, targets=target, baselines=baselines, folds=folds, seed=seed)
    js, md = report.save(out or embeddings.parent)
    say(report.markdown())
    for label, n in report.dropped.items():
        if n:
            say(
                f"{label}: {n} objects left out (no finite label, or a class with fewer "
                f"objects than folds)"
            )
    say(f"wrote {js} and {md}")


@app.command()
def bench(
    run: Annotated[Path, typer.Argument(help=RUN_HELP)],
    data: Annotated[Path, typer.Argument(help="A dataset directory with labels.")],
    out: Annotated[Path | None, typer.Option(help="Directory for bench.json/.md/.png.")] = None,
    seeds: Annotated[int, typer.Option(help="Random label subsets per budget.")] = 5,
    budgets: Annotated[
        str, typer.Option(help="Comma-separated label counts; 'all' for every labelled object.")
    ] = "10,30,100,300,1000,all",
    target: Annotated[list[str] | None, typer.Option(help="Targets (default: every one).")] = None,
    cnn_steps: Annotated[
        int,
        typer.Option(
            help="Also train a ResNet from scratch per target, budget and seed for this many "
            "steps (the supervised baseline; slow, so off by default)."
        ),
    ] = 0,
    orientations: Annotated[
        int,
        typer.Option(help="Turns of each cutout its image embedding is averaged over: 1, 4 or 8."),
    ] = EMBED_ORIENTATIONS,
    jobs: Annotated[int, typer.Option(help=JOBS_HELP)] = -1,
    layer: LayerOption = None,
    zooms: Annotated[str | None, typer.Option(help=ZOOMS_HELP)] = None,
    neighbours: NeighboursOption = None,
) -> None:
    """Every target × method × label budget, plus anomaly detection; Markdown, JSON, plot."""
    from astroloom.evaluate.bench import MAIN_METRIC, run_bench
    from astroloom.evaluate.fewshot import check_budgets
    from astroloom.report.plots import plot_label_curves

    sizes = [label_budget(b) for b in budgets.split(",") if b.strip()]
    check_budgets(sizes, seeds)
    check_orientations(orientations, typer.BadParameter)
    check_jobs(jobs)
    views = parse_zooms(zooms)
    result = run_bench(
        run,
        data,
        budgets=sizes,
        seeds=seeds,
        targets=target,
        cnn_steps=cnn_steps,
        orientations=orientations,
        jobs=jobs,
        layer=layer,
        zooms=views,
        neighbours=neighbours,
    )
    out = out or output_home(run) / "bench"
    js, md = result.save(out)
    panels = [
        (c.target, MAIN_METRIC[c.task], c.summary(MAIN_METRIC[c.task])) for c in result.curves
    ]
    plot_label_curves(panels, out / "bench.png")
    say(result.markdown())
    say(f"wrote {js}, {md} and {out / 'bench.png'}")


@app.command()
def push(
    run: Annotated[Path, typer.Argument(help="A run directory or checkpoint.")],
    repo_id: Annotated[str, typer.Argument(help="Hub repository, owner/name.")],
    out: Annotated[
        Path | None, typer.Option(help="Folder to write (default RUN/hub/NAME).")
    ] = None,
    bench: Annotated[
        Path | None,
        typer.Option(help="bench.json for the card's model-index (default RUN/bench/bench.json)."),
    ] = None,
    private: Annotated[bool, typer.Option(help="Create the Hub repo as private.")] = False,
    upload: Annotated[
        bool, typer.Option(help="Upload when a Hugging Face token is available.")
    ] = True,
) -> None:
    """Write RUN as a Hub model folder (weights, config, tokenizer, model card) and upload it."""
    from astroloom.model.hub import looks_like_repo_id
    from astroloom.model.publish import upload as upload_folder
    from astroloom.model.publish import write_hub_folder

    if not looks_like_repo_id(repo_id):
        raise ConfigError(f"{repo_id!r} is not a Hub repository id (owner/name)")
    out = out or output_home(run) / "hub" / repo_id.split("/")[1]
    folder = write_hub_folder(run, repo_id, out, bench)
    say(f"wrote {folder} (model.safetensors, config.json, tokenizer.json, README.md)")
    if not upload:
        return
    url = upload_folder(folder, repo_id, private=private)
    if url is None:
        say(
            "no Hugging Face token found, so nothing was uploaded: log in with `hf auth login` "
            f"(or set HF_TOKEN) and run this again, or upload {folder} yourself"
        )
    else:
        say(f"uploaded to {url}")


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help=RUN_HELP)],
    onnx: Annotated[Path, typer.Option(help="ONNX file to write (image → embedding).")],
    layer: LayerOption = None,
    pool: Annotated[
        str, typer.Option(help="moments, radial, meanstd, mean or last.")
    ] = EMBED_POOL,
    zero_point: Annotated[
        float | None,
        typer.Option(help="AB magnitude of one pixel unit of the images it will read."),
    ] = None,
    zooms: Annotated[
        str,
        typer.Option(
            help="Closer views of each image's centre the graph averages over, "
            "comma-separated (1: as given; 1,1.5,2,3 embeds photographs as astroloom embed)."
        ),
    ] = "1",
) -> None:
    """Export the image embedding path as ONNX, checked against PyTorch with onnxruntime."""
    from astroloom.model.export import check_onnx, export_onnx

    views = parse_zooms(zooms)
    path = export_onnx(run, onnx, layer=layer, pool=pool, zero_point=zero_point, zooms=views)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        say(f"wrote {path} (install onnxruntime to check it: pip install 'astroloom[export]')")
        return
    from astroloom.model.checkpoint import load_checkpoint

    cfg = load_checkpoint(run)[1].model
    rng = np.random.default_rng(0)
    size = (5, cfg.n_bands, cfg.image_size, cfg.image_size)
    images = (rng.gamma(2.0, 1.0, size) * 0.01).astype(np.float32)
    images[:, :, size[2] // 2 - 4 : size[2] // 2 + 4, size[3] // 2 - 4 : size[3] // 2 + 4] += 1
    diff = check_onnx(run, path, images, layer=layer, pool=pool, zero_point=zero_point, zooms=views)
    say(f"wrote {path}; onnxruntime matches PyTorch to {diff:.2g} on 5 test cutouts")


@app.command()
def search(
    embeddings: Annotated[Path, typer.Argument(help="Embeddings Parquet.")],
    like: Annotated[str, typer.Option(help="Id of the object to find neighbours of.")],
    k: Annotated[int, typer.Option("-k", help="Number of neighbours.")] = 10,
    out: Annotated[
        Path | None, typer.Option(help="PNG grid of the object and its neighbours.")
    ] = None,
) -> None:
    """The k most similar objects (cosine distance in embedding space, FAISS)."""
    from astroloom.discover.search import SimilarityIndex
    from astroloom.evaluate.embed import read_embeddings

    emb = read_embeddings(embeddings)
    ids, dist = SimilarityIndex(emb.vectors, emb.ids).query(like, k)
    for obj, d in zip(ids, dist, strict=True):
        say(f"{obj}\t{d:.4f}")
    if out is not None:
        from astroloom.data.shards import load_image_set
        from astroloom.report.plots import plot_object_grid

        data = load_image_set(emb.meta["data"])
        where = {obj: i for i, obj in enumerate(data.ids)}
        chosen = [like, *ids]
        captions = [f"{like[-10:]}\n(query)"] + [
            f"{o[-10:]}\nd={d:.3f}" for o, d in zip(ids, dist, strict=True)
        ]
        plot_object_grid(
            data.images[[where[o] for o in chosen]],
            captions,
            data.info.normalisation["image"]["scale"],
            out,
            ncols=min(11, len(chosen)),
        )
        say(f"wrote {out}")


@app.command()
def anomalies(
    embeddings: Annotated[Path, typer.Argument(help="Embeddings Parquet.")],
    method: Annotated[
        str,
        typer.Option(
            help="lof (local outlier factor, 20 neighbours), lof-range (its largest value "
            "over 10–50 neighbours), knn or iforest."
        ),
    ] = "lof",
    top: Annotated[int, typer.Option(help="How many of the most unusual objects to list.")] = 20,
    label: Annotated[
        str | None,
        typer.Option(help="A 0/1 label to score against (default: is_rare, if present)."),
    ] = None,
) -> None:
    """Rank objects by how unusual their embeddings are; score against known rare objects."""
    from astroloom.discover.anomaly import anomaly_scores
    from astroloom.evaluate.embed import read_embeddings
    from astroloom.evaluate.metrics import anomaly_metrics

    if top < 0:
        raise DataError(f"--top must be 0 or more, got {top}")
    emb = read_embeddings(embeddings)
    if label is not None and label not in emb.labels:
        raise DataError(
            f"the embeddings carry no label {label!r}; available: {', '.join(sorted(emb.labels))}"
        )
    label = label or "is_rare"
    truth = None
    if label in emb.labels:
        values = emb.labels[label]
        # 0/1, or missing (NaN: a star in a galaxy label) counted as not rare.
        if values.dtype == object:  # a class label: names, not 0/1
            other = values
        else:
            other = values[np.isfinite(values) & (values != 0) & (values != 1)]
        if len(other):
            raise DataError(
                f"--label {label!r} must be 0/1 (rare or not); it holds e.g. {other[:3].tolist()}"
            )
        truth = values == 1
    scores = anomaly_scores(emb.vectors, method)
    for i in np.argsort(-scores)[:top]:
        extra = "".join(
            f"\t{k}={emb.labels[k][i]}" for k in ("morph_type", label) if k in emb.labels
        )
        say(f"{emb.ids[i]}\t{scores[i]:.4f}{extra}")
    if truth is not None:
        say(json.dumps(anomaly_metrics(scores, truth, emb.labels.get("morph_type"))))


@app.command()
def explain(
    run: Annotated[Path, typer.Argument(help=RUN_HELP)],
    data: Annotated[Path, typer.Argument(help="A dataset directory.")],
    id: Annotated[str, typer.Option("--id", help="Id of the object to explain.")],
    target: Annotated[
        str | None, typer.Option(help="Label whose probe prediction to explain.")
    ] = None,
    anomaly: Annotated[bool, typer.Option(help="Explain the object's anomaly score.")] = False,
    neighbour: Annotated[
        str | None, typer.Option(help="Explain the similarity to this object.")
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="occlusion, integrated-gradients, attention or surprise (default: occlusion "
            "when something is to be explained, else surprise)."
        ),
    ] = None,
    modality: Annotated[
        list[str] | None,
        typer.Option(
            help="Modality to explain from (repeatable; default every one the model and the "
            "data both have)."
        ),
    ] = None,
    class_name: Annotated[
        str | None, typer.Option("--class", help="Class whose logit to explain (class labels).")
    ] = None,
    layer: LayerOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Directory for the PNG and FITS (default RUN/explain).")
    ] = None,
    fill: Annotated[
        str | None,
        typer.Option(
            help="What replaces a token for occlusion and integrated gradients: inpaint (the "
            "model's prediction of it from the others; default for models pretrained to "
            "fill in tokens), empty (sky, zero flux) or continuum (a spectrum's own running "
            "median, so that its lines get the credit)."
        ),
    ] = None,
    fine_tune: Annotated[
        int | None,
        typer.Option(
            "--fine-tune",
            help="With --target: explain a copy of the network fine-tuned with a linear head "
            "for the label in this many steps (e.g. 1000), instead of the frozen probe; kept "
            "in --out and reused. Its default fill is continuum for spectra, else empty.",
        ),
    ] = None,
    runs: Annotated[
        int,
        typer.Option(
            help="With --fine-tune: fine-tune this many copies (seeds 0, 1, …) and explain "
            "their mean prediction by the mean of their maps, which depends less on whether "
            "one run happened to lean on, say, a spectrum's emission lines.",
        ),
    ] = 1,
    flat_views: Annotated[
        float,
        typer.Option(
            "--flat-views",
            help="With --fine-tune: the share of the spectra with a visible line (e.g. 0.5) "
            "shown with their continuum flattened (break and slope gone, lines kept), so that "
            "the network learns to read emission lines.",
        ),
    ] = 0.0,
    flat_lines_sigma: Annotated[
        float | None,
        typer.Option(
            "--flat-lines-sigma",
            help="With --flat-views: a spectrum has a visible line when a pixel stands this "
            "many times its noise above its continuum (default 5; 0: flatten any spectrum).",
        ),
    ] = None,
    head_init: Annotated[
        str,
        typer.Option(
            "--head-init",
            help="With --fine-tune: where the linear head starts: random, or probe (the "
            "frozen probe's solution; steadier, often worse: compare the held-out scores).",
        ),
    ] = "random",
    lr: Annotated[
        float | None,
        typer.Option(
            "--lr",
            help="With --fine-tune: the peak learning rate (default 1e-3 for a random head, "
            "3e-4 for --head-init probe).",
        ),
    ] = None,
) -> None:
    """Why the model says what it says about one object: a map as PNG and FITS.

    An attribution, attention or surprise map, as a PNG and a FITS file of the raw maps."""
    from astroloom.interpret.explain import explain_object

    result = explain_object(
        run,
        data,
        id,
        target=target,
        anomaly=anomaly,
        neighbour=neighbour,
        method=method,
        modalities=modality or None,
        layer=layer,
        class_name=class_name,
        out=out or output_home(run) / "explain",
        fill=fill,
        fine_tune=fine_tune,
        runs=runs,
        flat_views=flat_views,
        flat_lines_sigma=flat_lines_sigma,
        head_init=head_init,
        lr=lr,
    )
    for note in result.notes:
        say(note)
    first = result.maps[0]
    value = f" = {first.value:.4g}" if first.value is not None else ""
    say(f"{first.method} map of {first.object_id}: {first.what}{value}")
    for m, tokens in first.tokens.items():
        finite = tokens[np.isfinite(tokens)]
        if len(finite):
            top = int(np.nanargmax(np.abs(tokens)))
            biggest = abs(tokens[top])
            say(f"  {m}: {len(finite)} tokens, largest |value| {biggest:.4g} (token {top})")
    say(f"wrote {result.png} and {result.fits}")


@app.command()
def explore(
    run: Annotated[Path, typer.Argument(help=RUN_HELP)],
    data: Annotated[Path, typer.Argument(help="The dataset the embeddings describe.")],
    embeddings: Annotated[
        Path | None,
        typer.Option(
            help="Embeddings Parquet (default RUN/embeddings-image.parquet, made from the "
            "images when missing; another dataset's get a file of their own)."
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but 127.0.0.1 opens it to others.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8765,
    denoiser: Annotated[
        Path | None,
        typer.Option(help="A diffusion decoder (generate train): object pages can draw galaxies."),
    ] = None,
) -> None:
    """A local web explorer of a survey, with a JSON API under it.

    The UMAP map, object pages with neighbours, search by uploaded example, anomalies
    and generation."""
    import uvicorn

    from astroloom.evaluate.embed import embed_dataset
    from astroloom.explore.app import create_app
    from astroloom.explore.survey import ExplorerSurvey, embeddings_for
    from astroloom.model.foundation import Foundation

    foundation = Foundation.from_pretrained(run)
    if embeddings is None:
        embeddings = embeddings_for(output_home(run), data)
        if not embeddings.is_file():
            use = ["image"] if "image" in foundation.modalities else None
            say(f"embedding {data} once into {embeddings} …")
            embed_dataset(run, data, embeddings, modalities=use)
    say("preparing the map (UMAP and anomaly scores are cached beside the embeddings) …")
    survey = ExplorerSurvey(foundation, data, embeddings, denoiser=denoiser)
    say(f"astroloom explore: http://{host}:{port}/  ({len(survey.ids)} objects; Ctrl-C stops)")
    uvicorn.run(create_app(survey), host=host, port=port, log_level="warning")


@app.command("map")
def embedding_map(
    embeddings: Annotated[Path, typer.Argument(help="Embeddings Parquet.")],
    color: Annotated[
        list[str] | None, typer.Option("--color", help="Label to colour by (repeatable).")
    ] = None,
    out: Annotated[Path, typer.Option(help="PNG of the map.")] = Path("map.png"),
    neighbours: Annotated[int, typer.Option(help="UMAP n_neighbors.")] = 15,
    min_dist: Annotated[float, typer.Option(help="UMAP min_dist.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed (fixes the layout).")] = 0,
    coords: Annotated[
        Path | None,
        typer.Option(help="Also write the map as an embeddings Parquet (id, 2-D vector, labels)."),
    ] = None,
) -> None:
    """A 2-D UMAP map of the embeddings, one panel per label it is coloured by."""
    from astroloom.discover.embedding_map import label_colours, umap_map
    from astroloom.evaluate.embed import Embeddings, read_embeddings, write_embeddings
    from astroloom.report.plots import plot_embedding_map

    emb = read_embeddings(embeddings)
    colours, missing = label_colours(emb.labels, color or [])
    result = umap_map(emb.vectors, n_neighbors=neighbours, min_dist=min_dist, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_embedding_map(
        result.coords, colours, out, title=f"UMAP of {len(emb.ids)} objects ({embeddings.name})"
    )
    for name, n in missing.items():
        if n:
            say(f"{n} of {len(emb.ids)} objects have no {name} (grey in the map)")
    say(
        f"neighbour recall: {result.neighbour_recall:.3f} of each object's {neighbours} "
        f"embedding-space neighbours stay neighbours in the map "
        f"(random layout: {neighbours / len(emb.ids):.3f})"
    )
    if coords is not None:
        write_embeddings(
            coords,
            Embeddings(emb.ids, result.coords, emb.labels, {**emb.meta, "umap": str(embeddings)}),
        )
        say(f"wrote {coords}")
    say(f"wrote {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Directory for data, run and report.")] = Path(
        "runs/demo"
    ),
    n_objects: Annotated[int, typer.Option(help="Galaxies to simulate.")] = 6000,
    steps: Annotated[
        int | None, typer.Option(help="Training steps; astroloom.demo.DEMO_STEPS when omitted.")
    ] = None,
    preset: Annotated[str, typer.Option(help="Model preset: tiny or small.")] = "tiny",
    seed: Annotated[int, typer.Option(help="Seed for data, model and probes.")] = 0,
    denoiser_steps: Annotated[int, typer.Option(help="Diffusion decoder training steps.")] = 400,
) -> None:
    """Run the whole journey on the mock survey and write an HTML report."""
    from astroloom.demo import DEMO_STEPS, run_demo

    result = run_demo(
        out,
        n_objects=n_objects,
        steps=DEMO_STEPS if steps is None else steps,
        preset=preset,
        seed=seed,
        denoiser_steps=denoiser_steps,
    )
    say(result.probe.markdown())
    say(json.dumps({k: round(v, 1) for k, v in result.timings.items()}))
    say(f"report: {result.report}")
    say(
        "explore the survey in a browser: .venv/bin/astroloom explore "
        f"{out / 'run'} {out / 'data'} --embeddings {out / 'embeddings.parquet'}"
    )


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from err


@scaling_app.command("sweep")
def scaling_sweep(
    config: Annotated[
        Path | None, typer.Argument(help="Base TOML config (data, optimiser).")
    ] = None,
    sizes: Annotated[str, typer.Option(help="Comma-separated model presets.")] = "nano,micro,tiny",
    tokens: Annotated[str, typer.Option(help="Comma-separated token budgets.")] = "2.5e5,5e5,1e6",
    out: Annotated[Path, typer.Option(help="Sweep directory.")] = Path("runs/sweep"),
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override: section.key=value.")
    ] = None,
) -> None:
    """Train every size × token budget (skipping finished runs) and record N, D, C, loss."""
    from astroloom.scaling.sweep import run_sweep

    records = run_sweep(load_config(config, set_ or []), sizes.split(","), _floats(tokens), out)
    say(f"{'run':<22}{'N':>10}{'D':>12}{'C':>12}{'val loss':>10}")
    for r in records:
        say(
            f"{r['name']:<22}{r['N']:>10.3g}{r['D']:>12.3g}{r['C']:>12.3g}{r['val_loss']:>10.4f}"
        )


@scaling_app.command("fit")
def scaling_fit(
    runs: Annotated[list[Path], typer.Argument(help="Sweep directories or sweep.jsonl files.")],
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")] = 200,
    plan: Annotated[
        float | None, typer.Option(help="FLOPs to plan a compute-optimal run for.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write fit.json and scaling.png.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
) -> None:
    """Fit L(N, D) = E + A/N^α + B/D^β to sweep results (Hoffmann et al.'s approach 3)."""
    from astroloom.report.plots import plot_scaling
    from astroloom.scaling.fit import bootstrap_fit
    from astroloom.scaling.sweep import read_sweep, repeated_runs, sweep_arrays

    records = [r for path in runs for r in read_sweep(path)]
    repeated = repeated_runs(records)
    if repeated:
        say(
            f"warning: {len(repeated)} run(s) saw their data more than once "
            f"({', '.join(repeated)}); D counts repeated tokens there, which the law does not "
            "model"
        )
    elif any("epochs" not in r for r in records):
        say("warning: some runs do not record their epochs (an older sweep); D may repeat data")
    fit = bootstrap_fit(*sweep_arrays(records), n_boot=bootstrap, seed=seed)
    out = out or (runs[0] if runs[0].is_dir() else runs[0].parent)
    out.mkdir(parents=True, exist_ok=True)
    result = fit.to_dict()
    for key, value in fit.law.to_dict().items():
        lo, hi = fit.intervals[key]
        say(f"{key:>6} = {value:.4g}   95% interval [{lo:.4g}, {hi:.4g}]")
    if plan is not None:
        planned = fit.plan(plan)
        result["plan"] = {"flops": plan, **{k: list(v) for k, v in planned.items()}}
        say(f"compute-optimal at C = {plan:.3g} FLOPs:")
        for key in ("N", "D"):
            best, lo, hi = planned[key]
            say(f"  {key}* = {best:.3g}   95% interval [{lo:.3g}, {hi:.3g}]")
        say(f"  predicted loss {planned['L'][0]:.4f}")
    (out / "fit.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_scaling(records, fit.law, out / "scaling.png")
    say(f"wrote {out / 'fit.json'} and {out / 'scaling.png'}")


@scaling_app.command("table")
def scaling_table(
    models: Annotated[list[str], typer.Argument(help="NAME:N:D entries, e.g. GPT-3:175e9:300e9.")],
    law: Annotated[
        Path | None, typer.Option(help="fit.json to use (default: Hoffmann et al.).")
    ] = None,
) -> None:
    """The review's Fig. 26: each model's A/N^α, B/D^β, E and predicted loss."""
    from astroloom.scaling.law import PUBLISHED, ScalingLaw, loss_table

    rows = []
    for entry in models:
        parts = entry.split(":")
        if len(parts) != 3:
            raise typer.BadParameter(f"expected NAME:N:D, got {entry!r}")
        rows.append((parts[0], *_floats(",".join(parts[1:]))))
    say(loss_table(ScalingLaw.load(law) if law else PUBLISHED, rows))


@generate_app.command("train")
def generate_train(
    run: Annotated[
        Path, typer.Argument(help="The multimodal foundation model to condition on: " + RUN_HELP)
    ],
    data: Annotated[Path, typer.Argument(help="A dataset directory with images.")],
    out: Annotated[Path, typer.Option(help="Where to write the denoiser.")] = Path("runs/denoiser"),
    steps: Annotated[int, typer.Option(help="Training steps.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 32,
    unconditional: Annotated[
        bool, typer.Option(help="Train the unconditional baseline instead.")
    ] = False,
    prediction: Annotated[str, typer.Option(help="v or epsilon.")] = "v",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:N; bf16 on CUDA.")
    ] = "auto",
) -> None:
    """Train a denoiser on DATA's images, conditioned through RUN's frozen embeddings."""
    from astroloom.generate.denoiser import DenoiserConfig, train_denoiser

    cfg = DenoiserConfig(
        steps=steps,
        batch_size=batch_size,
        conditional=not unconditional,
        prediction=prediction,
        seed=seed,
        device=device,
    )
    path = train_denoiser(run, data, out, cfg)
    say(f"wrote denoiser to {path}")


@generate_app.command("sample")
def generate_sample(
    denoiser: Annotated[Path, typer.Argument(help="A denoiser directory.")],
    mode: Annotated[
        str,
        typer.Option(
            help="others (from spectrum + photometry), image (variations), all, "
            "inversion (more like the --id objects), interpolate (between two --id), "
            "unconditional."
        ),
    ] = "others",
    id: Annotated[
        list[str] | None, typer.Option(help="Conditioning object id (repeatable).")
    ] = None,
    n: Annotated[int, typer.Option(help="Images per object (inversion: in all).")] = 4,
    steps: Annotated[int, typer.Option(help="DDIM steps.")] = 25,
    eta: Annotated[float, typer.Option(help="DDIM η (0 deterministic).")] = 0.0,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale.")] = 2.0,
    psf_fwhm: Annotated[
        float, typer.Option(help="Extra Gaussian PSF FWHM (arcsec) to observe with.")
    ] = 0.0,
    noise: Annotated[float, typer.Option(help="Extra Gaussian noise per pixel (flux).")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("runs/generated"),
    device: Annotated[
        str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:N; bf16 on CUDA.")
    ] = "auto",
) -> None:
    """Generate galaxies in physical units: FITS cube + PNG preview."""
    from astroloom.generate.jobs import run_sample

    fits_path, png = run_sample(
        denoiser, mode, id or [], n, steps, eta, guidance, psf_fwhm, noise, seed, out, device
    )
    say(f"wrote {fits_path} and {png}")


@generate_app.command("evaluate")
def generate_evaluate(
    denoiser: Annotated[Path, typer.Argument(help="A conditional denoiser directory.")],
    baseline: Annotated[
        Path | None, typer.Option(help="An unconditional denoiser to compare with.")
    ] = None,
    n: Annotated[int, typer.Option(help="Held-out objects to generate for.")] = 256,
    steps: Annotated[int, typer.Option(help="DDIM steps.")] = 25,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance scale.")] = 2.0,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:N; bf16 on CUDA.")
    ] = "auto",
) -> None:
    """Fréchet distances, conditional fidelity and memorisation on held-out galaxies."""
    from astroloom.evaluate.probe import save_tables
    from astroloom.generate.evaluate import evaluate_denoiser, markdown

    result = evaluate_denoiser(
        denoiser, baseline, n=n, steps=steps, guidance=guidance, device=device
    )
    save_tables(denoiser, "generate_eval", result, markdown(result))
    say(markdown(result))


def _reflowed(doc: str) -> str:
    """A docstring's paragraphs each on one line: the terminal wraps them. Typer's rich
    help keeps a docstring's single line breaks, which breaks sentences mid-line."""
    import inspect

    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


for _typer_app in (app, data_app, scaling_app, generate_app):
    for _info in _typer_app.registered_commands:
        if _info.help is None and _info.callback is not None and _info.callback.__doc__:
            _info.help = _reflowed(_info.callback.__doc__)


def main() -> None:
    import sys

    try:
        app(args=model_option_as_argument(sys.argv[1:]))
    except USER_ERRORS as err:
        # Under torchrun every rank may meet the error: say which one did.
        where = f"rank {RANK}: " if WORLD > 1 else ""
        typer.secho(f"error: {where}{err}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
