"""Maps with known answers: datasets in which the right map is known in advance, for the
tests and for ``benchmarks/interpret.py`` (and for anyone checking a new method).

* :func:`plant_source` — a label carried only by four image patches;
* :func:`paint_rare` — satellite trails and lensed arcs painted onto ordinary galaxies
  with the mock survey's own drawing code, with the pixels they light;
* :func:`near_lines` / :func:`line_significance` / :func:`without_lines` — where a
  galaxy's emission lines fall in its spectrum, how far they stand above its noise, and the
  spectra with those pixels replaced by their continuum: whether a number needs the lines
  at all, asked without any map;
* :func:`lines_removed` / :func:`line_hits` — that question asked of a redshift target
  (how far it moves without the lines, against the same windows moved elsewhere), and how
  often its map peaks within 20 Å of a line.
"""

from __future__ import annotations

import dataclasses

import galsim
import numpy as np
import torch
from scipy.ndimage import median_filter

from astroloom.data.multiset import MultimodalSet, keep
from astroloom.data.sim import rare
from astroloom.interpret.attribution import (
    CONTINUUM_PIXELS,
    Explainer,
    ExplainError,
    Target,
    continuum_of,
)
from astroloom.model.foundation import Foundation
from astroloom.tokenize.image import spiral_order

# The planted source sits at pixel (16, 16): the corner of four 8-pixel patches.
SOURCE_PIXEL = 16
SOURCE_PATCHES = np.zeros((8, 8), bool)
SOURCE_PATCHES[1:3, 1:3] = True


# Rest-frame vacuum wavelengths (Å) of the strong optical emission lines: [O II] 3727,
# Hβ, [O III] 4960 and 5008, Hα, [N II] 6585, [S II] 6718 and 6733.
EMISSION_LINES = np.array([3727.1, 4862.7, 4960.3, 5008.2, 6564.6, 6585.3, 6718.3, 6732.7])


def near_lines(wavelength: np.ndarray, redshift: float, within: float = 20.0) -> np.ndarray:
    """Which pixels of an observed-frame ``wavelength`` grid (Å) lie within ``within`` Å of
    an emission line at ``redshift``."""
    observed = EMISSION_LINES * (1 + redshift)
    return np.min(np.abs(np.asarray(wavelength)[:, None] - observed[None]), axis=1) <= within


def line_significance(
    flux: np.ndarray, ivar: np.ndarray, wavelength: np.ndarray, redshift: float
) -> float:
    """The strongest pixel within 20 Å of a line above the continuum (its running median,
    :func:`~astroloom.interpret.attribution.continuum_of`), in units of its noise: how
    visible the galaxy's lines are at all."""
    n = min(len(flux), len(wavelength))
    flux = np.nan_to_num(np.asarray(flux[:n], dtype=float))
    continuum = median_filter(flux, size=CONTINUUM_PIXELS, mode="nearest")
    snr = (flux - continuum) * np.sqrt(np.clip(np.nan_to_num(ivar[:n]), 0, None))
    return float(np.max(np.where(near_lines(wavelength[:n], redshift), snr, -np.inf)))


def without_lines(
    data: MultimodalSet, wavelength: np.ndarray | None = None, within: float = 20.0
) -> MultimodalSet:
    """A copy of ``data`` whose spectra have every pixel within ``within`` Å of an emission
    line at the object's ``redshift`` label replaced by the spectrum's continuum (the lines
    taken out, the noise elsewhere kept). ``wavelength``: the grid the spectra share (e.g.
    the model's tokenizer's); default each spectrum's own (``spectrum_wave``). A number
    that moves little when the lines go did not read them, and no faithful map of it
    should peak there."""
    if "redshift" not in data.labels:
        raise ExplainError("the lines' place needs each object's redshift; the data has none")
    if wavelength is None and "spectrum_wave" not in data.arrays:
        raise ExplainError("give the wavelength grid: the spectra carry none of their own")
    flux = data.arrays["spectrum_flux"]
    smooth = continuum_of(data).arrays["spectrum_flux"]
    out = flux.copy()
    for row, z in enumerate(np.asarray(data.labels["redshift"], dtype=float)):
        grid = data.arrays["spectrum_wave"][row] if wavelength is None else wavelength
        n = min(len(grid), flux.shape[1])
        if np.isfinite(z):
            near = np.zeros(flux.shape[1], bool)
            near[:n] = near_lines(grid[:n], z, within)
            out[row, near] = smooth[row, near]
    return dataclasses.replace(data, arrays={**data.arrays, "spectrum_flux": out})


