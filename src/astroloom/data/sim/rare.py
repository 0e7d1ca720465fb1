"""Rare objects for anomaly detection, each drawn into a cutout with GalSim and NumPy.

Kinds: a ring galaxy, a close merger, a bright star with diffraction spikes, a satellite
trail across a normal galaxy, and a gravitationally lensed arc around an early-type lens.
Each function returns unit-free *extra* light per band (nanomaggies) to add to, or to
replace, the host galaxy's image.
"""

from __future__ import annotations

import galsim
import numpy as np

RARE_KINDS = ["ring", "merger", "star", "trail", "arc"]


def _draw(
    profile: galsim.GSObject, psf: galsim.GSObject, size: int, scale: float, offset=(0.0, 0.0)
) -> np.ndarray:
    return (
        galsim.Convolve(profile, psf).drawImage(nx=size, ny=size, scale=scale, offset=offset).array
    )


# Rough effective wavelengths (Å) of the bands: where a star's or a ring's colour falls.
BAND_WAVELENGTH = {"u": 3600, "g": 4800, "r": 6300, "i": 7700, "z": 9100, "y": 9800}


def colour_ramp(bands: list[str], blue: float, red: float) -> np.ndarray:
    """Per band, a value that is ``blue`` at g, 0 at r and ``red`` at z, linear in
    wavelength on either side of r (and extended beyond g and z): the colours of rare
    objects in any filter set."""
    lam = np.array([BAND_WAVELENGTH[b] for b in bands], dtype=float)
    g, r, z = BAND_WAVELENGTH["g"], BAND_WAVELENGTH["r"], BAND_WAVELENGTH["z"]
    return np.where(lam < r, blue * (r - lam) / (r - g), red * (lam - r) / (z - r))


def ring(
    fluxes: np.ndarray,
    radius: float,
    psf,
    size: int,
    scale: float,
    rng: np.random.Generator,
    bands: list[str],
) -> np.ndarray:
    """A star-forming ring (Gaussian annulus) around a faint core; replaces the host."""
    fine = 0.05
    n = int(np.ceil(2.5 * radius / fine)) * 2 + 1
    y, x = (np.indices((n, n)) - n // 2) * fine
    r = np.hypot(x, y)
    width = radius * rng.uniform(0.12, 0.25)
    annulus = galsim.InterpolatedImage(
        galsim.Image(np.exp(-0.5 * ((r - radius) / width) ** 2), scale=fine), flux=1.0
    )
    shape = galsim.Shear(g=rng.uniform(0.0, 0.4), beta=rng.uniform(0, np.pi) * galsim.radians)
    ring_img = _draw(annulus.shear(shape), psf, size, scale)
    core = _draw(
        galsim.DeVaucouleurs(half_light_radius=0.2 * radius).shear(shape), psf, size, scale
    )
    blue = 1 + colour_ramp(bands, 0.3, -0.3)  # rings are young, bluer than the core
    return fluxes[:, None, None] * (0.75 * blue[:, None, None] * ring_img + 0.25 * core)


def merger(
    host: np.ndarray,
    companion_fluxes: np.ndarray,
    radius: float,
    psf,
    size: int,
    scale: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The host plus a companion 1.8–3.5″ away, tidally stretched towards it."""
    sep = rng.uniform(1.8, 3.5) / scale
    angle = rng.uniform(0, 2 * np.pi)
    offset = (sep * np.cos(angle), sep * np.sin(angle))
    companion = galsim.Exponential(half_light_radius=max(radius, 0.3)).shear(
        galsim.Shear(g=rng.uniform(0.3, 0.6), beta=angle * galsim.radians)
    )
    img = _draw(companion, psf, size, scale, offset)
    return host + companion_fluxes[:, None, None] * img


def bright_star(
    fluxes: np.ndarray, psf_fwhm: float, size: int, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """A bright point source with four diffraction spikes; replaces the host."""
    psf = galsim.Moffat(beta=2.5, fwhm=psf_fwhm)  # broad wings, as for a bright star
    core = psf.drawImage(nx=size, ny=size, scale=scale).array
    y, x = np.indices((size, size)) - (size - 1) / 2
    theta = rng.uniform(0, np.pi / 2)
    spikes = np.zeros((size, size))
    sigma = 0.5  # pixels
    for a in (theta, theta + np.pi / 2):
        along = x * np.cos(a) + y * np.sin(a)
        across = -x * np.sin(a) + y * np.cos(a)
        spikes += np.exp(-0.5 * (across / sigma) ** 2) / (1.0 + (along / 8.0) ** 2)
    spikes *= 0.1 / spikes.sum()
    return fluxes[:, None, None] * (core + spikes)


def satellite_trail(
    host: np.ndarray,
    psf_fwhm: float,
    scale: float,
    rng: np.random.Generator,
    bands: list[str] | None = None,
) -> np.ndarray:
    """A straight streak across the whole cutout, of roughly solar colour."""
    size = host.shape[-1]
    y, x = np.indices((size, size)) - (size - 1) / 2
    angle = rng.uniform(0, np.pi)
    distance = -x * np.sin(angle) + y * np.cos(angle) - rng.uniform(-size / 4, size / 4)
    sigma = psf_fwhm / 2.355 / scale
    line = np.exp(-0.5 * (distance / sigma) ** 2)
    colour = 1 + colour_ramp(bands or list("grz")[: host.shape[0]], -0.34, 0.3)
    brightness = rng.uniform(0.05, 0.4) * colour
    return host + brightness[:, None, None] * line


def lensed_arc(
    host: np.ndarray,
    source_fluxes: np.ndarray,
    psf,
    size: int,
    scale: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """An early-type lens (the host) with a tangential arc and a faint counter-image."""
    einstein = rng.uniform(1.5, 3.0)  # arcsec
    angle = rng.uniform(0, 2 * np.pi)
    out = host.copy()
    for side, weight in ((0.0, 1.0), (np.pi, 0.3)):
        a = angle + side
        # A sheared source elongated tangentially, i.e. perpendicular to the radius.
        arc = galsim.Exponential(half_light_radius=0.35).shear(
            galsim.Shear(g=0.75, beta=(a + np.pi / 2) * galsim.radians)
        )
        offset = (einstein / scale * np.cos(a), einstein / scale * np.sin(a))
        out += weight * source_fluxes[:, None, None] * _draw(arc, psf, size, scale, offset)
    return out
