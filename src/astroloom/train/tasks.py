"""What one training step draws and measures.

The loop (train/loop.py) asks the task for the global batch of a step, for the normaliser
of each modality's loss over that whole batch, for a slice of it (a rank's share, a
micro-batch), and for the error sums of a slice. Drawing everything for
the global batch first is what makes accumulation and ranks reproduce one big batch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astroloom.config import RunConfig
from astroloom.data.augment import augment as augment_images
from astroloom.data.multiset import MultimodalSet, load_multimodal_set
from astroloom.data.schema import DataError, DatasetInfo
from astroloom.data.shards import row_groups
from astroloom.model.multimodal import MultimodalModel
from astroloom.tokenize.multimodal import MultimodalTokenizer, PreparedData, image_description
from astroloom.tokenize.tokens import ModalityTokens
from astroloom.train.stream import Feed, TrainingStream, first_rows

Errors = dict[str, tuple[torch.Tensor, torch.Tensor]]


class MultimodalTask:
    """The model's objective over the configured modalities: random modality order and/or
    masked tokens (for one modality, plain next-token prediction or masked modelling)."""

    streaming = False

    def __init__(
        self,
        cfg: RunConfig,
        model: MultimodalModel,
        tokenizer: MultimodalTokenizer | None = None,
    ) -> None:
        """``tokenizer``: keep another run's normalisation (continued pretraining) instead of
        measuring one on this data."""
        mc = cfg.model
        refuse_if_too_big(Path(cfg.data.path))
        data: MultimodalSet = load_multimodal_set(cfg.data.path, mc.modalities)
        check_shapes(cfg, data.info, bool(data.present.get("image", np.zeros(1, bool)).any()))
        self.info, self.n_objects = data.info, len(data)
        self.model, self.objective = model, mc.objective
        self.tokenizer = tokenizer or measured_tokenizer(cfg, data)
        self.prepared = self.tokenizer.prepare(data)
        self._set_augment(cfg)
        if self.augment is not None:
            # Images are augmented and tokenised per batch; the rest stays prepared.
            self.images = data.arrays["image"]
            self.has_image = torch.from_numpy(data.present["image"])
        self.mean_tokens = mean_tokens(self.prepared, mc.lightcurve_tokens, len(data))
        self.device = torch.device("cpu")

    def _set_augment(self, cfg: RunConfig) -> None:
        self.augment = None
        if cfg.augment.enabled and "image" in self.tokenizer.tokenizers:
            self.augment = cfg.augment
            self.pixel_scale, self.zero_point = image_description(self.info)

    def split(self, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Training and validation objects (indices into the prepared set)."""
        return split_indices(self.n_objects, val_fraction, seed)

    def draw(
        self, pick: torch.Tensor, generator: torch.Generator, augment: bool = True
    ) -> tuple[Any, Any]:
        """The tokens of objects ``pick`` and the step's plan; with ``augment`` (training
        batches, not validation) the images pass through the configured augmentations."""
        tokens = self.tokenizer.batch(self.prepared, pick, generator)
        if augment and self.augment is not None:
            tokens["image"] = self._augmented_images(pick, generator)
        return tokens, self.model.draw_plan(tokens, self.objective, generator)

    def _augmented_images(self, pick: torch.Tensor, generator: torch.Generator) -> ModalityTokens:
        return self.augmented_images(self.images[pick.numpy()], self.has_image[pick], generator)

    def augmented_images(
        self, images: np.ndarray, has: torch.Tensor, generator: torch.Generator
    ) -> ModalityTokens:
        tok = self.tokenizer["image"]
        images = torch.from_numpy(images)
        zero_point = torch.full((len(images),), float("nan"))
        if has.any():
            done = augment_images(images[has], self.augment, generator, tok.scale)
            images = images.clone()
            images[has] = done.images
            if self.zero_point is not None:
                zero_point[has] = torch.where(
                    done.unit_known, torch.tensor(self.zero_point), torch.tensor(float("nan"))
                )
        return tok.tokens(images, has, pixel_scale=self.pixel_scale, zero_point=zero_point)

    def norms(self, batch: tuple[Any, Any]) -> dict[str, float]:
        # Each modality's mean error counts equally, whatever its number of values.
        counts = self.model.target_counts(*batch)
        active = [m for m, c in counts.items() if c > 0]
        return {m: counts[m] * len(active) for m in active}

    def take(self, batch: tuple[Any, Any], part: slice) -> tuple[Any, Any]:
        tokens, plan = batch
        return {m: t.take(part) for m, t in tokens.items()}, plan.take(part)

    def n_tokens(self, batch: tuple[Any, Any]) -> int:
        return int(sum(t.present.sum() for t in batch[0].values()))

    def errors(self, net: torch.nn.Module, batch: tuple[Any, Any], delta: float) -> Errors:
        tokens, plan = batch
        moved: dict[str, ModalityTokens] = {m: t.to(self.device) for m, t in tokens.items()}
        return net(moved, plan, delta)


