"""A probe trained together with its network: the model fine-tuned for one label.

A frozen probe reads whatever the pretrained embedding already carries, and its map shows
that. For redshift from a mock spectrum this is mostly the continuum's shape: taking a
galaxy's emission lines out barely moves the frozen probe's redshift, so its map rightly
does not point at them (docs/benchmarks.md, "When the model does read the lines").
Fine-tuning the network with a linear head on its mean-pooled state makes it learn what the
label needs, and then the map asks what *that* model reads:

    >>> from astroloom.interpret.tuned import fine_tune
    >>> tuned = fine_tune(Foundation.from_pretrained("astroloom/mock-tiny"), data,
    ...                   "redshift", use=["spectrum"], steps=4000)
    >>> tuned.held_out  # R² on objects it never trained on, beside the frozen probe's
    >>> explainer = tuned.explainer(data, fill="continuum")
    >>> explainer.integrated_gradients(object_id, tuned.target())

The original model is left untouched: the network trained is a copy. ``astroloom explain
... --target LABEL --fine-tune STEPS`` does this once per label and keeps the result
(:meth:`TunedProbe.save`) beside the maps, to be reused.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from astroloom.data.multiset import MultimodalSet
from astroloom.interpret.attribution import (
    Explainer,
    ExplainError,
    Target,
    TokenMap,
    continuum_of,
    fit_probe,
    usable_label,
)
from astroloom.model.checkpoint import CheckpointError, load_weights
from astroloom.model.foundation import Foundation
from astroloom.tokenize.tokens import ModalityTokens

# The head reads the mean of the token states: every token can pass the label to it, and a
# line's window is as close to the head as the continuum's.
TUNED_POOL = "mean"
WARMUP_STEPS = 50
# Only a spectrum with a visible line carries its redshift once its continuum is flattened;
# flattening the others would teach the network nothing but the mean (docs/benchmarks.md,
# "Flattened views of the spectra with a line").
FLAT_LINES_SIGMA = 5.0
# Where the head starts, and the learning rate that suits it. ``probe``: the frozen probe's
# solution (linear probing, then fine-tuning: Kumar et al. 2022), which a large step would
# undo. Steadier than a random head where one odd object makes the random head's result a
# draw, but its weights can be large and pin the network: on the demo's model the random
# head was far better at every size measured (docs/benchmarks.md, "A head that starts from
# the frozen probe").
HEAD_INITS = ("random", "probe")
DEFAULT_LR = {"random": 1e-3, "probe": 3e-4}


@dataclass
class TunedProbe:
    """A fine-tuned copy of a model and the linear head trained with it for ``label``."""

    foundation: Foundation
    head: torch.nn.Linear
    label: str
    use: list[str]
    layer: int
    classes: list[str] | None  # None: the label is a number
    centre: float  # a number's training mean and spread (the head predicts it standardised)
    spread: float
    settings: dict = field(default_factory=dict)  # steps, lr, batch size, seed, data
    held_out: dict = field(default_factory=dict)  # scores on objects never trained on
    pool: str = TUNED_POOL

    def target(self, class_name: str | None = None) -> Target:
        """The head's prediction as a differentiable :class:`Target`: the label in its own
        unit, or the logit of ``class_name`` (default the last class)."""
        head = self.head.eval()
        if self.classes is None:
            if class_name is not None:
                raise ExplainError(f"label {self.label!r} is a number; it has no classes")
            centre, spread = self.centre, self.spread
            return Target(
                f"{self.label} (fine-tuned head)", lambda e: head(e)[:, 0] * spread + centre
            )
        name = class_name if class_name is not None else self.classes[-1]
        if name not in self.classes:
            raise ExplainError(f"label {self.label!r} has no class {name!r}; it has {self.classes}")
        k = self.classes.index(name)
        return Target(f"logit of {self.label} = {name} (fine-tuned head)", lambda e: head(e)[:, k])

    def explainer(self, data: MultimodalSet, fill: str | None = None) -> Explainer:
        """An :class:`Explainer` of the fine-tuned network, reading what the head reads.

        ``fill`` defaults to ``"continuum"`` when a spectrum is explained, else ``"empty"``:
        the fine-tuned network's trunk has moved away from the prediction heads that
        pretraining fitted to it, so its own fill in of hidden tokens is no longer the
        pretrained model's."""
        if fill is None:
            fill = "continuum" if "spectrum" in self.use else "empty"
        return Explainer(self.foundation, data, self.use, self.layer, pool=self.pool, fill=fill)

    def save(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` (the fine-tuned network), ``head.safetensors`` and
        ``probe.json`` into ``directory`` (written aside and renamed: a killed run leaves
        no half-written probe)."""
        directory = Path(directory)
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model = self.foundation.model.state_dict()
        save_file({k: v.detach().contiguous().cpu() for k, v in model.items()},
                  tmp / "model.safetensors")  # fmt: skip
        head = self.head.state_dict()
        save_file({k: v.detach().contiguous().cpu() for k, v in head.items()},
                  tmp / "head.safetensors")  # fmt: skip
        about = {
            "label": self.label,
            "use": self.use,
            "layer": self.layer,
            "pool": self.pool,
            "classes": self.classes,
            "centre": self.centre,
            "spread": self.spread,
            "settings": self.settings,
            "held_out": self.held_out,
            "model": model_shape(self.foundation),
        }
        (tmp / "probe.json").write_text(json.dumps(about, indent=2) + "\n")
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path, base: Foundation) -> TunedProbe:
        """A probe written by :meth:`save`, on a copy of ``base`` — the model it was
        fine-tuned from (its tokenizers are used; a model of another shape is an error
        naming what differs)."""
        directory = Path(directory)
        try:
            about = json.loads((directory / "probe.json").read_text())
            head_state = load_file(directory / "head.safetensors")
        except (OSError, ValueError) as err:
            raise ExplainError(f"{directory} holds no readable fine-tuned probe: {err}") from err
        differ = {
            k: (v, about["model"].get(k))
            for k, v in model_shape(base).items()
            if about["model"].get(k) != v
        }
        if differ:
            said = "; ".join(
                f"{k}: this model {a}, the probe's {b}" for k, (a, b) in differ.items()
            )
            raise ExplainError(
                f"the fine-tuned probe in {directory} was made from another model ({said})"
            )
        foundation = Foundation(copy.deepcopy(base.model), base.tokenizer)
        try:
            load_weights(foundation.model, directory / "model.safetensors")
        except CheckpointError as err:
            raise ExplainError(str(err)) from err
        outputs = len(about["classes"]) if about["classes"] else 1
        head = torch.nn.Linear(foundation.model.cfg.n_embd, outputs)
        head.load_state_dict(head_state)
        foundation.model.eval()
        return cls(
            foundation, head.to(foundation.device), about["label"], about["use"],
            about["layer"], about["classes"], about["centre"], about["spread"],
            about["settings"], about["held_out"], about["pool"],
        )  # fmt: skip


@dataclass
class TunedEnsemble:
    """Several fine-tuned runs of one recipe, differing only in their seeds, read as one
    model: their mean prediction.

    Occlusion and integrated gradients are linear in the function they explain when the
    fill does not depend on the model (the fine-tuned default: a spectrum's continuum, or
    empty), so the ensemble's map is exactly the mean of its members' maps. Which runs lean
    on a spectrum's emission lines is left to the draw (docs/benchmarks.md, "The map of
    several fine-tuned runs"); the mean map depends less on it than one run's."""

    members: list[TunedProbe]
    held_out: dict = field(default_factory=dict)  # the mean prediction's, and each run's

    def __post_init__(self) -> None:
        if not self.members:
            raise ExplainError("an ensemble needs at least one fine-tuned run")
        first = self.members[0]
        for other in self.members[1:]:
            mine = (first.label, first.use, first.layer, first.classes, first.pool)
            theirs = (other.label, other.use, other.layer, other.classes, other.pool)
            if mine != theirs or (first.centre, first.spread) != (other.centre, other.spread):
                raise ExplainError(
                    "the fine-tuned runs of an ensemble must share their label, modalities, "
                    f"layer, classes and training objects; {theirs} differs from {mine}"
                )
            recipe = {k: v for k, v in first.settings.items() if k != "seed"}
            theirs = {k: v for k, v in other.settings.items() if k != "seed"}
            if recipe != theirs:
                differ = sorted(k for k in recipe.keys() | theirs.keys()
                                if recipe.get(k) != theirs.get(k))  # fmt: skip
                raise ExplainError(
                    "the fine-tuned runs of an ensemble must differ only in their seed; "
                    f"these differ in {', '.join(differ)}"
                )

    def explain(
        self,
        data: MultimodalSet,
        object_id: str,
        method: str,
        class_name: str | None = None,
        fill: str | None = None,
        explainer: Explainer | None = None,
    ) -> TokenMap:
        """``method``'s map (occlusion or integrated gradients) of the mean prediction: the
        mean of the members' maps. (With ``fill="inpaint"`` each run fills a token from its
        own network, and the mean of the maps is no longer exactly the map of the mean.)
        ``explainer``: the first member's explainer of ``data``, when made already; the data
        are tokenised once for all members."""
        first = explainer or self.members[0].explainer(data, fill)
        maps = [
            first.for_network(p.foundation).explain(object_id, method, p.target(class_name))
            for p in self.members
        ]
        return mean_map(maps, f"mean of {len(maps)} fine-tuned runs")


def mean_map(maps: list[TokenMap], said: str) -> TokenMap:
    """The mean of maps of one object by one method (every number, token by token)."""
    first = maps[0]

    def mean(key: str) -> dict[str, np.ndarray]:
        return {m: np.mean([getattr(tm, key)[m] for tm in maps], axis=0)
                for m in getattr(first, key)}  # fmt: skip

    def mean_of(key: str) -> float | None:
        values = [getattr(tm, key) for tm in maps]
        return None if any(v is None for v in values) else float(np.mean(values))

    return TokenMap(
        first.object_id, first.method, f"{first.what}, {said}", mean("tokens"),
        mean("values"), mean_of("value"), mean_of("baseline_value"), first.fill,
    )  # fmt: skip


def ensemble(
    members: list[TunedProbe], base: Foundation, data: MultimodalSet, hold_out: float = 0.1
) -> TunedEnsemble:
    """``members`` (fine-tuned by :func:`fine_tune` from ``base`` on ``data`` with
    ``hold_out``, seeds apart) as one :class:`TunedEnsemble`, scored on the objects they all
    held out: the mean prediction's score, each run's (``runs``), and the frozen probe's."""
    together = TunedEnsemble(members)
    first = members[0]
    frozen, y, numeric, train, test = _split(
        base, data, first.label, first.use, first.layer, hold_out
    )
    if len(test) >= 2:
        together.held_out = _held_out_scores(members, frozen, y, train, test, numeric)
    return together


def model_shape(foundation: Foundation) -> dict:
    """What a fine-tuned network must share with the model it is loaded on."""
    cfg = foundation.model.cfg
    return {
        "modalities": list(cfg.modalities),
        "n_layer": cfg.n_layer,
        "n_embd": cfg.n_embd,
        "patch_dim": cfg.patch_dim,
    }


def _score(pred: np.ndarray, truth: np.ndarray, numeric: bool) -> float:
    if numeric:
        return float(1 - np.mean((pred - truth) ** 2) / np.var(truth))
    return float(np.mean(pred == truth))


def fine_tune(
    foundation: Foundation,
    data: MultimodalSet,
    label: str,
    use: list[str] | None = None,
    layer: int | None = None,
    steps: int = 4000,
    lr: float | None = None,
    batch_size: int = 32,
    hold_out: float = 0.1,
    seed: int = 0,
    flat_views: float = 0.0,
    flat_lines_sigma: float = FLAT_LINES_SIGMA,
    progress: bool = True,
    head_init: str = "random",
) -> TunedProbe:
    """Train a copy of ``foundation``'s network and a linear head on its mean-pooled state at
    ``layer`` together for ``label`` of ``data``: mean squared error on the standardised
    number, or cross-entropy over a class label's classes. AdamW (weight decay 0.01),
    ``WARMUP_STEPS`` of warm-up then a cosine to zero, gradients clipped at 1.

    A share ``hold_out`` of the labelled objects is kept out of training, and the result's
    ``held_out`` scores the fine-tuned head and, for comparison, the frozen probe of the
    same embedding fitted on the training objects (R² for a number, accuracy for classes).

    The default 4,000 steps of 32 are the recipe measured on the reference mock survey with
    a 16-pixel ``tiny`` spectrum model (about 8 minutes on two CPU cores): redshift R²
    0.93–0.95, and a network that leans on its emission lines to a degree that varies
    between runs (docs/benchmarks.md, "A fine-tuned probe in the package").

    ``flat_views``: the share of the spectra with a visible line that are shown, each time
    one is drawn, with their continuum flattened (:func:`flat_continuum`: the 4000 Å break
    and the continuum's shape gone, the lines and the noise kept), so that the network must
    learn to read lines to predict those. A spectrum's redshift otherwise rests on its
    continuum as often as on its lines, depending on the run's draw. A spectrum has a
    visible line when its strongest pixel stands more than ``flat_lines_sigma`` times its
    noise above its continuum (:func:`strongest_line`, no redshift needed); with
    ``flat_lines_sigma=0`` any spectrum may be flattened (docs/benchmarks.md,
    "Continuum-flattened views" and "Flattened views of the spectra with a line").

    ``head_init``: ``random`` (the recipe above), or ``probe``: the head starts as the frozen
    probe fitted on the training objects, so that fine-tuning starts from the frozen
    probe's predictions. Steadier, not better in general: with ``mock-tiny`` on 288 mock
    spectra (300 steps, 14 seeds) held-out redshift R² 0.64–0.74 against 0.20–0.83 from a
    random head and 0.573 for the frozen probe; with the demo's model, means of 0.44–0.60
    against the random head's 0.63–0.91 on 288 to 5,400 spectra (docs/benchmarks.md, "A
    head that starts from the frozen probe"). ``lr``: the peak learning rate; by default
    ``DEFAULT_LR[head_init]`` (1e-3 for a random head, 3e-4 for the probe's)."""
    if steps < 1:
        raise ExplainError(f"fine-tuning needs at least one step; got {steps}")
    if head_init not in HEAD_INITS:
        raise ExplainError(
            f"unknown head_init {head_init!r}; choose from {', '.join(HEAD_INITS)}"
        )
    lr = DEFAULT_LR[head_init] if lr is None else lr
    if not (math.isfinite(lr) and lr > 0):
        raise ExplainError(f"the learning rate must be a positive number; got {lr}")
    if not 0 <= flat_views < 1:
        raise ExplainError(
            f"flat_views is a share of the spectra with a line, in [0, 1); got {flat_views}"
        )
    if not 0 <= hold_out < 1:
        raise ExplainError(f"hold_out is a share of the objects, in [0, 1); got {hold_out}")
    if not flat_lines_sigma >= 0:
        raise ExplainError(
            f"flat_lines_sigma is a line's height in units of its noise, 0 or more (0: any "
            f"spectrum may be flattened); got {flat_lines_sigma}"
        )
    frozen, y, numeric, train, test = _split(foundation, data, label, use, layer, hold_out)
    flat = None
    if flat_views:
        if "spectrum" not in frozen.use:
            raise ExplainError(
                f"flat_views flattens spectra, and {frozen.use} hold none: use flat_views=0"
            )
        continuum = continuum_of(data).arrays["spectrum_flux"]  # one running median for both
        flat = foundation.tokens_from_set(flat_continuum(data, continuum), ["spectrum"])
        flat = flat["spectrum"]
        flattened = np.ones(len(data.ids), bool)
        if flat_lines_sigma > 0:
            flattened = strongest_line(data, continuum) > flat_lines_sigma
            if not flattened[train].any():
                raise ExplainError(
                    f"no spectrum to train on has a pixel {flat_lines_sigma:g}σ above its "
                    "continuum, so none would keep its redshift once flattened: lower "
                    "flat_lines_sigma (0: any spectrum) or use flat_views=0"
                )
        flattened = torch.as_tensor(flattened)

    classes = None if numeric else sorted({str(v) for v in y[train]})
    if numeric:
        values = y.astype(np.float64)
        centre, spread = float(values[train].mean()), float(values[train].std()) or 1.0
        goal = torch.tensor((np.nan_to_num(values) - centre) / spread, dtype=torch.float32)
    else:
        index = {c: k for k, c in enumerate(classes)}
        goal = torch.tensor([index.get(str(v), -1) for v in y], dtype=torch.long)

    tuned = Foundation(copy.deepcopy(foundation.model), foundation.tokenizer)
    net = tuned.model
    device = tuned.device
    torch.manual_seed(seed)
    head = torch.nn.Linear(net.cfg.n_embd, 1 if numeric else len(classes)).to(device)
    if head_init == "probe":
        _start_at_probe(head, frozen.embeddings()[train], goal[train].numpy(), numeric)
    params = [p for p in net.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    coin = torch.Generator().manual_seed(1000 + seed)  # which objects are shown flattened
    net.train()
    bar = tqdm(range(steps), desc=f"fine-tune for {label}", disable=not progress)
    for step in bar:
        warm = min(1.0, (step + 1) / WARMUP_STEPS)
        for group in opt.param_groups:
            group["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * step / steps))
        draw = torch.randint(len(train), (batch_size,), generator=gen).numpy()
        pick = torch.as_tensor(train[draw])
        batch = {m: t.take(pick) for m, t in frozen.tokens.items()}
        if flat is not None:
            shown = (torch.rand(batch_size, generator=coin) < flat_views) & flattened[pick]
            batch["spectrum"] = mixed_views(batch["spectrum"], flat.take(pick), shown)
        batch = {m: t.to(device) for m, t in batch.items()}
        out = head(net.pooled_state(batch, frozen.layer, TUNED_POOL))
        want = goal[pick].to(device)
        loss = F.mse_loss(out[:, 0], want) if numeric else F.cross_entropy(out, want)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    net.eval()
    head.eval()
    probe = TunedProbe(
        tuned, head, label, frozen.use, frozen.layer, classes,
        centre if numeric else 0.0, spread if numeric else 1.0,
        settings={"steps": steps, "lr": lr, "batch_size": batch_size, "seed": seed,
                  "head_init": head_init,
                  "hold_out": hold_out, "trained_on": len(train), "flat_views": flat_views,
                  "flat_lines_sigma": flat_lines_sigma if flat_views else None},
    )  # fmt: skip
    if len(test) >= 2:
        probe.held_out = _held_out_scores([probe], frozen, y, train, test, numeric)
    return probe


def _start_at_probe(
    head: torch.nn.Linear, emb: np.ndarray, goal: np.ndarray, numeric: bool
) -> None:
    """Set ``head`` to the frozen probe of the pooled states ``emb`` for ``goal`` (the
    standardised number, or class indices), its standardisation folded into the weights."""
    scaler, fit = fit_probe(emb, goal, numeric)
    coef = np.atleast_2d(fit.coef_)
    bias = np.atleast_1d(fit.intercept_)
    if not numeric and head.out_features == 2:
        # Binary logistic regression gives one logit, z: softmax(0, z) is its sigmoid. (Every
        # class of the head is among the training objects': the classes are theirs.)
        coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
        bias = np.array([0.0, bias[0]])
    weight = coef / scaler.scale_
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(bias - weight @ scaler.mean_, dtype=torch.float32))


def flat_continuum(data: MultimodalSet, continuum: np.ndarray | None = None) -> MultimodalSet:
    """A copy of ``data`` whose spectra have their continuum (:func:`continuum_of`, a running
    median) replaced by its median level: flux − continuum + median(continuum). Lines and
    noise stay where they were; the 4000 Å break and the continuum's slope are gone.
    ``continuum``: the spectra's continuum when computed already."""
    flux = data.arrays["spectrum_flux"]
    if continuum is None:
        continuum = continuum_of(data).arrays["spectrum_flux"]
    with np.errstate(all="ignore"):  # a spectrum with no measured pixel stays unmeasured
        level = np.nanmedian(continuum, axis=1, keepdims=True)
    flat = flux - continuum + level
    return dataclasses.replace(data, arrays={**data.arrays, "spectrum_flux": flat})


def strongest_line(data: MultimodalSet, continuum: np.ndarray | None = None) -> np.ndarray:
    """Each spectrum's strongest pixel above its continuum (:func:`continuum_of`), in units of
    its noise: how visible its brightest emission line is, wherever it falls. Unmeasured
    pixels count as on the continuum; a spectrum with none measured gives 0. ``continuum``:
    the spectra's continuum when computed already."""
    flux = data.arrays["spectrum_flux"]
    if continuum is None:
        continuum = continuum_of(data).arrays["spectrum_flux"]
    ivar = np.clip(np.nan_to_num(data.arrays["spectrum_ivar"]), 0, None)
    return (np.nan_to_num(flux - continuum) * np.sqrt(ivar)).max(axis=1).clip(0, None)


def mixed_views(full: ModalityTokens, flat: ModalityTokens, shown: torch.Tensor) -> ModalityTokens:
    """``full`` with the objects where ``shown`` is true taken from ``flat``."""
    per_value, per_token = shown.view(-1, 1, 1), shown.view(-1, 1)

    def pick(a: torch.Tensor | None, b: torch.Tensor | None, where) -> torch.Tensor | None:
        return None if a is None else torch.where(where, b, a)

    return dataclasses.replace(
        full,
        values=torch.where(per_value, flat.values, full.values),
        valid=torch.where(per_value, flat.valid, full.valid),
        present=torch.where(per_token, flat.present, full.present),
        context=pick(full.context, flat.context, per_token),
    )


def _split(
    foundation: Foundation,
    data: MultimodalSet,
    label: str,
    use: list[str] | None,
    layer: int | None,
    hold_out: float,
) -> tuple[Explainer, np.ndarray, bool, np.ndarray, np.ndarray]:
    """The frozen explainer, ``label``'s values, whether it is a number, and the objects to
    train on and to hold out. The split does not depend on the fine-tuning's seed, so that
    runs of several seeds are scored, alone and together, on the same held-out objects."""
    frozen = Explainer(foundation, data, use, layer, pool=TUNED_POOL, fill="empty")
    y, ok, numeric = usable_label(data, label)
    present = np.zeros(len(data.ids), bool)
    for t in frozen.tokens.values():
        present |= t.present.any(dim=1).numpy()
    rows = np.flatnonzero(ok & present)
    np.random.default_rng(0).shuffle(rows)
    n_test = int(round(hold_out * len(rows)))
    test, train = rows[:n_test], rows[n_test:]
    if len(train) < 10:
        raise ExplainError(f"{len(train)} objects left to train on; at least 10 are needed")
    return frozen, y, numeric, train, test


def _held_out_scores(
    probes: list[TunedProbe],
    frozen: Explainer,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    numeric: bool,
) -> dict:
    """The fine-tuned heads' and the frozen probe's scores on the held-out objects. Several
    heads are scored by their mean output (the number, or each class's logit), and each
    alone under ``runs``."""
    tokens = {m: t.take(torch.as_tensor(test)) for m, t in frozen.tokens.items()}
    outs = []
    with torch.no_grad():
        for probe in probes:
            outs.append(probe.head(probe.foundation.model.pooled_state(
                {m: t.to(probe.foundation.device) for m, t in tokens.items()},
                probe.layer, probe.pool,
            )).cpu().numpy())  # fmt: skip
    first = probes[0]
    truth = y[test].astype(float) if numeric else y[test].astype(str)

    def score(out: np.ndarray) -> float:
        if numeric:
            return _score(out[:, 0] * first.spread + first.centre, truth, numeric)
        return _score(np.array(first.classes)[out.argmax(1)], truth, numeric)

    emb = frozen.embeddings()
    labels = y[train] if numeric else y[train].astype(str)
    scaler, fit = fit_probe(emb[train], labels, numeric)
    frozen_pred = fit.predict(scaler.transform(emb[test]))
    result = {
        "metric": "r2" if numeric else "accuracy",
        "n": len(test),
        "fine-tuned": score(np.mean(outs, axis=0)),
        "frozen probe": _score(frozen_pred, truth, numeric),
    }
    if len(probes) > 1:
        result["runs"] = [score(out) for out in outs]
    return result
