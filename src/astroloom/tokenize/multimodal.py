"""All of a model's tokenizers together: build them from a dataset, save them beside the
weights, and turn a dataset's arrays (or one Observation) into the model's token blocks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astroloom.data.multiset import MultimodalSet
from astroloom.data.normalise import robust_noise_scale
from astroloom.data.schema import DataError, DatasetInfo, known_pixel_scale
from astroloom.tokenize.image import ImageTokenizer
from astroloom.tokenize.lightcurve import LightCurveTokenizer, PaddedCurves, pad_curves
from astroloom.tokenize.scalars import ScalarTokenizer, catalogue_noise_scale
from astroloom.tokenize.spectrum import SpectrumTokenizer, spectrum_noise_scale
from astroloom.tokenize.tokens import ModalityTokens

KINDS = {
    "image": ImageTokenizer,
    "spectrum": SpectrumTokenizer,
    "photometry": ScalarTokenizer,
    "lightcurve": LightCurveTokenizer,
}


@dataclass
class PreparedData:
    """A dataset's modalities turned into token blocks once (light curves kept padded, as
    their tokens are drawn per batch)."""

    blocks: dict[str, ModalityTokens]
    curves: PaddedCurves | None

    def __len__(self) -> int:
        if self.blocks:
            return next(iter(self.blocks.values())).batch_size
        return len(self.curves)


@dataclass
class MultimodalTokenizer:
    tokenizers: dict[str, Any]

    @property
    def modalities(self) -> list[str]:
        return list(self.tokenizers)

    def __getitem__(self, modality: str) -> Any:
        return self.tokenizers[modality]

    @property
    def image(self) -> ImageTokenizer:
        """The image tokenizer; a clear error for a model that reads no images."""
        if "image" not in self.tokenizers:
            raise DataError(f"this model reads {self.modalities}, not images")
        return self.tokenizers["image"]

    # ------------------------------------------------------------------ build
    @classmethod
    def for_dataset(
        cls,
        data: MultimodalSet,
        modalities: list[str],
        patch_size: int,
        spectrum_patch: int,
        lightcurve_tokens: int,
        image_norm: str = "object",
        lightcurve_phase: bool = True,
        spectrum_norm: str = "survey",
        image_colours: bool = False,
    ) -> MultimodalTokenizer:
        """Tokenizers with the dataset's recorded normalisation, or one measured now."""
        info = data.info
        norm = info.normalisation
        out: dict[str, Any] = {}
        for m in modalities:
            has = data.present.get(m, np.zeros(len(data), bool))
            if m == "image":
                scale = norm.get("image", {}).get("scale")
                if scale is None:
                    scale = robust_noise_scale(data.arrays["image"][has][:1000])
                pixel_scale = info.image.pixel_scale_arcsec
                if not known_pixel_scale(pixel_scale):
                    pixel_scale = 1.0  # unknown: positions in pixels
                out[m] = ImageTokenizer(
                    patch_size,
                    list(scale),
                    info.image.bands,
                    pixel_scale,
                    normalisation=image_norm,
                    image_size=int(info.image.shape[-1]),
                    colours=image_colours,
                )
            elif m == "spectrum":
                meta = info.modalities.get("spectrum")
                if meta is None:
                    raise DataError(f"{info.name}: dataset.json describes no spectrum modality")
                scale = norm.get("spectrum", {}).get("scale") or spectrum_noise_scale(
                    data.arrays["spectrum_ivar"][has][:1000]
                )
                out[m] = SpectrumTokenizer(
                    spectrum_patch,
                    float(scale),
                    float(meta["wavelength_start"]),
                    float(meta["wavelength_step"]),
                    int(meta["n_pixels"]),
                    meta.get("flux_unit", ""),
                    normalisation=spectrum_norm,
                )
            elif m == "photometry":
                meta = info.modalities.get("photometry")
                if meta is None:
                    raise DataError(f"{info.name}: dataset.json describes no photometry modality")
                scale = norm.get("photometry", {}).get("scale") or catalogue_noise_scale(
                    data.arrays["phot_ivar"][has][:1000]
                )
                out[m] = ScalarTokenizer(list(meta["bands"]), list(scale), meta.get("unit", ""))
            elif m == "lightcurve":
                meta = info.modalities.get("lightcurve")
                if meta is None:
                    raise DataError(f"{info.name}: dataset.json describes no light-curve modality")
                out[m] = LightCurveTokenizer(
                    list(meta["bands"]), lightcurve_tokens, phase=lightcurve_phase
                )
        return cls(out)

    # ------------------------------------------------------------------ tokens
    def prepare(self, data: MultimodalSet, zoom: float = 1.0) -> PreparedData:
        """Token blocks of every object; images are read with the dataset's own pixel scale
        and zero point (``dataset.json``; unknown when the set has no description), their
        centre ``zoom`` times closer when that is above 1."""
        blocks: dict[str, ModalityTokens] = {}
        curves = None
        for m, tok in self.tokenizers.items():
            has = torch.from_numpy(data.present.get(m, np.zeros(len(data), bool)))
            if m == "image":
                images = data.arrays.get("image")
                if images is None:
                    images = np.full((len(data), *data.info.image.shape), np.nan, np.float32)
                pixel_scale, zero_point = image_description(data.info)
                blocks[m] = tok.tokens(
                    torch.from_numpy(images),
                    has,
                    pixel_scale=pixel_scale,
                    zero_point=zero_point,
                    zoom=zoom,
                )
            elif m == "spectrum":
                flux = data.arrays.get(
                    "spectrum_flux", np.full((len(data), tok.n_pixels), np.nan, np.float32)
                )
                ivar = data.arrays.get("spectrum_ivar", np.zeros_like(flux))
                blocks[m] = tok.tokens(
                    torch.from_numpy(flux),
                    torch.from_numpy(ivar),
                    has,
                    wavelength=spectrum_wavelength(data, flux.shape[1]),
                    unit=spectrum_unit(data),
                )
            elif m == "photometry":
                flux = data.arrays.get(
                    "phot_flux", np.full((len(data), tok.n_tokens), np.nan, np.float32)
                )
                ivar = data.arrays.get("phot_ivar", np.zeros_like(flux))
                blocks[m] = tok.tokens(torch.from_numpy(flux), torch.from_numpy(ivar), has)
            else:
                none = [None] * len(data)
                curves = pad_curves(
                    data.curves.get("lc_time", none),
                    data.curves.get("lc_mag", none),
                    model_band_codes(data, tok.bands),
                )
                if tok.phase:  # one period search per curve, not per batch
                    curves = curves.with_periods()
        return PreparedData(blocks, curves)

    def batch(
        self, prepared: PreparedData, index: torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, ModalityTokens]:
        """The token blocks of objects ``index``; light curves subsampled with ``generator``
        (evenly when it is None)."""
        out = {m: b.take(index) for m, b in prepared.blocks.items()}
        if prepared.curves is not None:
            out["lightcurve"] = self.tokenizers["lightcurve"].tokens(
                prepared.curves.take(index), generator
            )
        return out

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        return {m: t.to_dict() for m, t in self.tokenizers.items()}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps({"kind": "multimodal", "tokenizers": self.to_dict()}, indent=2) + "\n"
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> MultimodalTokenizer:
        out = {}
        for m, spec in raw.items():
            spec = dict(spec)
            spec.pop("kind", None)
            if m not in KINDS:
                raise ValueError(f"unknown modality {m!r} in tokenizer file")
            out[m] = KINDS[m](**spec)
        return cls(out)

    @classmethod
    def load(cls, path: str | Path) -> MultimodalTokenizer:
        raw = json.loads(Path(path).read_text())
        if raw.get("kind") != "multimodal":
            raise ValueError(f"{path} is not a multimodal tokenizer file")
        return cls.from_dict(raw["tokenizers"])


