import galsim
import numpy as np
import pytest

from astroloom.data.schema import DatasetInfo
from astroloom.data.shards import load_image_set
from astroloom.data.sim.galaxies import (
    NOISE_SIGMA,
    PIXEL_SCALE,
    composite_half_light_radius,
    render_galaxy,
    simulate_galaxies,
)


def test_same_seed_same_survey_whatever_the_workers(tmp_path):
    a = simulate_galaxies(tmp_path / "a", n=30, seed=3, shard_size=10, workers=1, progress=False)
    b = simulate_galaxies(tmp_path / "b", n=30, seed=3, shard_size=7, workers=2, progress=False)
    sa, sb = load_image_set(tmp_path / "a"), load_image_set(tmp_path / "b")
    assert list(sa.ids) == list(sb.ids)
    np.testing.assert_array_equal(sa.images, sb.images)
    assert a.seed == b.seed == 3
    other = simulate_galaxies(tmp_path / "c", n=5, seed=4, progress=False)
    assert not np.allclose(load_image_set(tmp_path / "c").images, sa.images[:5])
    assert other.n_objects == 5


def test_dataset_json_records_physics(mock_dir):
    info = DatasetInfo.load(mock_dir)
    assert info.image.bands == ["g", "r", "z"] and info.image.shape == [3, 64, 64]
    assert info.image.pixel_scale_arcsec == pytest.approx(0.262)
    assert info.seed == 7 and "half_light_radius" in info.labels
    # The recorded arcsinh softening is the measured sky noise of each band.
    scale = info.normalisation["image"]["scale"]
    np.testing.assert_allclose(scale, [NOISE_SIGMA[b] for b in "grz"], rtol=0.05)


def test_image_flux_and_colours_match_labels():
    # Sum the pixels of bright, compact galaxies: the total must match the labels.
    for i in range(40):
        image, labels = render_galaxy(i, seed=11)
        if labels["mag_r"] < 18.5 and labels["half_light_radius"] < 1.0:
            flux = image.sum(axis=(1, 2))
            assert flux[1] == pytest.approx(labels["flux_r"], rel=0.03)
            assert -2.5 * np.log10(flux[0] / flux[1]) == pytest.approx(labels["g_r"], abs=0.05)
            assert -2.5 * np.log10(flux[1] / flux[2]) == pytest.approx(labels["r_z"], abs=0.05)
            return
    pytest.fail("no bright compact galaxy among the first 40")


def test_sky_noise_level():
    image, _ = render_galaxy(0, seed=1)
    border = image[:, :4, :]
    for band, sigma in zip("grz", NOISE_SIGMA.values(), strict=True):
        assert border["grz".index(band)].std() == pytest.approx(sigma, rel=0.2)


def test_composite_half_light_radius_agrees_with_galsim():
    bulge = galsim.DeVaucouleurs(half_light_radius=0.4, flux=0.3)
    disk = galsim.Exponential(half_light_radius=1.1, flux=0.7)
    expected = (bulge + disk).calculateHLR(scale=PIXEL_SCALE / 8, size=1024)
    assert composite_half_light_radius(0.3, 0.4, 1.1) == pytest.approx(expected, rel=0.01)
    assert composite_half_light_radius(0.0, 0.4, 1.1) == pytest.approx(1.1, rel=1e-6)


def test_rejects_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match="positive"):
        simulate_galaxies(tmp_path, n=0, progress=False)
