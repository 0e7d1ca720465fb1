"""Unit-free spectra: the same galaxies' spectra in the survey's unit, in cgs, in W m⁻² nm⁻¹
and in mJy (per frequency) embed alike with a model trained on per-object normalised
spectra; a unit nobody recorded still embeds there; a survey-normalised model converts
known units and refuses unknown ones by name."""

import copy

import astropy.units as u
import numpy as np
import pytest
import torch
from conftest import tiny_config

from astroloom.data.multiset import keep, load_multimodal_set
from astroloom.data.schema import DataError
from astroloom.model.foundation import Foundation
from astroloom.tokenize.spectrum import SpectrumTokenizer
from astroloom.train.loop import train

SURVEY_UNIT = "1e-17 erg s-1 cm-2 Angstrom-1"


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def object_norm_model(survey_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("specnorm") / "run"
    cfg = tiny_config(
        survey_dir,
        out,
        40,
        "model.modalities=['spectrum']",
        "model.spectrum_norm='object'",
        "model.objective='masked'",
    )
    train(cfg, progress=False)
    data = load_multimodal_set(survey_dir, ["spectrum"])
    data = keep(data, data.present["spectrum"])
    return Foundation.from_pretrained(out), keep(data, np.arange(len(data.ids)) < 40)


def in_unit(data, unit: str, factor):
    """The same spectra with their flux (and inverse variance) expressed in ``unit``."""
    out = copy.deepcopy(data)
    out.arrays["spectrum_flux"] = (data.arrays["spectrum_flux"] * factor).astype(np.float32)
    with np.errstate(over="ignore"):  # W m⁻² nm⁻¹: inverse variances beyond float32
        ivar = (data.arrays["spectrum_ivar"] / factor**2).astype(np.float32)
    out.arrays["spectrum_ivar"] = ivar
    out.info.modalities["spectrum"]["flux_unit"] = unit
    return out


def embed(f: Foundation, data) -> np.ndarray:
    return f.embed(f.tokens_from_set(data, ["spectrum"]))


def test_spectra_in_four_units_give_the_same_embeddings(object_norm_model):
    f, data = object_norm_model
    assert f.tokenizer["spectrum"].normalisation == "object"
    wave = f.tokenizer["spectrum"].wavelength * u.AA
    per_hz = (1 * u.Unit(SURVEY_UNIT)).to(u.mJy, equivalencies=u.spectral_density(wave)).value
    assert per_hz.max() > 5 * per_hz.min()  # per frequency: the factor changes along λ
    native = embed(f, data)
    for unit, factor in [
        ("erg s-1 cm-2 Angstrom-1", 1e-17),
        ("W m-2 nm-1", 1e-17 * 1e-7 * 1e4 * 10),
        ("mJy", per_hz),
    ]:
        other = in_unit(data, unit, factor)
        assert cosine(native, embed(f, other)).min() >= 0.99, unit
        valid = [f.tokens_from_set(d, ["spectrum"])["spectrum"].valid for d in (data, other)]
        assert torch.equal(*valid), unit  # no pixel lost to float32 overflow of the ivar
    # A unit nobody recorded: the brightness is unknown, the shape still reads alike.
    unknown = [embed(f, in_unit(data, "unknown", k)) for k in (1.0, 1e-3, 250.0)]
    assert cosine(unknown[0], unknown[1]).min() >= 0.99
    assert cosine(unknown[0], unknown[2]).min() >= 0.99


def test_spectrum_brightness_reaches_the_embedding_when_the_unit_is_known(object_norm_model):
    f, data = object_norm_model
    tokens = f.tokens_from_set(data, ["spectrum"])["spectrum"]
    assert torch.isfinite(tokens.context).all()
    # The same numbers declared in a unit ten times larger: ten times brighter.
    brighter = in_unit(data, "1e-16 erg s-1 cm-2 Angstrom-1", 1.0)
    told = f.tokens_from_set(brighter, ["spectrum"])["spectrum"]
    torch.testing.assert_close(told.values, tokens.values)
    torch.testing.assert_close(told.context, tokens.context + 1.0)
    assert not np.allclose(embed(f, data), embed(f, brighter), atol=1e-4)


def test_a_survey_normalised_model_converts_known_units_and_refuses_unknown_ones():
    rng = np.random.default_rng(0)
    tok = SpectrumTokenizer(16, 0.5, 3600.0, 4.0, 200, SURVEY_UNIT)
    flux = (2.0 + rng.normal(0, 0.5, (3, 200))).astype(np.float32)
    ivar = np.full_like(flux, 4.0)
    native = tok.tokens(flux, ivar)
    cgs = tok.tokens(flux * 1e-17, ivar * 1e34, unit="erg / (s cm2 Angstrom)")
    torch.testing.assert_close(cgs.values, native.values, atol=1e-5, rtol=1e-5)
    assert native.context is None
    with pytest.raises(DataError, match="flux unit is 'unknown'.*spectrum_norm = 'object'"):
        tok.tokens(flux, ivar, unit="unknown")
    with pytest.raises(DataError, match="unknown spectrum flux unit 'furlongs'"):
        tok.tokens(flux, ivar, unit="furlongs")
    with pytest.raises(DataError, match="unknown spectrum flux unit 'km'"):
        tok.tokens(flux, ivar, unit="km")  # a unit, but not a flux density


def test_object_softening_is_the_pixel_noise_and_survives_a_noiseless_template():
    rng = np.random.default_rng(1)
    tok = SpectrumTokenizer(16, 1.0, 3600.0, 4.0, 400, SURVEY_UNIT, "object")
    continuum = np.linspace(5.0, 3.0, 400)
    noisy = continuum + rng.normal(0, 0.3, (4, 400))
    noisy[:, 200:203] += 20.0  # an emission line barely moves the median difference
    t = tok.tokens(noisy.astype(np.float32))
    np.testing.assert_allclose(10 ** t.context[:, 0].numpy(), 0.3, rtol=0.1)
    template = tok.tokens(continuum[None].astype(np.float32))
    soft = 10 ** float(template.context[0, 0])
    assert soft == pytest.approx(0.01 * np.quantile(continuum, 0.99), rel=0.05)
    # Decoding with each spectrum's softening gives the flux back.
    back = tok.decode(t.values, 10 ** t.context[:, 0])
    np.testing.assert_allclose(back.numpy(), noisy, rtol=1e-4, atol=1e-4)


def test_ingest_records_the_spectrum_unit_and_refuses_an_unknown_name(tmp_path):
    from astroloom.data.readers import ingest
    from astroloom.data.schema import DatasetInfo, Observation

    wave = np.linspace(3800.0, 9000.0, 300)
    spectrum = {
        "spectrum_flux": np.full(300, 2e-3, np.float32),
        "spectrum_ivar": np.full(300, 1e6, np.float32),
        "spectrum_wave": wave,
    }
    records = [Observation(f"s{i}", dict(spectrum)) for i in range(3)]
    ingest(records, tmp_path / "mjy", "mjy", progress=False, spectrum_unit="mJy")
    info = DatasetInfo.load(tmp_path / "mjy")
    assert info.modalities["spectrum"]["flux_unit"] == "mJy"
    with pytest.raises(DataError, match="unknown spectrum flux unit 'parsecs'"):
        ingest(records, tmp_path / "bad", "bad", progress=False, spectrum_unit="parsecs")
    assert not (tmp_path / "bad" / "dataset.json").exists()  # refused before writing


def test_spectrum_norm_is_checked_and_shapes_the_weights():
    from astroloom.config import ConfigError, ModelConfig, model_differences

    with pytest.raises(ConfigError, match="model.spectrum_norm must be 'object' or 'survey'"):
        ModelConfig(modalities=["spectrum"], spectrum_norm="median").validate()
    a, b = ModelConfig(modalities=["spectrum"]), ModelConfig(modalities=["spectrum"])
    b.spectrum_norm = "object"
    assert model_differences(a, b) == ["model.spectrum_norm: 'survey' → 'object'"]
