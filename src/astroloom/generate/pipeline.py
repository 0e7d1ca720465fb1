"""Sampling pipelines for each conditioning mode, and output in physical units.

* ``sample``: images for given condition vectors (from other modalities, or an image's own
  embedding), with DDIM steps, η and classifier-free guidance scale;
* ``invert_condition``: optimise one condition vector so that the frozen denoiser explains a
  handful of example images (the review's "textual inversion"), then sample more like them;
* ``interpolate``: DDIM-invert two images to their latents and walk between them;
* ``observe``: re-observe generated images with a broader PSF or more noise;
* ``write_fits`` / ``write_png``: fluxes with a header that says what they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from astroloom.generate.denoiser import Denoiser
from astroloom.generate.sampler import ddim_invert, ddim_sample, slerp


def _shape(den: Denoiser) -> tuple[int, int, int]:
    c = den.net.cfg
    return c.in_channels, c.image_size, c.image_size


def sample_unit(
    den: Denoiser,
    cond: torch.Tensor | None,
    n: int,
    steps: int = 25,
    eta: float = 0.0,
    guidance: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    noise: torch.Tensor | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """``n`` images in the denoiser's unit space; ``cond`` is ``(n, d)`` standardised or None."""
    gen = torch.Generator().manual_seed(seed)
    if noise is None:
        noise = torch.randn((n, *_shape(den)), generator=gen)
    out = []
    for lo in tqdm(range(0, n, batch_size), desc="generate", unit="batch", disable=not progress):
        c = None if cond is None else cond[lo : lo + batch_size]
        out.append(
            ddim_sample(
                den,
                den.schedule,
                noise[lo : lo + batch_size],
                c,
                steps,
                eta,
                guidance,
                den.prediction,
                gen,
                clip=den.clip,
            )
        )
    return torch.cat(out)


