"""Image augmentations for pretraining: what another telescope, another night or another
way of making a picture would have changed about the same galaxy.

Each transform draws its randomness from a ``torch.Generator`` passed in, so that every
rank and every resumed run draws the same augmented batch (the training loop's exactness
rests on this). All work on ``(B, C, H, W)`` float images in the data's flux unit, NaN
where a pixel is missing, and return the same shape:

* ``rot_flip``: one of the 8 symmetries of the square (90° rotations and flips);
* ``shift_zoom``: sub-pixel shifts and a zoom (crop/rescale) of the field, bilinear,
  reflecting sky at the borders — what another pixel scale or centring does (its
  resampling, :func:`magnify`, also gives the closer views a photograph is embedded from);
* ``psf``: convolution with a Gaussian, as a broader PSF (worse seeing);
* ``noise``: extra Gaussian sky noise in units of the data's own per-band noise (less depth);
* ``flux``: a global flux scale (the same galaxy nearer or farther; the unit stays known,
  so the brightness the model is told follows);
* ``photo``: the cutout rendered as an 8-bit colour photograph — an asinh colour composite
  after Lupton et al. (2004), clipped, quantised and optionally JPEG-compressed — with its
  flux unit then unknown.

:func:`augment` applies the configured ones with their probabilities and says, per object,
whether its flux unit is still known (``photo`` loses it; ``drop_unit`` hides it, so that
the model learns to read cutouts whose unit nobody recorded).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64).float()


def rot_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each object turned by a random multiple of 90° and flipped half of the time."""
    b = images.shape[0]
    turns = torch.randint(4, (b,), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5
    out = images.clone()
    for k in range(4):
        for flip in (False, True):
            sel = (turns == k) & (flips == flip)
            if sel.any():
                part = torch.rot90(images[sel], k, dims=(2, 3))
                out[sel] = part.flip(3) if flip else part
    return out


def shift_zoom(
    images: torch.Tensor,
    generator: torch.Generator,
    max_shift: float = 0.5,
    zoom: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """Sub-pixel shift of up to ``max_shift`` pixels and a zoom drawn log-uniformly in
    ``zoom`` (above 1: the galaxy looks larger, as with a finer pixel scale)."""
    b = images.shape[0]
    log_lo, log_hi = math.log(zoom[0]), math.log(zoom[1])
    z = torch.exp(_uniform(b, log_lo, log_hi, generator))
    shift = _uniform(2 * b, -max_shift, max_shift, generator).view(b, 2)
    return magnify(images, z, shift)


def magnify(
    images: torch.Tensor, factor: torch.Tensor | float, shift: torch.Tensor | None = None
) -> torch.Tensor:
    """Each cutout magnified ``factor`` times about its centre (per object or one for all;
    above 1 the field narrows and the galaxy fills more of it) and moved by ``shift``
    pixels ``(B, 2)``: bilinear, reflecting at the borders, same shape. Flux per pixel
    scales with the pixel's area, so surface brightness is kept; a pixel interpolated from
    missing ones stays missing."""
    b, c, h, w = images.shape
    z = torch.as_tensor(factor, dtype=images.dtype, device=images.device).expand(b)[:, None, None]
    # affine_grid's sampling points (align_corners=False) written out, so that the ONNX
    # export needs no opset-20 operator: pixel centres at (2i + 1)/n − 1, scaled by 1/z.
    x = (2 * torch.arange(w, dtype=images.dtype, device=images.device) + 1) / w - 1
    y = (2 * torch.arange(h, dtype=images.dtype, device=images.device) + 1) / h - 1
    x, y = x[None, None, :] / z, y[None, :, None] / z
    if shift is not None:
        x = x - 2.0 * shift[:, 0, None, None].to(images.dtype) / w
        y = y - 2.0 * shift[:, 1, None, None].to(images.dtype) / h
    grid = torch.stack(torch.broadcast_tensors(x, y), dim=-1)
    valid = torch.isfinite(images)
    filled = torch.where(valid, images, images.new_zeros(()))
    kwargs = {"mode": "bilinear", "padding_mode": "reflection", "align_corners": False}
    out = F.grid_sample(filled, grid, **kwargs)
    seen = F.grid_sample(valid.to(images.dtype), grid, **kwargs)
    nan = torch.tensor(float("nan"), dtype=images.dtype, device=images.device)
    return torch.where(seen > 0.99, out / (z * z)[:, None], nan)


def gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """``(B, 2 radius + 1)`` normalised 1-D Gaussians (σ in pixels; 0 gives a delta)."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    s = sigma.clamp_min(1e-3)[:, None]
    k = torch.exp(-0.5 * (x[None] / s) ** 2)
    return k / k.sum(1, keepdim=True)


def psf(images: torch.Tensor, generator: torch.Generator, max_sigma: float = 1.5) -> torch.Tensor:
    """Convolve each object with a Gaussian of σ uniform in [0, ``max_sigma``] pixels
    (separable, per object; missing pixels stay missing)."""
    b, c, h, w = images.shape
    sigma = _uniform(b, 0.0, max_sigma, generator)
    radius = max(1, int(math.ceil(3 * max_sigma)))
    k = gaussian_kernels(sigma, radius)  # (B, K)
    valid = torch.isfinite(images)
    x = torch.where(valid, images, torch.zeros(()))
    # One grouped convolution over all objects × bands: each object its own kernel.
    weight_x = k.repeat_interleave(c, 0)[:, None, None, :]
    weight_y = k.repeat_interleave(c, 0)[:, None, :, None]
    flat = x.reshape(1, b * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), weight_x, groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), weight_y, groups=b * c)
    return torch.where(valid, flat.view(b, c, h, w), torch.tensor(float("nan")))


def noise(
    images: torch.Tensor,
    generator: torch.Generator,
    sky_noise: list[float],
    max_factor: float = 2.0,
) -> torch.Tensor:
    """Add Gaussian noise of ``f`` × each band's sky noise, ``f`` uniform in [0, max_factor]
    per object: the same galaxy observed up to ``1 + max_factor²`` times shallower in variance."""
    b = images.shape[0]
    f = _uniform(b, 0.0, max_factor, generator)[:, None, None, None]
    sigma = torch.tensor(sky_noise, dtype=images.dtype)[None, :, None, None]
    return images + f * sigma * torch.randn(images.shape, generator=generator)


def flux(images: torch.Tensor, generator: torch.Generator, max_mag: float = 1.0) -> torch.Tensor:
    """Scale each object's flux by 10^(−0.4 Δm), Δm uniform in ±``max_mag``."""
    dm = _uniform(images.shape[0], -max_mag, max_mag, generator)
    return images * (10 ** (-0.4 * dm))[:, None, None, None]


def lupton_photo(
    image: np.ndarray, q: float = 8.0, stretch: float = 1.0, jpeg_quality: int | None = 85
) -> np.ndarray:
    """One ``(C, H, W)`` cutout (bluest band first) as an 8-bit colour photograph, read back
    as floats in [0, 1] in the same band order: the asinh composite of Lupton et al. (2004),
    which keeps the colour of every pixel, clipped to [0, 1], quantised to 8 bits and (given
    a quality) JPEG-compressed. ``stretch`` is the linear range in the image's flux unit."""
    from PIL import Image

    x = np.nan_to_num(np.asarray(image, np.float64)).clip(min=0.0)
    intensity = x.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(
            intensity > 0, np.arcsinh(q * intensity / stretch) / (q * intensity), 0.0
        )
    rgb = (x * factor[None]).clip(0.0, None)
    peak = rgb.max(axis=0, keepdims=True)
    rgb = np.where(peak > 1.0, rgb / np.maximum(peak, 1e-12), rgb)  # keep hue when saturated
    bytes_ = np.round(rgb * 255).clip(0, 255).astype(np.uint8)
    if jpeg_quality is None or bytes_.shape[0] != 3:
        return bytes_.astype(np.float32) / 255.0
    # Photographs put the reddest band in R: the array's last band.
    pil = Image.fromarray(np.moveaxis(bytes_[::-1], 0, -1), "RGB")
    buffer = io.BytesIO()
    pil.save(buffer, "JPEG", quality=int(jpeg_quality))
    back = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), np.float32)
    return np.moveaxis(back, -1, 0)[::-1].copy() / 255.0


