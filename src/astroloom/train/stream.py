"""Training batches streamed from the shards: memory holds a few row groups, whatever the
dataset's size.

The units of work are the shards' row groups. Each epoch they are permuted with
``(seed, epoch)``; consumer ``c`` of ``C = ranks × workers`` takes units ``c, c + C, …``,
so the consumers partition the data and every training object comes exactly once per
epoch. A consumer reads its units one at a time, keeps the training rows (the validation
rows are chosen by a hash of the id, so the split needs no list of ids) and draws batches
at random from a pool of pending rows; the loader worker tokenises them.

A :class:`Feed` turns a rank's ``DataLoader`` into an endless sequence of batches and
records which batches each worker ("role") has delivered this epoch. That record resumes
the stream exactly: the order is a pure function of the seed, the DataLoader hands out its
workers' batches round-robin, and on resume the workers take the roles in the order that
the interrupted run would have asked them next.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from astroloom.data.multiset import (
    MultimodalSet,
    columns_of,
    concat_sets,
    declares,
    keep,
    read_rows,
)
from astroloom.data.schema import DataError, DatasetInfo
from astroloom.data.shards import RowGroup, read_row_group, row_groups
from astroloom.data.stream import pooled_batches
from astroloom.tokenize.multimodal import MultimodalTokenizer, PreparedData


def held_out(ids: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """Whether each object is a validation object: a hash of ``(seed, id)`` below
    ``fraction``. Independent of shard order, row groups and the number of ranks."""
    if fraction <= 0:
        return np.zeros(len(ids), bool)
    limit = int(fraction * 2**64)
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest(), "big")
            < limit
            for i in ids
        ],
        dtype=bool,
    )


def modality_columns(info: DatasetInfo, modalities: Sequence[str]) -> list[str]:
    """The Parquet columns that the modalities' tokens need (labels are not read)."""
    columns = ["id"]
    for m in modalities:
        if declares(info, m):
            columns += columns_of(info, m)
            if m == "spectrum" and info.modalities["spectrum"].get("grid") == "per-object":
                columns.append("spectrum_wave")
    return list(dict.fromkeys(columns))


def read_unit(unit: RowGroup, info: DatasetInfo, modalities: Sequence[str]) -> MultimodalSet:
    """One row group's objects that have at least one of ``modalities`` (no labels)."""
    table = read_row_group(unit.path, unit.group, modality_columns(info, modalities))
    rows = read_rows(table, unit.path, info, list(modalities), labels=False)
    return keep(rows, np.any([rows.present[m] for m in modalities], axis=0))


@dataclass
class StreamBatch:
    """A batch as a loader worker hands it over: whose it is, and its tokens."""

    role: int
    epoch: int
    number: int  # the role's batch count this epoch, from 0
    ids: np.ndarray
    prepared: PreparedData
    images: np.ndarray | None  # raw images, when the trainer augments them
    has_image: np.ndarray | None

    def __len__(self) -> int:
        return len(self.ids)


class TrainingStream(IterableDataset):
    """One rank's tokenised training batches: each iteration is one epoch of them.

    Set :attr:`workers` to the DataLoader's ``num_workers`` (0 counts as 1) and call
    :meth:`set_position` before each ``iter(loader)``.
    """

    def __init__(
        self,
        directory: str | Path,
        modalities: Sequence[str],
        tokenizer: MultimodalTokenizer,
        batch_size: int,
        *,
        seed: int = 0,
        val_fraction: float = 0.0,
        shuffle_buffer: int = 2000,
        rank: int = 0,
        world: int = 1,
        workers: int = 1,
        raw_images: bool = False,
        units: list[RowGroup] | None = None,
    ) -> None:
        """``units``: the dataset's row groups when the caller has read them already."""
        self.directory = Path(directory)
        self.info = DatasetInfo.load(self.directory)
        self.units = units if units is not None else row_groups(self.directory, self.info)
        self.modalities = list(modalities)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.seed, self.val_fraction = seed, val_fraction
        self.shuffle_buffer = max(0, shuffle_buffer)
        self.rank, self.world = rank, world
        self.workers = max(1, workers)
        self.raw_images = raw_images
        self.set_position(0)

    def set_position(
        self, epoch: int, delivered: dict[int, int] | None = None, first_role: int = 0
    ) -> None:
        """Start epoch ``epoch``, skipping the batches each role already delivered; worker 0
        takes role ``first_role``, worker 1 the next, and so on."""
        self.epoch = epoch
        self.delivered = dict(delivered or {})
        self.first_role = first_role

    def units_of(self, consumer: int) -> list[RowGroup]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.units))
        return [self.units[u] for u in order[consumer :: self.world * self.workers]]

    def training_rows(self, unit: RowGroup) -> MultimodalSet:
        rows = read_unit(unit, self.info, self.modalities)
        return keep(rows, ~held_out(rows.ids, self.val_fraction, self.seed))

    def batches(self, units: list[RowGroup], rng: np.random.Generator) -> Iterator[MultimodalSet]:
        """Batches drawn at random from a pool of at least ``shuffle_buffer`` pending rows;
        the last one of the epoch may be short."""

        def take(parts: list[tuple[MultimodalSet, np.ndarray]]) -> MultimodalSet:
            chosen = [keep(chunk, rows) for chunk, rows in parts]
            return concat_sets(chosen) if len(chosen) > 1 else chosen[0]

        chunks = (self.training_rows(unit) for unit in units)
        yield from pooled_batches(chunks, self.batch_size, self.shuffle_buffer, rng, take)

    def __iter__(self) -> Iterator[StreamBatch]:
        worker = get_worker_info()
        n_workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
        if n_workers != self.workers:
            raise RuntimeError(
                f"TrainingStream set up for {self.workers} workers runs under {n_workers}"
            )
        role = (self.first_role + worker_id) % self.workers
        consumer = self.rank * self.workers + role
        rng = np.random.default_rng([self.seed, self.epoch, consumer])
        skip = self.delivered.get(role, 0)
        for number, rows in enumerate(self.batches(self.units_of(consumer), rng)):
            if number < skip:
                continue  # delivered before the run was interrupted
            has = rows.present.get("image")
            yield StreamBatch(
                role=role,
                epoch=self.epoch,
                number=number,
                ids=rows.ids,
                prepared=self.tokenizer.prepare(rows),
                images=rows.arrays.get("image") if self.raw_images else None,
                has_image=has if self.raw_images else None,
            )


