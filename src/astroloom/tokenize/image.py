"""Image tokenizer: resampling to the model's pixel scale, normalisation, square patches in
centre-out spiral order.

Galaxies sit at the centre of their cutouts, so the sequence starts where the signal is
and walks outward into sky, as AstroPT does. Two normalisations:

* ``object`` (unit-free, the default for new runs): per object, each band's sky level (the
  median of the cutout's border) is subtracted and every band is stretched as
  ``asinh(x / soft)`` with one softening for all bands: the object's own sky noise (from
  the border), but never less than 1 % of its peak (the 99th percentile of the central
  band sum). On the training survey this is the survey stretch of astroloom 0.1 (noise at
  ±1); a photograph, whose sky holds no noise, is stretched from 1 % of its peak.
  Nanomaggies, ADU with any zero point and 8-bit photographs all give tokens in the same
  range, the colours (band ratios) survive, and the values do not depend on the batch. The
  brightness the normalisation removes is handed to the model as a context value, the
  peak's AB magnitude, when the data's zero point is known (NaN, "unknown", when not).
  With ``colours`` the object's colours follow it as context values too: −2.5 log10 of
  the ratio of neighbouring bands' light over the central half, each pixel weighted by
  the light of all bands there (so sky-dominated pixels hardly count). Ratios, so unit-free
  whatever the zero point; NaN where a band holds no light.
* ``survey`` (astroloom 0.1): ``asinh(x / s_b)`` with one softening ``s_b`` per band (the
  training survey's sky noise), tied to that survey's flux unit.

A cutout whose pixel scale is known and differs from the model's is resampled to the
model's (surface brightness conserved) and cropped to at most the training cutouts' size,
so that a patch always covers the same patch of sky.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from astroloom.data.augment import magnify
from astroloom.data.schema import known_pixel_scale
from astroloom.tokenize.tokens import ModalityTokens


@lru_cache(maxsize=16)
def spiral_order(n: int) -> tuple[int, ...]:
    """Row-major indices of an ``n × n`` grid in centre-out spiral order.

    The walk starts at the cell just above-left of the centre (the centre itself for odd
    ``n``) and steps right, down, left, left, up, up, … with run lengths 1, 1, 2, 2, 3, 3, …
    """
    if n <= 0:
        raise ValueError(f"grid size must be positive, got {n}")
    row = col = (n - 1) // 2
    order = [row * n + col]
    directions = ((0, 1), (1, 0), (0, -1), (-1, 0))
    run, turn = 1, 0
    while len(order) < n * n:
        for _ in range(2):
            d_row, d_col = directions[turn % 4]
            for _ in range(run):
                row, col = row + d_row, col + d_col
                if 0 <= row < n and 0 <= col < n:
                    order.append(row * n + col)
            turn += 1
        run += 1
    return tuple(order)


# The eight orientations of a square cutout (the dihedral group of the square): quarter
# turns, then the same mirrored. The first four are the turns alone.
ORIENTATIONS: tuple[tuple[int, bool], ...] = tuple(
    (turns, mirror) for mirror in (False, True) for turns in range(4)
)
# How many of them an embedding may be averaged over: as it lies, the turns, or all eight.
ORIENTATION_COUNTS = (1, 4, 8)


def check_orientations(count: int, error: type[Exception] = ValueError) -> int:
    """``count`` when it is one of :data:`ORIENTATION_COUNTS`, else ``error`` naming them."""
    if count not in ORIENTATION_COUNTS:
        raise error(f"orientations must be 1, 4 or 8, got {count!r}")
    return count


# The views a photograph is embedded from when its pixel scale is unknown: the picture as
# given and its centre 1.5, 2 and 3 times closer. Whoever made a photograph chose its
# framing, so how much sky, how many neighbours and how much of the galaxy's outskirts
# it holds says nothing of the galaxy; the mean over closer views weighs the galaxy
# itself more (docs/benchmarks.md, "Photographs embedded from closer views"). Survey
# cutouts of a known pixel scale keep the one view the model was trained on.
PHOTO_ZOOMS: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)


def check_zooms(zooms, error: type[Exception] = ValueError) -> tuple[float, ...]:
    """``zooms`` as a tuple of floats when each is a finite number ≥ 1, else ``error``."""
    try:
        out = tuple(float(z) for z in zooms)
    except (TypeError, ValueError):
        raise error(f"zooms must be numbers ≥ 1, got {zooms!r}") from None
    if not out or not all(math.isfinite(z) and z >= 1.0 for z in out):
        raise error(f"zooms must be one or more numbers ≥ 1 (1: as given), got {zooms!r}")
    return out


def image_zooms(pixel_scale: float | None, zooms=None) -> tuple[float, ...]:
    """The magnifications an image embedding is averaged over: ``zooms`` when given, else
    :data:`PHOTO_ZOOMS` for pictures of unknown pixel scale and the cutout as given for
    the rest."""
    if zooms is not None:
        return check_zooms(zooms)
    return (1.0,) if known_pixel_scale(pixel_scale) else PHOTO_ZOOMS


def mean_over_views(zooms: Sequence[float], view: Callable[[float], Any]) -> Any:
    """The mean of ``view(zoom)`` (an embedding: array or tensor) over ``zooms``: what an
    image's vector is, wherever it is made (embed, bench, the explorer, the ONNX graph)."""
    return sum(view(zoom) for zoom in zooms) / len(zooms)


