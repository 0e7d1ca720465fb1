"""The record that travels the whole way, and the ``dataset.json`` that describes shards.

An :class:`Observation` is an id, a dict of modality arrays with their physical metadata,
and a dict of labels. On disk, observations live column-wise in Parquet shards; the
``dataset.json`` beside them records what the columns mean (bands, units, pixel scale,
normalisation, provenance), so that readers never guess.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DATASET_FILE = "dataset.json"
SCHEMA_VERSION = 1


# Said wherever a command needs labels the data lacks (probe, bench, finetune).
LABELS_FROM_CATALOGUE = (
    "labels come from the dataset's catalogue (`astroloom data ingest … --catalog TABLE`)"
)


class DataError(ValueError):
    """Input data that cannot be used as it is; the message names the file and object."""


@dataclass
class ImageMeta:
    """Physical description of an image modality."""

    bands: list[str]
    shape: list[int]  # [bands, height, width]
    pixel_scale_arcsec: float
    unit: str = "nanomaggy"
    zero_point_mag: float = 22.5  # AB magnitude of one flux unit; NaN when not known

    def known_zero_point(self) -> float | None:
        """The AB magnitude of one flux unit, or None when the data cannot say (unit
        "unknown", an 8-bit photograph, no zero point recorded). A flux-density unit that
        astropy knows (nanomaggy, µJy, nJy, Jy, …) defines its own zero point."""
        return zero_point_of(self.unit, self.zero_point_mag)


def known_pixel_scale(pixel_scale: float | None) -> bool:
    """Whether a pixel scale says anything: a positive, finite number of arcsec per pixel
    (None, NaN or 0 is how a photograph's unknown scale is written)."""
    return pixel_scale is not None and bool(np.isfinite(pixel_scale)) and pixel_scale > 0


UNKNOWN_UNITS = ("", "unknown", "none", "8-bit", "uint8")


COUNT_UNITS = ("adu", "dn", "count", "counts", "ct", "electron", "electrons", "e-")


def zero_point_of(unit: str | None, zero_point_mag: float | None = None) -> float | None:
    """AB zero point (magnitude of one ``unit``) of image pixels, or None when unknown.

    A spectral flux density astropy can convert to Jy sets it (AB: 3631 Jy at mag 0);
    "nanomaggy" and "maggy" are the SDSS names for 1e-9 and 1 × 3631 Jy. A count unit
    (ADU, DN, counts, electrons) is as good as its recorded ``zero_point_mag``; "unknown"
    (an 8-bit photograph, say) has none. Any other unit is refused by name."""
    import math
    import warnings

    name = (unit or "").strip()
    if name.lower() in UNKNOWN_UNITS:
        return None
    maggies = {"nanomaggy": 1e-9, "nanomaggies": 1e-9, "nmgy": 1e-9, "maggy": 1.0, "mgy": 1.0}
    if name.lower() in maggies:
        return -2.5 * math.log10(maggies[name.lower()])
    if name.lower() in COUNT_UNITS:
        if zero_point_mag is None or not math.isfinite(zero_point_mag):
            return None
        return float(zero_point_mag)
    import astropy.units as u

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            jansky = u.Unit(name).to(u.Jy)
    except (ValueError, TypeError, u.UnitsError) as err:
        raise DataError(
            f"unknown flux unit {unit!r}: use a flux density astropy knows (nanomaggy, uJy, "
            f"nJy, erg/(s cm2 Hz)), a count unit ({', '.join(COUNT_UNITS[:3])}) with its zero "
            "point, or 'unknown'"
        ) from err
    return -2.5 * math.log10(jansky / 3631.0)


def spectrum_unit_factor(
    unit: str | None, model_unit: str, wavelength: np.ndarray
) -> np.ndarray | float | None:
    """What multiplies flux in ``unit`` to give it in ``model_unit`` (per pixel of
    ``wavelength``, Å, when one is per frequency and the other per wavelength): 1 for the
    same unit or ``unit=None`` (values given in the model's own unit), None when either
    unit is unknown. A unit astropy cannot read, or cannot convert to the model's, is a
    DataError naming it."""
    import warnings

    import astropy.units as u

    if unit is None or unit.strip() == model_unit.strip():
        return 1.0
    if unit.strip().lower() in UNKNOWN_UNITS or model_unit.strip().lower() in UNKNOWN_UNITS:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target = u.Unit(model_unit)
            factor = u.Unit(unit).to(
                # NaN-padded pixels of per-object grids: any wavelength will do (masked).
                target,
                equivalencies=u.spectral_density(np.nan_to_num(wavelength, nan=1.0) * u.AA),
            )
    except (ValueError, TypeError, u.UnitsError):
        raise DataError(
            f"unknown spectrum flux unit {unit!r}: use a flux density astropy can convert to "
            f"the model's {model_unit!r} (erg/(s cm2 Angstrom), W/(m2 nm), mJy, …), or "
            "'unknown'"
        ) from None
    return np.asarray(factor, dtype=np.float64) if np.ndim(factor) else float(factor)


@dataclass
class Observation:
    """One object: its id, its modalities (arrays) and its labels."""

    id: str
    modalities: dict[str, np.ndarray]
    labels: dict[str, float | str | None] = field(default_factory=dict)  # str: a class
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetInfo:
    """Contents of ``dataset.json``."""

    name: str
    n_objects: int
    shards: list[str]
    image: ImageMeta
    labels: dict[str, dict[str, str]]  # name → {"unit", "description", "kind": float|category}
    normalisation: dict[str, Any] = field(default_factory=dict)
    # Other modalities present in the shards (spectrum, photometry, lightcurve) with their
    # physical metadata; a row without one holds nulls in its columns.
    modalities: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    def is_categorical(self, label: str) -> bool:
        return self.labels.get(label, {}).get("kind") == "category"

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / DATASET_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> DatasetInfo:
        directory = Path(directory)
        if not directory.exists():
            raise DataError(f"data path not found: {directory}")
        path = directory / DATASET_FILE
        if not path.is_file():
            raise DataError(
                f"{directory} has no {DATASET_FILE}; make one with `astroloom data simulate` "
                "or point at a dataset directory"
            )
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{path} is not valid JSON: {err}") from err
        try:
            raw["image"] = ImageMeta(**raw["image"])
            info = cls(**raw)
        except (KeyError, TypeError) as err:
            raise DataError(f"{path} does not have the expected fields: {err}") from err
        if info.schema_version > SCHEMA_VERSION:
            raise DataError(
                f"{path} has schema version {info.schema_version}; this astroloom reads "
                f"up to {SCHEMA_VERSION}"
            )
        return info
