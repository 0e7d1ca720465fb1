"""What the model sees: its predictions of an image's patches assembled back into images."""

from __future__ import annotations

import numpy as np
import torch

from astroloom.model.multimodal import MultimodalModel
from astroloom.tokenize.multimodal import MultimodalTokenizer


@torch.no_grad()
def reconstruct_images(
    model: MultimodalModel, tokenizer: MultimodalTokenizer, images: np.ndarray
) -> np.ndarray:
    """Each patch replaced by the model's prediction of it: from the patches before it
    (an autoregressive model), or from all the others with it hidden (a masked one, one
    pass per hidden share). Output in the images' flux unit, ``(N, C, H, W)``."""
    model.eval()
    device = next(model.parameters()).device
    image_tok = tokenizer.image
    batch = {"image": image_tok.tokens(torch.from_numpy(np.asarray(images, np.float32)))}
    batch = {m: t.to(device) for m, t in batch.items()}
    tokens = batch["image"]
    out = torch.zeros_like(tokens.values)
    objective = model.embedding_objective()
    n = tokens.n_tokens
    # A masked model predicts hidden tokens: hide every fourth patch per pass, four passes.
    groups = [torch.arange(n)] if objective == "autoregressive" else [
        torch.arange(k, n, 4) for k in range(4)
    ]
    for group in groups:
        if objective == "autoregressive":
            plan = model.canonical_plan(batch, objective)
        else:
            mask = torch.zeros_like(tokens.present)
            mask[:, group] = True
            plan = model.canonical_plan(batch, objective)
            plan.mask = {"image": mask & tokens.present}
        seq, h = model.predictions(batch, plan)
        wanted = seq.present if objective == "autoregressive" else seq.hidden
        rows, slots = wanted.nonzero(as_tuple=True)
        out[rows, seq.source[rows, slots]] = model.decoders["image"](h[rows, slots]).float()
    return image_tok.decode(out.cpu(), images.shape[-1]).numpy()
