"""Why an embedding says what it says: attribution of a number read from an object's
embedding (a probe's prediction, an anomaly score, the similarity to another object) to
the object's tokens — image patches, spectrum windows, photometric bands, light-curve
epochs.

* **occlusion**: each token in turn replaced by its *fill* and the change of the number
  recorded; positive where the token raises it.
* **integrated gradients** (Sundararajan et al. 2017): gradients along the straight path
  from the input whose every token is its fill to the object, per token value (per pixel
  of a patch, per wavelength of a window); the attributions sum to f(object) − f(fills).

A token's fill is, by default (``fill="inpaint"``), what the model itself predicts for it
from all the object's other tokens — the conditional replacement of prediction-difference
analysis (Zintgraf et al. 2017), which a model pretrained to fill in hidden tokens
provides. Emptying a galaxy's bright central patch instead (``fill="empty"``: the sky level
of an image patch, zero flux in a spectrum window or band, the median magnitude of an
epoch) leaves an object no survey contains, and the number changes for that reason alone:
on the planted-source test the empty fill put 0.565 (occlusion) / 0.593 (integrated
gradients) of the attribution on the source, the model's own fill 0.645 / 0.672
(docs/benchmarks.md, "Attribution"). A token the others predict well gets little
attribution however bright it is; one they cannot predict — a source no neighbour
announces — keeps it. So the two fills answer different questions: an emission line that
the galaxy's other lines foretell ([O III] from Hβ) gets little with the model's fill and
more with the empty one (measured there). An autoregressive model cannot fill a token in
from both sides, so its fill is the empty one. A third fill, ``fill="continuum"``, replaces
a spectrum by its own continuum (:func:`continuum_of`: a running median wider than any
line; Sturmfels et al. 2020's "blurred" baseline), so that integrated gradients credit what
departs from it — emission and absorption lines, and noise — and nothing of the continuum's
level or shape; the object's other modalities get the empty fill.
* **attention rollout** (Abnar & Zuidema 2020): the attention of every block, averaged
  over heads, mixed with the residual (½A + ½I) and multiplied through to the layer the
  embedding is read at, pooled as the embedding pools the tokens.
* **surprise**: the model's own error in predicting each token, against its typical error
  for that token (:mod:`astroloom.interpret.surprise`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.ndimage import median_filter
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from astroloom.data.multiset import MultimodalSet
from astroloom.data.schema import DataError
from astroloom.interpret.surprise import SurpriseReference, predict_into, token_errors
from astroloom.model.foundation import Foundation
from astroloom.model.multimodal import ModalityError, Plan
from astroloom.tokenize.image import check_orientations
from astroloom.tokenize.tokens import ModalityTokens

METHODS = ("occlusion", "integrated-gradients", "attention", "surprise")
FILLS = ("inpaint", "empty", "continuum")  # what replaces a token / starts the IG path
# A spectrum's continuum: its running median over this many pixels — 124 Å on the mock's
# 4 Å grid, wider than any line, so that the lines drop out and the 4000 Å break stays.
CONTINUUM_PIXELS = 31
TARGETED = ("occlusion", "integrated-gradients")  # methods that explain a number


class ExplainError(DataError):
    """A request that cannot be explained: unknown object, label or method."""


def continuum_of(data: MultimodalSet, pixels: int = CONTINUUM_PIXELS) -> MultimodalSet:
    """A copy of ``data`` whose every spectrum is its running median over ``pixels`` of its
    measured (finite) fluxes — lines and noise smoothed away, the continuum kept; unmeasured
    pixels stay unmeasured and everything else is shared with ``data``."""
    if "spectrum_flux" not in data.arrays:
        raise ExplainError("the data holds no spectra: nothing has a continuum")
    if pixels < 3 or pixels % 2 == 0:
        raise ExplainError(f"a running median needs an odd width of 3 or more pixels, not {pixels}")
    flux = data.arrays["spectrum_flux"]
    smooth = np.full_like(flux, np.nan)
    for row, spectrum in enumerate(flux):
        measured = np.isfinite(spectrum)
        if measured.any():
            smooth[row, measured] = median_filter(spectrum[measured], size=pixels, mode="nearest")
    return dataclasses.replace(data, arrays={**data.arrays, "spectrum_flux": smooth})


@dataclass
class Target:
    """A number read from embeddings ``(B, D) → (B,)``, differentiable."""

    describe: str
    fn: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, emb: torch.Tensor) -> torch.Tensor:
        return self.fn(emb)


@dataclass
class TokenMap:
    """One object's map over its tokens, per modality."""

    object_id: str
    method: str
    what: str
    tokens: dict[str, np.ndarray]  # modality → (N,) one number per token (NaN: absent)
    values: dict[str, np.ndarray] = field(default_factory=dict)  # modality → (N, V)
    value: float | None = None  # the explained number for the object
    baseline_value: float | None = None  # the number for the all-filled input (integrated grads)
    fill: str | None = None  # what replaced the tokens (occlusion, integrated gradients)

    def flat(self) -> np.ndarray:
        """Every present token's number, modality after modality (for rank correlations)."""
        return np.concatenate([t[np.isfinite(t)] for t in self.tokens.values()])


