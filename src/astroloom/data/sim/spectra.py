"""Spectra of the mock galaxies: each galaxy's kcorrect SED, redshifted onto a DESI-like grid.

The observed flux density follows SkyPy's own photometry convention (templates per solar
mass at 10 pc; wavelengths stretched by 1 + z, flux densities divided by 1 + z, dimmed by
the distance modulus), so synthetic photometry of the spectrum reproduces the
catalogue magnitudes (tests/test_survey.py checks g and r to 0.02 mag). Emission lines
are those the kcorrect templates carry.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from skypy.galaxies.spectrum import kcorrect

from astroloom.data.sim.population import COSMOLOGY

FLUX_UNIT = "1e-17 erg s-1 cm-2 Angstrom-1"
FLUX_SCALE = 1e-17
DESI_GRID = np.arange(3600.0, 9800.0 + 1e-6, 4.0)  # Å; DESI samples at 0.8 Å, 5× coarser here


@lru_cache(maxsize=1)
def _templates() -> tuple[np.ndarray, np.ndarray]:
    return (
        np.asarray(kcorrect.wavelength.to_value("Angstrom"), dtype=float),
        np.asarray(kcorrect.templates.value, dtype=float),
    )


def noise_sigma(wavelength: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Per-pixel noise (flux unit) rising at the blue end and into the red sky lines.

    An illustrative DESI-like shape, not a fitted instrument model.
    """
    x = (wavelength - wavelength.min()) / np.ptp(wavelength)
    return level * (1.0 + 1.5 * np.exp(-x / 0.03) + 1.0 * x**3)


def observed_spectra(
    coefficients: np.ndarray,
    redshift: np.ndarray,
    stellar_mass: np.ndarray,
    wavelength: np.ndarray = DESI_GRID,
) -> np.ndarray:
    """Noiseless observed-frame flux densities ``(n, n_wave)`` in units of 1e-17 erg/s/cm²/Å."""
    rest_wave, templates = _templates()
    z = np.atleast_1d(redshift)
    dimming = 10 ** (-0.4 * COSMOLOGY.distmod(z).value) * np.atleast_1d(stellar_mass) / (1 + z)
    sed = np.atleast_2d(coefficients) @ templates  # (n, n_template_wave), per solar mass
    out = np.empty((len(z), len(wavelength)))
    for i in range(len(z)):
        out[i] = np.interp(wavelength / (1 + z[i]), rest_wave, sed[i], left=0.0, right=0.0)
    return out * dimming[:, None] / FLUX_SCALE


# Photon noise of the source itself: variance added per unit of flux (1e-17 erg/s/cm²/Å), so
# that a bright galaxy's continuum is noisier in absolute terms than a faint one's and every
# object has its own inverse variance, as a real pipeline reports it.
SOURCE_VARIANCE = 0.05


def add_noise(
    flux: np.ndarray,
    wavelength: np.ndarray,
    rng: np.random.Generator,
    level: float = 0.5,
    source: float = SOURCE_VARIANCE,
) -> tuple[np.ndarray, np.ndarray]:
    """(noisy flux, inverse variance) for noiseless spectra ``(n, n_wave)``: sky noise
    (:func:`noise_sigma`) plus the source's photon noise, ``source`` × its flux."""
    variance = noise_sigma(wavelength, level) ** 2 + source * np.clip(flux, 0.0, None)
    noisy = flux + rng.normal(size=flux.shape) * np.sqrt(variance)
    return noisy.astype(np.float32), (1.0 / variance).astype(np.float32)
