"""Cutouts uploaded to the explorer, parsed without trusting them: a size limit before
anything is parsed, FITS read by astropy without memory maps, PNG/JPEG by Pillow with its
decompression-bomb guard, a pixel limit on both, and one clear error per failure. Nothing on
this path unpickles, evaluates or touches a path the client named."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from astroloom.data.readers import picture_and_full_scale

MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 4096 * 4096


class UploadError(ValueError):
    """An upload that cannot be used; ``status`` is the HTTP code to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Cutout:
    image: np.ndarray  # (bands, H, W) float32
    zero_point: float | None = None  # AB magnitude of one unit of flux, when stated
    pixel_scale: float | None = None  # arcsec per pixel, when stated


ZERO_POINT_KEYS = ("MAGZERO", "MAGZP", "ZEROPT", "ZP")


def _header_description(header) -> tuple[float | None, float | None]:
    """The AB zero point and pixel scale a FITS header states, None where it does not."""
    zero_point = next(
        (float(header[k]) for k in ZERO_POINT_KEYS if isinstance(header.get(k), int | float)),
        None,
    )
    scale = header.get("PIXSCALE")
    if not isinstance(scale, int | float) and isinstance(header.get("CDELT2"), int | float):
        scale = abs(float(header["CDELT2"])) * 3600.0
    scale = float(scale) if isinstance(scale, int | float) and scale > 0 else None
    return zero_point, scale


def _fits(raw: bytes) -> Cutout:
    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(io.BytesIO(raw), memmap=False, lazy_load_hdus=True) as hdus:
                for hdu in hdus:
                    shape = tuple(int(n) for n in (hdu.shape or ()))
                    if len(shape) in (2, 3) and all(shape):
                        if int(np.prod(shape[-2:])) > MAX_PIXELS:
                            raise UploadError(
                                f"the image is {shape[-1]}×{shape[-2]} pixels; the limit is "
                                f"{MAX_PIXELS:,}",
                                413,
                            )
                        zero_point, scale = _header_description(hdu.header)
                        return Cutout(np.asarray(hdu.data, np.float32), zero_point, scale)
    except UploadError:
        raise
    except Exception as err:  # astropy raises many kinds for a broken file
        raise UploadError(f"not a readable FITS file: {err}", 415) from err
    raise UploadError("the FITS file holds no 2-D or 3-D image", 422)


def _picture(raw: bytes) -> np.ndarray:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(raw))
            if picture.format not in ("PNG", "JPEG"):
                raise UploadError(
                    f"{picture.format} pictures are not accepted; send PNG or JPEG", 415
                )
            if picture.width * picture.height > MAX_PIXELS:
                raise UploadError(
                    f"the picture is {picture.width}×{picture.height}; the limit is "
                    f"{MAX_PIXELS:,} pixels",
                    413,
                )
            readable, full_scale = picture_and_full_scale(picture)
            rgb = np.asarray(readable, np.float32) * (255.0 / full_scale)
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UploadError(f"the picture is too large: {err}", 413) from err
    except Exception as err:
        raise UploadError(f"not a readable PNG or JPEG picture: {err}", 415) from err
    if rgb.ndim == 2:  # 16-bit greyscale: one band, repeated over the model's by the caller
        return rgb
    # Photographs are R, G, B; the survey's bands run blue to red (g, r, z).
    return rgb.transpose(2, 0, 1)[::-1].copy()


def parse_cutout(raw: bytes, name: str, bands: int, size: int) -> Cutout:
    """Bytes of a FITS, PNG or JPEG cutout → its centre square as ``(bands, side, side)``
    float32. A FITS header's zero point (MAGZERO, MAGZP, ZEROPT or ZP) and pixel scale
    (PIXSCALE, or CDELT2 in degrees) are kept: the tokenizer then reads the cutout as the
    survey's own (resampled to the model's pixel scale). Without a pixel scale the square
    is resampled to the model's cutout size ``size``."""
    if len(raw) > MAX_BYTES:
        raise UploadError(f"{name}: {len(raw):,} bytes; the limit is {MAX_BYTES:,}", 413)
    if not raw:
        raise UploadError(f"{name}: the file is empty", 422)
    cutout = _fits(raw) if raw[:6] == b"SIMPLE" else Cutout(_picture(raw))
    image = cutout.image
    if image.ndim == 2:
        image = np.repeat(image[None], bands, axis=0)
    if image.shape[0] != bands:
        raise UploadError(
            f"{name}: {image.shape[0]} bands; the model reads {bands} (or one, repeated)", 422
        )
    h, w = image.shape[-2:]
    side = min(h, w)
    if side < 8:
        raise UploadError(f"{name}: {w}×{h} pixels is too small a cutout", 422)
    top, left = (h - side) // 2, (w - side) // 2
    image = image[:, top : top + side, left : left + side]
    if not np.isfinite(image).any():
        raise UploadError(f"{name}: no finite pixel", 422)
    if side != size and cutout.pixel_scale is None:
        import torch
        import torch.nn.functional as F

        t = torch.from_numpy(np.nan_to_num(image))[None]
        image = F.interpolate(t, size=(size, size), mode="bilinear", antialias=side > size)[0]
        image = image.numpy()
    return Cutout(np.ascontiguousarray(image, np.float32), cutout.zero_point, cutout.pixel_scale)
