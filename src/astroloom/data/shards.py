"""Parquet shards: one row per object, ``id`` + flattened ``image`` + one column per label.

The layout is plain Parquet, so Hugging Face ``datasets`` (``load_dataset("parquet", …)``)
and pyarrow read it directly. Images are stored flattened (``list<float32>``) with their
shape in ``dataset.json``; reading converts a whole column to one numpy array without a
per-object Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from astroloom.data.schema import DataError, DatasetInfo, Observation


def write_shard(
    path: str | Path, ids: list[str], images: np.ndarray, labels: dict[str, np.ndarray]
) -> None:
    """Write one shard atomically (temporary name, then rename)."""
    n = len(ids)
    if images.shape[0] != n or any(len(v) != n for v in labels.values()):
        raise ValueError("ids, images and every label column must have the same length")
    flat = pa.array(images.reshape(n, -1).astype(np.float32, copy=False).ravel())
    per_object = images[0].size if n else 0
    offsets = pa.array(np.arange(0, n * per_object + 1, max(per_object, 1), dtype=np.int32))
    columns = {
        "id": pa.array(ids, type=pa.string()),
        "image": pa.ListArray.from_arrays(offsets, flat),
    }
    columns.update({k: pa.array(np.asarray(v, dtype=np.float64)) for k, v in labels.items()})
    write_table(path, columns)


def list_column(values: list[np.ndarray | None], dtype: pa.DataType) -> pa.Array:
    """A ``list<dtype>`` column from per-row arrays, ``None`` rows becoming nulls."""
    lengths = np.array([0 if v is None else np.size(v) for v in values], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    present = [np.ravel(v) for v in values if v is not None]
    flat = np.concatenate(present) if present else np.zeros(0)
    mask = pa.array([v is None for v in values])
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(flat.astype(dtype.to_pandas_dtype(), copy=False)), mask=mask
    )


def write_table(
    path: str | Path, columns: dict[str, pa.Array], metadata: dict[bytes, bytes] | None = None
) -> None:
    """Write one shard atomically (temporary name, then rename) into its folder, made if
    missing, with ``metadata`` in its schema when given.

    LZ4, not zstd: noisy pixels barely compress either way, and LZ4 shards decode about 3×
    faster (measured in docs/benchmarks.md), which is what a streaming loader pays for.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    table = pa.table(columns)
    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, tmp, compression="lz4")
    tmp.replace(path)


@dataclass(frozen=True)
class RowGroup:
    """One row group of one shard: the unit that streaming readers read at a time."""

    path: Path
    group: int
    rows: int
    bytes: int  # its columns uncompressed (Parquet's own count)


def read_row_group(path: Path, group: int, columns: list[str] | None = None) -> pa.Table:
    """One row group of a shard (the file opened once); a damaged shard (a truncated copy, a
    disk error) or one without the ``columns`` dataset.json declares is named in the error,
    instead of Arrow's bare message."""
    try:
        shard = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise DataError(f"shard {path} is not a readable Parquet file: {err}") from err
    missing = [c for c in columns or () if c not in shard.schema_arrow.names]
    if missing:
        raise DataError(f"shard {path} lacks column(s) {missing} that dataset.json declares")
    try:
        return shard.read_row_group(group, columns=columns)
    except (OSError, pa.ArrowInvalid) as err:
        raise DataError(f"shard {path} is not readable (row group {group}): {err}") from err


def row_groups(directory: str | Path, info: DatasetInfo) -> list[RowGroup]:
    """Every row group of a dataset's shards, from the Parquet footers (no data read)."""
    out = []
    for name in info.shards:
        path = Path(directory) / name
        if not path.is_file():
            raise DataError(f"shard {path} listed in dataset.json does not exist")
        try:
            meta = pq.ParquetFile(path).metadata
        except (OSError, pa.ArrowInvalid) as err:
            raise DataError(f"shard {path} is not a readable Parquet file: {err}") from err
        for g in range(meta.num_row_groups):
            part = meta.row_group(g)
            out.append(RowGroup(path, g, part.num_rows, part.total_byte_size))
    if not out:
        raise DataError(f"{directory}/dataset.json lists no shards")
    return out


