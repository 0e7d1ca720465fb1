"""Bring survey data astronomers already have into astroloom's shards.

Every reader produces :class:`Observation` records and hands them to :func:`ingest`, which
checks them (shape, finite pixels, unique ids), writes shards and ``dataset.json``, and
either stops at the first bad object with a message naming its file and id or, with
``skip_bad``, leaves it out, counts it and logs why in ``skipped.jsonl``. Nothing is
dropped silently.

Formats:

* ``fits-folder``: a folder of FITS cutouts plus a catalogue (FITS, CSV or ECSV table)
  joined on an id column (the file stem is the id);
* ``fits-image``: one large FITS image with WCS; sources are detected with photutils and
  cut into stamps, their RA/Dec recorded;
* ``hdf5``: an image array and label arrays (the Galaxy10 DECaLS layout: ``images``
  ``(N, H, W, C)``, labels such as ``ans``, ``redshift``, ``ra``, ``dec``);
* ``images``: a folder of PNG/JPEG files with an optional CSV of labels;
* ``parquet``: Parquet files or a Hugging Face dataset saved to disk, with an image column;
* ``spectra``: SDSS spec-lite FITS files (``loglam``, ``flux``, ``ivar`` in HDU 1);
* ``lightcurves``: CSV files of ``time, mag, err, band``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from astropy.io import fits
from astropy.table import Table
from tqdm.auto import tqdm

from astroloom.data.morphology import looks_like_types, read_type
from astroloom.data.normalise import save_with_normalisation
from astroloom.data.schema import (
    DataError,
    DatasetInfo,
    ImageMeta,
    Observation,
    spectrum_unit_factor,
    zero_point_of,
)
from astroloom.data.shards import list_column, write_table

SDSS_FLUX_UNIT = "1e-17 erg s-1 cm-2 Angstrom-1"

FORMATS = ["fits-folder", "fits-image", "hdf5", "images", "parquet", "spectra", "lightcurves"]


class BadObject(DataError):
    """One object that cannot be used; ``skip_bad`` turns it into a logged skip."""

    def __init__(self, source: str, object_id: str, reason: str) -> None:
        super().__init__(f"{source}: object {object_id!r}: {reason}")
        self.source, self.object_id, self.reason = source, object_id, reason


@dataclass
class IngestReport:
    written: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    info: DatasetInfo | None = None
    masked_pixels: int = 0  # NaN/inf pixels kept as masked in accepted images
    masked_objects: int = 0  # accepted images with at least one masked pixel


@dataclass
class _Seen:
    """What the spectra and light curves written so far look like: their description in
    ``dataset.json`` is known only once every object has been read."""

    spectrum_pixels: int = 0
    wave_min: float = np.inf
    wave_max: float = -np.inf
    lc_bands: list[str] = field(default_factory=list)

    def spectrum(self, obs: Observation) -> None:
        flux = obs.modalities.get("spectrum_flux")
        if flux is None:
            return
        wave = obs.modalities.get("spectrum_wave")
        if wave is None or len(wave) != len(flux):
            raise BadObject(
                str(obs.meta.get("source", obs.id)),
                obs.id,
                "a spectrum needs a wavelength per flux pixel (spectrum_wave)",
            )
        if len(wave) < 2 or not np.all(np.diff(wave) > 0) or not np.all(np.isfinite(wave)):
            raise BadObject(
                str(obs.meta.get("source", obs.id)),
                obs.id,
                "spectrum wavelengths must be finite and increasing",
            )
        self.spectrum_pixels = max(self.spectrum_pixels, len(flux))
        self.wave_min = min(self.wave_min, float(wave[0]))
        self.wave_max = max(self.wave_max, float(wave[-1]))

    def band_codes(self, obs: Observation) -> None:
        """Light-curve band names → codes into the dataset's band list (grown as seen)."""
        names = obs.modalities.pop("lc_band_name", None)
        if names is None:
            return
        for b in dict.fromkeys(names):
            if b not in self.lc_bands:
                self.lc_bands.append(b)
        lookup = {b: i for i, b in enumerate(self.lc_bands)}
        obs.modalities["lc_band"] = np.array([lookup[b] for b in names], dtype=np.int8)

    def modalities(self, spectrum_unit: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if self.spectrum_pixels:
            out["spectrum"] = {
                # Each spectrum keeps its own grid; tokens are placed by these wavelengths.
                "columns": ["spectrum_wave", "spectrum_flux", "spectrum_ivar"],
                "grid": "per-object",
                "n_pixels": self.spectrum_pixels,
                # A nominal grid over the whole range, for plots and generated spectra.
                "wavelength_start": self.wave_min,
                "wavelength_step": (self.wave_max - self.wave_min) / (self.spectrum_pixels - 1),
                "wavelength_unit": "Angstrom",
                "flux_unit": spectrum_unit,
                "frame": "observed",
            }
        if self.lc_bands:
            out["lightcurve"] = {
                "columns": ["lc_time", "lc_mag", "lc_err", "lc_band"],
                "bands": list(self.lc_bands),
                "time_unit": "day",
                "mag_system": "as given",
            }
        return out


def _each(
    items: Iterable[Any], load: Callable[[Any], Observation]
) -> Iterator[Observation | BadObject]:
    """Load every item; a bad one is *yielded* as its BadObject so the stream goes on and
    :func:`ingest` decides whether to stop or to skip and log it."""
    for item in items:
        try:
            yield load(item)
        except BadObject as bad:
            yield bad


def _read_table(path: Path) -> Table:
    try:
        if path.suffix.lower() in (".fits", ".fit", ".fz"):
            return Table.read(path)
        if path.suffix.lower() == ".ecsv":
            return Table.read(path, format="ascii.ecsv")
        return Table.read(path, format="ascii.csv")
    except Exception as err:  # noqa: BLE001 — astropy raises many kinds; name the file
        raise DataError(f"cannot read catalogue {path}: {err}") from err


CATEGORY = "category"
EARLY, LATE = "early", "late"


def catalogue_labels(table: Table, id_column: str) -> dict[str, dict[str, str]]:
    """The labels a catalogue gives, name → ``{"description"[, "kind": "category"]}``: every
    numeric column, and for a text column of morphological types (``E3``, ``SAB(rs)bc``…,
    :mod:`astroloom.data.morphology`) two more, added to ``table``: ``COLUMN_stage`` (RC3 T)
    and the class ``COLUMN_early`` ("early" for E/S0, "late" for S/Irr), which ``probe``
    scores with a logistic probe. Other text columns (names, notes) are no labels."""
    labels: dict[str, dict[str, str]] = {}
    for column in [c for c in table.colnames if c != id_column]:
        kind = table[column].dtype.kind
        if kind in "fiub":
            labels[column] = {"description": "from the ingested catalogue"}
        elif kind in "USO" and looks_like_types(list(table[column])):
            stage, early = np.array([read_type(str(v)) for v in table[column]]).T
            table[f"{column}_stage"] = stage
            table[f"{column}_early"] = ["" if np.isnan(e) else EARLY if e else LATE for e in early]
            source = f"read from the morphological types in {column!r}"
            labels[f"{column}_stage"] = {"description": f"RC3 stage T, {source}"}
            labels[f"{column}_early"] = {
                "description": f"{EARLY} (E, S0) or {LATE} (S, Irr), {source}",
                "kind": CATEGORY,
            }
    return labels


def _label_values(row: Any, labels: dict[str, dict[str, str]]) -> dict[str, float | str | None]:
    """One catalogue row's labels: numbers as floats, a class as its name; an empty cell
    is NaN (None for a class)."""
    out: dict[str, float | str | None] = {}
    for k, meta in labels.items():
        empty = np.ma.is_masked(row[k])
        if meta.get("kind") == CATEGORY:
            out[k] = None if empty else str(row[k]) or None
        else:
            out[k] = np.nan if empty else float(row[k])
    return out


def describe_catalogue(
    path: Path, id_column: str = "id"
) -> tuple[dict[str, dict[str, str]], list[str], list[str]]:
    """A catalogue's labels (as :func:`catalogue_labels`), those of them read from
    morphological types, and its text columns that give no label."""
    table = _read_table(path)
    given = set(table.colnames)
    labels = catalogue_labels(table, id_column)
    from_types = [k for k in labels if k not in given]  # the columns it added
    sources = {k.removesuffix("_early") for k in from_types}
    left_out = [
        c
        for c in table.colnames
        if c != id_column
        and c not in labels
        and c not in sources
        and table[c].dtype.kind in "USO"
    ]
    return labels, from_types, left_out


def _image_of(source: str, object_id: str, array: np.ndarray, max_bad: float) -> np.ndarray:
    """``(C, H, W)`` float32 with non-finite pixels as NaN; refuse mostly-empty images."""
    image = np.asarray(array, dtype=np.float32)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise BadObject(
            source, object_id, f"image has shape {image.shape}; expected (H, W) or (bands, H, W)"
        )
    bad = ~np.isfinite(image)
    if bad.mean() > max_bad:
        raise BadObject(
            source,
            object_id,
            f"{bad.mean():.0%} of its pixels are NaN/inf (more than max_bad_fraction={max_bad})",
        )
    return np.where(bad, np.float32(np.nan), image)


def read_fits_folder(
    folder: Path, catalog: Path, id_column: str = "id", max_bad: float = 0.5
) -> Iterator[Observation]:
    table = _read_table(catalog)
    if id_column not in table.colnames:
        raise DataError(
            f"catalogue {catalog} has no id column {id_column!r}; columns: {table.colnames}"
        )
    ids = [str(v) for v in table[id_column]]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise DataError(f"catalogue {catalog} repeats ids {dupes[:5]}")
    labels = catalogue_labels(table, id_column)
    rows = {obj: table[i] for i, obj in enumerate(ids)}
    files = sorted(
        p for p in Path(folder).iterdir() if p.suffix.lower() in (".fits", ".fit", ".fz")
    )
    if not files:
        raise DataError(f"no FITS files in {folder}")

    def one(path: Path) -> Observation:
        obj = path.stem
        if obj not in rows:
            raise BadObject(
                str(path), obj, f"id is not in the catalogue {catalog} (column {id_column!r})"
            )
        try:
            with fits.open(path) as hdul:
                hdu = next((h for h in hdul if h.data is not None), None)
                data = None if hdu is None else np.array(hdu.data)
        except Exception as err:  # noqa: BLE001 — truncated/corrupt files raise many kinds
            raise BadObject(str(path), obj, f"not a readable FITS file ({err})") from err
        if data is None:
            raise BadObject(str(path), obj, "the file holds no image data")
        return Observation(
            obj,
            {"image": _image_of(str(path), obj, data, max_bad)},
            _label_values(rows[obj], labels),
            {"source": str(path)},
        )

    yield from _each(files, one)


def read_fits_image(
    path: Path, stamp: int = 64, threshold: float = 5.0, max_bad: float = 0.5
) -> Iterator[Observation]:
    """Detect sources in a big WCS image (photutils) and cut ``stamp``-pixel cutouts."""
    from astropy.nddata import Cutout2D
    from astropy.stats import sigma_clipped_stats
    from astropy.wcs import WCS
    from photutils.segmentation import SourceCatalog, detect_sources

    try:
        with fits.open(path) as hdul:
            hdu = next(h for h in hdul if h.data is not None and h.data.ndim == 2)
            data, header = np.array(hdu.data, dtype=float), hdu.header
    except StopIteration as err:
        raise DataError(f"{path} has no 2-D image HDU") from err
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{path} is not a readable FITS image: {err}") from err
    wcs = WCS(header)
    _, median, std = sigma_clipped_stats(data[np.isfinite(data)])
    segments = detect_sources(np.nan_to_num(data - median), threshold * std, 10)  # >= 10 px
    if segments is None:
        return
    catalog = SourceCatalog(data - median, segments)
    for k, source in enumerate(catalog):
        x, y = float(source.xcentroid), float(source.ycentroid)
        cut = Cutout2D(data, (x, y), stamp, wcs=wcs, mode="partial", fill_value=np.nan)
        sky = wcs.pixel_to_world(x, y)
        obj = f"{Path(path).stem}-{k:06d}"
        try:
            image = _image_of(str(path), obj, cut.data, max_bad)
        except BadObject as bad:
            yield bad
            continue
        yield Observation(
            obj,
            {"image": image},
            {
                "ra": float(sky.ra.deg),
                "dec": float(sky.dec.deg),
                "flux": float(source.segment_flux),
            },
            {"x": x, "y": y},
        )


def read_hdf5(path: Path, image_key: str = "images", max_bad: float = 0.5) -> Iterator[Observation]:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{path} is not a readable HDF5 file: {err}") from err
    with handle:
        if image_key not in handle:
            raise DataError(f"{path} has no {image_key!r} dataset; it has {list(handle)}")
        images = handle[image_key]
        n = images.shape[0]
        labels = {
            k: np.asarray(handle[k])
            for k in handle
            if k != image_key and isinstance(handle[k], h5py.Dataset) and handle[k].ndim == 1
        }
        wrong = {k: len(v) for k, v in labels.items() if len(v) != n}
        if wrong:
            raise DataError(
                f"{path}: label arrays {wrong} do not match the {n} images in {image_key!r}"
            )
        channels_last = images.ndim == 4 and images.shape[-1] <= 16 < images.shape[1]

        def one(i: int) -> Observation:
            array = np.moveaxis(images[i], -1, 0) if channels_last else images[i]
            return Observation(
                str(i),
                {"image": _image_of(str(path), str(i), array, max_bad)},
                {k: float(v[i]) for k, v in labels.items()},
            )

        yield from _each(range(n), one)


# Effective wavelengths (nm) of common bands: enough to order a picture's colour channels.
BAND_WAVELENGTH_NM = {
    "u": 355, "g": 475, "r": 620, "i": 750, "z": 870, "y": 1000,
    "U": 365, "B": 445, "V": 551, "R": 658, "I": 806, "J": 1250, "H": 1650, "K": 2200,
    "NUV": 230, "FUV": 155, "W1": 3400, "W2": 4600,
}


def channel_order(bands: list[str] | None) -> list[int]:
    """Which RGB channel (0 R, 1 G, 2 B) holds each named band: the bluest band is read from
    B and the reddest from R, the convention of astronomical colour composites (Lupton et
    al. 2004, the SDSS and Legacy Surveys viewers). Names not in the table are taken as
    listed bluest first."""
    if not bands or len(bands) != 3:
        return [2, 1, 0]
    if all(b in BAND_WAVELENGTH_NM for b in bands):
        rank = np.argsort(np.argsort([BAND_WAVELENGTH_NM[b] for b in bands]))
        return [int(2 - r) for r in rank]
    return [2, 1, 0]


# Pillow's modes for 16-bit greyscale PNGs. Its convert("RGB") clips them at 255, which
# turns all but the faintest pixels white, so they are read at their own depth.
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def picture_and_full_scale(img: Any) -> tuple[Any, float]:
    """A Pillow picture ready to resample, and the value of full scale: 8-bit RGB (255), or
    for a 16-bit greyscale PNG a float image of its values (65535)."""
    from PIL import Image

    if img.mode in _SIXTEEN_BIT:
        values = np.asarray(img, dtype=np.float32)
        return Image.fromarray(values), 65535.0
    return img.convert("RGB"), 255.0


def read_image_folder(
    folder: Path,
    labels_csv: Path | None = None,
    id_column: str = "id",
    max_bad: float = 0.5,
    bands: list[str] | None = None,
    size: int | None = None,
) -> Iterator[Observation]:
    """PNG/JPEG pictures, each a 3-band image in [0, 1] whose bands are ordered as ``bands``
    (:func:`channel_order`: blue channel → bluest band); a greyscale picture, 8- or 16-bit,
    gives its one band three times. With ``size`` each picture is
    resampled (Lanczos) to ``size`` × ``size`` pixels, whatever its own: a picture's pixel
    scale is unknown, so the model places its patches in pixels, and the same galaxy at
    128 px and at 64 px embeds differently (docs/benchmarks.md, "Real photographs")."""
    from PIL import Image, UnidentifiedImageError

    channels = channel_order(bands)
    if size is not None and not 8 <= size <= 1024:
        raise DataError(f"--size must be between 8 and 1024 pixels, got {size}")

    rows: dict[str, Any] = {}
    names: dict[str, dict[str, str]] = {}
    if labels_csv is not None:
        table = _read_table(labels_csv)
        if id_column not in table.colnames:
            raise DataError(
                f"{labels_csv} has no id column {id_column!r}; columns: {table.colnames}"
            )
        names = catalogue_labels(table, id_column)
        rows = {str(r[id_column]): r for r in table}
    files = sorted(
        p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")
    )
    if not files:
        raise DataError(f"no PNG or JPEG files in {folder}")

    def one(path: Path) -> Observation:
        obj = path.stem
        try:
            with Image.open(path) as img:
                picture, full_scale = picture_and_full_scale(img)
                if size is not None and picture.size != (size, size):
                    if picture.width != picture.height:
                        raise BadObject(
                            str(path), obj, f"{picture.width}×{picture.height} is not square; "
                            f"--size resamples square pictures only"
                        )
                    picture = picture.resize((size, size), Image.LANCZOS)
                array = np.asarray(picture, dtype=np.float32) / full_scale
                if array.ndim == 2:  # a monochrome picture: the one band three times
                    array = np.repeat(array[:, :, None], 3, axis=2)
        except (UnidentifiedImageError, OSError) as err:
            raise BadObject(str(path), obj, f"not a readable image ({err})") from err
        except Image.DecompressionBombError as err:  # a few bytes that unpack to gigabytes
            raise BadObject(str(path), obj, f"refused, too many pixels to read ({err})") from err
        if labels_csv is not None and obj not in rows:
            raise BadObject(str(path), obj, f"id is not in {labels_csv}")
        image = _image_of(str(path), obj, np.moveaxis(array, -1, 0)[channels], max_bad)
        return Observation(
            obj, {"image": image}, _label_values(rows[obj], names) if rows else {}
        )

    yield from _each(files, one)


def read_parquet(
    path: Path,
    image_column: str = "image",
    id_column: str = "id",
    shape: tuple[int, ...] | None = None,
    max_bad: float = 0.5,
) -> Iterator[Observation]:
    """Parquet files (a file or a folder of them) or a Hugging Face dataset saved to disk."""
    path = Path(path)
    if (path / "dataset_info.json").exists() or (path / "state.json").exists():
        import datasets

        table = datasets.load_from_disk(str(path)).data.table
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    for column in (image_column, id_column):
        if column not in table.column_names:
            raise DataError(f"{path} has no column {column!r}; columns: {table.column_names}")
    numeric = (pa.types.is_floating, pa.types.is_integer)
    labels = [
        c
        for c in table.column_names
        if c not in (image_column, id_column)
        and any(test(table.schema.field(c).type) for test in numeric)
    ]

    def one(row: dict[str, Any]) -> Observation:
        obj = str(row[id_column])
        array = np.asarray(row[image_column], dtype=np.float32)
        if shape is not None:
            if array.size != int(np.prod(shape)):
                raise BadObject(str(path), obj, f"{array.size} values do not make shape {shape}")
            array = array.reshape(shape)
        return Observation(
            obj,
            {"image": _image_of(str(path), obj, array, max_bad)},
            {k: float(row[k]) for k in labels if row[k] is not None},
        )

    yield from _each(table.to_pylist(), one)


def read_sdss_spectra(folder: Path) -> Iterator[Observation]:
    """SDSS spec-lite files: ``loglam``, ``flux`` (1e-17 erg/s/cm²/Å) and ``ivar`` in HDU 1."""
    files = sorted(Path(folder).glob("*.fits"))
    if not files:
        raise DataError(f"no FITS spectra in {folder}")

    def one(path: Path) -> Observation:
        obj = path.stem
        try:
            with fits.open(path) as hdul:
                coadd = hdul[1].data
                wave = 10 ** np.asarray(coadd["loglam"], dtype=float)
                flux = np.asarray(coadd["flux"], dtype=np.float32)
                ivar = np.asarray(coadd["ivar"], dtype=np.float32)
                z = (
                    float(hdul[2].data["Z"][0])
                    if len(hdul) > 2 and "Z" in hdul[2].columns.names
                    else np.nan
                )
        except Exception as err:  # noqa: BLE001
            raise BadObject(str(path), obj, f"not a readable SDSS spec-lite file ({err})") from err
        return Observation(
            obj,
            {"spectrum_wave": wave, "spectrum_flux": flux, "spectrum_ivar": ivar},
            {"redshift": z},
        )

    yield from _each(files, one)


def read_light_curves(folder: Path) -> Iterator[Observation]:
    """CSV files with columns time (days), mag, err, band; one file per object."""
    files = sorted(Path(folder).glob("*.csv"))
    if not files:
        raise DataError(f"no CSV light curves in {folder}")

    def one(path: Path) -> Observation:
        obj = path.stem
        try:
            table = _read_table(path)
        except DataError as err:
            raise BadObject(str(path), obj, str(err)) from err
        missing = [c for c in ("time", "mag", "err", "band") if c not in table.colnames]
        if missing:
            raise BadObject(str(path), obj, f"lacks column(s) {missing}")
        time = np.asarray(table["time"], float)
        if not np.isfinite(time).all():
            raise BadObject(str(path), obj, "has non-finite times")
        order = np.argsort(time, kind="stable")  # tokens count time from the first epoch
        return Observation(
            obj,
            {
                "lc_time": time[order],
                "lc_mag": np.asarray(table["mag"], np.float32)[order],
                "lc_err": np.asarray(table["err"], np.float32)[order],
                "lc_band_name": np.asarray(table["band"]).astype(str)[order],
            },
        )

    yield from _each(files, one)


def ingest(
    records: Iterable[Observation | BadObject],
    out: str | Path,
    name: str,
    bands: list[str] | None = None,
    pixel_scale: float = float("nan"),
    unit: str = "unknown",
    zero_point: float = float("nan"),
    skip_bad: bool = False,
    shard_size: int = 1000,
    provenance: dict[str, Any] | None = None,
    progress: bool = True,
    spectrum_unit: str = SDSS_FLUX_UNIT,
    label_meta: dict[str, dict[str, str]] | None = None,
) -> IngestReport:
    """Check and write ``records`` as shards plus ``dataset.json`` in ``out``. The flux
    ``unit`` is checked first (an unknown one is refused before anything is read).
    Spectra keep their own wavelength grids; light-curve band names become codes into the
    band list recorded in ``dataset.json``."""
    zero_point_of(unit, zero_point)  # DataError naming the unit if it is not one we know
    spectrum_unit_factor(spectrum_unit, SDSS_FLUX_UNIT, np.array([5000.0]))  # the same check
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = IngestReport()
    seen: set[str] = set()
    batch: list[Observation] = []
    shards: list[str] = []
    shape: tuple[int, ...] | None = None
    label_names: list[str] = []
    categorical: set[str] = set()  # labels given as class names (str, or None if missing)
    seen_shapes = _Seen()
    iterator = iter(records)
    with (
        (out / "skipped.jsonl").open("w") as log,
        tqdm(desc=f"ingest {name}", unit="obj", disable=not progress) as bar,
    ):
        while True:
            try:
                obs = next(iterator)
                if isinstance(obs, BadObject):
                    raise obs
                if obs.id in seen:
                    raise BadObject(str(obs.meta.get("source", out)), obs.id, "duplicate id")
                image = obs.modalities.get("image")
                if image is not None:
                    if shape is None:
                        shape = image.shape
                    elif image.shape != shape:
                        raise BadObject(
                            str(obs.meta.get("source", out)),
                            obs.id,
                            f"image shape {image.shape} differs from the first object's {shape}",
                        )
                seen_shapes.spectrum(obs)
            except StopIteration:
                break
            except BadObject as bad:
                if not skip_bad:
                    raise
                report.skipped.append(
                    {"source": bad.source, "id": bad.object_id, "reason": bad.reason}
                )
                log.write(json.dumps(report.skipped[-1]) + "\n")
                continue
            seen.add(obs.id)
            seen_shapes.band_codes(obs)
            if image is not None:
                masked = int(np.isnan(image).sum())
                report.masked_pixels += masked
                report.masked_objects += masked > 0
            for key, value in obs.labels.items():
                if key not in label_names:
                    label_names.append(key)
                if value is None or isinstance(value, str):
                    categorical.add(key)
            batch.append(obs)
            bar.update(1)
            if len(batch) == shard_size:
                shards.append(_write_batch(out, len(shards), batch, label_names, categorical))
                report.written += len(batch)
                batch = []
        if batch:
            shards.append(_write_batch(out, len(shards), batch, label_names, categorical))
            report.written += len(batch)
    if not report.written:
        raise DataError(
            f"nothing to write: all {len(report.skipped)} objects were bad "
            f"(see {out / 'skipped.jsonl'})"
        )
    if shape is not None and bands is None:
        bands = [f"band{i}" for i in range(shape[0])]
    info = DatasetInfo(
        name=name,
        n_objects=report.written,
        shards=shards,
        image=ImageMeta(
            bands=bands or [],
            shape=list(shape or []),
            pixel_scale_arcsec=pixel_scale,
            unit=unit,
            zero_point_mag=_or_nan(zero_point_of(unit, zero_point)),
        ),
        labels={
            k: {
                "unit": "",
                "description": "from the ingested catalogue",
                **({"kind": CATEGORY} if k in categorical else {}),
                **(label_meta or {}).get(k, {}),
            }
            for k in label_names
        },
        modalities=seen_shapes.modalities(spectrum_unit),
        provenance={
            **(provenance or {}),
            "skipped": len(report.skipped),
            "masked_pixels": report.masked_pixels,
            "masked_objects": report.masked_objects,
        },
    )
    if shape is not None:
        save_with_normalisation(info, out)
    else:  # spectra or light curves only: nothing to normalise yet
        info.save(out)
    report.info = info
    return report


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _write_batch(
    out: Path,
    index: int,
    batch: list[Observation],
    label_names: list[str],
    categorical: set[str] = frozenset(),
) -> str:
    """Rows share one schema: a label an object lacks is NaN (a class label's is null); a
    modality it lacks is null."""
    keys = sorted({k for obs in batch for k in obs.modalities})
    columns: dict[str, pa.Array] = {"id": pa.array([o.id for o in batch], pa.string())}
    for key in keys:
        values = [obs.modalities.get(key) for obs in batch]
        sample = next(v for v in values if v is not None)
        if sample.dtype.kind in "US":
            columns[key] = pa.array(
                [None if v is None else list(map(str, v)) for v in values], pa.list_(pa.string())
            )
        elif key == "lc_band":  # codes into dataset.json's band list, as the mock survey's
            columns[key] = list_column(values, pa.int8())
        else:
            dtype = pa.float64() if sample.dtype == np.float64 else pa.float32()
            columns[key] = list_column(values, dtype)
    if "image" not in columns:
        columns["image"] = list_column([None] * len(batch), pa.float32())
    for label in label_names:
        if label in categorical:
            columns[label] = pa.array([obs.labels.get(label) for obs in batch], pa.string())
        else:
            values = [obs.labels.get(label, np.nan) for obs in batch]
            columns[label] = pa.array(values, pa.float64())
    name = f"shard-{index:05d}.parquet"
    write_table(out / name, columns)
    return name
