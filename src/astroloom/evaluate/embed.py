"""Embeddings: stream a dataset through a checkpoint and write Parquet (id, vector, labels)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from astroloom.data.multiset import keep, read_rows
from astroloom.data.neighbours import mask_neighbours, masks_neighbours
from astroloom.data.schema import DataError, DatasetInfo
from astroloom.data.shards import read_row_group, row_groups
from astroloom.model.checkpoint import find_checkpoint, load_checkpoint
from astroloom.model.device import pick_device
from astroloom.model.foundation import Foundation
from astroloom.model.multimodal import (
    EMBED_ORIENTATIONS,
    EMBED_POOL,
    MultimodalModel,
    build_model,
)
from astroloom.paths import record_path, resolve_recorded
from astroloom.tokenize.image import (
    check_orientations,
    check_zooms,
    image_zooms,
    mean_over_views,
)
from astroloom.tokenize.multimodal import MultimodalTokenizer, image_description, info_modalities

META_KEY = b"astroloom"


@torch.no_grad()
def embed_images(
    model: MultimodalModel,
    tokenizer: MultimodalTokenizer,
    images: np.ndarray,
    layer: int | None = None,
    pool: str = EMBED_POOL,
    batch_size: int = 256,
    progress: bool = True,
    desc: str = "embed",
    orientations: int = EMBED_ORIENTATIONS,
    pixel_scale: float | None = None,
    zero_point: float | None = None,
    zooms: Sequence[float] | None = None,
    neighbours: bool | None = None,
) -> np.ndarray:
    """``(N, C, H, W)`` fluxes → ``(N, dim)`` float32 vectors, from the image alone,
    averaged over ``orientations`` turns of each cutout (1: as it lies) and over the
    magnifications ``zooms`` of its centre (default :func:`image_zooms`: closer views of
    pictures of unknown pixel scale). ``pixel_scale`` and ``zero_point`` describe the
    data as ``astroloom embed`` reads them from its ``dataset.json`` (None: unknown, and
    the model is told so). ``neighbours``: mask the sources other than the central one
    as missing first (default :func:`~astroloom.data.neighbours.masks_neighbours`:
    for pictures of unknown pixel scale)."""
    return embed_images_by_layer(
        model,
        tokenizer,
        images,
        [model.default_layer() if layer is None else layer],
        pool,
        batch_size,
        progress,
        desc,
        orientations,
        pixel_scale,
        zero_point,
        zooms,
        neighbours,
    ).popitem()[1]


def embed_images_by_layer(
    model: MultimodalModel,
    tokenizer: MultimodalTokenizer,
    images: np.ndarray,
    layers: Sequence[int],
    pool: str = EMBED_POOL,
    batch_size: int = 256,
    progress: bool = True,
    desc: str = "embed",
    orientations: int = EMBED_ORIENTATIONS,
    pixel_scale: float | None = None,
    zero_point: float | None = None,
    zooms: Sequence[float] | None = None,
    neighbours: bool | None = None,
) -> dict[int, np.ndarray]:
    """:func:`embed_images` after each block in ``layers`` (0: the patch embeddings), from
    one pass through the blocks per view: ``{layer: (N, dim)}``."""
    model.eval()
    zooms = image_zooms(pixel_scale, zooms)
    masked = masks_neighbours(pixel_scale, neighbours)
    device = next(model.parameters()).device
    image_tokenizer = tokenizer.image
    layers = list(dict.fromkeys(layers))
    out: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    with tqdm(total=len(images), desc=desc, unit="obj", disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            chunk = torch.from_numpy(mask_neighbours(chunk) if masked else chunk)

            def view(zoom: float, chunk: torch.Tensor = chunk) -> torch.Tensor:
                tokens = image_tokenizer.tokens(
                    chunk, pixel_scale=pixel_scale, zero_point=zero_point, zoom=zoom
                )
                with torch.no_grad():  # one pass through the blocks serves every layer
                    states = model.pooled_states(
                        {"image": tokens.to(device)}, layers, pool, orientations
                    )
                return torch.stack(states)

            pooled = mean_over_views(zooms, view)
            for layer, x in zip(layers, pooled, strict=True):
                out[layer].append(x.float().cpu().numpy())
            bar.update(len(chunk))
    empty = np.zeros((0, model.embedding_dim(pool)), np.float32)
    return {layer: np.concatenate(x) if x else empty for layer, x in out.items()}


@dataclass
class Embeddings:
    ids: np.ndarray
    vectors: np.ndarray
    labels: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


def _label_column(values: np.ndarray) -> pa.Array:
    if values.dtype == object:  # categorical labels travel as strings, missing as null
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.array(np.asarray(values, np.float64))


def write_embeddings(path: str | Path, emb: Embeddings) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n, d = emb.vectors.shape
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(emb.vectors.astype(np.float32).ravel()), d)
    columns = {"id": pa.array([str(i) for i in emb.ids]), "vector": vectors}
    columns.update({k: _label_column(v) for k, v in emb.labels.items()})
    table = pa.table(columns).replace_schema_metadata({META_KEY: json.dumps(emb.meta).encode()})
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def read_embeddings(path: str | Path) -> Embeddings:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"embeddings file not found: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"{path} is not a readable Parquet file: {err}") from err
    if "id" not in table.column_names or "vector" not in table.column_names:
        raise DataError(f"{path} lacks the 'id' and 'vector' columns of an embeddings file")
    vec = table.column("vector").combine_chunks()
    n = len(vec)
    dim = vec.type.list_size if pa.types.is_fixed_size_list(vec.type) else -1
    vectors = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, dim)
    labels = {
        c: np.asarray(table.column(c).to_pylist(), dtype=object)
        if pa.types.is_string(table.schema.field(c).type)
        else table.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
        for c in table.column_names
        if c not in ("id", "vector")
    }
    raw_meta = (table.schema.metadata or {}).get(META_KEY)
    meta = json.loads(raw_meta) if raw_meta else {}
    for key in ("run", "data"):  # recorded relative to the file: resolve from anywhere
        if meta.get(key):
            meta[key] = str(resolve_recorded(meta[key], path.parent))
    ids = np.asarray(table.column("id").to_pylist(), dtype=object)
    return Embeddings(ids=ids, vectors=vectors, labels=labels, meta=meta)


def file_signature(path: Path) -> str:
    """Size and SHA-1 of a file: what makes two embeddings' inputs the same."""
    import hashlib

    digest = hashlib.sha1()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"{Path(path).stat().st_size}:{digest.hexdigest()}"


