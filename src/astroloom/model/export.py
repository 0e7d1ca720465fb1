"""The embedding path as an ONNX graph: image cutouts in, embedding vectors out.

The graph holds the whole path, from pixels in the survey's flux unit (per-object
normalisation, patches in spiral order, the transformer, pooling), so a deployment needs
onnxruntime and nothing of astroloom. It takes complete cutouts at the model's pixel scale
and size (``(batch, bands, image_size, image_size)``, any batch size); cutouts with missing
pixels or another pixel scale go through :class:`~astroloom.model.foundation.Foundation`.
Photographs (pixel scale unknown) are embedded by ``astroloom embed`` from closer views of
their centre; a graph exported with the same ``zooms`` holds those views too.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from astroloom.model.checkpoint import CheckpointError, load_checkpoint
from astroloom.model.multimodal import EMBED_ORIENTATIONS, EMBED_POOL, MultimodalModel
from astroloom.tokenize.image import ImageTokenizer, check_zooms, mean_over_views


class ImageEmbedder(nn.Module):
    """Cutouts ``(B, C, H, W)`` → embeddings ``(B, D)``, as ``astroloom embed --modality
    image`` computes them (``zooms``: the closer views it averages over, as ``--zooms``;
    ``astroloom embed`` uses 1, 1.5, 2 and 3 for photographs)."""

    def __init__(
        self,
        model: MultimodalModel,
        tokenizer: ImageTokenizer,
        layer: int | None = None,
        pool: str = EMBED_POOL,
        zero_point: float | None = None,
        orientations: int = EMBED_ORIENTATIONS,
        zooms: Sequence[float] = (1.0,),
    ) -> None:
        super().__init__()
        self.model, self.tokenizer = model.eval(), tokenizer
        self.layer = model.default_layer() if layer is None else layer
        self.pool, self.zero_point, self.orientations = pool, zero_point, orientations
        self.zooms = check_zooms(zooms)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        def view(zoom: float) -> torch.Tensor:
            tokens = self.tokenizer.tokens(images, zero_point=self.zero_point, zoom=zoom)
            return self.model.pooled_state(
                {"image": tokens}, self.layer, self.pool, self.orientations
            )

        return mean_over_views(self.zooms, view)


def image_embedder(
    run: str | Path,
    layer: int | None = None,
    pool: str = EMBED_POOL,
    zero_point=None,
    orientations: int = EMBED_ORIENTATIONS,
    zooms: Sequence[float] = (1.0,),
) -> ImageEmbedder:
    model, _, tokenizer = load_checkpoint(run)
    if "image" not in model.modalities:
        raise CheckpointError(f"{run} was trained on {model.modalities}: it has no image path")
    return ImageEmbedder(model, tokenizer["image"], layer, pool, zero_point, orientations, zooms)


def export_onnx(
    run: str | Path,
    out: str | Path,
    layer: int | None = None,
    pool: str = EMBED_POOL,
    zero_point: float | None = None,
    example: torch.Tensor | None = None,
    zooms: Sequence[float] = (1.0,),
) -> Path:
    """Write the image embedding path of ``run`` as ONNX at ``out``; return ``out``.

    ``zero_point`` (AB magnitude of one unit of the pixel values) is fixed into the graph,
    as the dataset's would be when embedding; None tells the model it is unknown.
    ``zooms`` too (default: the cutout as given; ``PHOTO_ZOOMS`` to embed photographs as
    ``astroloom embed`` does).
    """
    embedder = image_embedder(run, layer, pool, zero_point, zooms=zooms)
    cfg = embedder.model.cfg
    if example is None:  # a bright centre over faint noise: the common case the graph traces
        g = torch.Generator().manual_seed(0)
        size = cfg.image_size
        r2 = ((torch.arange(size) - size / 2 + 0.5) ** 2)[:, None] + (
            (torch.arange(size) - size / 2 + 0.5) ** 2
        )[None, :]
        blob = torch.exp(-r2 / 20.0)
        example = blob.expand(2, cfg.n_bands, size, size) + 0.01 * torch.randn(
            2, cfg.n_bands, size, size, generator=g
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The trace is of complete cutouts: its warnings say exactly that the branches for
        # missing pixels are not taken, which the module docstring states.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            embedder,
            (example.float(),),
            str(out),
            dynamo=False,
            input_names=["images"],
            output_names=["embedding"],
            dynamic_axes={"images": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=18,
        )
    return out


def check_onnx(
    run: str | Path,
    onnx_path: str | Path,
    images: np.ndarray,
    layer: int | None = None,
    pool: str = EMBED_POOL,
    zero_point: float | None = None,
    zooms: Sequence[float] = (1.0,),
) -> float:
    """Largest absolute difference between the ONNX graph's embeddings of ``images`` and
    PyTorch's."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": images.astype(np.float32)})[0]
    with torch.no_grad():
        embedder = image_embedder(run, layer, pool, zero_point, zooms=zooms)
        want = embedder(torch.from_numpy(images)).numpy()
    return float(np.abs(got - want).max())
