"""A multimodal dataset held in memory: every modality's columns as arrays.

The image-only loader (:func:`astroloom.data.shards.load_image_set`) keeps the rows with
an image; this one keeps every row and records which modalities each object has, so a
star with only a light curve and a galaxy with an image, a spectrum and photometry sit
side by side. Fixed-length modalities become ``(N, …)`` arrays with a presence flag;
light curves stay ragged (one array per object, ``None`` where absent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from astroloom.data.schema import DataError, DatasetInfo

COLUMNS = {
    "image": ["image"],
    "spectrum": ["spectrum_flux", "spectrum_ivar"],
    "photometry": ["phot_flux", "phot_ivar"],
    "lightcurve": ["lc_time", "lc_mag", "lc_err", "lc_band"],
}


@dataclass
class MultimodalSet:
    info: DatasetInfo
    ids: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # column → (N, …)
    present: dict[str, np.ndarray] = field(default_factory=dict)  # modality → (N,) bool
    curves: dict[str, list[np.ndarray | None]] = field(default_factory=dict)  # lc_* ragged
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def modalities(self) -> list[str]:
        return [m for m, p in self.present.items() if p.any()]


def fixed_list(
    column: pa.ChunkedArray | pa.Array, width: int, ids: np.ndarray, what: str, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """A ``list<float>`` column of equal-length rows → ``(N, width)`` float32 (NaN where the
    row is null) and the presence flags."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    present = col.is_valid().to_numpy(zero_copy_only=False)
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(present & (lengths != width))
    if bad.size:
        raise DataError(
            f"shard {path}: object {ids[bad[0]]!r} has {lengths[bad[0]]} {what} values; "
            f"dataset.json says {width}"
        )
    out = np.full((len(col), width), np.nan, dtype=np.float32)
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    out[present] = flat.reshape(-1, width)
    return out, present


