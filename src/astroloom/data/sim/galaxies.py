"""Mock galaxies: GalSim bulge (de Vaucouleurs) + disk (exponential) in g, r, z.

Each galaxy has a red bulge and a bluer disk, so its colours follow its bulge-to-total
ratio; brighter galaxies are larger. The PSF is a Moffat profile whose FWHM is drawn per
object (achromatic across the three bands), and Gaussian sky noise is added per band at
a DECaLS-like depth. Fluxes are in nanomaggies (AB zero point 22.5).

Every object's parameters come from its own random stream ``(seed, index)``, so the
survey is the same whatever the number of worker processes.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import galsim
import numpy as np
from scipy.optimize import brentq
from scipy.special import gammainc, gammaincinv
from tqdm.auto import tqdm

from astroloom.data.normalise import save_with_normalisation
from astroloom.data.schema import DatasetInfo, ImageMeta
from astroloom.data.shards import write_shard

BANDS = ["g", "r", "z"]
PIXEL_SCALE = 0.262  # arcsec/pixel, DECam as in the DESI Legacy Surveys
ZERO_POINT = 22.5
NOISE_SIGMA = {"g": 0.010, "r": 0.014, "z": 0.035}  # nanomaggy per pixel
MOFFAT_BETA = 3.5

LABELS: dict[str, dict[str, str]] = {
    "flux_r": {"unit": "nanomaggy", "description": "total r-band flux"},
    "mag_r": {"unit": "AB mag", "description": "total r-band magnitude"},
    "g_r": {"unit": "mag", "description": "g − r colour of the whole galaxy"},
    "r_z": {"unit": "mag", "description": "r − z colour of the whole galaxy"},
    "bulge_to_total": {"unit": "", "description": "bulge fraction of the r-band flux"},
    "half_light_radius": {
        "unit": "arcsec",
        "description": "r-band half-light radius of the bulge+disk profile before the PSF "
        "(circularised)",
    },
    "ellipticity": {"unit": "", "description": "reduced shear |g| applied to the galaxy"},
    "psf_fwhm": {"unit": "arcsec", "description": "FWHM of the object's Moffat PSF"},
}

# Sérsic b_n such that half the light lies within the effective radius.
_B1 = float(gammaincinv(2.0, 0.5))
_B4 = float(gammaincinv(8.0, 0.5))


def composite_half_light_radius(bulge_fraction: float, r_bulge: float, r_disk: float) -> float:
    """Half-light radius of a de Vaucouleurs + exponential sum, from their enclosed-flux laws."""

    def enclosed(r: float) -> float:
        bulge = gammainc(8.0, _B4 * (r / r_bulge) ** 0.25)
        disk = gammainc(2.0, _B1 * r / r_disk)
        return bulge_fraction * bulge + (1.0 - bulge_fraction) * disk - 0.5

    return float(brentq(enclosed, 1e-4 * min(r_bulge, r_disk), 100.0 * max(r_bulge, r_disk)))


@dataclass
class GalaxyParams:
    mag_r: float
    bulge_to_total: float
    r_disk: float
    r_bulge: float
    g: float
    beta: float
    psf_fwhm: float
    bulge_colours: tuple[float, float]  # (g−r, r−z)
    disk_colours: tuple[float, float]
    offset: tuple[float, float]


def draw_params(rng: np.random.Generator) -> GalaxyParams:
    mag_r = rng.uniform(17.0, 21.5)
    log_r = np.log(1.0) - 0.18 * (mag_r - 19.0) + rng.normal(0.0, 0.25)
    r_disk = float(np.clip(np.exp(log_r), 0.3, 3.0))
    return GalaxyParams(
        mag_r=mag_r,
        bulge_to_total=float(rng.beta(1.3, 2.0)),
        r_disk=r_disk,
        r_bulge=r_disk * rng.uniform(0.3, 0.6),
        g=float(0.7 * rng.beta(1.5, 3.0)),
        beta=rng.uniform(0.0, np.pi),
        psf_fwhm=rng.uniform(0.9, 1.6),
        bulge_colours=(0.95 + rng.normal(0.0, 0.05), 0.55 + rng.normal(0.0, 0.05)),
        disk_colours=(0.45 + rng.normal(0.0, 0.10), 0.30 + rng.normal(0.0, 0.08)),
        offset=(rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)),
    )


def band_fluxes(flux_r: float, colours: tuple[float, float]) -> np.ndarray:
    g_r, r_z = colours
    return flux_r * np.array([10 ** (-0.4 * g_r), 1.0, 10 ** (0.4 * r_z)])


def bulge_disk_images(
    r_bulge: float,
    r_disk: float,
    shear: galsim.Shear,
    psf: galsim.GSObject,
    size: int,
    offset: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Unit-flux PSF-convolved images of the bulge and of the disk.

    Both components share one achromatic PSF, so each is drawn once and every band is a
    flux-weighted sum of the two: 2 draws per galaxy instead of 2 per band.
    """
    return tuple(
        galsim.Convolve(profile.shear(shear), psf)
        .drawImage(nx=size, ny=size, scale=PIXEL_SCALE, offset=offset)
        .array
        for profile in (
            galsim.DeVaucouleurs(half_light_radius=r_bulge),
            galsim.Exponential(half_light_radius=r_disk),
        )
    )