def _as_is(batch: StreamBatch) -> StreamBatch:
    return batch


class Feed:
    """A rank's endless sequence of stream batches, epoch after epoch, with the position
    that resumes it exactly (:meth:`state`, :meth:`load_state`)."""

    def __init__(self, stream: TrainingStream, workers: int) -> None:
        self.stream = stream
        self.workers = workers
        stream.workers = max(1, workers)
        self.loader = DataLoader(
            stream,
            batch_size=None,
            num_workers=workers,
            collate_fn=_as_is,
            prefetch_factor=2 if workers else None,
        )
        self.epoch = 0
        self.delivered: dict[int, int] = {}
        self.last_role = -1
        self._batches: Iterator[StreamBatch] | None = None

    def __next__(self) -> StreamBatch:
        empty_epochs = 0
        while True:
            if self._batches is None:
                first = (self.last_role + 1) % self.stream.workers
                self.stream.set_position(self.epoch, self.delivered, first)
                self._batches = iter(self.loader)
            try:
                batch = next(self._batches)
            except StopIteration:
                empty_epochs = empty_epochs + 1 if not self.delivered else 0
                if empty_epochs > 1:
                    raise DataError(
                        f"{self.stream.directory}: rank {self.stream.rank} receives no "
                        "training objects (fewer row groups than ranks × loader workers, "
                        "or every object held out)"
                    ) from None
                self._batches = None
                self.epoch, self.delivered, self.last_role = self.epoch + 1, {}, -1
                continue
            self.delivered[batch.role] = batch.number + 1
            self.last_role = batch.role
            return batch

    def __iter__(self) -> Feed:
        return self

    def state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "delivered": {str(k): v for k, v in self.delivered.items()},
            "last_role": self.last_role,
            "workers": self.stream.workers,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if int(state["workers"]) != self.stream.workers:
            raise DataError(
                f"the run streamed with {state['workers']} loader workers per rank; resume "
                f"it with the same data.workers (now {self.stream.workers})"
            )
        self.epoch = int(state["epoch"])
        self.delivered = {int(k): int(v) for k, v in state["delivered"].items()}
        self.last_role = int(state["last_role"])
        self._batches = None


def first_rows(
    units: list[RowGroup],
    info: DatasetInfo,
    modalities: Sequence[str],
    seed: int,
    val_fraction: float,
    n_sample: int,
    n_val: int,
) -> tuple[MultimodalSet, MultimodalSet | None]:
    """A sample of objects to measure the tokenizers' normalisation on, and up to ``n_val``
    validation objects, read from row groups in a seeded order until both are full."""
    sample: list[MultimodalSet] = []
    val: list[MultimodalSet] = []
    n_s = n_v = 0
    for u in np.random.default_rng([seed, 999]).permutation(len(units)):
        if n_s >= n_sample and (n_v >= n_val or val_fraction <= 0):
            break
        rows = read_unit(units[u], info, modalities)
        if n_s < n_sample:
            sample.append(rows)
            n_s += len(rows)
        if val_fraction > 0 and n_v < n_val:
            part = keep(rows, held_out(rows.ids, val_fraction, seed))
            part = keep(part, np.arange(min(len(part), n_val - n_v)))
            if len(part):
                val.append(part)
                n_v += len(part)
    if not n_s:
        raise DataError(f"{units[0].path.parent} holds none of the modalities {list(modalities)}")
    return concat_sets(sample), (concat_sets(val) if val else None)
