"""Embeddings: stream a dataset through a checkpoint and write Parquet (id, vector, labels)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from astroloom.data.schema import DataError
from astroloom.data.shards import load_image_set
from astroloom.model.gpt import FoundationModel
from astroloom.tokenize.image import ImageTokenizer
from astroloom.train.checkpoint import find_checkpoint, load_checkpoint

META_KEY = b"astroloom"


@torch.no_grad()
def embed_images(
    model: FoundationModel,
    tokenizer: ImageTokenizer,
    images: np.ndarray,
    layer: int | None = None,
    pool: str = "mean",
    batch_size: int = 256,
    progress: bool = True,
    desc: str = "embed",
) -> np.ndarray:
    """``(N, C, H, W)`` fluxes → ``(N, n_embd)`` float32 vectors."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    with tqdm(total=len(images), desc=desc, unit="obj", disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            chunk = torch.from_numpy(images[start : start + batch_size]).to(device)
            tokens, _ = tokenizer.encode(chunk)
            out.append(model.embed(tokens, layer=layer, pool=pool).float().cpu().numpy())
            bar.update(len(chunk))
    return np.concatenate(out) if out else np.zeros((0, model.cfg.n_embd), np.float32)


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
    vectors = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, -1)
    labels = {
        c: np.asarray(table.column(c).to_pylist(), dtype=object)
        if pa.types.is_string(table.schema.field(c).type)
        else table.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
        for c in table.column_names
        if c not in ("id", "vector")
    }
    raw_meta = (table.schema.metadata or {}).get(META_KEY)
    meta = json.loads(raw_meta) if raw_meta else {}
    ids = np.asarray(table.column("id").to_pylist(), dtype=object)
    return Embeddings(ids=ids, vectors=vectors, labels=labels, meta=meta)


def embed_dataset(
    run: str | Path,
    data: str | Path,
    out: str | Path,
    layer: int | None = None,
    pool: str = "mean",
    batch_size: int = 256,
    random_weights: bool = False,
    progress: bool = True,
) -> Path:
    """Embed every object of ``data`` with the checkpoint in ``run``; write Parquet at ``out``.

    With ``random_weights`` the same architecture is used untrained (seeded): the baseline
    that tells how much of a probe's score pretraining earned.
    """
    model, cfg, tokenizer = load_checkpoint(run)
    if random_weights:
        torch.manual_seed(cfg.train.seed + 1)
        model = FoundationModel(cfg.model).eval()
    images = load_image_set(data)
    layer = model.default_layer() if layer is None else layer
    vectors = embed_images(model, tokenizer, images.images, layer, pool, batch_size, progress)
    meta = {
        "run": str(find_checkpoint(run)),
        "data": str(Path(data)),
        "layer": layer,
        "pool": pool,
        "weights": "random" if random_weights else "trained",
        "n_embd": cfg.model.n_embd,
    }
    return write_embeddings(out, Embeddings(images.ids, vectors, images.labels, meta))
