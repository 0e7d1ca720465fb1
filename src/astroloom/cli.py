"""The ``astroloom`` command: parse, call the library, print. No logic lives here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from astroloom.config import ConfigError, load_config
from astroloom.data.schema import DataError
from astroloom.train.checkpoint import CheckpointError

app = typer.Typer(
    help="astroloom: an open foundation-model toolkit for astronomy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Make, bring in and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

USER_ERRORS = (ConfigError, DataError, CheckpointError, FileNotFoundError, ValueError)


@data_app.command("simulate")
def data_simulate(
    out: Annotated[Path, typer.Option(help="Directory for the shards and dataset.json.")] = Path(
        "data/mock"
    ),
    n: Annotated[int, typer.Option("--n", help="Number of galaxies.")] = 4000,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives the same survey.")
    ] = 0,
    shard_size: Annotated[int, typer.Option(help="Objects per Parquet shard.")] = 1000,
    workers: Annotated[int, typer.Option(help="Processes (0: all cores).")] = 0,
) -> None:
    """Simulate the mock galaxy survey (GalSim bulge+disk, g r z, 64×64 at 0.262″/px)."""
    from astroloom.data.sim.galaxies import simulate_galaxies

    info = simulate_galaxies(out, n=n, seed=seed, shard_size=shard_size, workers=workers or None)
    typer.echo(f"wrote {info.n_objects} galaxies in {len(info.shards)} shards to {out}")


@data_app.command("info")
def data_info(path: Annotated[Path, typer.Argument(help="A dataset directory.")]) -> None:
    """Print a dataset's schema, size and label statistics."""
    from astroloom.data.shards import load_image_set

    data = load_image_set(path)
    meta = data.info.image
    typer.echo(f"{data.info.name}: {len(data)} objects in {len(data.info.shards)} shards")
    typer.echo(
        f"image: bands {meta.bands}, shape {meta.shape}, {meta.pixel_scale_arcsec}″/px, "
        f"unit {meta.unit} (zero point {meta.zero_point_mag})"
    )
    typer.echo(f"{'label':<20}{'unit':<12}{'min':>10}{'median':>10}{'max':>10}{'NaN':>6}")
    for name, values in data.labels.items():
        unit = data.info.labels[name].get("unit", "")
        finite = values[np.isfinite(values)]
        lo, mid, hi = np.percentile(finite, [0, 50, 100]) if finite.size else (np.nan,) * 3
        typer.echo(
            f"{name:<20}{unit:<12}{lo:>10.3f}{mid:>10.3f}{hi:>10.3f}{values.size - finite.size:>6}"
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
) -> None:
    """Pretrain the foundation model described by CONFIG."""
    from astroloom.report.plots import plot_loss
    from astroloom.train.loop import train as run_training

    cfg = load_config(config, set_ or [])
    result = run_training(cfg, resume=resume)
    plot_loss(result.run_dir / "metrics.jsonl", result.run_dir / "loss.png")
    typer.echo(
        f"trained {result.n_parameters:,} parameters for {result.steps} steps in "
        f"{result.wall_time_s:.0f} s; final loss {result.final_train_loss:.4f}; "
        f"run in {result.run_dir}"
    )


@app.command()
def embed(
    run: Annotated[Path, typer.Argument(help="A run directory or checkpoint.")],
    data: Annotated[Path, typer.Argument(help="A dataset directory.")],
    out: Annotated[
        Path | None, typer.Option(help="Output Parquet (default RUN/embeddings.parquet).")
    ] = None,
    layer: Annotated[
        int | None, typer.Option(help="Block whose output to pool (default: middle).")
    ] = None,
    pool: Annotated[str, typer.Option(help="mean or last.")] = "mean",
    batch_size: Annotated[int, typer.Option(help="Objects per forward pass.")] = 256,
    random_weights: Annotated[
        bool, typer.Option(help="Use the untrained architecture (baseline).")
    ] = False,
) -> None:
    """Embed every object of DATA with the model in RUN."""
    from astroloom.evaluate.embed import embed_dataset

    path = embed_dataset(
        run,
        data,
        out or Path(run) / "embeddings.parquet",
        layer=layer,
        pool=pool,
        batch_size=batch_size,
        random_weights=random_weights,
    )
    typer.echo(f"wrote {path}")


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
) -> None:
    """Cross-validated ridge probes of labels from embeddings, beside baselines."""
    from astroloom.evaluate.probe import probe as run_probe

    report = run_probe(embeddings, targets=target, baselines=baselines, folds=folds, seed=seed)
    js, md = report.save(out or embeddings.parent)
    typer.echo(report.markdown())
    for label, n in report.dropped.items():
        if n:
            typer.echo(f"{label}: {n} objects without a finite label were left out")
    typer.echo(f"wrote {js} and {md}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Directory for data, run and report.")] = Path(
        "runs/demo"
    ),
    n_objects: Annotated[int, typer.Option(help="Galaxies to simulate.")] = 6000,
    steps: Annotated[int, typer.Option(help="Training steps.")] = 2000,
    preset: Annotated[str, typer.Option(help="Model preset: tiny or small.")] = "tiny",
    seed: Annotated[int, typer.Option(help="Seed for data, model and probes.")] = 0,
) -> None:
    """Run the whole journey on the mock survey and write an HTML report."""
    from astroloom.demo import run_demo

    result = run_demo(out, n_objects=n_objects, steps=steps, preset=preset, seed=seed)
    typer.echo(result.probe.markdown())
    typer.echo(json.dumps({k: round(v, 1) for k, v in result.timings.items()}))
    typer.echo(f"report: {result.report}")


def main() -> None:
    try:
        app()
    except USER_ERRORS as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
