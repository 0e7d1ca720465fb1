"""What one training step draws and measures.

The loop (train/loop.py) asks the task for the global batch of a step, for the normaliser
of each modality's loss over that whole batch, for a slice of it (a rank's share, a
micro-batch), and for the error sums of a slice. Drawing everything for
the global batch first is what makes accumulation and ranks reproduce one big batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from astroloom.config import RunConfig
from astroloom.data.augment import augment as augment_images
from astroloom.data.multiset import MultimodalSet, load_multimodal_set
from astroloom.data.schema import DataError
from astroloom.model.multimodal import MultimodalModel
from astroloom.tokenize.multimodal import MultimodalTokenizer, image_description
from astroloom.tokenize.tokens import ModalityTokens

Errors = dict[str, tuple[torch.Tensor, torch.Tensor]]


class MultimodalTask:
    """The model's objective over the configured modalities: random modality order and/or
    masked tokens (for one modality, plain next-token prediction or masked modelling)."""

    def __init__(
        self,
        cfg: RunConfig,
        model: MultimodalModel,
        tokenizer: MultimodalTokenizer | None = None,
    ) -> None:
        """``tokenizer``: keep another run's normalisation (continued pretraining) instead of
        measuring one on this data."""
        mc = cfg.model
        data: MultimodalSet = load_multimodal_set(cfg.data.path, mc.modalities)
        if "image" in mc.modalities and data.present["image"].any():
            c, h, _ = data.info.image.shape
            if c != mc.n_bands:
                raise DataError(
                    f"{cfg.data.path} holds {c}-band images; the model is configured for "
                    f"{mc.n_bands} bands (model.n_bands)"
                )
            if h % mc.patch_size:
                raise DataError(f"{h}-pixel images do not tile into {mc.patch_size}-pixel patches")
        if "photometry" in mc.modalities and "photometry" in data.info.modalities:
            n_phot = len(data.info.modalities["photometry"]["bands"])
            if n_phot != mc.n_bands:
                raise DataError(
                    f"{cfg.data.path} has photometry in {n_phot} bands; "
                    f"model.n_bands is {mc.n_bands}"
                )
        self.info, self.n_objects = data.info, len(data)
        self.model, self.objective = model, mc.objective
        self.tokenizer = tokenizer or MultimodalTokenizer.for_dataset(
            data,
            mc.modalities,
            mc.patch_size,
            mc.spectrum_patch,
            mc.lightcurve_tokens,
            image_norm=mc.image_norm,
            lightcurve_phase=mc.lightcurve_phase,
        )
        self.prepared = self.tokenizer.prepare(data)
        self.augment = None
        if cfg.augment.enabled and "image" in self.tokenizer.tokenizers:
            # Images are augmented and tokenised per batch; the rest stays prepared.
            self.augment = cfg.augment
            self.images = data.arrays["image"]
            self.has_image = torch.from_numpy(data.present["image"])
            self.pixel_scale, self.zero_point = image_description(data.info)
        present = sum(b.present.sum() for b in self.prepared.blocks.values())
        if self.prepared.curves is not None:
            present = present + self.prepared.curves.count.clamp_max(mc.lightcurve_tokens).sum()
        self.mean_tokens = float(present) / max(len(data), 1)
        self.device = torch.device("cpu")

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
        tok = self.tokenizer["image"]
        images = torch.from_numpy(self.images[pick.numpy()])
        has = self.has_image[pick]
        zero_point = torch.full((len(pick),), float("nan"))
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


def make_task(
    cfg: RunConfig, model: MultimodalModel, tokenizer: MultimodalTokenizer | None = None
) -> MultimodalTask:
    return MultimodalTask(cfg, model, tokenizer)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
