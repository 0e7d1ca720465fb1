"""Each augmentation does what its name says, on images with known answers, and draws its
randomness only from the generator it is given."""

import numpy as np
import pytest
import torch

from astroloom.config import AugmentConfig, ConfigError, load_config
from astroloom.data import augment as aug


def blob(sigma: float = 3.0, size: int = 32, bands: int = 3, flux=(1.0, 2.0, 4.0)) -> torch.Tensor:
    y, x = np.indices((size, size)) - (size - 1) / 2
    g = np.exp(-0.5 * (x**2 + y**2) / sigma**2)
    g /= g.sum()
    return torch.from_numpy(np.stack([f * g for f in flux[:bands]]).astype(np.float32))[None]


def size_of(image: torch.Tensor) -> float:
    """Second-moment radius (pixels) of the band sum."""
    img = image.sum(0).numpy()
    y, x = np.indices(img.shape)
    w = img.clip(min=0)
    cy, cx = (w * y).sum() / w.sum(), (w * x).sum() / w.sum()
    return float(np.sqrt((w * ((y - cy) ** 2 + (x - cx) ** 2)).sum() / w.sum() / 2))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_rot_flip_gives_a_symmetry_of_the_square():
    x = torch.randn(16, 3, 8, 8)
    out = aug.rot_flip(x, gen())
    for a, b in zip(x, out, strict=True):
        options = [torch.rot90(a, k, (1, 2)) for k in range(4)]
        options += [o.flip(2) for o in options]
        assert any(torch.equal(b, o) for o in options)


def test_zoom_scales_size_and_keeps_flux():
    x = blob(2.0, 48)
    out = aug.shift_zoom(x, gen(), max_shift=0.0, zoom=(2.0, 2.0))[0]
    assert size_of(out) == pytest.approx(2 * size_of(x[0]), rel=0.08)
    assert float(out.sum()) == pytest.approx(float(x.sum()), rel=0.05)
    shifted = aug.shift_zoom(x, gen(), max_shift=0.5)[0]
    assert size_of(shifted) == pytest.approx(size_of(x[0]), rel=0.05)


def test_psf_broadens_and_keeps_flux_and_masks():
    x = blob(1.0, 32)
    x[0, :, 0, 0] = float("nan")
    out = aug.psf(x, gen(), max_sigma=3.0)[0]
    assert torch.isnan(out[:, 0, 0]).all() and torch.isfinite(out[:, 5:, 5:]).all()
    assert size_of(torch.nan_to_num(out)) > 1.3 * size_of(torch.nan_to_num(x[0]))
    assert float(torch.nansum(out)) == pytest.approx(float(torch.nansum(x)), rel=0.02)


def test_noise_adds_the_stated_amount():
    x = torch.zeros(400, 2, 16, 16)
    out = aug.noise(x, gen(), sky_noise=[1.0, 3.0], max_factor=2.0)
    # f uniform in [0, 2]: E[f²] = 4/3, so the variance is 4/3 σ² per band.
    assert float(out[:, 0].var()) == pytest.approx(4 / 3, rel=0.1)
    assert float(out[:, 1].var()) == pytest.approx(9 * 4 / 3, rel=0.1)


def test_photo_is_an_8_bit_picture_that_keeps_colour():
    x = blob(3.0, 32)[0].numpy() * 100
    photo = aug.lupton_photo(x, q=8.0, stretch=float(x.mean(0).max()), jpeg_quality=None)
    assert photo.min() >= 0 and photo.max() <= 1
    np.testing.assert_allclose(photo * 255, np.round(photo * 255), atol=1e-4)
    bright = photo.mean(0) > 0.2
    ratio = photo[2][bright] / photo[0][bright]  # z / g: the blob's colour is 4 everywhere
    assert np.median(ratio) == pytest.approx(4.0, rel=0.1)
    jpeg = aug.lupton_photo(x, q=8.0, stretch=float(x.mean(0).max()), jpeg_quality=80)
    assert np.abs(jpeg - photo).mean() < 0.02  # compressed, but the same picture


def test_augment_is_reproducible_and_reports_lost_units():
    cfg = load_config(None, ["augment.preset='transfer'", "augment.photo=0.5"]).augment
    x = blob(2.0, 32).repeat(40, 1, 1, 1) + 0.001 * torch.randn(40, 3, 32, 32)
    a = aug.augment(x, cfg, gen(3), [0.001] * 3)
    b = aug.augment(x, cfg, gen(3), [0.001] * 3)
    torch.testing.assert_close(a.images, b.images, equal_nan=True)
    assert 5 < int((~a.unit_known).sum()) < 35  # photos (and hidden units) lose the unit
    assert not torch.allclose(a.images, aug.augment(x, cfg, gen(4), [0.001] * 3).images)


def test_augment_config_is_checked():
    assert not AugmentConfig().enabled
    assert load_config(None, ["augment.preset='transfer'"]).augment.enabled
    with pytest.raises(ConfigError, match="augment.photo is a probability"):
        load_config(None, ["augment.photo=2.0"])
    with pytest.raises(ConfigError, match="unknown augment preset"):
        load_config(None, ["augment.preset='wild'"])
    with pytest.raises(ConfigError, match="augment.zoom"):
        load_config(None, ["augment.zoom=0.5"])
