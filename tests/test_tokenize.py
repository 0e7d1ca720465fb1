import numpy as np
import pytest
import torch

from astroloom.data.normalise import robust_noise_scale
from astroloom.tokenize.image import ImageTokenizer, spiral_order


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_spiral_is_centre_out_walk(n):
    order = spiral_order(n)
    assert sorted(order) == list(range(n * n))
    rows, cols = np.divmod(np.array(order), n)
    # Each step moves to a neighbouring cell, except jumps across the edge on even grids.
    centre = (n - 1) / 2
    dist = np.maximum(np.abs(rows - centre), np.abs(cols - centre))
    assert dist[0] == dist.min()
    assert np.all(np.diff(np.ceil(dist)) >= 0), "rings must be visited from the centre outward"


def test_encode_decode_round_trip():
    tok = ImageTokenizer(patch_size=8, scale=[0.01, 0.02, 0.05])
    images = torch.randn(3, 3, 64, 64) * 0.5
    tokens, valid = tok.encode(images)
    assert tokens.shape == (3, 64, 192) and valid.all()
    torch.testing.assert_close(tok.decode(tokens, 64), images, rtol=1e-4, atol=1e-6)


def test_first_token_is_the_centre_patch():
    tok = ImageTokenizer(patch_size=8, scale=[1.0])
    image = torch.zeros(1, 1, 64, 64)
    image[0, 0, 24:32, 24:32] = 5.0  # the patch just above-left of the centre
    tokens, _ = tok.encode(image)
    assert torch.all(tokens[0, 0] == torch.asinh(torch.tensor(5.0)))
    assert tokens[0, 1:].abs().sum() == 0


def test_nan_pixels_become_masked_zeros():
    tok = ImageTokenizer(patch_size=8, scale=[1.0, 1.0, 1.0])
    images = torch.ones(1, 3, 16, 16)
    images[0, 1, 3, 3] = float("nan")
    images[0, 2, 10, 10] = float("inf")
    tokens, valid = tok.encode(images)
    assert torch.isfinite(tokens).all()
    assert int((~valid).sum()) == 2


def test_shape_errors_are_clear():
    tok = ImageTokenizer(patch_size=8, scale=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="3 bands, images have 2"):
        tok.encode(torch.zeros(1, 2, 64, 64))
    with pytest.raises(ValueError, match="multiple of 8"):
        tok.encode(torch.zeros(1, 3, 60, 60))
    with pytest.raises(ValueError, match="batch, bands"):
        tok.encode(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="positive"):
        ImageTokenizer(patch_size=8, scale=[0.0])


def test_save_load(tmp_path):
    tok = ImageTokenizer(patch_size=4, scale=[0.1, 0.2], bands=["g", "r"])
    tok.save(tmp_path / "t.json")
    assert ImageTokenizer.load(tmp_path / "t.json") == tok


def test_robust_noise_scale_ignores_galaxy_and_nans():
    rng = np.random.default_rng(0)
    images = rng.normal(0, 0.3, (20, 2, 32, 32)).astype(np.float32)
    images[:, :, 12:20, 12:20] += 100.0
    images[0, 0, 0, 0] = np.nan
    np.testing.assert_allclose(robust_noise_scale(images), [0.3, 0.3], rtol=0.1)
