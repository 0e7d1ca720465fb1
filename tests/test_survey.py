"""The multimodal mock survey: physics consistent across modalities, rare objects, stars."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import speclite.filters

from astroloom.data.schema import DatasetInfo
from astroloom.data.shards import load_image_set
from astroloom.data.sim.lightcurves import load_ogle3, render_light_curve
from astroloom.data.sim.population import draw_population
from astroloom.data.sim.rare import RARE_KINDS
from astroloom.data.sim.spectra import observed_spectra
from astroloom.data.sim.survey import simulate_survey


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    out = tmp_path_factory.mktemp("survey")
    simulate_survey(
        out,
        n_galaxies=150,
        n_stars=60,
        seed=5,
        rare_fraction=0.1,
        shard_size=80,
        nan_fraction=0.1,
        workers=2,
        progress=False,
    )
    return out


def test_population_is_seeded_and_physical():
    a, b = draw_population(300, seed=3), draw_population(300, seed=3)
    np.testing.assert_array_equal(a.redshift, b.redshift)
    assert not np.array_equal(a.redshift, draw_population(300, seed=4).redshift)
    assert np.all(a.mags[:, 1] < 21.5)  # the r-band selection
    g_r = a.mags[:, 0] - a.mags[:, 1]
    early, late = a.morphology == "early", a.morphology == "late"
    assert early.any() and late.any()
    assert np.median(g_r[early]) > np.median(g_r[late]) + 0.2  # red sequence vs blue cloud
    mass = np.log10(a.stellar_mass)
    assert 8 < np.median(mass) < 12


def test_spectra_reproduce_the_catalogue_magnitudes():
    pop = draw_population(40, seed=8)
    wave = np.arange(3000.0, 11500.0, 2.0)  # wide enough for the filters' response
    flux = observed_spectra(pop.coefficients, pop.redshift, pop.stellar_mass, wave)
    bands = speclite.filters.load_filters(*pop.filters)
    mags = bands.get_ab_magnitudes(flux * 1e-17, wave)
    for i, name in enumerate(pop.filters):
        np.testing.assert_allclose(np.asarray(mags[name]), pop.mags[:, i], atol=0.02)


def test_survey_rows_modalities_and_labels(survey):
    info = DatasetInfo.load(survey)
    assert info.n_objects == 210 and set(info.modalities) == {
        "spectrum",
        "photometry",
        "lightcurve",
    }
    data = load_image_set(survey)
    assert len(data) == 150  # stars carry no image
    kinds = list(data.labels["morph_type"])
    for kind in RARE_KINDS:
        assert kinds.count(kind) == 3  # 10 % of 150, shared evenly between the five kinds
    assert data.labels["is_rare"].sum() == 15
    # About a tenth of the images carry a NaN mask; nothing else is missing.
    with_nan = np.isnan(data.images).any(axis=(1, 2, 3)).sum()
    assert 5 <= with_nan <= 30
    galaxies = pq.read_table(survey / info.shards[0])
    flux, ivar = galaxies.column("spectrum_flux"), galaxies.column("spectrum_ivar")
    assert len(flux[0]) == info.modalities["spectrum"]["n_pixels"] == len(ivar[0])
    assert galaxies.column("lc_time").null_count == len(galaxies)


def test_image_catalogue_and_labels_agree(survey):
    table = pq.read_table(survey / "galaxies-00000.parquet").to_pylist()
    checked = 0
    for row in table:
        if (
            row["morph_type"] in ("early", "late")
            and row["mag_r"] < 19
            and row["half_light_radius"] < 1
        ):
            image = np.array(row["image"]).reshape(3, 64, 64)
            true_flux = 10 ** (-0.4 * (row["mag_r"] - 22.5))
            assert np.nansum(image[1]) == pytest.approx(true_flux, rel=0.05)
            phot = np.array(row["phot_flux"])
            err = 1 / np.sqrt(np.array(row["phot_ivar"]))
            assert abs(phot[1] - true_flux) < 5 * err[1]
            checked += 1
    assert checked >= 1


def test_stars_carry_ogle_light_curves(survey):
    info = DatasetInfo.load(survey)
    stars = pq.read_table(survey / [s for s in info.shards if s.startswith("stars")][0]).to_pylist()
    catalogue = load_ogle3()
    periods = dict(zip(catalogue["ID"], catalogue["P_1"], strict=True))
    for row in stars:
        assert row["image"] is None and row["spectrum_flux"] is None
        t = np.array(row["lc_time"])
        assert np.all(np.diff(t) >= 0) and np.diff(t).max() > 100  # seasonal gaps
        bands = np.array(row["lc_band"])
        assert (bands == 0).sum() > (bands == 1).sum() > 0  # I dense, V sparse
        ogle_id = row["id"].split("-", 3)[3]
        assert row["period"] == pytest.approx(periods[ogle_id])
    classes = {row["var_class"] for row in stars}
    assert len(classes) >= 5  # balanced sampling reaches rare classes


def test_light_curve_amplitude_and_period():
    catalogue = load_ogle3()
    bright = np.flatnonzero((catalogue["Type"] == "RRLyr") & (catalogue["I"] < 16.5))[0]
    star = {k: v[bright] for k, v in catalogue.items()}
    lc = render_light_curve(star, np.random.default_rng(0))
    i_band = lc["band"] == 0
    assert np.ptp(lc["mag"][i_band]) == pytest.approx(star["A_1"], rel=0.25)
    assert np.median(lc["mag"][i_band]) == pytest.approx(star["I"], abs=0.2)


def test_shards_load_with_hugging_face_datasets(survey):
    import datasets

    files = sorted(str(p) for p in survey.glob("*.parquet"))
    stream = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    first = next(iter(stream))
    assert len(first["image"]) == 3 * 64 * 64 and first["var_class"] is None
    table = datasets.load_dataset("parquet", data_files=files, split="train")
    assert table.num_rows == 210


def test_survey_is_reproducible_across_worker_counts(tmp_path):
    a = simulate_survey(tmp_path / "a", n_galaxies=20, n_stars=5, seed=9, workers=1, progress=False)
    simulate_survey(
        tmp_path / "b", n_galaxies=20, n_stars=5, seed=9, shard_size=7, workers=2, progress=False
    )
    ta = pq.read_table(tmp_path / "a" / a.shards[0])
    sa, sb = load_image_set(tmp_path / "a"), load_image_set(tmp_path / "b")
    np.testing.assert_array_equal(sa.images, sb.images)
    assert ta.num_rows == 20


def test_image_depth_changes_only_the_images_noise(tmp_path):
    """--image-depth mixes exposures: the same galaxies, spectra and catalogue, each image's
    sky noise scaled by its own factor within the range (here all ten times deeper)."""
    from astroloom.data.multiset import load_multimodal_set
    from astroloom.data.sim.survey import NOISE

    kw = dict(n_galaxies=12, n_stars=0, seed=4, workers=1, progress=False, rare_fraction=0.0)
    simulate_survey(tmp_path / "one", **kw)
    simulate_survey(tmp_path / "deep", image_depth=(0.1, 0.1), **kw)
    simulate_survey(tmp_path / "mixed", image_depth=(0.1, 1.0), **kw)
    one, deep, mixed = (
        load_multimodal_set(tmp_path / d, ["image", "spectrum", "photometry"])
        for d in ("one", "deep", "mixed")
    )
    for other in (deep, mixed):
        np.testing.assert_array_equal(one.ids, other.ids)
        assert set(one.arrays) == set(other.arrays)
        for column in set(one.arrays) - {"image"}:  # spectra and catalogue photometry
            np.testing.assert_array_equal(one.arrays[column], other.arrays[column])
        np.testing.assert_array_equal(one.labels["mag_r"], other.labels["mag_r"])

    def border_noise(images):  # per object, r band, from the cutout's edge rows
        edge = np.concatenate([images[:, 1, :4].reshape(len(images), -1),
                               images[:, 1, -4:].reshape(len(images), -1)], axis=1)
        return edge.std(axis=1)

    base = border_noise(one.arrays["image"])
    assert np.median(base) == pytest.approx(NOISE["r"], rel=0.15)
    np.testing.assert_allclose(border_noise(deep.arrays["image"]) / base, 0.1, rtol=0.2)
    ratio = border_noise(mixed.arrays["image"]) / base
    assert ratio.min() > 0.08 and ratio.max() < 1.2 and ratio.std() > 0.1  # each its own
    # The noiseless galaxy is the same: the deep image is the shallow one less most noise.
    gap = one.arrays["image"] - deep.arrays["image"]
    assert np.abs(gap).mean() < 1.5 * NOISE["r"]
    with pytest.raises(ValueError, match="image_depth"):
        simulate_survey(tmp_path / "bad", image_depth=(0.0, 1.0), **kw)
    with pytest.raises(ValueError, match="image_depth"):
        simulate_survey(tmp_path / "bad", image_depth=(2.0, 1.0), **kw)
    from typer.testing import CliRunner

    from astroloom.cli import app

    cli = ["data", "simulate", "--out", str(tmp_path / "cli"), "--n", "3", "--stars", "0"]
    result = CliRunner().invoke(app, [*cli, "--image-depth", "0.1"])
    assert result.exit_code == 2 and "LOW,HIGH" in result.output
    assert not (tmp_path / "cli").exists()


def test_survey_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_galaxies"):
        simulate_survey(tmp_path, n_galaxies=0, progress=False)
    with pytest.raises(ValueError, match="rare_fraction"):
        simulate_survey(tmp_path, n_galaxies=5, rare_fraction=2.0, progress=False)
    with pytest.raises(ValueError, match="filter set"):
        simulate_survey(tmp_path, n_galaxies=5, filters="hst", progress=False)


def test_colours_redden_with_redshift():
    from scipy.stats import spearmanr

    pop = draw_population(800, seed=11)
    for kind in ("late", "early"):
        pick = pop.morphology == kind
        g_r = pop.mags[pick, 0] - pop.mags[pick, 1]
        assert spearmanr(pop.redshift[pick], g_r).statistic > 0.3, kind


def test_emission_lines_sit_at_redshifted_wavelengths():
    from astroloom.data.sim.spectra import DESI_GRID

    pop = draw_population(300, seed=12)
    pick = np.flatnonzero((pop.morphology == "late") & (pop.redshift < 0.45))[:40]
    flux = observed_spectra(pop.coefficients[pick], pop.redshift[pick], pop.stellar_mass[pick])
    hits = 0
    for row, z in zip(flux, pop.redshift[pick], strict=True):
        expected = 6562.24 * (1 + z)  # H-alpha as the kcorrect templates place it
        near = np.abs(DESI_GRID - expected) < 150
        peak = DESI_GRID[near][np.argmax(row[near])]
        hits += abs(peak - expected) <= 8 and row[near].max() > 1.1 * np.median(row[near])
    assert hits >= 0.8 * len(pick)


def test_brighter_galaxies_have_higher_signal_to_noise(survey):
    from scipy.stats import spearmanr

    rows = pq.read_table(
        survey / "galaxies-00000.parquet",
        columns=["spectrum_flux", "spectrum_ivar", "mag_r", "morph_type"],
    ).to_pylist()
    snr, mag = [], []
    for row in rows:
        if row["spectrum_flux"] is None:
            continue
        flux, ivar = np.array(row["spectrum_flux"]), np.array(row["spectrum_ivar"])
        snr.append(np.median(flux * np.sqrt(ivar)))
        mag.append(row["mag_r"])
    assert spearmanr(mag, snr).statistic < -0.8


def test_spectrum_noise_is_each_objects_own(survey):
    """Inverse variance = sky plus the source's photon noise: it differs between objects,
    and its excess over the sky grows with the flux at the rate the simulator uses."""
    from astroloom.data.sim.spectra import DESI_GRID, SOURCE_VARIANCE, noise_sigma

    rows = pq.read_table(
        survey / "galaxies-00000.parquet", columns=["spectrum_flux", "spectrum_ivar"]
    ).to_pylist()
    rows = [r for r in rows if r["spectrum_flux"] is not None]
    ivar = np.array([r["spectrum_ivar"] for r in rows])
    flux = np.array([r["spectrum_flux"] for r in rows])
    assert np.ptp(ivar, axis=0).max() > 0  # not one inverse variance for every object
    excess = 1.0 / ivar - noise_sigma(DESI_GRID)[None] ** 2
    assert excess.min() > -1e-4  # never below the sky
    bright = flux > 5  # where the noisy flux stands well above its noise
    slope = np.polyfit(flux[bright], excess[bright], 1)[0]
    assert slope == pytest.approx(SOURCE_VARIANCE, rel=0.15)


def test_lomb_scargle_recovers_ogle_periods():
    from astropy.timeseries import LombScargle

    catalogue = load_ogle3()
    rng = np.random.default_rng(4)
    short = np.flatnonzero(
        np.isin(catalogue["Type"], ["RRLyr", "Cep", "DSCT"]) & (catalogue["I"] < 18.0)
    )
    recovered = 0
    chosen = rng.choice(short, 12, replace=False)
    for k in chosen:
        star = {key: v[k] for key, v in catalogue.items()}
        lc = render_light_curve(star, rng)
        i_band = lc["band"] == 0
        freq, power = LombScargle(lc["time"][i_band], lc["mag"][i_band]).autopower(
            minimum_frequency=0.02, maximum_frequency=30.0, samples_per_peak=5
        )
        best = 1.0 / freq[np.argmax(power)]
        recovered += abs(best - star["P_1"]) / star["P_1"] < 0.01
    assert recovered >= 10, f"{recovered} of {len(chosen)} periods recovered"


@pytest.mark.parametrize(
    ("filters", "colours"),
    [("decam", ["g_r", "r_z"]), ("lsst", ["u_g", "g_r", "r_i", "i_z", "z_y"])],
)
def test_any_filter_set_with_rare_objects_names_colours_after_its_bands(tmp_path, filters, colours):
    """Both filter sets simulate rare objects (a foreground star among them), and each
    colour label is the difference of the named bands' magnitudes, as the photometry
    measures it."""
    info = simulate_survey(
        tmp_path,
        n_galaxies=40,
        n_stars=0,
        seed=3,
        rare_fraction=0.25,
        filters=filters,
        workers=1,
        progress=False,
    )
    bands = info.image.bands
    assert [f"{a}_{b}" for a, b in zip(bands[:-1], bands[1:], strict=True)] == colours
    assert info.image.shape[0] == len(bands)
    assert [k for k in info.labels if k.count("_") == 1 and len(k) == 3] == colours
    rows = pq.read_table(tmp_path / info.shards[0]).to_pylist()
    assert {"star", "ring", "arc"} <= {r["morph_type"] for r in rows}
    checked = 0
    for row in rows:
        flux, ivar = np.array(row["phot_flux"]), np.array(row["phot_ivar"])
        assert np.array(row["image"]).size == len(bands) * 64 * 64
        measured = 22.5 - 2.5 * np.log10(np.clip(flux, 1e-6, None))
        snr = flux * np.sqrt(ivar)
        assert row["mag_r"] == pytest.approx(measured[bands.index("r")], abs=0.2)
        for k, name in enumerate(colours):
            if min(snr[k], snr[k + 1]) > 30:
                assert row[name] == pytest.approx(measured[k] - measured[k + 1], abs=0.2), name
                checked += 1
    assert checked >= len(rows)