def embed_dataset(
    run: str | Path,
    data: str | Path,
    out: str | Path,
    layer: int | None = None,
    pool: str = EMBED_POOL,
    batch_size: int = 256,
    random_weights: bool = False,
    progress: bool = True,
    modalities: list[str] | None = None,
    orientations: int = EMBED_ORIENTATIONS,
    device: str = "auto",
    zooms: Sequence[float] | None = None,
    neighbours: bool | None = None,
) -> Path:
    """Embed every object of ``data`` with the checkpoint in ``run``; write Parquet at ``out``.

    The dataset is streamed one shard row group at a time, so memory stays flat. Each row
    group's embeddings are written as a part file beside ``out`` first: a run that is
    interrupted continues where it stopped, and under torchrun each rank embeds its own
    share of the row groups; rank 0 then joins the parts, in dataset order, into ``out``.

    With ``random_weights`` the same architecture is used untrained (seeded): the baseline
    that tells how much of a probe's score pretraining earned.

    Each object is embedded from every modality it has among ``modalities`` (default: all
    the model was trained on); objects with none of them are left out.

    ``device``: auto (CUDA when present; under torchrun each rank its own GPU), cpu, cuda
    or cuda:N. The arithmetic stays in fp32 on a GPU too, so that a survey's embeddings do
    not depend on the hardware that made them (bf16 is for training).

    ``zooms``: the magnifications of each image's centre its embedding is averaged over
    (default: :data:`~astroloom.tokenize.image.PHOTO_ZOOMS` when the data's pixel scale is
    unknown — photographs, framed by whoever made them — else the cutout as given).
    ``neighbours``: mask every source but the central one as missing in each image first
    (default: for photographs, as ``zooms``; :mod:`astroloom.data.neighbours`).
    """
    from astroloom.train.loop import Ranks  # evaluate composes train, not the other way

    out = Path(out)
    check_orientations(orientations, DataError)
    if zooms is not None:
        zooms = check_zooms(zooms, DataError)
    ranks = Ranks.from_env()
    try:
        where = pick_device(device, ranks.local_rank)
    except ValueError as err:
        raise DataError(str(err)) from None
    model, cfg, tokenizer = load_checkpoint(run)
    if random_weights:
        torch.manual_seed(cfg.train.seed + 1)
        model = build_model(cfg.model).eval()
    model = model.to(where)
    layer = model.default_layer() if layer is None else layer
    use = list(modalities or model.modalities)
    unknown = [m for m in use if m not in model.modalities]
    if unknown:
        raise DataError(f"the model was trained on {model.modalities}, not on {unknown}")
    foundation = Foundation(model, tokenizer)
    info = DatasetInfo.load(data)
    has = info_modalities(info)
    shared = [m for m in has if m in model.modalities]
    if not set(use) & set(has):
        # An empty file would look like a dataset with no objects; say what does not meet.
        raise DataError(
            f"{data} holds none of the modalities {use} (it has {has})"
            + ("; embed it with " + " ".join(f"--modality {m}" for m in shared) if shared else "")
        )
    pixel_scale = image_description(info)[0]
    zooms = image_zooms(pixel_scale, zooms) if "image" in use else (1.0,)
    masked = "image" in use and masks_neighbours(pixel_scale, neighbours)
    units = [(unit.path, unit.group) for unit in row_groups(data, info)]
    if ranks.world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    parts = out.with_name(out.name + ".parts")
    # Parts are reused after an interruption only when they came from the same weights,
    # layer, pooling, modalities and data; parts of another embedding are discarded.
    key = {
        "checkpoint": str(find_checkpoint(run).resolve()),
        "weights": file_signature(find_checkpoint(run) / "model.safetensors"),
        "random_weights": random_weights,
        "layer": layer,
        "pool": pool,
        "orientations": orientations,
        "zooms": list(zooms),
        "mask_neighbours": masked,
        "modalities": use,
        "data": str(Path(data).resolve()),
        "dataset": file_signature(Path(data) / "dataset.json"),
    }
    if ranks.main:
        recorded = parts / "key.json"
        if parts.exists() and (not recorded.is_file() or json.loads(recorded.read_text()) != key):
            shutil.rmtree(parts)
        parts.mkdir(parents=True, exist_ok=True)
        recorded.write_text(json.dumps(key))
    if ranks.world > 1:
        torch.distributed.barrier()
    mine = list(range(ranks.rank, len(units), ranks.world))
    for k in tqdm(mine, desc="embed", unit="part", disable=not (progress and ranks.main)):
        part = parts / f"part-{k:06d}.parquet"
        if part.exists():  # done before an interruption
            continue
        path, group = units[k]
        rows = read_rows(read_row_group(path, group), path, info, use)
        rows = keep(rows, np.any([rows.present[m] for m in use], axis=0))
        if masked and "image" in rows.arrays:
            rows.arrays["image"] = mask_neighbours(rows.arrays["image"])
        if len(rows):
            tokens = foundation.tokens_from_set(rows, use)

            def view(zoom: float, rows=rows, tokens=tokens) -> np.ndarray:
                # Only the image is seen closer; the other modalities are tokenised once.
                closer = foundation.tokens_from_set(rows, ["image"], zoom) if zoom != 1 else {}
                return foundation.embed({**tokens, **closer}, layer, pool, batch_size, orientations)

            vectors = mean_over_views(zooms, view)
        else:
            vectors = np.zeros((0, model.embedding_dim(pool)), np.float32)
        labels = {name: rows.labels[name] for name in info.label_names if name in rows.labels}
        write_embeddings(part, Embeddings(rows.ids, vectors, labels))
    if ranks.world > 1:
        torch.distributed.barrier()
    if ranks.main:
        pieces = [read_embeddings(parts / f"part-{k:06d}.parquet") for k in range(len(units))]
        meta = {
            "run": record_path(find_checkpoint(run), out.parent),
            "data": record_path(data, out.parent),
            "layer": layer,
            "pool": pool,
            "orientations": orientations if "image" in use else 1,
            "zooms": list(zooms),
            "mask_neighbours": masked,
            "weights": "random" if random_weights else "trained",
            "modalities": use,
            "n_embd": cfg.model.n_embd,
            "dim": model.embedding_dim(pool),
        }
        joined = Embeddings(
            np.concatenate([p.ids for p in pieces]),
            np.concatenate([p.vectors for p in pieces]),
            {k: np.concatenate([p.labels[k] for p in pieces]) for k in pieces[0].labels},
            meta,
        )
        write_embeddings(out, joined)
        shutil.rmtree(parts)
    if ranks.world > 1:
        torch.distributed.barrier()
    return out