def sample(
    den: Denoiser,
    cond: np.ndarray | None,
    n_per: int = 1,
    steps: int = 25,
    eta: float = 0.0,
    guidance: float = 2.0,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Fluxes ``(N · n_per, C, H, W)`` for raw foundation embeddings ``cond`` ``(N, d)``
    (None: ``n_per`` unconditional images)."""
    if cond is None:
        return den.to_flux(sample_unit(den, None, n_per, steps, eta, 1.0, seed, progress=progress))
    c = den.standardise(np.repeat(np.asarray(cond, np.float32), n_per, axis=0))
    if c is None:
        raise ValueError("this denoiser is unconditional; pass cond=None")
    return den.to_flux(sample_unit(den, c, len(c), steps, eta, guidance, seed, progress=progress))


def invert_condition(
    den: Denoiser,
    examples: np.ndarray,
    iters: int = 100,
    lr: float = 0.1,
    seed: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """One standardised condition vector that makes the frozen denoiser best explain the
    example fluxes ``(k, C, H, W)``: the diffusion loss minimised over the vector alone."""
    if den.cond_mean is None:
        raise ValueError("inversion needs a conditional denoiser")
    x0 = den.to_unit(examples)
    gen = torch.Generator().manual_seed(seed)
    cond = torch.zeros(1, len(den.cond_mean), requires_grad=True)  # start at the mean object
    opt = torch.optim.Adam([cond], lr=lr)
    den.net.requires_grad_(False)
    for _ in tqdm(range(iters), desc="invert condition", disable=not progress):
        reps = max(1, 16 // len(x0))  # ≥ 16 noisy copies per step: a steadier gradient
        x = x0.repeat(reps, 1, 1, 1)
        noise = torch.randn(x.shape, generator=gen)
        t = torch.randint(1, den.schedule.steps + 1, (len(x),), generator=gen)
        target = noise if den.prediction == "epsilon" else den.schedule.v_target(x, noise, t)
        loss = F.mse_loss(
            den(den.schedule.add_noise(x, noise, t), t, cond.expand(len(x), -1)), target
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return cond.detach()


def sample_like(
    den: Denoiser,
    examples: np.ndarray,
    n: int,
    steps: int = 25,
    guidance: float = 2.0,
    seed: int = 0,
    iters: int = 100,
    progress: bool = False,
) -> np.ndarray:
    """Invert a condition on ``examples``, then draw ``n`` more of that kind (fluxes)."""
    cond = invert_condition(den, examples, iters=iters, seed=seed, progress=progress)
    return den.to_flux(sample_unit(den, cond.expand(n, -1), n, steps, 0.0, guidance, seed))


def interpolate(
    den: Denoiser,
    flux_a: np.ndarray,
    flux_b: np.ndarray,
    cond_a: np.ndarray | None,
    cond_b: np.ndarray | None,
    frames: int = 5,
    steps: int = 25,
) -> np.ndarray:
    """DDIM latent interpolation: invert both images (η = 0) with their own conditions,
    slerp the latents and blend the conditions; ``frames`` fluxes from a to b."""
    x = den.to_unit(np.stack([flux_a, flux_b]))
    cond = None
    if cond_a is not None and den.cond_mean is not None:
        cond = den.standardise(np.stack([cond_a, cond_b]))
    latents = ddim_invert(den, den.schedule, x, cond, steps, den.prediction, den.clip)
    ws = np.linspace(0, 1, frames)
    z = torch.cat([slerp(latents[:1], latents[1:], float(w)) for w in ws])
    c = None if cond is None else torch.stack([(1 - w) * cond[0] + w * cond[1] for w in ws])
    out = ddim_sample(den, den.schedule, z, c, steps, 0.0, 1.0, den.prediction, clip=den.clip)
    return den.to_flux(out)


def observe(
    flux: np.ndarray,
    pixel_scale: float,
    extra_psf_fwhm: float = 0.0,
    noise_sigma: list[float] | float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Re-observe images: convolve with a Gaussian of ``extra_psf_fwhm`` arcsec (added in
    quadrature to the PSF they have) and add Gaussian noise of ``noise_sigma`` per band."""
    out = np.asarray(flux, np.float64).copy()
    if extra_psf_fwhm > 0:
        from scipy.ndimage import gaussian_filter

        sigma_pix = extra_psf_fwhm / 2.3548 / pixel_scale
        out = gaussian_filter(out, sigma=(0, 0, sigma_pix, sigma_pix), mode="nearest")
    sig = np.broadcast_to(np.asarray(noise_sigma, np.float64), (out.shape[1],))
    if np.any(sig > 0):
        rng = np.random.default_rng(seed)
        out += rng.normal(size=out.shape) * sig[None, :, None, None]
    return out.astype(np.float32)


def write_fits(path: str | Path, flux: np.ndarray, meta: dict, provenance: dict) -> Path:
    """One FITS file: a ``(N, C, H, W)`` cube of fluxes with bands, pixel scale, unit and
    the conditioning provenance in the header (full provenance as JSON in an extension)."""
    from astropy.io import fits

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu = fits.PrimaryHDU(np.asarray(flux, np.float32))
    h = hdu.header
    h["BUNIT"] = (meta.get("unit", "nanomaggy"), "flux unit of every pixel")
    h["PIXSCALE"] = (meta["pixel_scale_arcsec"], "arcsec per pixel")
    h["BANDS"] = (",".join(meta.get("bands") or []), "bands along axis 2 (NAXIS3)")
    h["CREATOR"] = "astroloom.generate"
    h["CONDMODE"] = (str(provenance.get("mode", "")), "conditioning mode")
    h["FMRUN"] = str(meta.get("foundation_run", ""))[-68:]
    for key in ("steps", "eta", "guidance", "seed"):
        if key in provenance:
            h[key.upper()[:8]] = provenance[key]
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(
                name="PROVENANCE",
                format=f"{max(1, len(json.dumps(provenance)))}A",
                array=[json.dumps(provenance)],
            )
        ],
        name="PROVENANCE",
    )
    tmp = path.with_name(path.name + ".tmp")
    fits.HDUList([hdu, table]).writeto(tmp, overwrite=True)
    tmp.replace(path)
    return path


def read_fits(path: str | Path) -> tuple[np.ndarray, dict, dict]:
    from astropy.io import fits

    with fits.open(path) as hdus:
        data = np.asarray(hdus[0].data, np.float32)
        header = dict(hdus[0].header)
        provenance = json.loads(hdus["PROVENANCE"].data["PROVENANCE"][0])
    return data, header, provenance
