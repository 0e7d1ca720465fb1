"""Normalisation statistics measured on the data and recorded in ``dataset.json``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from astroloom.data.schema import DatasetInfo


def robust_noise_scale(images: np.ndarray, border: int = 4) -> list[float]:
    """Per-band sky noise from the cutouts' borders (median absolute deviation × 1.4826)."""
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, bands, H, W); got {images.shape}")
    edge = np.concatenate(
        [
            images[:, :, :border, :].reshape(*images.shape[:2], -1),
            images[:, :, -border:, :].reshape(*images.shape[:2], -1),
        ],
        axis=2,
    )
    scales = []
    for band in range(images.shape[1]):
        values = edge[:, band].ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError(f"band {band} has no finite border pixels to estimate its noise")
        mad = np.median(np.abs(values - np.median(values))) * 1.4826
        scales.append(float(mad) if mad > 0 else float(np.std(values) or 1.0))
    return scales


def save_with_normalisation(
    info: DatasetInfo, directory: str | Path, sample: int = 500
) -> DatasetInfo:
    """Write ``dataset.json``, then the arcsinh softening per band measured on the borders of
    the first ``sample`` images, and write it again with that recorded."""
    from astroloom.data.shards import load_image_set  # shards reads dataset.json itself

    info.save(directory)
    images = load_image_set(directory, limit=sample).images
    info.normalisation = {"image": {"kind": "arcsinh", "scale": robust_noise_scale(images)}}
    info.save(directory)
    return info


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x − median) / interquartile range: scores on different scales made comparable."""
    lo, mid, hi = np.percentile(x, [25, 50, 75])
    return (x - mid) / max(hi - lo, 1e-12)
