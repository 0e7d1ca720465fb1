"""What the model sees: its next-patch predictions assembled back into images."""

from __future__ import annotations

import numpy as np
import torch

from astroloom.model.gpt import FoundationModel
from astroloom.tokenize.image import ImageTokenizer


@torch.no_grad()
def next_patch_reconstruction(
    model: FoundationModel, tokenizer: ImageTokenizer, images: np.ndarray
) -> np.ndarray:
    """Each patch replaced by the model's prediction from the patches before it.

    The first patch has no predecessor, so it is kept as observed. Output is in the
    images' flux unit, ``(N, C, H, W)``.
    """
    model.eval()
    device = next(model.parameters()).device
    tokens, _ = tokenizer.encode(torch.from_numpy(np.asarray(images, np.float32)).to(device))
    pred = model(tokens).float()
    rebuilt = torch.cat([tokens[:, :1], pred[:, :-1]], dim=1)
    return tokenizer.decode(rebuilt, images.shape[-1]).cpu().numpy()