def image_description(info: DatasetInfo | None) -> tuple[float | None, float | None]:
    """A dataset's image pixel scale (arcsec) and AB zero point, None where unknown."""
    if info is None:
        return None, None
    pixel_scale = info.image.pixel_scale_arcsec
    known = known_pixel_scale(pixel_scale)
    return (float(pixel_scale) if known else None), info.image.known_zero_point()


def info_modalities(info: DatasetInfo) -> list[str]:
    return ["image", *[m for m in info.modalities]]


def spectrum_unit(data: MultimodalSet) -> str | None:
    """A dataset's spectrum flux unit as ``dataset.json`` records it; None (the model's own
    unit) for spectra given in memory or a description that names none."""
    meta = data.info.modalities.get("spectrum") if data.info is not None else None
    return (meta or {}).get("flux_unit") or None


def spectrum_wavelength(data: MultimodalSet, width: int) -> np.ndarray | None:
    """The wavelengths (Å) of a dataset's spectrum pixels: each object's own grid
    (``spectrum_wave``), the grid ``dataset.json`` records, or None (the model's grid) for
    spectra that come without one."""
    if "spectrum_wave" in data.arrays:
        return data.arrays["spectrum_wave"]
    meta = data.info.modalities.get("spectrum") if data.info is not None else None
    if meta is None or "wavelength_start" not in meta:
        return None
    return float(meta["wavelength_start"]) + float(meta["wavelength_step"]) * np.arange(width)


def model_band_codes(data: MultimodalSet, model_bands: list[str]) -> list[np.ndarray | None]:
    """A dataset's light-curve band codes re-numbered into the model's bands, by name (a
    dataset's ``V, I`` into a model's ``I, V``); a band the model never saw is refused."""
    codes = data.curves.get("lc_band", [None] * len(data))
    meta = data.info.modalities.get("lightcurve") if data.info is not None else None
    if meta is None or list(meta["bands"]) == list(model_bands):
        return codes
    unknown = [b for b in meta["bands"] if b not in model_bands]
    if unknown:
        raise DataError(
            f"{data.info.name}: light-curve band(s) {unknown} are not among the model's "
            f"bands {list(model_bands)}"
        )
    lookup = np.array([list(model_bands).index(b) for b in meta["bands"]], dtype=np.int64)
    return [None if c is None else lookup[np.asarray(c, dtype=np.int64)] for c in codes]
