"""Paths a run records of another run or dataset resolve from any working directory, and
keep working when the whole tree of runs is moved."""

import json
import os
import shutil

from typer.testing import CliRunner

from astroloom.cli import app
from astroloom.evaluate.embed import embed_dataset, read_embeddings
from astroloom.evaluate.probe import baseline_features
from astroloom.generate.denoiser import DenoiserConfig, load_denoiser, train_denoiser
from astroloom.paths import record_path, resolve_recorded


def test_record_and_resolve(tmp_path, monkeypatch):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    value = record_path(tmp_path / "data", tmp_path / "runs" / "a")
    assert value == os.path.join("..", "..", "data")
    monkeypatch.chdir(tmp_path / "runs")  # anywhere: resolved against the recording folder
    assert resolve_recorded(value, tmp_path / "runs" / "a") == (tmp_path / "data").resolve()
    # A path recorded before this rule, relative to where its command ran, is still found.
    monkeypatch.chdir(tmp_path)
    assert resolve_recorded("data", tmp_path / "runs" / "a") == (tmp_path / "data").resolve()


def test_denoiser_and_embeddings_work_from_another_directory(
    multimodal_run, survey_dir, tmp_path, monkeypatch
):
    project = tmp_path / "project"
    shutil.copytree(multimodal_run, project / "runs" / "run")
    shutil.copytree(survey_dir, project / "runs" / "data")
    monkeypatch.chdir(project)  # the user works in the project, with relative paths
    cfg = DenoiserConfig(steps=2, batch_size=4, channels=[8, 16, 16], held_out=0.2)
    train_denoiser("runs/run", "runs/data", "runs/den", cfg, progress=False)
    embed_dataset(
        "runs/run", "runs/data", "runs/emb.parquet", progress=False, modalities=["image"]
    )
    recorded = json.loads((project / "runs" / "den" / "denoiser.json").read_text())
    assert recorded["foundation_run"] == os.path.join("..", "run")

    # The whole tree moves, and the user stands somewhere else entirely.
    shutil.move(project / "runs", tmp_path / "moved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    den = load_denoiser(tmp_path / "moved" / "den")
    assert den.meta["foundation_run"] == str((tmp_path / "moved" / "run").resolve())
    result = CliRunner().invoke(
        app,
        ["generate", "sample", str(tmp_path / "moved" / "den"), "--mode", "others",
         "--n", "1", "--steps", "2", "--out", "gen"],
    )
    assert result.exit_code == 0, result.output
    assert (elsewhere / "gen" / "generated.fits").is_file()
    emb = read_embeddings(tmp_path / "moved" / "emb.parquet")
    assert emb.meta["data"] == str((tmp_path / "moved" / "data").resolve())
    baselines = baseline_features(emb, progress=False)  # reads the run and the data again
    assert baselines["pixel PCA"].shape[0] == len(emb.ids)