def padded_list(
    column: pa.ChunkedArray,
    width: int,
    ids: np.ndarray,
    path: Path,
    fill: float,
    dtype: type = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """A ``list<float>`` column of rows up to ``width`` long → ``(N, width)`` padded with
    ``fill``, and the presence flags."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    present = col.is_valid().to_numpy(zero_copy_only=False)
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    long = np.flatnonzero(lengths > width)
    if long.size:
        raise DataError(
            f"shard {path}: object {ids[long[0]]!r} has {lengths[long[0]]} spectrum pixels; "
            f"dataset.json says at most {width}"
        )
    # One scatter of the flat values into the padded array: row of each value, then its
    # place within the row.
    flat = col.flatten().to_numpy(zero_copy_only=False)
    row = np.repeat(np.arange(len(lengths)), lengths)
    place = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out = np.full((len(lengths), width), fill, dtype=dtype)
    out[row, place] = flat
    return out, present & (lengths > 0)


def declares(info: DatasetInfo, modality: str) -> bool:
    """Whether ``dataset.json`` says the dataset holds ``modality``."""
    if modality == "image":
        return bool(info.image.shape)
    return modality in info.modalities


def columns_of(info: DatasetInfo, modality: str) -> list[str]:
    return list(info.modalities.get(modality, {}).get("columns", COLUMNS[modality]))


def ragged_list(column: pa.ChunkedArray) -> list[np.ndarray | None]:
    col = column.combine_chunks()
    present = col.is_valid().to_numpy(zero_copy_only=False)
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    flat = col.flatten().to_numpy(zero_copy_only=False)
    parts = np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
    return [p if ok else None for p, ok in zip(parts, present, strict=True)]


def read_rows(
    table: pa.Table, path: Path, info: DatasetInfo, modalities: list[str], labels: bool = True
) -> MultimodalSet:
    """One shard's (or row group's) rows, every requested modality, and the label columns
    unless ``labels`` is False (training reads no labels)."""
    ids = np.asarray(table.column("id").to_pylist(), dtype=object)
    out = MultimodalSet(info=info, ids=ids)
    n = len(ids)
    for m in modalities:
        if not declares(info, m):
            # A dataset that does not describe the modality holds none of it.
            out.present[m] = np.zeros(n, bool)
            continue
        missing = [c for c in columns_of(info, m) if c not in table.column_names]
        if missing:
            raise DataError(
                f"shard {path} lacks column(s) {missing}: dataset.json says the dataset "
                f"holds {m}"
            )
        if m == "image":
            shape = tuple(info.image.shape)
            flat, present = fixed_list(
                table.column("image"), int(np.prod(shape)), ids, "pixel", path
            )
            out.arrays["image"] = flat.reshape(n, *shape)
        elif m == "spectrum" and info.modalities["spectrum"].get("grid") == "per-object":
            width = int(info.modalities["spectrum"]["n_pixels"])
            out.arrays["spectrum_wave"], present = padded_list(
                table.column("spectrum_wave"), width, ids, path, np.nan, np.float64
            )
            out.arrays["spectrum_flux"], _ = padded_list(
                table.column("spectrum_flux"), width, ids, path, np.nan, np.float32
            )
            out.arrays["spectrum_ivar"], _ = padded_list(
                table.column("spectrum_ivar"), width, ids, path, 0.0, np.float32
            )
        elif m == "spectrum":
            width = int(info.modalities["spectrum"]["n_pixels"])
            out.arrays["spectrum_flux"], present = fixed_list(
                table.column("spectrum_flux"), width, ids, "spectrum", path
            )
            out.arrays["spectrum_ivar"], _ = fixed_list(
                table.column("spectrum_ivar"), width, ids, "spectrum", path
            )
        elif m == "photometry":
            width = len(info.modalities["photometry"]["bands"])
            out.arrays["phot_flux"], present = fixed_list(
                table.column("phot_flux"), width, ids, "photometry", path
            )
            out.arrays["phot_ivar"], _ = fixed_list(
                table.column("phot_ivar"), width, ids, "photometry", path
            )
        else:
            for c in COLUMNS[m]:
                out.curves[c] = ragged_list(table.column(c))
            present = np.array([c is not None and len(c) > 0 for c in out.curves["lc_time"]])
        out.present[m] = present
    if not labels:
        return out
    absent_labels = [k for k in info.label_names if k not in table.column_names]
    if absent_labels:
        raise DataError(
            f"shard {path} lacks label column(s) {absent_labels} that dataset.json lists"
        )
    for k in info.label_names:
        values = table.column(k)
        out.labels[k] = (
            np.asarray(values.to_pylist(), dtype=object)
            if info.is_categorical(k)
            else values.to_numpy(zero_copy_only=False).astype(np.float64)
        )
    return out


def concat_sets(parts: list[MultimodalSet]) -> MultimodalSet:
    first = parts[0]
    return MultimodalSet(
        info=first.info,
        ids=np.concatenate([p.ids for p in parts]),
        arrays={k: np.concatenate([p.arrays[k] for p in parts]) for k in first.arrays},
        present={k: np.concatenate([p.present[k] for p in parts]) for k in first.present},
        curves={k: [c for p in parts for c in p.curves[k]] for k in first.curves},
        labels={k: np.concatenate([p.labels[k] for p in parts]) for k in first.labels},
    )


def load_multimodal_set(directory: str | Path, modalities: list[str]) -> MultimodalSet:
    """Read every shard of a dataset, keeping objects that have at least one of
    ``modalities``; refuses a dataset that has none of them at all."""
    directory = Path(directory)
    info = DatasetInfo.load(directory)
    parts = []
    for name in info.shards:
        path = directory / name
        if not path.is_file():
            raise DataError(f"shard {path} listed in dataset.json does not exist")
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as err:
            raise DataError(f"{path} is not a readable Parquet shard: {err}") from err
        if "id" not in table.column_names:
            raise DataError(f"shard {path} has no 'id' column")
        parts.append(read_rows(table, path, info, modalities))
    if not parts:
        raise DataError(f"{directory}/dataset.json lists no shards")
    data = concat_sets(parts)
    unique, counts = np.unique(data.ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{directory}: duplicate object ids, e.g. {list(unique[counts > 1][:3])}")
    if not data.modalities:
        raise DataError(
            f"{directory} holds none of the modalities {modalities}; its columns describe "
            f"{['image', *info.modalities]}"
        )
    return keep(data, np.any([data.present[m] for m in modalities], axis=0))


def keep(data: MultimodalSet, rows: np.ndarray) -> MultimodalSet:
    """The objects where ``rows`` (bool or index) selects."""
    idx = np.flatnonzero(rows) if rows.dtype == bool else rows
    return MultimodalSet(
        info=data.info,
        ids=data.ids[idx],
        arrays={k: v[idx] for k, v in data.arrays.items()},
        present={k: v[idx] for k, v in data.present.items()},
        curves={k: [v[i] for i in idx] for k, v in data.curves.items()},
        labels={k: v[idx] for k, v in data.labels.items()},
    )


@dataclass
class DatasetSummary:
    """What ``astroloom data info`` prints: counts per modality and every label's values,
    read one row group at a time (label columns only, never the pixels or spectra)."""

    n_objects: int
    modalities: dict[str, int]  # modality → objects that have it
    labels: dict[str, np.ndarray]


def summarise_dataset(directory: str | Path) -> DatasetSummary:
    """Counts and label values of a dataset; memory holds one row group's label columns and
    one presence column, whatever the dataset's size."""
    directory = Path(directory)
    info = DatasetInfo.load(directory)
    modalities = [m for m in COLUMNS if declares(info, m)]
    counts = dict.fromkeys(modalities, 0)
    labels: dict[str, list[np.ndarray]] = {k: [] for k in info.label_names}
    total = 0
    for name in info.shards:
        path = directory / name
        try:
            shard = pq.ParquetFile(path)
        except (OSError, pa.ArrowInvalid) as err:
            raise DataError(f"{path} is not a readable Parquet shard: {err}") from err
        names = shard.schema_arrow.names
        wanted = [*info.label_names, *(columns_of(info, m)[0] for m in modalities)]
        missing = [c for c in wanted if c not in names]
        if missing:
            raise DataError(f"shard {path} lacks column(s) {missing} that dataset.json declares")
        presence = list(dict.fromkeys(columns_of(info, m)[0] for m in modalities))
        for group in range(shard.metadata.num_row_groups):
            total += shard.metadata.row_group(group).num_rows
            table = shard.read_row_group(group, columns=[*info.label_names, *presence])
            for k in info.label_names:
                column = table.column(k)
                labels[k].append(
                    np.asarray(column.to_pylist(), dtype=object)
                    if info.is_categorical(k)
                    else column.to_numpy(zero_copy_only=False).astype(np.float64)
                )
            for m in modalities:
                # The first column of a modality: valid where the object has it.
                column = table.column(columns_of(info, m)[0])
                lengths = pc.fill_null(pc.list_value_length(column), 0)
                counts[m] += int(pc.sum(pc.greater(lengths, 0)).as_py() or 0)
    return DatasetSummary(
        total,
        counts,
        {k: np.concatenate(v) if v else np.zeros(0) for k, v in labels.items()},
    )
