"""Spectra and light curves brought from outside train and embed like the mock survey's:
ingest → train a few steps → embed, with tokens placed by each object's own wavelengths
and light-curve bands matched to the model's by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table
from conftest import tiny_config

from astroloom.data.multiset import load_multimodal_set
from astroloom.data.readers import ingest, read_light_curves, read_sdss_spectra
from astroloom.data.schema import DataError
from astroloom.evaluate.embed import embed_dataset, read_embeddings
from astroloom.model.foundation import Foundation
from astroloom.train.loop import train

HALPHA = 6562.8


def write_spectra(folder: Path, n: int = 32, seed: int = 0) -> np.ndarray:
    """SDSS spec-lite files, each on its own log-λ grid (start and length differ), with an
    Hα line at a random redshift; returns the redshifts."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    redshifts = rng.uniform(0.0, 0.3, n)
    for i, z in enumerate(redshifts):
        loglam = (
            np.log10(3800) + rng.uniform(-0.01, 0.01) + 1e-4 * np.arange(rng.integers(3000, 3600))
        )
        wave = 10**loglam
        line = 12 * np.exp(-0.5 * ((wave - HALPHA * (1 + z)) / 4) ** 2)
        flux = (2 + line + rng.normal(0, 0.3, len(wave))).astype(np.float32)
        coadd = Table(
            {"loglam": loglam, "flux": flux, "ivar": np.full(len(wave), 11.1, np.float32)}
        )
        fits.HDUList(
            [fits.PrimaryHDU(), fits.BinTableHDU(coadd), fits.BinTableHDU(Table({"Z": [z]}))]
        ).writeto(folder / f"spec-{i:04d}.fits")
    return redshifts


def write_curves(folder: Path, n: int = 32, seed: int = 1) -> None:
    """CSV light curves of periodic stars in I and V, written out of time order."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        t = rng.uniform(0, 300, 90)
        band = np.where(rng.random(90) < 0.5, "I", "V")
        mag = 15 + 0.4 * np.sin(2 * np.pi * t / rng.uniform(0.3, 3)) + 0.5 * (band == "V")
        Table({"time": t, "mag": mag, "err": np.full(90, 0.02), "band": band}).write(
            folder / f"star{i:03d}.csv"
        )


def train_briefly(data: Path, run: Path, modality: str) -> Path:
    """40 steps of a tiny model on one modality, validation loss every 10."""
    cfg = tiny_config(data, run, 40, f"model.modalities=['{modality}']", "train.eval_every=10")
    train(cfg, progress=False)
    return run


def val_losses(run: Path) -> list[float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["val_loss"] for r in rows if "val_loss" in r]


def test_ingested_spectra_train_and_embed_placed_by_their_own_wavelengths(tmp_path):
    write_spectra(tmp_path / "spectra")
    ingest(read_sdss_spectra(tmp_path / "spectra"), tmp_path / "data", "sdss", progress=False)
    data = load_multimodal_set(tmp_path / "data", ["spectrum"])
    assert data.info.modalities["spectrum"]["grid"] == "per-object"
    run = train_briefly(tmp_path / "data", tmp_path / "run", "spectrum")
    loss = val_losses(run)
    assert loss[-1] < 0.8 * loss[0]

    # Each token sits at the log wavelength of its own pixels, not at a shared grid's.
    foundation = Foundation.from_pretrained(run)
    tok = foundation.tokenizer["spectrum"]
    block = foundation.tokens_from_set(data)["spectrum"]
    for row in (0, 7):
        wave = data.arrays["spectrum_wave"][row]
        n = int(np.isfinite(wave).sum())
        centres = np.log10(
            [wave[k : min(k + tok.patch_size, n)].mean() for k in range(0, n, tok.patch_size)]
        )
        np.testing.assert_allclose(block.position[row, : len(centres), 0], centres, atol=1e-6)
        assert block.present[row].sum() == len(centres)

    out = tmp_path / "emb.parquet"
    embed_dataset(run, tmp_path / "data", out, modalities=["spectrum"], progress=False)
    emb = read_embeddings(out)
    assert len(emb.ids) == 32 and np.isfinite(emb.vectors).all()
    assert np.isfinite(emb.labels["redshift"]).all()


def test_ingested_light_curves_train_and_map_bands_by_name(tmp_path):
    write_curves(tmp_path / "iv")
    write_curves(tmp_path / "vi")
    # Read first, a V-only star makes the second ingest number V before I.
    t = np.linspace(0, 50, 20)
    Table({"time": t, "mag": 15 + np.sin(t), "err": np.full(20, 0.02), "band": ["V"] * 20}).write(
        tmp_path / "vi" / "a-star.csv"
    )
    for name in ("iv", "vi"):
        ingest(read_light_curves(tmp_path / name), tmp_path / f"{name}-data", name, progress=False)
    bands = {
        n: json.loads((tmp_path / f"{n}-data" / "dataset.json").read_text())["modalities"][
            "lightcurve"
        ]["bands"]
        for n in ("iv", "vi")
    }
    assert bands == {"iv": ["I", "V"], "vi": ["V", "I"]}
    run = train_briefly(tmp_path / "iv-data", tmp_path / "run", "lightcurve")
    loss = val_losses(run)
    assert loss[-1] < loss[0]
    # The same stars whose bands were numbered the other way round embed identically.
    vectors = {}
    for name in ("iv", "vi"):
        out = tmp_path / f"{name}.parquet"
        embed_dataset(run, tmp_path / f"{name}-data", out, progress=False)
        emb = read_embeddings(out)
        keep = emb.ids != "a-star"
        vectors[name] = emb.vectors[keep][np.argsort(emb.ids[keep])]
    np.testing.assert_allclose(vectors["iv"], vectors["vi"], atol=1e-5)
    assert not np.allclose(vectors["iv"][0], vectors["iv"][1])

    # A band the model never saw is refused by name.
    info_path = tmp_path / "vi-data" / "dataset.json"
    info = json.loads(info_path.read_text())
    info["modalities"]["lightcurve"]["bands"] = ["V", "g"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(DataError, match=r"band\(s\) \['g'\] are not among the model's bands"):
        embed_dataset(run, tmp_path / "vi-data", tmp_path / "g.parquet", progress=False)


def test_a_shard_missing_a_declared_column_is_refused_by_name(survey_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    info = json.loads((survey_dir / "dataset.json").read_text())
    first = info["shards"][0]
    table = pq.read_table(survey_dir / first)
    pq.write_table(table.drop(["spectrum_ivar"]), data / first)
    info["shards"] = [first]
    (data / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match=rf"{first} lacks column\(s\) \['spectrum_ivar'\]"):
        load_multimodal_set(data, ["image", "spectrum"])
    pq.write_table(table.drop(["redshift"]), data / first)
    with pytest.raises(DataError, match=rf"{first} lacks label column\(s\) \['redshift'\]"):
        load_multimodal_set(data, ["image"])
    # A modality dataset.json does not describe is simply absent.
    pq.write_table(table, data / first)
    del info["modalities"]["spectrum"]
    (data / "dataset.json").write_text(json.dumps(info))
    loaded = load_multimodal_set(data, ["image", "spectrum"])
    assert not loaded.present["spectrum"].any() and loaded.present["image"].any()
