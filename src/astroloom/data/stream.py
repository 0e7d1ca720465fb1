"""Streaming shards: every object exactly once per epoch across ranks and loader workers.

The shards' row groups are the units of work. Each epoch they are permuted with
``(seed, epoch)``; consumer ``c`` of ``C = world × workers`` (rank-major) takes units
``c, c + C, c + 2C, …``, so the consumers partition the data. Within a consumer, rows pass
through a shuffle buffer seeded by ``(seed, epoch, consumer)``. Memory holds one row
group and the buffer, whatever the dataset's size. The order is a pure function of the
seed, so a position recorded as "objects yielded so far" is enough to resume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow.compute as pc
import torch
from torch.utils.data import IterableDataset, get_worker_info

from astroloom.data.schema import DataError, DatasetInfo
from astroloom.data.shards import image_rows, read_row_group, row_groups

T = TypeVar("T")


class ShardStream(IterableDataset):
    """Iterate ``{"id", "image", <labels>}`` dicts of the objects that have ``require``.

    With ``batch_size`` it yields whole batches instead (NumPy arrays, images stacked),
    assembled with one copy per image and no per-object Python work: the fast path for
    training (use ``DataLoader(stream, batch_size=None)``).

    ``rank``/``world`` default to torch.distributed's when it is initialised. Set
    ``epoch`` before each pass (as with a DistributedSampler) and pass ``start`` (from
    :meth:`position`) to resume within an epoch.
    """

    def __init__(
        self,
        directory: str | Path,
        labels: Sequence[str] = (),
        require: str = "image",
        seed: int = 0,
        shuffle_buffer: int = 1000,
        rank: int | None = None,
        world: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.info = DatasetInfo.load(self.directory)
        unknown = [k for k in labels if k not in self.info.labels]
        if unknown:
            raise DataError(f"labels {unknown} are not in {self.directory}/dataset.json")
        self.labels = list(labels)
        self.require = require
        self.seed = seed
        self.shuffle_buffer = max(1, shuffle_buffer)
        self.batch_size = batch_size
        if rank is None or world is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            rank, world = (dist.get_rank(), dist.get_world_size()) if ready else (0, 1)
        self.rank, self.world = rank, world
        self.epoch = 0
        self.start = 0
        self.units = [(g.path, g.group) for g in row_groups(self.directory, self.info)]
        self._yielded = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def position(self) -> dict[str, int]:
        """Where this (single-worker) stream is: pass to :meth:`set_epoch` to resume."""
        return {"epoch": self.epoch, "start": self._yielded}

    def _consumer(self) -> tuple[int, int]:
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
        return self.rank * workers + worker_id, self.world * workers

    def _rows(self, units: list[tuple[Path, int]]) -> Iterator[dict[str, Any]]:
        shape = tuple(self.info.image.shape)
        columns = ["id", self.require, *self.labels]
        for path, group in units:
            table = read_row_group(path, group, columns)
            if table.column(self.require).null_count:  # filtering copies: only when needed
                table = table.filter(pc.is_valid(table.column(self.require)))
            ids = table.column("id").to_pylist()
            values = table.column(self.require).combine_chunks()
            flat = values.flatten().to_numpy(zero_copy_only=False)
            offsets = values.offsets.to_numpy()
            label_cols = {k: table.column(k).to_pylist() for k in self.labels}
            for i, obj in enumerate(ids):
                data = flat[offsets[i] : offsets[i + 1]].copy()  # writable, owned by the row
                if self.require == "image":
                    if data.size != np.prod(shape):
                        raise DataError(
                            f"shard {path}: object {obj!r} has {data.size} pixel "
                            f"values; dataset.json says {shape}"
                        )
                    data = data.reshape(shape)
                yield {"id": obj, self.require: data, **{k: v[i] for k, v in label_cols.items()}}

    def _chunks(self, units: list[tuple[Path, int]]) -> Iterator[dict[str, np.ndarray]]:
        """Each row group's objects with images, as arrays."""
        columns = ["id", "image", *self.labels]
        for path, group in units:
            table = read_row_group(path, group, columns)
            yield image_rows(table, path, self.info, self.labels)

    def _batches(
        self, units: list[tuple[Path, int]], rng: np.random.Generator
    ) -> Iterator[dict[str, np.ndarray]]:
        def take(parts: list[tuple[dict[str, np.ndarray], np.ndarray]]) -> dict[str, np.ndarray]:
            return {key: np.concatenate([c[key][rows] for c, rows in parts]) for key in parts[0][0]}

        yield from pooled_batches(
            self._chunks(units),
            self.batch_size,
            self.shuffle_buffer,
            rng,
            take,
            rows_of=lambda chunk: len(chunk["id"]),
        )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        consumer, consumers = self._consumer()
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.units))
        mine = [self.units[u] for u in order[consumer::consumers]]
        rng = np.random.default_rng([self.seed, self.epoch, consumer])
        buffer: list[dict[str, Any]] = []
        self._yielded = 0
        if self.batch_size:
            if self.require != "image":
                raise ValueError("batch mode streams images; use batch_size=None for other columns")
            for batch in self._batches(mine, rng):
                n = len(batch["id"])
                skip = min(max(self.start - self._yielded, 0), n)
                self._yielded += n
                if skip < n:
                    yield {k: v[skip:] for k, v in batch.items()}
            return

        def past_start() -> bool:
            self._yielded += 1
            return self._yielded > self.start

        for row in self._rows(mine):
            if len(buffer) < self.shuffle_buffer:
                buffer.append(row)
                continue
            k = rng.integers(len(buffer))
            buffer[k], row = row, buffer[k]
            if past_start():
                yield row
        rng.shuffle(buffer)
        for row in buffer:
            if past_start():
                yield row


def pooled_batches(
    chunks: Iterable[Any],
    size: int,
    buffer: int,
    rng: np.random.Generator,
    take: Callable[[list[tuple[Any, np.ndarray]]], T],
    rows_of: Callable[[Any], int] = len,
) -> Iterator[T]:
    """Batches of ``size`` rows drawn at random from a pool of at least ``buffer`` pending
    rows, refilled a chunk (a row group's rows; ``rows_of`` counts them) at a time; the last
    batch may be short. ``take`` assembles a batch from ``(chunk, row indices)`` pairs.
    Memory holds only the chunks that still have pending rows."""
    held: dict[int, Any] = {}
    pending = np.zeros((0, 2), dtype=np.int64)  # (chunk, row) not yet handed out

    def batch(sel: np.ndarray) -> T:
        return take([(held[int(c)], sel[sel[:, 0] == c, 1]) for c in np.unique(sel[:, 0])])

    for c, chunk in enumerate(chunks):
        held[c] = chunk
        rows = np.arange(rows_of(chunk))
        pending = np.concatenate([pending, np.stack([np.full_like(rows, c), rows], axis=1)])
        pending = pending[rng.permutation(len(pending))]
        while len(pending) >= buffer + size:
            sel, pending = pending[:size], pending[size:]
            yield batch(sel)
            for done in set(held) - set(np.unique(pending[:, 0]).tolist()):
                del held[done]
    while len(pending):
        sel, pending = pending[:size], pending[size:]
        yield batch(sel)


def collate_images(rows: list[dict[str, Any]]) -> tuple[list[str], torch.Tensor]:
    """DataLoader ``collate_fn``: ids and a ``(B, C, H, W)`` float32 image tensor."""
    return [r["id"] for r in rows], torch.from_numpy(np.stack([r["image"] for r in rows]))
