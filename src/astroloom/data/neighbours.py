"""Other sources in a photograph, masked as missing before the picture is embedded.

A photograph framed by someone else holds whatever else lay in the field: foreground stars,
companions, background galaxies. The mock survey the models are trained on renders one
galaxy per cutout, and on real photographs the neighbours draw the pooled embedding away
from the galaxy: on 150 real galaxy photographs with catalogue types, masking them lifted
every trained model's early/late ROC-AUC at every framing and left an untrained network's
where it was (docs/benchmarks.md, "Neighbours masked in photographs").

The sources are found the way photutils finds them: a detection image (the band sum less
each band's sky, smoothed by a 1-pixel Gaussian), a threshold of ``nsigma`` times its sky
noise, and connected regions of at least five pixels (``photutils.segmentation.
detect_sources``). The region under the picture's centre is the galaxy; every other
region, grown by ``grow`` pixels (never into the galaxy), becomes NaN — missing, which the
tokenizer leaves out of the tokens rather than reading as sky.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from astroloom.data.schema import known_pixel_scale

NEIGHBOUR_SIGMA = 3.0  # detection threshold, in sky-noise units of the smoothed band sum
NEIGHBOUR_GROW = 2  # pixels each neighbour's region is grown by, for its faint wings
MIN_PIXELS = 5  # connected pixels a source needs


def masks_neighbours(pixel_scale: float | None, neighbours: bool | None = None) -> bool:
    """Whether an image's neighbours are masked before it is embedded: ``neighbours`` when
    given, else for pictures of unknown pixel scale (photographs) and not for survey
    cutouts, which are embedded as the model was trained."""
    if neighbours is not None:
        return bool(neighbours)
    return not known_pixel_scale(pixel_scale)


def _border(x: np.ndarray, k: int) -> np.ndarray:
    """The pixels within ``k`` of the edge of the last two axes, flattened per leading index."""
    lead = x.shape[:-2]
    parts = [x[..., :k, :], x[..., -k:, :], x[..., k:-k, :k], x[..., k:-k, -k:]]
    return np.concatenate([p.reshape(*lead, -1) for p in parts], axis=-1)


def neighbour_mask(
    image: np.ndarray, nsigma: float = NEIGHBOUR_SIGMA, grow: int = NEIGHBOUR_GROW
) -> np.ndarray:
    """``(H, W)`` bool: the pixels of ``image`` (``(C, H, W)``) that belong to sources other
    than the one at its centre (none when nothing stands out of the sky)."""
    from photutils.segmentation import detect_sources

    c, h, w = image.shape
    none = np.zeros((h, w), bool)
    finite = np.isfinite(image)
    if not finite.any():
        return none
    k = max(2, h // 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN borders: no sky, no mask
        sky = np.nanmedian(_border(image, k), axis=-1)
    if not np.all(np.isfinite(sky)):
        return none
    detection = np.where(finite, image - sky[:, None, None], 0.0).sum(axis=0)
    detection = ndimage.gaussian_filter(detection, 1.0)
    edge = _border(detection, k)
    level = np.median(edge)
    noise = 1.4826 * np.median(np.abs(edge - level))
    if not noise > 0:
        return none
    segments = detect_sources(detection - level, nsigma * noise, MIN_PIXELS)  # n_pixels
    if segments is None:
        return none
    labels = segments.data
    cy, cx = h // 2, w // 2
    galaxy = labels[cy - 1 : cy + 1, cx - 1 : cx + 1].max()
    if galaxy == 0:  # the centre is below the threshold: the nearest source is the galaxy
        yy, xx = np.nonzero(labels)
        nearest = np.argmin((yy - cy + 0.5) ** 2 + (xx - cx + 0.5) ** 2)
        galaxy = labels[yy[nearest], xx[nearest]]
    others = (labels > 0) & (labels != galaxy)
    if grow and others.any():
        others = ndimage.binary_dilation(others, iterations=grow)
    return others & (labels != galaxy)


def mask_neighbours(
    images: np.ndarray, nsigma: float = NEIGHBOUR_SIGMA, grow: int = NEIGHBOUR_GROW
) -> np.ndarray:
    """``(N, C, H, W)`` images with every source but the central one set to NaN (a float32
    copy; the input is left as it was)."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {images.shape}")
    out = images.astype(np.float32, copy=True)
    for i in range(len(out)):
        out[i][:, neighbour_mask(out[i], nsigma, grow)] = np.nan
    return out