def line_hits(ex: Explainer, target: Target, rows: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """Whether each galaxy's integrated-gradient map of ``target`` (spectrum pixels, the
    explainer's fill) peaks within 20 Å of an emission line at its redshift."""
    data = ex.data
    hits = []
    for i in rows:
        m = ex.integrated_gradients(str(data.ids[i]), target)
        attr = np.nan_to_num(np.abs(m.values["spectrum"].reshape(-1)[: len(wave)]))
        hits.append(bool(near_lines(wave, data.labels["redshift"][i])[np.argmax(attr)]))
    return np.array(hits)


def lines_removed(ex: Explainer, target: Target, rows: np.ndarray, wave: np.ndarray) -> dict:
    """Without any map: how far the probe's redshift moves when the lines' pixels become the
    continuum (:func:`without_lines`), against the same windows moved away from every line
    (each galaxy's line mask rolled to a place 60 Å clear of its lines)."""
    data = keep(ex.data, rows)
    gone = without_lines(data, wave)
    moved = data.arrays["spectrum_flux"].copy()
    smooth = continuum_of(data).arrays["spectrum_flux"]
    rng = np.random.default_rng(0)
    for k, z in enumerate(data.labels["redshift"]):
        near = near_lines(wave, z)
        clear = ~near_lines(wave, z, 60.0)
        for _ in range(200):
            shifted = np.roll(near, rng.integers(len(wave)))
            if not (shifted & ~clear).any():
                moved[k, : len(wave)][shifted] = smooth[k, : len(wave)][shifted]
                break
    out = {}
    for name, flux in (
        ("as is", data.arrays["spectrum_flux"]),
        ("lines removed", gone.arrays["spectrum_flux"]),
        ("windows moved", moved),
    ):
        copy = dataclasses.replace(data, arrays={**data.arrays, "spectrum_flux": flux})
        tokens = ex.foundation.tokens_from_set(copy, ["spectrum"])
        with torch.no_grad():
            out[name] = target(ex.embed(tokens)).numpy()
    z = data.labels["redshift"].astype(float)
    return {
        "n": len(rows),
        "median_shift_lines_removed": float(np.median(np.abs(out["lines removed"] - out["as is"]))),
        "median_shift_windows_moved": float(np.median(np.abs(out["windows moved"] - out["as is"]))),
        "median_error": float(np.median(np.abs(out["as is"] - z))),
        "median_error_lines_removed": float(np.median(np.abs(out["lines removed"] - z))),
    }


def patch_grid(tokens: np.ndarray, g: int = 8) -> np.ndarray:
    """A per-token image map in spiral order → the (g, g) patch grid."""
    grid = np.full(g * g, np.nan)
    grid[np.array(spiral_order(g))] = tokens
    return grid.reshape(g, g)


def region_share(tokens: np.ndarray, region: np.ndarray = SOURCE_PATCHES) -> float:
    """Share of a per-token image map's |mass| that falls in ``region`` of the patch grid."""
    grid = np.abs(patch_grid(tokens, region.shape[0]))
    return float(grid[region].sum() / grid.sum())


def plant_source(
    foundation: Foundation, galaxies: MultimodalSet, strength: float = 30.0, seed: int = 0
) -> tuple[MultimodalSet, np.ndarray]:
    """Each galaxy in four orientations; half of the cutouts get a compact source at the
    same pixel, and the label ``planted`` ("source" / "none") says which — so nothing but
    the source's four patches carries the label. The source's brightness is ``strength``
    times each cutout's own softening (the unit the per-object normalisation divides by),
    so that it reaches the model the same in every galaxy. Returns the set and which
    cutouts have the source."""
    n0 = len(galaxies.ids)
    data = keep(galaxies, np.tile(np.arange(n0), 4))
    data.ids = np.array([f"{i}-r{k // n0}" for k, i in enumerate(data.ids)], dtype=object)
    images = data.arrays["image"].copy()
    for r in range(4):
        images[r * n0 : (r + 1) * n0] = np.rot90(images[r * n0 : (r + 1) * n0], r, axes=(2, 3))
    soft = foundation.tokenizer.image.normalise(torch.from_numpy(images)).soft.numpy()
    y, x = np.indices(images.shape[-2:])
    source = np.exp(-0.5 * ((y - SOURCE_PIXEL) ** 2 + (x - SOURCE_PIXEL) ** 2) / 2.0**2)
    has = np.random.default_rng(seed).random(len(images)) < 0.5
    images += has[:, None, None, None] * strength * soft[:, None, None, None] * source
    data.arrays["image"] = images.astype(np.float32)
    data.labels = {"planted": np.array(["source" if h else "none" for h in has], dtype=object)}
    return data, has


def paint_rare(
    galaxies: MultimodalSet, n: int, seed: int = 3
) -> tuple[MultimodalSet, dict[str, tuple[str, np.ndarray]]]:
    """``n`` of the galaxies get a satellite trail (even draws) or a lensed arc (odd ones).
    Returns the set and, per painted id, the kind and the pixels its light reaches (over
    20 % of its peak)."""
    data = keep(galaxies, np.arange(len(galaxies.ids)))
    images = data.arrays["image"].copy()
    scale = float(data.info.image.pixel_scale_arcsec)
    size = images.shape[-1]
    rng = np.random.default_rng(seed)
    where = {}
    for k, i in enumerate(rng.choice(len(images), n, replace=False)):
        host = images[i].astype(float)
        fwhm = float(data.labels["psf_fwhm"][i])
        if k % 2 == 0:
            kind, new = "trail", rare.satellite_trail(host, fwhm, scale, rng)
        else:
            kind = "arc"
            source = np.array([5.0, 7.5, 10.0])
            new = rare.lensed_arc(host, source, galsim.Gaussian(fwhm=fwhm), size, scale, rng)
        extra = (new - host).sum(0)
        where[str(data.ids[i])] = (kind, extra > 0.2 * extra.max())
        images[i] = new
    data.arrays["image"] = images.astype(np.float32)
    return data, where


def surprise_hits(
    explainer: Explainer, where: dict[str, tuple[str, np.ndarray]]
) -> dict[str, list[bool]]:
    """Per kind: whether each painted galaxy's most surprising patch lies on its paint."""
    hits: dict[str, list[bool]] = {}
    for object_id, (kind, light) in where.items():
        grid = patch_grid(explainer.surprise(object_id).tokens["image"])
        r, c = np.unravel_index(np.nanargmax(grid), grid.shape)
        hits.setdefault(kind, []).append(bool(light[8 * r : 8 * r + 8, 8 * c : 8 * c + 8].any()))
    return hits
