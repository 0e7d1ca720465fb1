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


@pytest.mark.parametrize("normalisation", ["object", "survey"])
def test_turned_tokens_are_the_tokens_of_the_turned_pixels(normalisation):
    """Embeddings averaged over a cutout's turns turn the tokens, not the pixels: for each
    of the eight orientations (with a masked pixel, so the mask moves too) the result is
    what tokenising the turned and mirrored pixels gives."""
    from astroloom.tokenize.image import ORIENTATIONS, check_orientations, orient_tokens

    tok = ImageTokenizer(
        patch_size=8,
        scale=[0.01, 0.02, 0.05],
        normalisation=normalisation,
        colours=normalisation == "object",
    )
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:32, :32]
    blob = np.exp(-((x - 11.0) ** 2) / 30 - (y - 19.0) ** 2 / 8)  # off centre, elongated
    images = (rng.normal(0, 0.01, (2, 3, 32, 32)) + blob * [[[1]], [[2]], [[3]]]).astype("f4")
    images[1, 0, 3, 7] = np.nan
    base = tok.tokens(torch.from_numpy(images))
    assert len(ORIENTATIONS) == 8
    for turns, mirror in ORIENTATIONS:
        turned = np.rot90(images, turns, axes=(-2, -1))
        turned = np.ascontiguousarray(turned[..., ::-1] if mirror else turned)
        want = tok.tokens(torch.from_numpy(turned))
        got = orient_tokens(base, turns, mirror, patch_size=8, n_bands=3)
        assert torch.equal(got.values, want.values), (turns, mirror)
        assert torch.equal(got.valid.expand_as(got.values), want.valid.expand_as(want.values))
        assert torch.equal(got.present, want.present)
        assert torch.equal(got.position, want.position)
        if want.context is not None:  # brightness and colours do not change under a turn
            torch.testing.assert_close(got.context, want.context, equal_nan=True)
    with pytest.raises(ValueError, match="square grid"):
        orient_tokens(base, 1, False, patch_size=4, n_bands=3)
    assert check_orientations(8) == 8
    with pytest.raises(KeyError, match="1, 4 or 8, got 2"):  # the caller's own error class
        check_orientations(2, KeyError)