def photo(
    images: torch.Tensor,
    generator: torch.Generator,
    q: tuple[float, float] = (3.0, 12.0),
    stretch_of_peak: tuple[float, float] = (0.1, 1.0),
    jpeg: bool = True,
) -> torch.Tensor:
    """Each object as an 8-bit colour photograph (:func:`lupton_photo`), with Q and the
    linear stretch (as a fraction of the object's brightest pixel) drawn per object."""
    b = images.shape[0]
    qs = _uniform(b, *q, generator)
    fractions = _uniform(b, *stretch_of_peak, generator)
    qualities = torch.randint(60, 96, (b,), generator=generator)
    out = []
    for i in range(b):
        x = images[i].numpy()
        peak = float(np.nanmax(np.nanmean(x, axis=0))) if np.isfinite(x).any() else 1.0
        stretch = max(peak * float(fractions[i]), 1e-12)
        out.append(
            lupton_photo(x, float(qs[i]), stretch, int(qualities[i]) if jpeg else None)
        )
    return torch.from_numpy(np.stack(out))


@dataclass
class Augmented:
    images: torch.Tensor  # (B, C, H, W), in the data's unit except where unit_known is False
    unit_known: torch.Tensor  # (B,) bool: is the flux unit (and zero point) still the data's?


def augment(images: torch.Tensor, cfg, generator: torch.Generator, sky_noise: list[float]):
    """Apply the augmentations of ``cfg`` (an :class:`astroloom.config.AugmentConfig`), each
    with its probability per object, in the order a telescope and a picture-maker would."""
    images = torch.as_tensor(images, dtype=torch.float32)
    b = images.shape[0]
    unit_known = torch.ones(b, dtype=torch.bool)

    def chosen(p: float) -> torch.Tensor:
        return torch.rand(b, generator=generator) < p

    def apply(sel: torch.Tensor, fn) -> None:
        nonlocal images
        if sel.any():
            images = images.clone()
            images[sel] = fn(images[sel])

    if cfg.rot_flip > 0:
        apply(chosen(cfg.rot_flip), lambda x: rot_flip(x, generator))
    if cfg.shift > 0 or cfg.zoom > 1.0:
        zoom = (1.0 / cfg.zoom, cfg.zoom)
        apply(chosen(cfg.p_geometry), lambda x: shift_zoom(x, generator, cfg.shift, zoom))
    if cfg.psf_sigma > 0:
        apply(chosen(cfg.p_psf), lambda x: psf(x, generator, cfg.psf_sigma))
    if cfg.noise > 0:
        apply(chosen(cfg.p_noise), lambda x: noise(x, generator, sky_noise, cfg.noise))
    if cfg.flux_mag > 0:
        apply(chosen(cfg.p_flux), lambda x: flux(x, generator, cfg.flux_mag))
    if cfg.photo > 0:
        sel = chosen(cfg.photo)
        apply(sel, lambda x: photo(x, generator))
        unit_known &= ~sel
    if cfg.drop_unit > 0:
        unit_known &= ~chosen(cfg.drop_unit)
    return Augmented(images, unit_known)