# Maps explain probes of the mean-and-spread embedding, not of the embedding files' default
# ("moments"): with the image's quadrupole moments in the vector, the probe of a label
# planted in one corner put less of its attribution there (mean share 0.42 against 0.53 in
# tests/test_interpret.py), more on the galaxy's central patches that the moments read.
EXPLAIN_POOL = "meanstd"


def usable_label(data: MultimodalSet, label: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """``label``'s values, which objects have one, and whether it is a number; a clear error
    for a label the data lacks or one with fewer than 10 values or a single distinct one."""
    if label not in data.labels:
        raise ExplainError(f"the data has no label {label!r}; its labels: {sorted(data.labels)}")
    y = np.asarray(data.labels[label])
    numeric = y.dtype != object
    ok = np.isfinite(y.astype(float)) if numeric else np.array([v is not None for v in y])
    if ok.sum() < 10 or len(np.unique(y[ok])) < 2:
        raise ExplainError(
            f"label {label!r} has {int(ok.sum())} usable values and {len(np.unique(y[ok]))} "
            "distinct ones: nothing a probe can learn"
        )
    return y, ok, numeric


def fit_probe(
    x: np.ndarray, y: np.ndarray, numeric: bool
) -> tuple[StandardScaler, RidgeCV | LogisticRegression]:
    """The frozen probe of standardised embeddings ``x``: ridge (penalty by cross-validation)
    for a number, logistic regression for classes."""
    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)
    if numeric:
        return scaler, RidgeCV(alphas=np.logspace(-2, 6, 17)).fit(xs, y.astype(float))
    return scaler, LogisticRegression(max_iter=2000).fit(xs, y)


