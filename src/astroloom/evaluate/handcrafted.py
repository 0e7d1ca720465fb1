"""The "first wave" baseline: hand-crafted photometry and morphology measured with photutils.

Per cutout: the central source is segmented on the middle band; photutils' SourceCatalog
gives its flux in every band (hence colours), the radii holding 20 %, 50 % and 80 % of the
light (size and concentration R80/R20), ellipticity and Gini coefficient; the rotational
asymmetry A = Σ|I − I₁₈₀| / Σ|I| over the segment is computed beside it. A cutout where
no source is found gets NaNs, which the probe sees as the feature medians.
"""

from __future__ import annotations

import warnings

import joblib
import numpy as np
from tqdm.auto import tqdm

from astroloom.evaluate.fewshot import probe_jobs

FEATURES_PER_BAND = ["flux"]
SHAPE_FEATURES = ["r20", "r50", "r80", "concentration", "ellipticity", "gini", "asymmetry"]


def _central_segment(band: np.ndarray, noise: float):
    from photutils.segmentation import detect_sources

    with warnings.catch_warnings():  # an empty cutout is an answer (NaN features), not news
        warnings.simplefilter("ignore")
        segments = detect_sources(np.nan_to_num(band), 1.5 * noise, 5)  # at least 5 pixels
    if segments is None:
        return None
    c = band.shape[0] // 2
    label = segments.data[c, c]
    if label == 0:  # no segment on the centre pixel: take the one nearest to it
        ys, xs = np.nonzero(segments.data)
        nearest = np.argmin((ys - c) ** 2 + (xs - c) ** 2)
        label = segments.data[ys[nearest], xs[nearest]]
    segments.keep_labels([label])
    return segments


def measure(image: np.ndarray, noise: list[float]) -> np.ndarray:
    """Feature vector of one ``(C, H, W)`` cutout: fluxes, colours, sizes, shape."""
    from photutils.segmentation import SourceCatalog

    n_bands = image.shape[0]
    ref = n_bands // 2
    out = np.full(n_bands + (n_bands - 1) + len(SHAPE_FEATURES), np.nan)
    segments = _central_segment(image[ref], noise[ref])
    if segments is None:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fluxes = [
            float(SourceCatalog(np.nan_to_num(band), segments).segment_flux[0]) for band in image
        ]
        cat = SourceCatalog(np.nan_to_num(image[ref]), segments)
        r20, r50, r80 = (
            float(np.ravel(getattr(r, "value", r))[0])
            for r in (cat.fluxfrac_radius(f) for f in (0.2, 0.5, 0.8))
        )
        mask = segments.data > 0
        data = np.nan_to_num(image[ref])
        rotated = data[::-1, ::-1]
        asym = float(np.abs(data - rotated)[mask].sum() / max(np.abs(data)[mask].sum(), 1e-12))
        colours = [
            -2.5 * np.log10(max(fluxes[i], 1e-9) / max(fluxes[i + 1], 1e-9))
            for i in range(n_bands - 1)
        ]
        shape = [
            r20,
            r50,
            r80,
            r80 / max(r20, 1e-6),
            float(cat.ellipticity[0].value),
            float(cat.gini[0]),
            asym,
        ]
    out[:] = [*np.arcsinh(fluxes), *colours, *shape]
    return out


def _measure_all(images: np.ndarray, noise: list[float]) -> np.ndarray:
    return np.stack([measure(im, noise) for im in images])


def handcrafted_features(
    images: np.ndarray, noise: list[float], progress: bool = True, jobs: int = 1
) -> np.ndarray:
    """``(N, C, H, W)`` → ``(N, F)``; missing measurements filled with each feature's median.
    ``jobs`` > 1 measures that many chunks of cutouts at a time in worker processes (-1:
    one per core), with the same result."""
    jobs = probe_jobs(jobs)
    size = 250  # cutouts per task: a worker's start-up cost is paid once, not per cutout
    chunks = [images[i : i + size] for i in range(0, len(images), size)]
    if jobs == 1 or len(chunks) < 2:
        parts = (_measure_all(c, noise) for c in chunks)
    else:
        parts = joblib.Parallel(n_jobs=jobs, return_as="generator")(
            joblib.delayed(_measure_all)(c, noise) for c in chunks
        )
    done = []
    with tqdm(
        total=len(images), desc="hand-crafted features", unit="obj", disable=not progress
    ) as bar:
        for part in parts:
            done.append(part)
            bar.update(len(part))
    rows = np.concatenate(done)
    medians = np.nanmedian(np.where(np.isfinite(rows), rows, np.nan), axis=0)
    return np.where(np.isfinite(rows), rows, np.nan_to_num(medians))
