"""PNG pictures of one object for the explorer's pages: its image in any band and stretch,
its spectrum, its light curve raw and folded."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from astroloom.report.plots import rgb_composite  # noqa: E402

STRETCHES = ("asinh", "linear", "log")


def _png(array: np.ndarray, size: int) -> bytes:
    picture = Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8))
    picture = picture.resize((size, size), Image.NEAREST).transpose(Image.FLIP_TOP_BOTTOM)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def image_png(
    image: np.ndarray,
    scale: Sequence[float] | None,
    band: str = "rgb",
    bands: Sequence[str] | None = None,
    stretch: str = "asinh",
    size: int = 128,
) -> bytes:
    """An image ``(C, H, W)`` as a PNG: colour (the last three bands as R, G, B) or one band
    in grey; arcsinh (in units of the band's noise), linear or log stretch."""
    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {', '.join(STRETCHES)}")
    scale = np.asarray(scale if scale is not None else np.nanstd(image, axis=(1, 2)), float)
    if band == "rgb" and len(image) >= 3 and stretch == "asinh":
        return _png(rgb_composite(image[-3:], scale[-3:]), size)
    names = list(bands or [])
    if band == "rgb":
        k = len(image) // 2
    elif band in names:
        k = names.index(band)
    else:
        raise ValueError(f"band must be rgb or one of {names}")
    x = np.nan_to_num(image[k] / scale[k])
    if stretch == "asinh":
        x = np.arcsinh(x)
    elif stretch == "log":
        x = np.log10(np.clip(x, 1e-3, None) + 1.0)
    lo, hi = np.percentile(x, [1, 99.7])
    grey = (x - lo) / max(hi - lo, 1e-12)
    return _png(np.repeat(grey[..., None], 3, axis=2), size)


def _figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def spectrum_png(wavelength: np.ndarray, flux: np.ndarray, unit: str = "") -> bytes:
    fig, ax = plt.subplots(figsize=(7, 2.4), dpi=90)
    ax.plot(wavelength, flux, lw=0.6, color="k")
    ax.set(xlabel="observed wavelength (Å)", ylabel=f"flux {unit}".strip())
    lo, hi = np.nanpercentile(flux, [1, 99.5])
    ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.2 * (hi - lo))
    fig.tight_layout()
    return _figure_png(fig)


def lightcurve_png(curve: dict, period: float | None, bands: Sequence[str] = ()) -> bytes:
    """Raw (time) and, when a period is known, folded (phase) panels, one colour per band."""
    panels = 2 if period and np.isfinite(period) and period > 0 else 1
    fig, axes = plt.subplots(1, panels, figsize=(3.6 * panels + 0.4, 2.6), dpi=90, squeeze=False)
    time, mag, band = (np.asarray(curve[k]) for k in ("time", "mag", "band"))
    for b in np.unique(band):
        sel = band == b
        name = bands[int(b)] if int(b) < len(bands) else str(b)
        axes[0, 0].plot(time[sel], mag[sel], ".", ms=2, label=name)
        if panels == 2:
            phase = np.mod(time[sel] - time.min(), period) / period
            axes[0, 1].plot(phase, mag[sel], ".", ms=2)
    axes[0, 0].set(xlabel="time (d)", ylabel="magnitude")
    axes[0, 0].invert_yaxis()
    axes[0, 0].legend(fontsize=7)
    if panels == 2:
        axes[0, 1].set(xlabel=f"phase (P = {period:.4g} d)")
        axes[0, 1].invert_yaxis()
    fig.tight_layout()
    return _figure_png(fig)