class Explainer:
    """Maps for the objects of an in-memory dataset, read from one model's embeddings at
    ``layer`` pooled by ``pool``, from the modalities in ``use`` (default: every modality
    both the model and the data have)."""

    def __init__(
        self,
        foundation: Foundation,
        data: MultimodalSet,
        use: Sequence[str] | None = None,
        layer: int | None = None,
        pool: str = EXPLAIN_POOL,
        embeddings: np.ndarray | None = None,
        fill: str | None = None,
        orientations: int = 1,
    ) -> None:
        """``embeddings``: the objects' embeddings at this layer, pooling and number of
        ``orientations`` averaged (as ``astroloom embed`` records them), in the data's
        order, when they were computed already; else computed here.
        ``fill``: ``"inpaint"``, ``"empty"`` or ``"continuum"`` (module docstring); default the
        model's own fill when it was pretrained to fill in hidden tokens, else empty."""
        have = [m for m in foundation.modalities if m in data.present and data.present[m].any()]
        if use is not None:
            unknown = [m for m in use if m not in foundation.modalities]
            if unknown:
                raise ModalityError(
                    f"this model was trained on {foundation.modalities}; it cannot explain "
                    f"{unknown}"
                )
            missing = [m for m in use if m not in have]
            if missing:
                raise ExplainError(f"the data holds no {missing}; it has {have}")
            have = [m for m in have if m in use]
        if not have:
            raise ExplainError(
                f"the data holds none of the model's modalities {foundation.modalities}"
            )
        self.foundation = foundation
        self.model = foundation.model.eval()
        can_inpaint = self.model.embedding_objective() == "masked"
        if fill is None:
            fill = "inpaint" if can_inpaint else "empty"
        if fill not in FILLS:
            raise ExplainError(f"unknown fill {fill!r}; choose from {', '.join(FILLS)}")
        if fill == "inpaint" and not can_inpaint:
            raise ExplainError(
                "fill 'inpaint' needs a model pretrained to fill in hidden tokens (objective "
                f"masked or mixed); this one is {self.model.cfg.objective}: use fill 'empty'"
            )
        if fill == "continuum" and "spectrum" not in have:
            raise ExplainError(
                f"fill 'continuum' replaces a spectrum by its continuum, and {have} hold no "
                "spectrum: use fill 'inpaint' or 'empty'"
            )
        self.fill = fill
        self.data = data
        self.use = have
        self.layer = self.model.default_layer() if layer is None else layer
        self.pool = pool
        self.orientations = check_orientations(orientations, ExplainError)
        self.tokens = foundation.tokens_from_set(data, have)
        self._continuum = (
            foundation.tokens_from_set(continuum_of(data), ["spectrum"])["spectrum"]
            if fill == "continuum"
            else None
        )
        self._row = {str(i): k for k, i in enumerate(data.ids)}
        if embeddings is not None and len(embeddings) != len(data.ids):
            raise ExplainError(f"{len(embeddings)} embeddings given for {len(data.ids)} objects")
        self._embeddings: np.ndarray | None = embeddings
        self._reference: SurpriseReference | None = None

    def for_network(self, foundation: Foundation) -> Explainer:
        """This explainer (data, tokens, fill, layer, pooling) for another network with the
        same tokenizers — a fine-tuned copy — without tokenising the data again."""
        other = copy.copy(self)
        other.foundation, other.model = foundation, foundation.model.eval()
        other._embeddings = other._reference = None
        return other

    # ------------------------------------------------------------------ objects
    def row(self, object_id: str) -> int:
        """The dataset row of ``object_id``; a clear error for an id the data lacks."""
        row = self._row.get(str(object_id))
        if row is None:
            some = ", ".join(repr(str(i)) for i in self.data.ids[:3])
            raise ExplainError(f"no object {object_id!r} in the data (its ids look like {some})")
        return row

    def object_tokens(self, object_id: str, copies: int = 1) -> dict[str, ModalityTokens]:
        """The object's token blocks repeated ``copies`` times (values copied, not shared),
        leaving out modalities the object lacks."""
        row = self.row(object_id)
        index = torch.full((copies,), row, dtype=torch.long)
        out = {}
        for m, t in self.tokens.items():
            if bool(t.present[row].any()):
                one = t.take(index)
                one.values = one.values.clone()
                out[m] = one
        if not out:
            raise ExplainError(f"object {object_id!r} has none of the modalities {self.use}")
        return out

    def embeddings(self) -> np.ndarray:
        """Every object's embedding (computed once)."""
        if self._embeddings is None:
            self._embeddings = self.foundation.embed(
                self.tokens, self.layer, self.pool, orientations=self.orientations
            )
        return self._embeddings

    def embed(self, batch: dict[str, ModalityTokens]) -> torch.Tensor:
        """Differentiable embeddings of a token batch."""
        return self.model.pooled_state(batch, self.layer, self.pool, self.orientations)

    # ------------------------------------------------------------------ targets
    def probe(
        self, label: str, class_name: str | None = None, shuffle_seed: int | None = None
    ) -> Target:
        """A linear probe of ``label`` fitted on every object's embedding: ridge (penalty
        by cross-validation) for a numeric label, logistic regression for a class label
        (the logit of ``class_name``). ``shuffle_seed`` shuffles the labels first (the
        sanity check of Adebayo et al. 2018: a map must change when the probe learns
        nothing)."""
        y, ok, numeric = usable_label(self.data, label)
        x = self.embeddings()[ok]
        y = y[ok]
        if shuffle_seed is not None:
            y = np.random.default_rng(shuffle_seed).permutation(y)
        scaler, fit = fit_probe(x, y, numeric)
        mu = torch.tensor(scaler.mean_, dtype=torch.float32)
        sd = torch.tensor(scaler.scale_, dtype=torch.float32)
        if numeric:
            w = torch.tensor(fit.coef_, dtype=torch.float32)
            b = float(fit.intercept_)
            describe = f"{label} (ridge probe)"
        else:
            classes = [str(c) for c in fit.classes_]
            name = class_name if class_name is not None else classes[-1]
            if name not in classes:
                raise ExplainError(f"label {label!r} has no class {name!r}; it has {classes}")
            k = classes.index(name)
            if len(classes) == 2:
                sign = 1.0 if k == 1 else -1.0
                w = sign * torch.tensor(fit.coef_[0], dtype=torch.float32)
                b = sign * float(fit.intercept_[0])
            else:
                w = torch.tensor(fit.coef_[k], dtype=torch.float32)
                b = float(fit.intercept_[k])
            describe = f"logit of {label} = {name} (logistic probe)"
        if shuffle_seed is not None:
            describe += ", labels shuffled"
        return Target(describe, lambda e: ((e - mu) / sd) @ w + b)

    def anomaly(self, object_id: str, k: int = 10) -> Target:
        """The object's anomaly score: mean distance, in standardised embedding space, to
        its ``k`` nearest neighbours in the data (those of the unaltered object)."""
        emb = self.embeddings()
        scaler = StandardScaler().fit(emb)
        xs = scaler.transform(emb)
        row = self.row(object_id)
        k = min(k, len(emb) - 1)
        if k < 1:
            raise ExplainError("an anomaly score needs at least two objects in the data")
        _, idx = NearestNeighbors(n_neighbors=k + 1).fit(xs).kneighbors(xs[row : row + 1])
        near = torch.tensor(xs[[i for i in idx[0] if i != row][:k]], dtype=torch.float32)
        mu = torch.tensor(scaler.mean_, dtype=torch.float32)
        sd = torch.tensor(scaler.scale_, dtype=torch.float32)

        def score(e: torch.Tensor) -> torch.Tensor:
            z = (e - mu) / sd
            return (z[:, None, :] - near[None]).pow(2).sum(-1).clamp_min(1e-12).sqrt().mean(1)

        return Target(f"anomaly score ({k}-neighbour distance)", score)

    def neighbour(self, other_id: str) -> Target:
        """Cosine similarity to another object's embedding."""
        other = torch.tensor(self.embeddings()[self.row(other_id)], dtype=torch.float32)
        other = other / other.norm().clamp_min(1e-12)

        def similarity(e: torch.Tensor) -> torch.Tensor:
            return (e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)) @ other

        return Target(f"cosine similarity to {other_id}", similarity)

    # ------------------------------------------------------------------ methods
    def _present(self, batch: dict[str, ModalityTokens]) -> list[tuple[str, int]]:
        return [
            (m, int(j)) for m, t in batch.items() for j in torch.nonzero(t.present[0]).flatten()
        ]

    def _empty_maps(self) -> dict[str, np.ndarray]:
        """One NaN ("absent") per token of every modality explained."""
        return {m: np.full(self.tokens[m].n_tokens, np.nan) for m in self.use}

    @torch.no_grad()
    def fills(self, object_id: str, batch_size: int = 128) -> dict[str, torch.Tensor]:
        """What replaces each of the object's tokens, ``(N, V)`` per modality: zeros (the
        empty fill), the spectrum's continuum (other modalities empty), or the model's
        prediction of the token with it alone hidden and every other token shown (one copy
        of the object per token)."""
        one = self.object_tokens(object_id)
        out = {m: torch.zeros(t.values.shape[1:]) for m, t in one.items()}
        if self.fill == "empty":
            return out
        if self.fill == "continuum":
            if "spectrum" in out and self._continuum is not None:
                out["spectrum"] = self._continuum.values[self.row(object_id)].clone()
            return {m: v * one[m].valid[0].expand(v.shape).float() for m, v in out.items()}
        slots = self._present(one)
        for lo in range(0, len(slots), batch_size):
            part = slots[lo : lo + batch_size]
            batch = self.object_tokens(object_id, len(part))
            hide = {m: torch.zeros(t.present.shape, dtype=torch.bool) for m, t in batch.items()}
            for c, (m, j) in enumerate(part):
                hide[m][c, j] = True
            predicted = {m: torch.zeros(t.values.shape) for m, t in batch.items()}
            predict_into(predicted, self.model, batch, Plan("masked", mask=hide))
            for c, (m, j) in enumerate(part):
                out[m][j] = predicted[m][c, j]
        # Unmeasured values stay zero, as the model reads them.
        return {m: v * one[m].valid[0].expand(v.shape).float() for m, v in out.items()}

    @torch.no_grad()
    def occlusion(self, object_id: str, target: Target, batch_size: int = 128) -> TokenMap:
        """f(object) − f(object with one token replaced by its fill), for every token."""
        one = self.object_tokens(object_id)
        slots = self._present(one)
        fills = self.fills(object_id, batch_size)
        value = float(target(self.embed(one))[0])
        out = self._empty_maps()
        for lo in range(0, len(slots), batch_size):
            part = slots[lo : lo + batch_size]
            batch = self.object_tokens(object_id, len(part))
            for c, (m, j) in enumerate(part):
                batch[m].values[c, j] = fills[m][j]
            drop = value - target(self.embed(batch)).numpy()
            for (m, j), d in zip(part, drop, strict=True):
                out[m][j] = d
        return TokenMap(
            str(object_id), "occlusion", target.describe, out, value=value, fill=self.fill
        )

    def integrated_gradients(
        self, object_id: str, target: Target, steps: int = 32, batch_size: int = 32
    ) -> TokenMap:
        """Integrated gradients from the input whose every token is its fill, per token value
        and per token."""
        one = self.object_tokens(object_id)
        fills = self.fills(object_id)
        grads = {m: torch.zeros(t.values.shape[1:]) for m, t in one.items()}
        alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
        for lo in range(0, steps, batch_size):
            a = alphas[lo : lo + batch_size]
            batch = self.object_tokens(object_id, len(a))
            leaves = {}
            for m, t in batch.items():
                path = fills[m] + (t.values - fills[m]) * a.view(-1, 1, 1)
                leaf = path.detach().requires_grad_(True)
                t.values = leaf
                leaves[m] = leaf
            total = target(self.embed(batch)).sum()
            found = torch.autograd.grad(total, list(leaves.values()))
            for m, g in zip(leaves, found, strict=True):
                grads[m] += g.sum(0)
        with torch.no_grad():
            value = float(target(self.embed(one))[0])
            filled = self.object_tokens(object_id)
            for m, t in filled.items():
                t.values = fills[m][None].clone()
            baseline_value = float(target(self.embed(filled))[0])
        per_value, per_token = {}, self._empty_maps()
        for m, t in one.items():
            valid = t.valid[0].expand(t.values.shape[1:]).float()
            attr = ((t.values[0] - fills[m]) * grads[m] / steps * valid).numpy()
            present = t.present[0].numpy()
            attr[~present] = np.nan
            per_value[m] = attr
            per_token[m] = np.where(present, np.nansum(attr, axis=1), np.nan)
        return TokenMap(
            str(object_id),
            "integrated-gradients",
            target.describe,
            per_token,
            per_value,
            value,
            baseline_value,
            self.fill,
        )

    def attention(self, object_id: str) -> TokenMap:
        """Attention rollout to the layer the embedding is read at: the share of the
        pooled embedding that flows from each token (sums to 1 over the tokens)."""
        one = self.object_tokens(object_id)
        maps, seq = self.model.attention(one, upto=self.layer)
        present = seq.present[0]
        t = present.shape[0]
        rollout = torch.eye(t)
        for a in maps:
            mixed = 0.5 * a[0].mean(0).float().cpu() + 0.5 * torch.eye(t)
            rollout = (mixed / mixed.sum(-1, keepdim=True)) @ rollout
        # Pool the rows as the embedding pools the token states: each modality's tokens
        # averaged, then the modalities.
        modality = seq.modality[0].cpu()
        weight = torch.zeros(t)
        kinds = modality[present.cpu()].unique()
        for j in kinds:
            rows = present.cpu() & (modality == j)
            weight[rows] = 1.0 / (rows.sum() * len(kinds))
        share = (weight @ rollout).numpy()
        out = self._empty_maps()
        source = seq.source[0].cpu().numpy()
        for slot in np.flatnonzero(present.cpu().numpy()):
            m = self.model.modalities[int(modality[slot])]
            out[m][source[slot]] = share[slot]
        return TokenMap(str(object_id), "attention", "attention rollout of the embedding", out)

    def reference(self, limit: int = 2000, seed: int = 0) -> SurpriseReference:
        """Each token's typical prediction error over (up to ``limit`` of) the data."""
        if self._reference is None:
            n = len(self.data.ids)
            rows = np.sort(np.random.default_rng(seed).permutation(n)[:limit])
            index = torch.as_tensor(rows)
            subset = {m: t.take(index) for m, t in self.tokens.items()}
            self._reference = SurpriseReference.from_errors(token_errors(self.model, subset))
        return self._reference

    def surprise(self, object_id: str) -> TokenMap:
        """log(prediction error / typical error) of each token (0: ordinary)."""
        one = self.object_tokens(object_id)
        errors = token_errors(self.model, one)
        reference = self.reference()
        ratio = reference.surprise({m: errors[m] for m in one})
        out = self._empty_maps()
        for m, r in ratio.items():
            out[m] = r[0]
        return TokenMap(
            str(object_id), "surprise", "log(prediction error / typical error) per token", out
        )

    def explain(self, object_id: str, method: str, target: Target | None = None) -> TokenMap:
        """One map by method name; a clear error for a method and target that do not go
        together."""
        if method not in METHODS:
            raise ExplainError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        if method in TARGETED and target is None:
            raise ExplainError(
                f"{method} explains a number: give a target (a label, the anomaly score or "
                "a neighbour)"
            )
        if method not in TARGETED and target is not None:
            raise ExplainError(
                f"{method} maps do not depend on a target; use occlusion or "
                "integrated-gradients to explain one"
            )
        if method == "occlusion":
            return self.occlusion(object_id, target)
        if method == "integrated-gradients":
            return self.integrated_gradients(object_id, target)
        if method == "attention":
            return self.attention(object_id)
        return self.surprise(object_id)
