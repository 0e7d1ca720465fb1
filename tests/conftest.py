"""Shared, session-scoped fixtures: one small mock survey and one briefly trained model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from astroloom.config import load_config
from astroloom.data.sim.galaxies import simulate_galaxies
from astroloom.train.loop import train

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def mock_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mock")
    simulate_galaxies(out, n=400, seed=7, shard_size=150, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def survey_dir(tmp_path_factory) -> Path:
    """A small multimodal mock survey: galaxies (image, spectrum, photometry) and stars
    (light curves)."""
    from astroloom.data.sim.survey import simulate_survey

    out = tmp_path_factory.mktemp("survey")
    simulate_survey(
        out, n_galaxies=320, n_stars=48, seed=5, shard_size=200, workers=1, progress=False
    )
    return out


MULTIMODAL = "model.modalities=['image','spectrum','photometry','lightcurve']"


@pytest.fixture(scope="session")
def multimodal_run(survey_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mmrun") / "run"
    cfg = tiny_config(
        survey_dir, out, 200, MULTIMODAL, "model.objective='mixed'", "train.eval_every=50"
    )
    train(cfg, progress=False)
    return out


@pytest.fixture(scope="session")
def denoiser_dir(multimodal_run, survey_dir, tmp_path_factory) -> Path:
    """A small diffusion decoder conditioned on the multimodal run."""
    from astroloom.generate.denoiser import DenoiserConfig, train_denoiser

    out = tmp_path_factory.mktemp("denoiser")
    cfg = DenoiserConfig(steps=40, batch_size=8, channels=[16, 32, 32], held_out=0.2)
    train_denoiser(multimodal_run, survey_dir, out, cfg, progress=False)
    return out


def tiny_overrides(data: Path, out: Path, steps: int = 60, *extra: str) -> list[str]:
    """``--set`` values of a small, fast model on ``data``; later ``extra`` ones win."""
    return [
        "model.n_layer=2",
        "model.n_embd=64",
        "model.n_head=4",
        f"data.path='{data}'",
        f"out='{out}'",
        f"train.steps={steps}",
        "train.batch_size=16",
        "train.warmup_steps=5",
        "train.lr=2e-3",
        "train.eval_every=20",
        "train.checkpoint_every=20",
        *extra,
    ]


def tiny_config(data: Path, out: Path, steps: int = 60, *extra: str):
    return load_config(None, tiny_overrides(data, out, steps, *extra))


@pytest.fixture(scope="session")
def trained_run(mock_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    train(tiny_config(mock_dir, out, 150), progress=False)
    return out


def torchrun_cli(*args: str, ranks: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node RANKS -m astroloom.cli ARGS`` on CPU."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(ranks),
            "-m",
            "astroloom.cli",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def cli(*args: str, env: dict | None = None, cwd: Path | None = None):
    """``astroloom ARGS`` in a fresh process, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "astroloom.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=cwd,
    )


@pytest.fixture(scope="session")
def xdf_galaxies():
    """Real pictures: the Hubble XDF colour picture (scikit-image ships it) and its galaxies,
    largest first, each as (row, column, side): its light-weighted centre and a square five
    equivalent radii wide (24–200 pixels), found as connected regions of the smoothed light."""
    from scipy import ndimage
    from skimage import data as skimage_data

    picture = skimage_data.hubble_deep_field()
    light = ndimage.gaussian_filter(picture.astype(float).mean(2), 2)
    regions, n = ndimage.label(light > 40.0)
    index = np.arange(1, n + 1)
    areas = ndimage.sum(np.ones_like(light), regions, index)
    centres = ndimage.center_of_mass(light, regions, index)
    galaxies = [
        (*centres[k], int(np.clip(5 * np.sqrt(areas[k] / np.pi), 24, 200)))
        for k in np.argsort(-areas)
    ]
    return picture, galaxies