def render_galaxy(index: int, seed: int, size: int = 64) -> tuple[np.ndarray, dict[str, float]]:
    """One galaxy's ``(3, size, size)`` image in nanomaggies and its labels."""
    rng = np.random.default_rng([seed, index])
    p = draw_params(rng)
    flux_r = 10 ** (-0.4 * (p.mag_r - ZERO_POINT))
    bulge_flux = band_fluxes(p.bulge_to_total * flux_r, p.bulge_colours)
    disk_flux = band_fluxes((1.0 - p.bulge_to_total) * flux_r, p.disk_colours)
    shear = galsim.Shear(g=p.g, beta=p.beta * galsim.radians)
    psf = galsim.Moffat(beta=MOFFAT_BETA, fwhm=p.psf_fwhm)
    bulge, disk = bulge_disk_images(p.r_bulge, p.r_disk, shear, psf, size, p.offset)
    image = bulge_flux[:, None, None] * bulge + disk_flux[:, None, None] * disk
    sigma = np.array([NOISE_SIGMA[b] for b in BANDS])[:, None, None]
    image = image + rng.normal(0.0, 1.0, image.shape) * sigma
    total = bulge_flux + disk_flux
    labels = {
        "flux_r": float(total[1]),
        "mag_r": float(ZERO_POINT - 2.5 * np.log10(total[1])),
        "g_r": float(-2.5 * np.log10(total[0] / total[1])),
        "r_z": float(-2.5 * np.log10(total[1] / total[2])),
        "bulge_to_total": p.bulge_to_total,
        "half_light_radius": composite_half_light_radius(p.bulge_to_total, p.r_bulge, p.r_disk),
        "ellipticity": p.g,
        "psf_fwhm": p.psf_fwhm,
    }
    return image.astype(np.float32), labels


def _make_shard(args: tuple[Path, int, int, int, int]) -> tuple[str, int]:
    out, shard_index, start, stop, seed = args
    images, rows = [], []
    for i in range(start, stop):
        image, labels = render_galaxy(i, seed)
        images.append(image)
        rows.append(labels)
    name = f"shard-{shard_index:05d}.parquet"
    write_shard(
        out / name,
        ids=[f"mock-{seed}-{i:08d}" for i in range(start, stop)],
        images=np.stack(images),
        labels={k: np.array([r[k] for r in rows]) for k in LABELS},
    )
    return name, stop - start


def simulate_galaxies(
    out: str | Path,
    n: int = 4000,
    seed: int = 0,
    shard_size: int = 1000,
    workers: int | None = None,
    progress: bool = True,
) -> DatasetInfo:
    """Simulate ``n`` galaxies into Parquet shards plus ``dataset.json`` under ``out``."""
    if n <= 0:
        raise ValueError(f"number of galaxies must be positive, got {n}")
    if shard_size <= 0:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (out, k, start, min(start + shard_size, n), seed)
        for k, start in enumerate(range(0, n, shard_size))
    ]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    names: list[str] = []
    with (
        ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool,
        tqdm(total=n, desc="simulate galaxies", unit="gal", disable=not progress) as bar,
    ):
        for name, count in (pool.map if pool else map)(_make_shard, jobs):
            names.append(name)
            bar.update(count)
    info = DatasetInfo(
        name="mock-galaxies",
        n_objects=n,
        shards=names,
        image=ImageMeta(bands=BANDS, shape=[3, 64, 64], pixel_scale_arcsec=PIXEL_SCALE),
        labels=LABELS,
        provenance={
            "generator": "astroloom.data.sim.galaxies",
            "psf": f"Moffat beta={MOFFAT_BETA}, FWHM uniform 0.9-1.6 arcsec, achromatic",
            "noise_sigma_nanomaggy": NOISE_SIGMA,
            "galsim_version": galsim.__version__,
        },
        seed=seed,
    )
    return save_with_normalisation(info, out)