@dataclass
class ImageSet:
    """A dataset held in memory: ids, ``(N, C, H, W)`` images and label columns."""

    info: DatasetInfo
    ids: np.ndarray
    images: np.ndarray
    labels: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)

    def observation(self, i: int) -> Observation:
        return Observation(
            id=str(self.ids[i]),
            modalities={"image": self.images[i]},
            labels={k: float(v[i]) for k, v in self.labels.items()},
        )


def image_rows(
    table: pa.Table, path: Path, info: DatasetInfo, labels: Sequence[str]
) -> dict[str, np.ndarray]:
    """The rows of a shard that have an image, as arrays: ``id``, ``image`` ``(N, C, H, W)``
    float32 and the requested labels. Rows without an image (a star that has only a light
    curve, say) are left out; an image of the wrong size stops with its object's id."""
    if table.column("image").null_count:  # filtering copies the table: only when needed
        table = table.filter(pc.is_valid(table.column("image")))
    shape = tuple(info.image.shape)
    per_object = int(np.prod(shape))
    column = table.column("image").combine_chunks()
    lengths = column.value_lengths().to_numpy(zero_copy_only=False)
    ids = np.asarray(table.column("id").to_pylist(), dtype=object)
    bad = np.flatnonzero(lengths != per_object)
    if bad.size:
        raise DataError(
            f"shard {path}: object {ids[bad[0]]!r} has {lengths[bad[0]]} pixel values; "
            f"dataset.json says images are {shape} = {per_object} values"
            + (f" ({bad.size} objects affected)" if bad.size > 1 else "")
        )
    images = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    rows = {"id": ids, "image": images.reshape(len(ids), *shape)}
    for k in labels:
        values = table.column(k)
        rows[k] = (
            np.asarray(values.to_pylist(), dtype=object)
            if info.is_categorical(k)
            else values.to_numpy(zero_copy_only=False).astype(np.float64)
        )
    return rows


def _read_shard(
    path: Path, info: DatasetInfo
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"{path} is not a readable Parquet shard: {err}") from err
    schema = table.schema
    required = ["id", "image", *info.label_names]
    missing = [c for c in required if c not in schema.names]
    if missing:
        raise DataError(
            f"shard {path} lacks column(s) {missing}; dataset.json expects {required}, "
            f"the shard has {schema.names}"
        )
    image_type = schema.field("image").type
    if not (pa.types.is_list(image_type) or pa.types.is_large_list(image_type)) or not (
        pa.types.is_floating(image_type.value_type)
    ):
        raise DataError(
            f"shard {path}: column 'image' has type {image_type}; expected list<float32> "
            "(each image flattened)"
        )
    rows = image_rows(table, path, info, info.label_names)
    return rows.pop("id"), rows.pop("image"), rows


def load_image_set(directory: str | Path, limit: int | None = None) -> ImageSet:
    """Read every shard listed in ``dataset.json`` into memory, checking each one's schema."""
    directory = Path(directory)
    info = DatasetInfo.load(directory)
    parts = []
    total = 0
    for name in info.shards:
        path = directory / name
        if not path.is_file():
            raise DataError(f"shard {path} listed in dataset.json does not exist")
        parts.append(_read_shard(path, info))
        total += len(parts[-1][0])
        if limit is not None and total >= limit:
            break
    if not parts:
        raise DataError(f"{directory}/dataset.json lists no shards")
    ids = np.concatenate([p[0] for p in parts])[:limit]
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dupes = unique[counts > 1]
        raise DataError(
            f"{directory}: duplicate object ids, e.g. {list(dupes[:3])} ({len(dupes)} in all)"
        )
    images = np.concatenate([p[1] for p in parts])[:limit]
    labels = {k: np.concatenate([p[2][k] for p in parts])[:limit] for k in info.label_names}
    return ImageSet(info=info, ids=ids, images=images, labels=labels)
