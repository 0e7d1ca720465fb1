"""The ``astroloom generate sample`` job: pick the conditioning objects, run the chosen
mode, re-observe if asked, and write a FITS cube and a PNG preview."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from astroloom.data.multiset import MultimodalSet, keep, load_multimodal_set
from astroloom.data.schema import DataError
from astroloom.generate.conditioning import condition_vectors
from astroloom.generate.denoiser import Denoiser, load_denoiser
from astroloom.generate.pipeline import interpolate, observe, sample, sample_like, write_fits
from astroloom.model.foundation import Foundation, load_foundation
from astroloom.report.plots import plot_image_rows

MODES = ("others", "image", "all", "inversion", "interpolate", "unconditional")


def objects(data: MultimodalSet, ids: list[str]) -> MultimodalSet:
    position = {str(i): k for k, i in enumerate(data.ids)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise DataError(f"object id(s) {missing[:3]} are not in the dataset ({len(data)} objects)")
    return keep(data, np.array([position[i] for i in ids]))


def generate_mode(
    den: Denoiser,
    foundation: Foundation | None,
    chosen: MultimodalSet | None,
    mode: str,
    n: int,
    steps: int = 25,
    eta: float = 0.0,
    guidance: float = 2.0,
    seed: int = 0,
    inversion_iters: int = 100,
) -> np.ndarray:
    """Fluxes for one conditioning mode (see :data:`MODES`)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "unconditional":
        return sample(den, None, n, steps, eta, 1.0, seed)
    if chosen is None or len(chosen) == 0:
        raise DataError(f"mode {mode!r} needs conditioning objects (--id)")
    if mode in ("others", "image", "all"):
        if mode not in den.meta["sources"]:
            raise DataError(
                f"this denoiser was trained with sources {den.meta['sources']}, not {mode!r}"
            )
        cond = condition_vectors(foundation, chosen, mode)
        return sample(den, cond, n, steps, eta, guidance, seed)
    if mode == "inversion":
        return sample_like(den, chosen.arrays["image"], n, steps, guidance, seed, inversion_iters)
    if len(chosen) != 2:
        raise DataError(f"interpolation needs exactly two objects, got {len(chosen)}")
    cond = condition_vectors(foundation, chosen, "image") if den.cond_mean is not None else None
    images = chosen.arrays["image"]
    return interpolate(
        den,
        images[0],
        images[1],
        None if cond is None else cond[0],
        None if cond is None else cond[1],
        max(n, 3),
        steps,
    )


def check_sampling(n: int, eta: float, guidance: float, psf_fwhm: float, noise: float) -> None:
    """Refuse settings that would fail deep in sampling or quietly mean nothing."""
    if n < 1:
        raise ValueError(f"--n must be at least 1 image, got {n}")
    if not 0.0 <= eta <= 1.0:  # DDIM: 0 deterministic, 1 as noisy as DDPM; beyond is undefined
        raise ValueError(f"--eta must lie in 0…1, got {eta}")
    for name, value in (("--guidance", guidance), ("--psf-fwhm", psf_fwhm), ("--noise", noise)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number ≥ 0, got {value}")


def run_sample(
    denoiser_dir: str | Path,
    mode: str,
    ids: list[str],
    n: int,
    steps: int,
    eta: float,
    guidance: float,
    psf_fwhm: float,
    noise: float,
    seed: int,
    out: str | Path,
    device: str = "auto",
) -> tuple[Path, Path]:
    check_sampling(n, eta, guidance, psf_fwhm, noise)
    den = load_denoiser(denoiser_dir, device)
    meta = den.meta
    foundation = load_foundation(meta["foundation_run"]) if mode != "unconditional" else None
    chosen = None
    if mode != "unconditional":
        data = load_multimodal_set(meta["data"], foundation.modalities)
        default = meta["held_out_ids"][: 2 if mode == "interpolate" else 4]
        chosen = objects(data, ids or default)
    flux = generate_mode(den, foundation, chosen, mode, n, steps, eta, guidance, seed)
    if psf_fwhm > 0 or noise > 0:
        flux = observe(flux, meta["pixel_scale_arcsec"], psf_fwhm, noise, seed)
    provenance = {
        "mode": mode,
        "ids": [] if chosen is None else [str(i) for i in chosen.ids],
        "n_per_object": n,
        "steps": steps,
        "eta": eta,
        "guidance": guidance,
        "seed": seed,
        "extra_psf_fwhm_arcsec": psf_fwhm,
        "extra_noise": noise,
        "denoiser": str(Path(denoiser_dir).resolve()),
        "foundation_run": meta["foundation_run"],
    }
    out = Path(out)
    fits_path = write_fits(out / "generated.fits", flux, meta, provenance)
    png = out / "generated.png"
    preview(flux, chosen, mode, n, meta["scale"], png)
    return fits_path, png


def preview(
    flux: np.ndarray, chosen: MultimodalSet | None, mode: str, n: int, scale, png: Path
) -> Path:
    """Conditioning objects in the top row, generated images below (same columns)."""
    titles = None
    if mode in ("others", "image", "all") and chosen is not None:
        k = len(chosen)
        per = flux.reshape(k, n, *flux.shape[1:])
        rows = [("conditioning", chosen.arrays["image"])] + [
            (f"draw {j + 1}", per[:, j]) for j in range(n)
        ]
        titles = [str(i)[-8:] for i in chosen.ids]
    elif mode == "interpolate" and chosen is not None:
        rows = [("a → b", flux)]
    elif mode == "inversion" and chosen is not None:
        cols = max(len(chosen), min(len(flux), 8))
        ex = np.full((cols, *flux.shape[1:]), np.nan, np.float32)
        ex[: len(chosen)] = chosen.arrays["image"][:cols]
        gen = np.full_like(ex, np.nan)
        gen[: min(cols, len(flux))] = flux[:cols]
        rows = [("examples", ex), ("generated", gen)]
    else:
        rows = [("generated", flux[:8])]
    return plot_image_rows(rows, scale, png, titles=titles)
