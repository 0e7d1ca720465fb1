"""A trained multimodal model with its tokenizers: observations in, physical units out.

``Foundation.predict(observation, target="spectrum")`` generates a modality an object
lacks from the ones it has (image → spectrum, image → photometry, photometry → image)
and returns it in the survey's units; ``Foundation.embed`` gives one vector per object.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from astroloom.data.multiset import MultimodalSet
from astroloom.data.schema import Observation
from astroloom.model.checkpoint import load_checkpoint
from astroloom.model.multimodal import ModalityError, MultimodalModel
from astroloom.tokenize.multimodal import MultimodalTokenizer
from astroloom.tokenize.tokens import ModalityTokens


class Foundation:
    def __init__(self, model: MultimodalModel, tokenizer: MultimodalTokenizer) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, revision: str | None = None, map_location: str = "cpu"
    ) -> Foundation:
        """A model by name or path: a run folder or checkpoint, a model shipped with
        astroloom (``"astroloom/mock-tiny"``), or a Hugging Face Hub repo (``"owner/name"``,
        fetched into the Hub cache; ``HF_HUB_OFFLINE=1`` reads the cache only)."""
        from astroloom.model.hub import resolve_model

        return load_foundation(resolve_model(name_or_path, revision), map_location)

    @property
    def modalities(self) -> list[str]:
        return self.model.modalities

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ inputs
    def tokens_from_observations(
        self, observations: Sequence[Observation], use: Sequence[str] | None = None
    ) -> dict[str, ModalityTokens]:
        """Token blocks of the modalities the observations carry (``use`` to restrict).

        Modality keys: ``image`` (C, H, W); ``spectrum`` flux with optional
        ``spectrum_ivar`` and ``spectrum_wave`` (Å; the model's grid when absent);
        ``photometry`` fluxes with optional ``photometry_ivar``;
        ``lightcurve`` as a dict of ``time``, ``mag`` and ``band`` arrays.
        """
        if not observations:
            raise ModalityError("no observations given")
        extras = ("_ivar", "_wave")
        names = sorted({m for o in observations for m in o.modalities if not m.endswith(extras)})
        unknown = [m for m in names if m not in self.modalities]
        if unknown:
            raise ModalityError(
                f"this model was trained on {self.modalities}; the observations carry {unknown}"
            )
        names = [m for m in names if use is None or m in use]
        n = len(observations)
        data = MultimodalSet(info=None, ids=np.array([o.id for o in observations], dtype=object))
        for m in names:
            has = np.array([m in o.modalities for o in observations])
            data.present[m] = has
            if m == "lightcurve":
                curves = [o.modalities.get(m) for o in observations]
                for key in ("time", "mag", "band"):
                    data.curves[f"lc_{key}"] = [None if c is None else c.get(key) for c in curves]
                continue
            first = np.asarray(next(o.modalities[m] for o in observations if m in o.modalities))
            column, ivar_column = {
                "image": ("image", None),
                "spectrum": ("spectrum_flux", "spectrum_ivar"),
                "photometry": ("phot_flux", "phot_ivar"),
            }[m]
            stack = np.full((n, *first.shape), np.nan, np.float32)
            ivar = np.ones((n, *first.shape), np.float32)
            for i, o in enumerate(observations):
                if m in o.modalities:
                    stack[i] = o.modalities[m]
                    if f"{m}_ivar" in o.modalities:
                        ivar[i] = o.modalities[f"{m}_ivar"]
            data.arrays[column] = stack
            if ivar_column:
                data.arrays[ivar_column] = ivar
            if m == "spectrum" and any("spectrum_wave" in o.modalities for o in observations):
                # Each spectrum placed by its own wavelengths (NaN: the model's grid).
                wave = np.full((n, *first.shape), np.nan)
                grid = self.tokenizer["spectrum"].wavelength
                for i, o in enumerate(observations):
                    own = o.modalities.get("spectrum_wave")
                    wave[i] = grid[: first.shape[0]] if own is None else own
                data.arrays["spectrum_wave"] = wave
        return self.tokens_from_set(data, names)

    def tokens_from_set(
        self, data: MultimodalSet, use: Sequence[str] | None = None, zoom: float = 1.0
    ) -> dict[str, ModalityTokens]:
        """Token blocks for every object of an in-memory dataset (light curves evenly
        subsampled), restricted to ``use`` if given; images ``zoom`` times closer about
        their centre when that is above 1."""
        sub = MultimodalTokenizer(
            {
                m: t
                for m, t in self.tokenizer.tokenizers.items()
                if m in data.present and (use is None or m in use)
            }
        )
        if not sub.tokenizers:
            raise ModalityError(f"none of the model's modalities {self.modalities} is in the data")
        prepared = sub.prepare(data, zoom)
        return sub.batch(prepared, torch.arange(len(data.ids)), None)

    def query(self, target: str, n: int, image_size: int | None = None) -> ModalityTokens:
        """Where the ``target`` tokens lie: the spectrum's wavelength grid, every band of the
        photometry, every patch of an image of ``image_size`` pixels."""
        if target not in self.modalities:
            raise ModalityError(
                f"this model was trained on {self.modalities}; it cannot predict {target!r}"
            )
        tok = self.tokenizer[target]
        if target == "spectrum":
            pos = tok.positions().expand(n, -1, -1)
            k, v = tok.n_tokens, tok.patch_size
            field = None
        elif target == "photometry":
            pos, k, v = None, tok.n_tokens, 1
            field = torch.arange(k).expand(n, -1)
        elif target == "image":
            size = image_size or self.model.cfg.image_size
            pos = tok.positions(size).expand(n, -1, -1)
            k, v, field = pos.shape[1], self.model.cfg.patch_dim, None
        else:
            raise ModalityError(
                "light curves are predicted at given times: not supported by predict()"
            )
        return ModalityTokens(
            torch.zeros(n, k, v),
            torch.ones(n, k, v, dtype=torch.bool),
            torch.ones(n, k, dtype=torch.bool),
            pos,
            field,
        )

    # ------------------------------------------------------------------ outputs
    @torch.no_grad()
    def predict_tokens(
        self,
        batch: dict[str, ModalityTokens],
        target: str,
        method: str = "auto",
        batch_size: int = 256,
    ) -> torch.Tensor:
        context = {m: t for m, t in batch.items() if m != target}
        if not context:
            raise ModalityError(
                f"predicting {target!r} needs at least one other modality as context"
            )
        n = next(iter(context.values())).batch_size
        out = []
        for lo in range(0, n, batch_size):
            part = slice(lo, lo + batch_size)
            chunk = {m: t.take(part).to(self.device) for m, t in context.items()}
            q = self.query(target, len(range(n)[part])).to(self.device)
            out.append(self.model.predict(chunk, target, q, method).cpu())
        return torch.cat(out)

    def decode(self, target: str, values: torch.Tensor) -> np.ndarray:
        tok = self.tokenizer[target]
        if target == "image":
            return tok.decode(values, self.model.cfg.image_size).numpy()
        return tok.decode(values).numpy()

    def predict(
        self,
        observations: Observation | Sequence[Observation] | dict[str, ModalityTokens],
        target: str,
        method: str = "auto",
    ) -> np.ndarray:
        """Generate ``target`` in physical units from the observations' other modalities:
        spectrum → ``(N, n_pixels)`` flux; photometry → ``(N, bands)`` flux; image →
        ``(N, C, H, W)`` flux. One observation in, one array without the batch axis out."""
        single = isinstance(observations, Observation)
        if isinstance(observations, dict):
            batch = observations
        else:
            batch = self.tokens_from_observations([observations] if single else observations)
        values = self.predict_tokens(batch, target, method)
        out = self.decode(target, values)
        return out[0] if single else out

    @torch.no_grad()
    def embed(
        self,
        batch: dict[str, ModalityTokens],
        layer: int | None = None,
        pool: str = "mean",
        batch_size: int = 256,
        orientations: int = 1,
    ) -> np.ndarray:
        """One vector per object (:meth:`MultimodalModel.embed`), in batches."""
        n = next(iter(batch.values())).batch_size
        out = []
        for lo in range(0, n, batch_size):
            part = slice(lo, lo + batch_size)
            chunk = {m: t.take(part).to(self.device) for m, t in batch.items()}
            out.append(self.model.embed(chunk, layer, pool, orientations).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.model.embedding_dim(pool)), np.float32)
        return np.concatenate(out)


def load_foundation(run_or_checkpoint, map_location: str = "cpu") -> Foundation:
    """The model of a run with its tokenizers, ready to predict and embed."""
    model, _, tokenizer = load_checkpoint(run_or_checkpoint, map_location)
    return Foundation(model, tokenizer)
