"""The first-wave baseline for light curves: period-finding and summary statistics.

Per star and band: the Lomb–Scargle period (astropy) and its peak power, the amplitude
(5–95 % range), mean, scatter and skewness of the magnitudes, and the number of epochs;
the main band's period enters as log10. This is what variable-star classification was
built on before learned features.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import skew
from tqdm.auto import tqdm

from astroloom.tokenize.lightcurve import best_period, canonical_curve, periods_of

PER_BAND = ["log_period", "power", "amplitude", "mean", "std", "skew", "n"]


def curve_features(
    time: np.ndarray,
    mag: np.ndarray,
    band: np.ndarray,
    n_bands: int = 2,
    periods: list[tuple[float, float]] | None = None,
) -> np.ndarray:
    """One star's features; ``periods`` gives each band's (period, power) if already found."""
    out = np.full(n_bands * len(PER_BAND), np.nan)
    for b in range(n_bands):
        sel = (band == b) & np.isfinite(mag) & np.isfinite(time)
        t, m = time[sel], mag[sel]
        if len(t) < 5:
            continue
        # The same search the period-aware tokens use.
        period, power = periods[b] if periods is not None else best_period(t, m)
        row = [float(np.log10(period)) if np.isfinite(period) else np.nan, power]
        lo, hi = np.percentile(m, [5, 95])
        out[b * len(PER_BAND) : (b + 1) * len(PER_BAND)] = [
            *row,
            hi - lo,
            m.mean(),
            m.std(),
            skew(m) if m.std() > 0 else 0.0,
            len(m),
        ]
    return out


def lightcurve_features(
    times: list, mags: list, bands: list, n_bands: int = 2, progress: bool = True
) -> np.ndarray:
    """``(N, n_bands · 7)`` features; a missing value becomes its column's median. The
    periodograms of all stars and bands are searched in one parallel batch, on the arrays
    the light-curve tokenizer holds (the main band's are then found in this process's
    memory when the curves were tokenized first, as in ``astroloom bench``)."""
    curves = [
        (np.asarray(t, float), np.asarray(m, float), np.asarray(b))
        for t, m, b in zip(times, mags, bands, strict=True)
    ]
    jobs = []
    for t, m, b in curves:
        # The tokenizer's own arrays, so that periods it searched already are reused.
        t32, m32, b32 = canonical_curve(t, m, b)
        for k in range(n_bands):
            sel = b32 == k
            jobs.append((t32[sel], m32[sel]) if sel.sum() >= 5 else None)
    found = periods_of(jobs)
    rows = np.stack(
        [
            curve_features(t, m, b, n_bands, found[i * n_bands : (i + 1) * n_bands])
            for i, (t, m, b) in enumerate(
                tqdm(curves, desc="light-curve features", disable=not progress)
            )
        ]
    )
    medians = np.nanmedian(np.where(np.isfinite(rows), rows, np.nan), axis=0)
    return np.where(np.isfinite(rows), rows, np.nan_to_num(medians))
