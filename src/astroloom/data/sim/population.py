"""A galaxy population from SkyPy: redshifts, luminosities, SEDs, masses, sizes, shapes.

Two populations, as in SkyPy's own photometry example: blue (star-forming, late-type) and
red (quiescent, early-type) galaxies, each drawn from an evolving Schechter luminosity
function (López-Sanjuan et al. 2017 parameters, B band), with kcorrect template
coefficients from Herbel et al.'s Dirichlet model, stellar masses from the B-band
luminosity, apparent magnitudes through real filter curves (speclite), sizes from Shen
et al. (2003) and ellipticities from SkyPy's beta model.

SkyPy draws from NumPy's global generator; this module seeds it and restores its state,
so a population is a pure function of its seed.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from astropy import units as u
from astropy.cosmology import Planck18
from astropy.modeling.models import Exponential1D, Linear1D
from skypy.galaxies import schechter_lf
from skypy.galaxies.morphology import (
    angular_size,
    beta_ellipticity,
    early_type_lognormal_size,
    late_type_lognormal_size,
)
from skypy.galaxies.spectrum import dirichlet_coefficients, kcorrect

COSMOLOGY = Planck18
FILTER_SETS = {
    "decam": ["decam2014-g", "decam2014-r", "decam2014-z"],
    "lsst": [f"lsst2023-{b}" for b in "ugrizy"],
}

# SkyPy's sdss_photometry example: Schechter parameters and Dirichlet SED model.
POPULATIONS = {
    "late": {
        "M_star": Linear1D(-0.9408582, -20.40492365),
        "phi_star": Exponential1D(0.00370253, -9.73858),
        "alpha": -1.3,
        "alpha0": [2.079, 3.524, 1.917, 1.992, 2.536],
        "alpha1": [2.265, 3.862, 1.921, 1.685, 2.480],
        "weight": [3.47e09, 3.31e06, 2.13e09, 1.64e10, 1.01e09],
        # Bulge fraction: disks dominate (assumption of this mock, not from SkyPy).
        "bulge_beta": (1.2, 5.0),
        "ellipticity": (0.45, 3.5),  # beta model (e_ratio, e_sum)
    },
    "early": {
        "M_star": Linear1D(-0.70798041, -20.37196157),
        "phi_star": Exponential1D(0.0035097, -1.41649),
        "alpha": -0.5,
        "alpha0": [2.461, 2.358, 2.568, 2.268, 2.402],
        "alpha1": [2.410, 2.340, 2.200, 2.540, 2.464],
        "weight": [3.84e09, 1.57e06, 3.91e08, 4.66e10, 3.03e07],
        "bulge_beta": (5.0, 2.0),
        "ellipticity": (0.2, 7.0),
    },
}
SHEN03_LATE = {
    "alpha": 0.21,
    "beta": 0.53,
    "gamma": -1.31,
    "M0": -20.52,
    "sigma1": 0.48,
    "sigma2": 0.25,
}
SHEN03_EARLY = {"a": 0.6, "b": -4.63, "M0": -20.52, "sigma1": 0.48, "sigma2": 0.25}


@contextmanager
def seeded_numpy(seed: int):
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


@dataclass
class Population:
    """Column arrays, one entry per galaxy."""

    redshift: np.ndarray
    abs_mag_b: np.ndarray
    coefficients: np.ndarray  # (n, 5) kcorrect template weights
    stellar_mass: np.ndarray  # solar masses
    mags: np.ndarray  # (n, n_bands) apparent AB magnitudes, noiseless
    half_light_radius: np.ndarray  # arcsec
    ellipticity: np.ndarray
    bulge_to_total: np.ndarray
    morphology: np.ndarray  # "early" / "late"
    filters: list[str]

    def __len__(self) -> int:
        return len(self.redshift)

    def take(self, index: np.ndarray) -> Population:
        fields = {k: v[index] for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        return Population(**fields, filters=self.filters)


@lru_cache(maxsize=8)
def template_maggies(filters: tuple[str, ...], z_max: float) -> tuple[np.ndarray, np.ndarray]:
    """AB maggies of every kcorrect template through every filter on a grid of 1,000
    redshifts from 0 to ``z_max``: ``(grid, (n_z, n_templates, n_filters))``.

    Shifting the filters is what costs (speclite, ~1 ms per redshift and filter); SkyPy
    redoes it for every call on a grid spanning that call's redshifts, which made each
    population draw take ~12 s. Computed once per process here, and interpolated the way
    SkyPy interpolates (linearly in maggies between 1,000 grid points)."""
    from speclite.filters import load_filters

    grid = np.linspace(0.0, z_max, 1000)
    bands = load_filters(*filters)
    maggies = np.empty((len(grid), len(kcorrect.templates), len(filters)))
    for i, z in enumerate(grid):
        for j, band in enumerate(bands):
            shifted = band.create_shifted(z)
            maggies[i, :, j] = shifted.get_ab_maggies(kcorrect.templates, kcorrect.wavelength)
    return grid, maggies


def apparent_magnitudes(
    coefficients: np.ndarray, redshift: np.ndarray, filters: list[str], stellar_mass: np.ndarray
) -> np.ndarray:
    """``(n, n_filters)`` AB magnitudes of template mixtures at ``redshift``, as SkyPy's
    ``kcorrect.apparent_magnitudes`` computes them (K-correction, distance modulus, mass)."""
    z_max = max(1.5, float(np.ceil(np.max(redshift, initial=0.0) * 10) / 10))
    grid, maggies = template_maggies(tuple(filters), z_max)
    frac, node = np.modf(np.interp(redshift, grid, np.arange(grid.size)))
    node = node.astype(int)
    step = np.diff(maggies, axis=0, append=maggies[-1:])
    at_z = maggies[node] + frac[:, None, None] * step[node]  # (n, templates, filters)
    flux = np.einsum("nt,ntf->nf", coefficients, at_z)
    distmod = COSMOLOGY.distmod(redshift).value
    return (
        -2.5 * np.log10(flux)
        - 2.5 * np.log10(1 + redshift)[:, None]
        + distmod[:, None]
        - 2.5 * np.log10(stellar_mass)[:, None]
    )


def _draw(kind: str, area_deg2: float, m_lim: float, z_max: float, filters: list[str]) -> dict:
    p = POPULATIONS[kind]
    z_grid = np.linspace(0.01, z_max, 200)
    z, m_abs = schechter_lf(
        z_grid, p["M_star"], p["phi_star"], p["alpha"], m_lim, area_deg2 * u.deg**2, COSMOLOGY
    )
    coeffs = dirichlet_coefficients(z, p["alpha0"], p["alpha1"], weight=p["weight"])
    mass = kcorrect.stellar_mass(coeffs, m_abs, "bessell-B")
    mags = apparent_magnitudes(coeffs, z, filters, mass)
    if kind == "late":
        size_kpc = late_type_lognormal_size(m_abs, **SHEN03_LATE)
    else:
        size_kpc = early_type_lognormal_size(m_abs, **SHEN03_EARLY)
    radius = angular_size(size_kpc, z, COSMOLOGY).to_value(u.arcsec)
    e_ratio, e_sum = p["ellipticity"]
    ellipticity = beta_ellipticity(e_ratio, e_sum, size=len(z))
    bulge = np.random.beta(*p["bulge_beta"], size=len(z))
    return {
        "redshift": z,
        "abs_mag_b": m_abs,
        "coefficients": coeffs,
        "stellar_mass": mass,
        "mags": np.atleast_2d(mags).reshape(len(z), len(filters)),
        "half_light_radius": radius,
        "ellipticity": ellipticity,
        "bulge_to_total": bulge,
        "morphology": np.full(len(z), kind, dtype=object),
    }


def draw_population(
    n: int,
    seed: int = 0,
    filters: str = "decam",
    mag_limit: float = 21.5,
    detect_band: str = "r",
    z_max: float = 1.5,
) -> Population:
    """``n`` galaxies brighter than ``mag_limit`` in ``detect_band``, blue and red mixed as the
    luminosity functions predict."""
    if n <= 0:
        raise ValueError(f"number of galaxies must be positive, got {n}")
    if filters not in FILTER_SETS:
        raise ValueError(f"unknown filter set {filters!r}; choose from {sorted(FILTER_SETS)}")
    names = FILTER_SETS[filters]
    band_index = [name.rsplit("-", 1)[1] for name in names].index(detect_band)
    with seeded_numpy(seed):
        area = 0.02  # deg², grown until the cut leaves enough galaxies
        while True:
            parts = [_draw(kind, area, mag_limit + 2.0, z_max, names) for kind in ("late", "early")]
            merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            keep = np.flatnonzero(
                (merged["mags"][:, band_index] < mag_limit)
                & (merged["half_light_radius"] > 0.05)
                & np.all(np.isfinite(merged["mags"]), axis=1)
            )
            if len(keep) >= n:
                break
            area *= 1.5 * n / max(len(keep), 1)
        chosen = np.sort(np.random.choice(keep, size=n, replace=False))
    return Population(**{k: v[chosen] for k, v in merged.items()}, filters=names)