@lru_cache(maxsize=64)
def _orientation_index(
    g: int, p: int, c: int, turns: int, mirror: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each value and each token of the turned cutout comes from, as flat indices
    into the token block (values ``g²·p²·c``, tokens ``g²``): one gather, which exports."""
    order = np.asarray(spiral_order(g))
    inverse = np.argsort(order)

    def turn(grid: np.ndarray, pixels: bool) -> np.ndarray:
        grid = np.rot90(grid, turns, axes=(0, 1))  # slots in row-major order
        if pixels:
            grid = np.rot90(grid, turns, axes=(2, 3))
        if mirror:
            grid = grid[:, ::-1, :, ::-1] if pixels else grid[:, ::-1]
        return grid

    values = np.arange(g * g * p * p * c).reshape(g * g, p * p * c)[inverse]
    values = turn(values.reshape(g, g, p, p, c), pixels=True).reshape(g * g, -1)[order]
    slots = turn(np.arange(g * g)[inverse].reshape(g, g), pixels=False).reshape(-1)[order]
    return torch.from_numpy(values.ravel().copy()), torch.from_numpy(slots.copy())


def orient_tokens(
    tokens: ModalityTokens, turns: int, mirror: bool, patch_size: int, n_bands: int
) -> ModalityTokens:
    """The tokens of the same cutouts turned by ``turns`` quarter turns (as ``np.rot90`` on
    the pixel axes) and then mirrored left–right: what tokenising the turned pixels gives,
    without the pixels. Each token keeps its slot's position; the patches and the pixels
    inside them move. Brightness and colours (the context) do not change under a turn."""
    # Python ints (constants in an exported graph); the batch axis stays free.
    n, v = int(tokens.values.shape[1]), int(tokens.values.shape[2])
    g = math.isqrt(n)
    if g * g != n or v != patch_size * patch_size * n_bands:
        raise ValueError(
            f"{n} tokens of {v} values are not a square grid of {patch_size}-pixel, "
            f"{n_bands}-band patches"
        )
    value_index, slot_index = _orientation_index(g, patch_size, n_bands, turns % 4, mirror)
    device = tokens.values.device

    def move(t: torch.Tensor) -> torch.Tensor:
        return t.flatten(1).index_select(1, value_index.to(device)).view(t.shape)

    # Complete cutouts share one all-true mask (a broadcast view): nothing to move.
    valid = tokens.valid if tokens.valid.stride(0) == 0 else move(tokens.valid)
    present = tokens.present
    if not (present.stride(0) == 0 or bool(present.all())):
        present = present.index_select(1, slot_index.to(device))
    return ModalityTokens(
        move(tokens.values),
        valid,
        present,
        tokens.position,
        tokens.field,
        tokens.dense,
        tokens.context,
    )


def _asinh(x: torch.Tensor) -> torch.Tensor:
    # torch.asinh runs scalar code on CPU; NumPy's arcsinh is vectorised and measured 20×
    # faster on 256 cutouts (benchmarks/data_loading.py, docs/benchmarks.md).
    if torch.jit.is_tracing():  # ONNX export: no asinh operator in the exporter
        a = x.abs()
        return torch.sign(x) * torch.log(a + torch.sqrt(a * a + 1.0))
    if x.device.type == "cpu" and not x.requires_grad:
        return torch.from_numpy(np.arcsinh(x.numpy()))
    return torch.asinh(x)


NORMALISATIONS = ("object", "survey")
OBJECT_SOFTENING = 0.01  # object normalisation: softening floor, as a fraction of the peak
BRIGHTNESS_ZERO, BRIGHTNESS_UNIT = 22.5, 2.5  # context value = (AB mag of the scale − 22.5) / 2.5
COLOUR_LIMIT = 5.0  # |colour| in magnitudes beyond which a ratio is noise, not a colour


@dataclass
class Normalised:
    values: torch.Tensor  # (B, C, H, W) what the model reads, 0 where a pixel is missing
    valid: torch.Tensor | None  # (B, C, H, W) measured pixels; None when all are
    offset: torch.Tensor | None  # (B, C) sky level subtracted (object normalisation)
    scale: torch.Tensor | None  # (B,) the object's peak, in the data's flux unit
    soft: torch.Tensor | None  # (B,) its asinh softening, in the data's flux unit
    brightness: torch.Tensor | None  # (B,) context value; NaN where the zero point is unknown
    colours: torch.Tensor | None = None  # (B, C − 1) context values (``colours``); NaN: none


def object_levels(
    images: torch.Tensor, valid: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per object: each band's sky level (median of the border, 1/16 of the side wide), its
    peak (99th percentile of the sky-subtracted band sum over the central half, per band)
    and its sky noise (median over bands of the border's MAD × 1.4826). Order statistics by
    selection, identical whether or not other objects of the batch miss pixels; missing
    pixels are left out; a blank object gets peak 1."""
    b, c, h, w = images.shape
    inf = float("inf")
    x = images if valid is None else images.masked_fill(~valid, float("nan"))
    k = max(2, h // 16)
    border = torch.cat(
        [
            x[..., :k, :].reshape(b, c, -1),
            x[..., -k:, :].reshape(b, c, -1),
            x[..., k:-k, :k].reshape(b, c, -1),
            x[..., k:-k, -k:].reshape(b, c, -1),
        ],
        dim=-1,
    )
    offset = lower_median(border)
    spread = lower_median((border - offset[..., None]).abs()) * 1.4826
    if torch.onnx.is_in_onnx_export():
        noise = lower_median(spread)
    else:
        noise = torch.nan_to_num(spread.median(dim=1).values, nan=0.0)
    offset = torch.nan_to_num(offset, nan=0.0)
    centre = (x - offset[..., None, None])[..., h // 4 : h - h // 4, w // 4 : w - w // 4]
    total = torch.nan_to_num(centre, nan=-inf).sum(dim=1).reshape(b, -1)
    top = max(1, round(0.01 * int(total.shape[1])) + 1)  # the 99th percentile, by selection
    scale = total.topk(top, dim=1).values[:, -1] / c
    # A blank or all-negative centre: the spread of the pixels, else 1. Computed for every
    # object, without a data-dependent branch, so that the ONNX export keeps this rule.
    bad = ~(torch.isfinite(scale) & (scale > 0))
    fallback = torch.nan_to_num(x - offset[..., None, None]).reshape(b, -1).std(1)
    fallback = torch.where(torch.isfinite(fallback) & (fallback > 0), fallback, 1.0)
    return offset, torch.where(bad, fallback, scale), noise


def as_float32(images) -> torch.Tensor:
    """A float32 tensor of ``images``; one already is passes through untouched (so that an
    ONNX trace keeps it as the graph's input rather than freezing a copy as a constant)."""
    if isinstance(images, torch.Tensor) and images.dtype == torch.float32:
        return images
    return torch.as_tensor(images, dtype=torch.float32)


def lower_median(x: torch.Tensor) -> torch.Tensor:
    """Median over the last axis ignoring NaN (the lower of the two middle values, as
    ``torch.nanmedian``), by selection when nothing is missing; NaN where all are."""
    if torch.onnx.is_in_onnx_export():  # no ONNX kthvalue; exported graphs take complete data
        return x.sort(dim=-1).values[..., (int(x.shape[-1]) - 1) // 2]
    if not torch.isnan(x).any():
        return x.kthvalue((x.shape[-1] + 1) // 2, dim=-1).values
    return torch.nanmedian(x, dim=-1).values


def object_colours(images: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``(B, C − 1)``: −2.5 log10 of band i's light over band i + 1's in the central half,
    each pixel weighted by the sky-subtracted light of all bands there (clipped at zero), so
    that the colour is that of the object, not of the sky around it. NaN where either band
    holds no light or the colour is beyond ±COLOUR_LIMIT magnitudes."""
    b, c, h, w = images.shape
    centre = (images - offset[..., None, None])[..., h // 4 : h - h // 4, w // 4 : w - w // 4]
    centre = torch.nan_to_num(centre, nan=0.0, posinf=0.0, neginf=0.0)
    weight = centre.sum(dim=1, keepdim=True).clamp_min(0.0)
    light = (centre * weight).flatten(2).sum(-1)  # (B, C)
    ratio = light[:, :-1] / light[:, 1:]
    colour = -2.5 * torch.log10(ratio.clamp_min(1e-30))
    ok = (light[:, :-1] > 0) & (light[:, 1:] > 0) & (colour.abs() <= COLOUR_LIMIT)
    return torch.where(ok, colour, torch.full_like(colour, float("nan")))


def brightness(scale: torch.Tensor, zero_point: float | torch.Tensor | None) -> torch.Tensor:
    """The context value of each object's scale: its AB magnitude (from the data's zero
    point: mag = zp − 2.5 log10 flux), centred and scaled; NaN where the zero point is not
    known, so that the model is told "unknown" rather than a wrong number."""
    if zero_point is None:
        return torch.full_like(scale, float("nan"))
    zp = torch.as_tensor(zero_point, dtype=scale.dtype)
    mag = zp - 2.5 * torch.log10(scale)
    return (mag - BRIGHTNESS_ZERO) / BRIGHTNESS_UNIT


@dataclass
class ImageTokenizer:
    """Turns ``(B, C, H, W)`` flux images into ``(B, N, p·p·C)`` patch tokens and back."""

    patch_size: int
    scale: list[float]  # the training data's sky noise per band, in its flux unit
    bands: list[str] | None = None
    pixel_scale: float = 1.0  # arcsec per pixel: patch positions are offsets on the sky
    normalisation: str = "survey"  # "object" (unit-free) or "survey" (astroloom 0.1)
    image_size: int | None = None  # the training cutouts' side: resampled ones are cropped to it
    softening: float = OBJECT_SOFTENING  # object normalisation: softening floor (× the peak)
    colours: bool = False  # object normalisation: the object's colours as context values too

    def __post_init__(self) -> None:
        if any(not np.isfinite(s) or s <= 0 for s in self.scale):
            raise ValueError(f"arcsinh scales must be positive and finite, got {self.scale}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"image normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}"
            )
        if self.colours and self.normalisation != "object":
            raise ValueError("colours as context need the object normalisation")

    @property
    def n_bands(self) -> int:
        return len(self.scale)

    @property
    def n_context(self) -> int:
        """Context values per object the model is given beside the patches."""
        if self.normalisation != "object":
            return 0
        return 1 + (self.n_bands - 1 if self.colours else 0)

    def _scale_tensor(self, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.scale, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)

    def _check(self, images: torch.Tensor) -> None:
        if images.ndim != 4:
            raise ValueError(
                f"images must have shape (batch, bands, H, W); got {tuple(images.shape)}"
            )
        _, c, h, w = images.shape
        p = self.patch_size
        if c != self.n_bands:
            raise ValueError(f"tokenizer expects {self.n_bands} bands, images have {c}")
        if h != w or h % p:
            raise ValueError(f"images must be square with side a multiple of {p}; got {h}×{w}")

    # ------------------------------------------------------------------ pixels
    def resample(self, images: torch.Tensor, pixel_scale: float | None) -> torch.Tensor:
        """Cutouts at ``pixel_scale`` arcsec/pixel brought to the model's pixel scale, then
        cropped about the centre to a whole number of patches (at most ``image_size``).
        Nothing happens when the pixel scale is unknown (None/NaN) or within 2 %."""
        images = as_float32(images)
        if images.ndim != 4:
            raise ValueError(
                f"images must have shape (batch, bands, H, W); got {tuple(images.shape)}"
            )
        h = images.shape[-1]
        if not known_pixel_scale(pixel_scale):
            return images
        ratio = pixel_scale / self.pixel_scale
        if abs(ratio - 1.0) > 0.02:
            side = max(self.patch_size, int(round(h * ratio)))
            valid = torch.isfinite(images)
            filled = torch.where(valid, images, torch.zeros(()))
            kwargs = {"mode": "bilinear", "align_corners": False, "antialias": ratio < 1}
            out = F.interpolate(filled, size=(side, side), **kwargs)
            seen = F.interpolate(valid.float(), size=(side, side), **kwargs)
            # Surface brightness is conserved: a smaller pixel holds less flux.
            out = out / (ratio * ratio)
            images = torch.where(seen > 0.99, out, torch.tensor(float("nan")))
        side = images.shape[-1] // self.patch_size * self.patch_size
        if self.image_size:
            side = min(side, self.image_size)
        lo = (images.shape[-1] - side) // 2
        return images[..., lo : lo + side, lo : lo + side]

    def normalise(
        self, images: torch.Tensor, zero_point: float | torch.Tensor | None = None
    ) -> Normalised:
        """The values the model reads, per pixel, before cutting into patches."""
        images = as_float32(images)
        self._check(images)
        # A NaN or inf anywhere makes the sum non-finite, so one cheap reduction tells
        # complete batches (the common case) from ones that need a per-pixel mask.
        complete = bool(torch.isfinite(images.sum()))
        valid = None if complete else torch.isfinite(images)
        if self.normalisation == "survey":
            x = images if complete else torch.where(valid, images, images.new_zeros(()))
            return Normalised(_asinh(x / self._scale_tensor(x)), valid, None, None, None, None)
        offset, scale, noise = object_levels(images, valid)
        soft = torch.maximum(noise, self.softening * scale)
        x = (images - offset[..., None, None]) / soft[:, None, None, None]
        if not complete:
            x = torch.where(valid, x, x.new_zeros(()))
        values = _asinh(x)
        colours = object_colours(images, offset) if self.colours else None
        return Normalised(
            values, valid, offset, scale, soft, brightness(scale, zero_point), colours
        )

    def stretch(self, images: torch.Tensor) -> torch.Tensor:
        """The normalised pixels the model reads (NaN where a pixel is missing): the view
        that baselines (pixel PCA, a CNN) should get too."""
        norm = self.normalise(images)
        return norm.values if norm.valid is None else norm.values.masked_fill(~norm.valid, np.nan)

    def unstretch(
        self,
        stretched: torch.Tensor,
        offset: torch.Tensor | None = None,
        soft: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Inverse of the normalisation. For ``object`` normalisation without the object's
        sky ``offset`` and softening ``soft`` the result is in units of its softening (sky at
        0; the noise, or 1 % of the peak, at 1)."""
        if self.normalisation == "survey":
            return torch.sinh(stretched) * self._scale_tensor(stretched)
        x = torch.sinh(stretched)
        if soft is not None:
            x = x * torch.as_tensor(soft, dtype=x.dtype).view(-1, 1, 1, 1)
        if offset is not None:
            x = x + torch.as_tensor(offset, dtype=x.dtype)[..., None, None]
        return x

    # ------------------------------------------------------------------ tokens
    def encode(
        self,
        images: torch.Tensor,
        pixel_scale: float | None = None,
        zero_point: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(tokens, valid)``; NaN/inf pixels are 0 in ``tokens``, False in ``valid``."""
        tokens, valid, _ = self._patches(images, pixel_scale, zero_point)
        return tokens, valid

    def _patches(self, images, pixel_scale, zero_point, zoom: float = 1.0):
        images = self.resample(images, pixel_scale)
        if zoom != 1.0:
            images = magnify(images, zoom)
        norm = self.normalise(images, zero_point)
        b, c, h, _ = images.shape
        p, g = self.patch_size, h // self.patch_size
        order = torch.tensor(spiral_order(g), device=images.device)
        rows, cols = order // g, order % g

        def patchify(t: torch.Tensor) -> torch.Tensor:
            # (B, C, g, p, g, p) viewed as (B, g, g, p, p, C); one gather picks the patches in
            # spiral order and makes the only copy; the last reshape is a view.
            t = t.reshape(b, c, g, p, g, p).permute(0, 2, 4, 3, 5, 1)
            return t[:, rows, cols].reshape(b, g * g, p * p * c)

        tokens = patchify(norm.values)
        if norm.valid is None:
            # Complete cutouts (the common case) need no mask copy: a broadcast view will do.
            mask = torch.ones((), dtype=torch.bool, device=images.device).expand(tokens.shape)
        else:
            mask = patchify(norm.valid)
        return tokens, mask, norm

    def positions(self, image_size: int) -> torch.Tensor:
        """``(N, 2)`` offsets of the patch centres from the cutout centre in arcsec, in token
        order: the same patch of sky has the same position whatever the cutout's size."""
        g = image_size // self.patch_size
        order = torch.tensor(spiral_order(g))
        centre = (torch.arange(g, dtype=torch.float32) + 0.5) * self.patch_size - image_size / 2
        xy = torch.stack([centre[order % g], centre[order // g]], dim=1)
        return xy * self.pixel_scale

    def tokens(
        self,
        images: torch.Tensor,
        present: torch.Tensor | None = None,
        pixel_scale: float | None = None,
        zero_point: float | torch.Tensor | None = None,
        zoom: float = 1.0,
    ) -> ModalityTokens:
        """Token block of the model; ``present`` marks objects that have an image,
        ``pixel_scale`` and ``zero_point`` describe the data (None: unknown); ``zoom`` > 1
        tokenises the cutout's centre that many times closer (:func:`magnify`)."""
        values, valid, norm = self._patches(images, pixel_scale, zero_point, zoom)
        b, n, _ = values.shape
        side = round(int(n) ** 0.5) * self.patch_size
        pos = self.positions(side).expand(b, n, 2)
        context = None if norm.brightness is None else norm.brightness[:, None]
        if context is not None and norm.colours is not None:
            context = torch.cat([context, norm.colours.to(context.dtype)], dim=1)
        if valid.stride(0) == 0 and (present is None or bool(present.all())):
            # Complete cutouts, every object has one: the mask stays a broadcast view.
            present_all = torch.ones((), dtype=torch.bool).expand(b, n)
            return ModalityTokens(values, valid, present_all, pos, dense=True, context=context)
        valid = valid.expand(values.shape)
        present_obj = torch.ones(b, dtype=torch.bool) if present is None else present.bool()
        token_present = present_obj[:, None] & valid.any(dim=2)
        return ModalityTokens(
            values, valid & present_obj[:, None, None], token_present, pos, context=context
        )

    def decode(
        self,
        tokens: torch.Tensor,
        image_size: int,
        offset: torch.Tensor | None = None,
        soft: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Inverse of :meth:`encode` for valid pixels: tokens → fluxes ``(B, C, H, W)`` (for
        ``object`` normalisation given each object's ``offset`` and ``soft``, as
        :meth:`normalise` reports them, else in units of its softening)."""
        b, n, _ = tokens.shape
        p, c, g = self.patch_size, self.n_bands, image_size // self.patch_size
        if n != g * g:
            raise ValueError(
                f"{n} tokens do not tile a {image_size}-pixel image with {p}-pixel patches"
            )
        inverse = torch.argsort(torch.tensor(spiral_order(g), device=tokens.device))
        t = tokens[:, inverse].reshape(b, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return self.unstretch(t.reshape(b, c, image_size, image_size), offset, soft)

    def to_dict(self) -> dict:
        return {"kind": "image", **asdict(self)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ImageTokenizer:
        raw = json.loads(Path(path).read_text())
        raw.pop("kind", None)
        return cls(**raw)
