"""The same mock galaxies as three instruments would record them: the domain-shift test set.

* ``survey``: the training survey (DECam-like g r z, 0.262″/px, Moffat PSF 0.9–1.6″,
  nanomaggies) — what the model is pretrained on;
* ``second``: another telescope: 0.40″/px, PSF 1.4–2.4″, twice the sky noise, pixels in
  ADU with zero point 27 on a sky pedestal of 200 ADU;
* ``photo``: 8-bit colour photographs (JPEG) of well-exposed cutouts: an asinh colour
  composite after Lupton et al. (2004) with its Q and stretch drawn per galaxy, the galaxy
  filling 15–60 % of the frame at whatever pixel scale that takes, the centre shifted by up
  to 8 % of the frame; unit and pixel scale unknown, as for a picture found on the web.

Each galaxy's shape, orientation, sub-pixel offset, colours and size are the same in all
three; the labels (early/late type, half-light radius, ellipticity, …) are the truth.
Written as three datasets beside each other, each with its own ``dataset.json``
(``survey/``, ``second/``, ``photo/``).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import galsim
import numpy as np
from tqdm.auto import tqdm

from astroloom.data.augment import lupton_photo
from astroloom.data.normalise import save_with_normalisation
from astroloom.data.schema import DatasetInfo, ImageMeta
from astroloom.data.shards import list_column, write_table
from astroloom.data.sim.galaxies import MOFFAT_BETA, PIXEL_SCALE, ZERO_POINT
from astroloom.data.sim.galaxies import composite_half_light_radius as composite_hlr
from astroloom.data.sim.population import draw_population
from astroloom.data.sim.survey import IMAGE_SIZE, NOISE

RENDITIONS = ("survey", "second", "photo")
LABELS = {
    "morph_type": {"unit": "", "kind": "category", "description": "early / late"},
    "is_early": {"unit": "", "description": "1 for an early-type galaxy, else 0"},
    "redshift": {"unit": "", "description": "cosmological redshift"},
    "mag_r": {"unit": "AB mag", "description": "true r-band magnitude"},
    "g_r": {"unit": "mag", "description": "true g − r colour"},
    "bulge_to_total": {"unit": "", "description": "bulge fraction of the light"},
    "half_light_radius": {"unit": "arcsec", "description": "half-light radius before the PSF"},
    "ellipticity": {"unit": "", "description": "|g| = (1 − q)/(1 + q) of the galaxy"},
}


@dataclass(frozen=True)
class Instrument:
    pixel_scale: float  # arcsec per pixel
    psf_fwhm: tuple[float, float]  # arcsec, uniform range
    noise_factor: float  # × the survey's per-band sky noise (in nanomaggies)
    unit: str
    zero_point: float  # AB magnitude of one unit
    sky: float  # pedestal, in the instrument's unit


SURVEY = Instrument(PIXEL_SCALE, (0.9, 1.6), 1.0, "nanomaggy", ZERO_POINT, 0.0)
SECOND = Instrument(0.40, (1.4, 2.4), 2.0, "ADU", 27.0, 200.0)
PHOTO_NOISE = 0.05  # photographs are of well-exposed galaxies (20× the depth)


def _draw_galaxy(
    r_disk: float, bt: float, shear, psf, size: int, scale: float, offset, fluxes: np.ndarray
) -> np.ndarray:
    parts = [
        galsim.Convolve(profile.shear(shear), psf)
        .drawImage(nx=size, ny=size, scale=scale, offset=offset)
        .array
        for profile in (
            galsim.DeVaucouleurs(half_light_radius=0.5 * r_disk),
            galsim.Exponential(half_light_radius=r_disk),
        )
    ]
    return fluxes[:, None, None] * (bt * parts[0] + (1 - bt) * parts[1])


def render_three(pop, j: int, index: int, seed: int) -> tuple[list[np.ndarray], dict]:
    """Galaxy ``j`` of ``pop`` as the survey, the second instrument and a photograph."""
    bands = ["g", "r", "z"]
    rng = np.random.default_rng([seed, 41, index])
    hlr = float(np.clip(pop.half_light_radius[j], 0.1, 4.0))
    bt = float(pop.bulge_to_total[j])
    r_disk = hlr / composite_hlr(bt, 0.5, 1.0)
    g = min(float(pop.ellipticity[j]), 0.9)
    shear = galsim.Shear(g=g, beta=rng.uniform(0, np.pi) * galsim.radians)
    offset = tuple(rng.uniform(-0.5, 0.5, 2))
    fluxes = 10 ** (-0.4 * (pop.mags[j] - ZERO_POINT))
    sigma = np.array([NOISE[b] for b in bands])[:, None, None]
    images = []
    for inst in (SURVEY, SECOND):
        psf = galsim.Moffat(beta=MOFFAT_BETA, fwhm=rng.uniform(*inst.psf_fwhm))
        nmgy = _draw_galaxy(r_disk, bt, shear, psf, IMAGE_SIZE, inst.pixel_scale, offset, fluxes)
        nmgy = nmgy + rng.normal(size=nmgy.shape) * sigma * inst.noise_factor
        to_unit = 10 ** (0.4 * (inst.zero_point - ZERO_POINT))  # nanomaggies → the unit
        images.append((nmgy * to_unit + inst.sky).astype(np.float32))
    # The photograph: the galaxy fills a fraction of the frame, whatever the pixel scale.
    psf_fwhm = rng.uniform(*SURVEY.psf_fwhm)
    psf = galsim.Moffat(beta=MOFFAT_BETA, fwhm=psf_fwhm)
    extent = 4.0 * np.hypot(hlr, psf_fwhm / 2)  # about the diameter holding most light
    scale = extent / (rng.uniform(0.15, 0.6) * IMAGE_SIZE)
    shift = tuple(rng.uniform(-0.08, 0.08, 2) * IMAGE_SIZE)
    nmgy = _draw_galaxy(r_disk, bt, shear, psf, IMAGE_SIZE, scale, shift, fluxes)
    # Sky noise per pixel of the photograph's own (larger or smaller) pixels.
    noise = sigma * PHOTO_NOISE * scale / PIXEL_SCALE
    nmgy = nmgy + rng.normal(size=nmgy.shape) * noise
    peak = float(nmgy.mean(axis=0).max())
    photo = lupton_photo(
        nmgy,
        q=rng.uniform(5.0, 10.0),
        stretch=peak * rng.uniform(0.05, 0.5),
        jpeg_quality=int(rng.integers(70, 96)),
    )
    images.append(photo.astype(np.float32))
    labels = {
        "morph_type": str(pop.morphology[j]),
        "is_early": float(pop.morphology[j] == "early"),
        "redshift": float(pop.redshift[j]),
        "mag_r": float(pop.mags[j][1]),
        "g_r": float(pop.mags[j][0] - pop.mags[j][1]),
        "bulge_to_total": bt,
        "half_light_radius": hlr,
        "ellipticity": g,
    }
    return images, labels


def _shard(args) -> tuple[int, list[dict]]:
    out, k, pop, start, seed = args
    per = {name: [] for name in RENDITIONS}
    rows = []
    for j in range(len(pop)):
        images, labels = render_three(pop, j, start + j, seed)
        for name, image in zip(RENDITIONS, images, strict=True):
            per[name].append(image)
        rows.append(labels)
    ids = [f"rendition-{seed}-{start + j:07d}" for j in range(len(pop))]
    for name in RENDITIONS:
        columns = {"id": ids, "image": list_column(per[name], _f32())}
        for key, meta in LABELS.items():
            values = [r[key] for r in rows]
            columns[key] = values if meta.get("kind") == "category" else np.array(values)
        write_table(Path(out) / name / f"shard-{k:05d}.parquet", _arrow(columns))
    return k, rows


def _f32():
    import pyarrow as pa

    return pa.float32()


def _arrow(columns: dict):
    import pyarrow as pa

    out = {}
    for key, value in columns.items():
        if isinstance(value, pa.Array):
            out[key] = value
        elif key == "id" or (isinstance(value, list) and value and isinstance(value[0], str)):
            out[key] = pa.array(value, pa.string())
        else:
            out[key] = pa.array(np.asarray(value, np.float64))
    return out


def simulate_renditions(
    out: str | Path,
    n: int = 2000,
    seed: int = 11,
    shard_size: int = 500,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, DatasetInfo]:
    """Draw ``n`` ordinary galaxies (no rare objects) and write the three renditions."""
    if n <= 0:
        raise ValueError(f"number of galaxies must be positive, got {n}")
    out = Path(out)
    for name in RENDITIONS:
        (out / name).mkdir(parents=True, exist_ok=True)
    pop = draw_population(n, seed=seed)
    jobs = [
        (out, k, pop.take(np.arange(start, min(start + shard_size, n))), start, seed)
        for k, start in enumerate(range(0, n, shard_size))
    ]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    with (
        ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool,
        tqdm(total=n, desc="render three instruments", unit="gal", disable=not progress) as bar,
    ):
        for _, rows in (pool.map if pool else map)(_shard, jobs):
            bar.update(len(rows))
    shards = [f"shard-{k:05d}.parquet" for k in range(len(jobs))]
    described = {
        "survey": (SURVEY.pixel_scale, SURVEY.unit, SURVEY.zero_point, "the training survey"),
        "second": (SECOND.pixel_scale, SECOND.unit, SECOND.zero_point, "a second instrument"),
        "photo": (float("nan"), "unknown", float("nan"), "8-bit colour JPEG photographs"),
    }
    infos = {}
    for name, (pixel_scale, unit, zero_point, what) in described.items():
        info = DatasetInfo(
            name=f"rendition-{name}",
            n_objects=n,
            shards=shards,
            image=ImageMeta(
                bands=["g", "r", "z"],
                shape=[3, IMAGE_SIZE, IMAGE_SIZE],
                pixel_scale_arcsec=pixel_scale,
                unit=unit,
                zero_point_mag=zero_point,
            ),
            labels=LABELS,
            provenance={"generator": "astroloom.data.sim.renditions", "rendition": what},
            seed=seed,
        )
        infos[name] = save_with_normalisation(info, out / name)
    return infos