class StreamingTask(MultimodalTask):
    """The same objective over batches streamed from the shards (``data.stream``): memory
    holds a few row groups per loader worker, the validation objects and a sample that the
    tokenizers' normalisation is measured on (unless ``tokenizer`` brings one)."""

    streaming = True
    SAMPLE = 2000  # objects the normalisation is measured on

    def __init__(
        self,
        cfg: RunConfig,
        model: MultimodalModel,
        tokenizer: MultimodalTokenizer | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        mc, t = cfg.model, cfg.train
        path = Path(cfg.data.path)
        info = DatasetInfo.load(path)
        units = row_groups(path, info)  # every footer read once, for everything below
        sample, val = first_rows(
            units,
            info,
            mc.modalities,
            t.seed,
            cfg.data.val_fraction,
            self.SAMPLE,
            t.eval_batches * t.batch_size,
        )
        check_shapes(cfg, info, bool(sample.present.get("image", np.zeros(1, bool)).any()))
        self.info, self.n_objects = info, sum(u.rows for u in units)
        self.model, self.objective = model, mc.objective
        self.tokenizer = tokenizer or measured_tokenizer(cfg, sample)
        self.mean_tokens = mean_tokens(
            self.tokenizer.prepare(sample), mc.lightcurve_tokens, len(sample)
        )
        self.val = val
        self.prepared = self.tokenizer.prepare(val) if val is not None else None
        self._set_augment(cfg)
        micro = t.batch_size // (world * t.grad_accum_steps)
        stream = TrainingStream(
            path,
            mc.modalities,
            self.tokenizer,
            micro,
            seed=t.seed,
            val_fraction=cfg.data.val_fraction,
            shuffle_buffer=cfg.data.shuffle_buffer,
            rank=rank,
            world=world,
            workers=cfg.data.workers,
            raw_images=self.augment is not None,
            units=units,
        )
        self.feed = Feed(stream, cfg.data.workers)
        self.device = torch.device("cpu")

    def split(self, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """No training indices (the stream is the training set); the validation objects
        held in memory."""
        n_val = 0 if self.val is None else len(self.val)
        return np.zeros(0, np.int64), np.arange(n_val)

    def next_batch(self, generator: torch.Generator) -> tuple[Any, Any]:
        """The next streamed micro-batch of this rank: tokens and the step's plan."""
        batch = next(self.feed)
        tokens = self.tokenizer.batch(batch.prepared, torch.arange(len(batch)), generator)
        if self.augment is not None and batch.images is not None:
            tokens["image"] = self.augmented_images(
                batch.images, torch.from_numpy(batch.has_image), generator
            )
        return tokens, self.model.draw_plan(tokens, self.objective, generator)


def refuse_if_too_big(path: Path, available: int | None = None) -> None:
    """Refuse, before reading it, a dataset that training in memory cannot hold: its
    columns uncompressed (Parquet's own count), twice over — the arrays and their tokens —
    on every rank of this node, against the memory available now."""
    import psutil

    size = sum(g.bytes for g in row_groups(path, DatasetInfo.load(path)))
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    need = 2 * size * ranks_here
    available = psutil.virtual_memory().available if available is None else available
    if need > 0.8 * available:
        raise DataError(
            f"{path} holds {size / 1e9:.1f} GB of columns; training in memory needs about "
            f"{need / 1e9:.1f} GB ({ranks_here} rank(s) × its arrays and their tokens) and "
            f"{available / 1e9:.1f} GB is available. Stream it from the shards instead: "
            "--set data.stream=true"
        )


def check_shapes(cfg: RunConfig, info: DatasetInfo, has_images: bool) -> None:
    mc = cfg.model
    if "image" in mc.modalities and has_images:
        c, h, _ = info.image.shape
        if c != mc.n_bands:
            raise DataError(
                f"{cfg.data.path} holds {c}-band images; the model is configured for "
                f"{mc.n_bands} bands (model.n_bands)"
            )
        if h % mc.patch_size:
            raise DataError(f"{h}-pixel images do not tile into {mc.patch_size}-pixel patches")
    if "photometry" in mc.modalities and "photometry" in info.modalities:
        n_phot = len(info.modalities["photometry"]["bands"])
        if n_phot != mc.n_bands:
            raise DataError(
                f"{cfg.data.path} has photometry in {n_phot} bands; model.n_bands is {mc.n_bands}"
            )


def measured_tokenizer(cfg: RunConfig, data: MultimodalSet) -> MultimodalTokenizer:
    mc = cfg.model
    return MultimodalTokenizer.for_dataset(
        data,
        mc.modalities,
        mc.patch_size,
        mc.spectrum_patch,
        mc.lightcurve_tokens,
        image_norm=mc.image_norm,
        lightcurve_phase=mc.lightcurve_phase,
        spectrum_norm=mc.spectrum_norm,
        image_colours=mc.image_colours,
    )


def mean_tokens(prepared: PreparedData, lightcurve_tokens: int, n: int) -> float:
    present = sum(b.present.sum() for b in prepared.blocks.values())
    if prepared.curves is not None:
        present = present + prepared.curves.count.clamp_max(lightcurve_tokens).sum()
    return float(present) / max(n, 1)


def make_task(
    cfg: RunConfig,
    model: MultimodalModel,
    tokenizer: MultimodalTokenizer | None = None,
    rank: int = 0,
    world: int = 1,
) -> MultimodalTask:
    if cfg.data.stream:
        return StreamingTask(cfg, model, tokenizer, rank, world)
    return MultimodalTask(cfg, model, tokenizer)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
