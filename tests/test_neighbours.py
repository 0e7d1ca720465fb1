"""A photograph's other sources are masked as missing before it is embedded: a planted star
is masked and the central galaxy kept, on a drawn picture and on real Hubble XDF cut-outs;
pictures with nothing else in them lose (almost) nothing; bad input is refused."""

import numpy as np
import pytest

from astroloom.data.neighbours import mask_neighbours, masks_neighbours, neighbour_mask


def gaussian(size: int, y: float, x: float, sigma: float) -> np.ndarray:
    yy, xx = np.indices((size, size))
    return np.exp(-0.5 * ((yy - y) ** 2 + (xx - x) ** 2) / sigma**2)


def galaxy_and_star(seed: int, star: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(3, 64, 64) picture: a galaxy at the centre, a star at (12, 50) if asked, sky noise;
    with the galaxy's and the star's own light."""
    rng = np.random.default_rng(seed)
    galaxy = 40 * gaussian(64, 31.5, 31.5, 5.0)
    point = 60 * gaussian(64, 12, 50, 1.2) * star
    picture = np.stack([(galaxy + point) * w for w in (0.6, 1.0, 1.3)])
    return picture + rng.normal(0, 1.0, picture.shape), galaxy, point


def test_a_star_beside_the_galaxy_is_masked_and_the_galaxy_kept():
    for seed in range(5):
        picture, galaxy, star = galaxy_and_star(seed)
        masked = mask_neighbours(picture[None])[0]
        assert not np.isnan(picture).any()  # the input is left as it was
        gone = np.isnan(masked[0])
        assert np.array_equal(gone, np.isnan(masked).any(axis=0))  # every band alike
        assert star[gone].sum() > 0.95 * star.sum()
        assert galaxy[gone].sum() < 0.01 * galaxy.sum()
        assert not gone[24:40, 24:40].any()
        np.testing.assert_array_equal(masked[:, ~gone], picture[:, ~gone].astype(np.float32))


def test_a_picture_of_the_galaxy_alone_keeps_its_pixels():
    lost = [neighbour_mask(galaxy_and_star(seed, star=False)[0]).mean() for seed in range(10)]
    assert max(lost) < 0.01
    # Blank, constant or missing pictures have no sources to mask and no error either.
    for empty in (np.zeros((3, 64, 64)), np.ones((3, 64, 64)), np.full((3, 64, 64), np.nan)):
        assert not neighbour_mask(empty).any()


def test_missing_pixels_and_bad_shapes():
    picture, _, star = galaxy_and_star(0)
    picture[:, :, :6] = np.nan  # a strip off the detector
    gone = np.isnan(mask_neighbours(picture[None])[0, 0])
    assert star[gone].sum() > 0.95 * star.sum()
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        mask_neighbours(picture)


def test_masked_by_default_in_photographs_only():
    assert masks_neighbours(None) and masks_neighbours(float("nan"))
    assert not masks_neighbours(0.262)
    assert masks_neighbours(0.262, True) and not masks_neighbours(None, False)


def test_a_star_planted_in_real_xdf_cutouts_is_masked(xdf_galaxies):
    """Real pictures: the 40 largest galaxies of the Hubble XDF colour picture (scikit-image
    ships it), each cut out five equivalent radii wide at 64 × 64, with their own real
    neighbours. A star planted near a corner of each is masked (measured: 36 of 40; the
    others lie on their galaxy's own light, and go with it), the galaxy's centre never, and
    every cut-out loses some real neighbour too (15 % of the pixels on average)."""
    from PIL import Image

    picture, galaxies = xdf_galaxies
    cutouts = []
    for cy, cx, side in galaxies[:60]:
        y, x = int(round(cy - side / 2)), int(round(cx - side / 2))
        if y < 0 or x < 0 or y + side > picture.shape[0] or x + side > picture.shape[1]:
            continue
        cut = Image.fromarray(picture[y : y + side, x : x + side]).resize((64, 64), Image.LANCZOS)
        cutouts.append(np.moveaxis(np.asarray(cut, float), -1, 0)[::-1])  # B, G, R as g, r, z
    assert len(cutouts) >= 40
    images = np.stack(cutouts[:40])
    star = 150 * gaussian(64, 10, 53, 1.2)
    planted = np.clip(images + star, 0, 255)  # an 8-bit picture saturates
    masked = mask_neighbours(planted)
    gone = np.isnan(masked[:, 0])
    kept_star = np.array([star[~g].sum() / star.sum() for g in gone])
    assert np.median(kept_star) < 0.05 and np.mean(kept_star < 0.2) >= 0.8
    assert not gone[:, 28:36, 28:36].any()
    # The real neighbours go too: the cut-outs lose some pixels besides the star's.
    assert (gone & (star < 1.0)).any(axis=(1, 2)).mean() > 0.5
