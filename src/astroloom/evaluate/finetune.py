"""Fine-tuning against frozen probes, and the second wave: a supervised CNN from scratch.

At each label count (the same splits as the few-shot probes, :func:`few_shot_splits`):

* **frozen**: ridge on the pretrained embeddings (what ``astroloom probe`` does);
* **lora**: low-rank adapters (Hu et al. 2021) on every attention and MLP matrix of the
  pretrained transformer, plus a linear head; the pretrained weights stay frozen;
* **full**: every weight of the pretrained transformer trained, with the head;
* **cnn**: a small ResNet trained from scratch on the stretched pixels (the supervised
  baseline a foundation model must beat when labels are few).

Regression targets are standardised on the training objects; the score is R² on the
fixed test set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from astroloom.data.schema import LABELS_FROM_CATALOGUE, DataError
from astroloom.data.shards import load_image_set
from astroloom.evaluate.embed import EMBED_POOL
from astroloom.evaluate.fewshot import check_budgets, few_shot_splits, make_probe
from astroloom.evaluate.metrics import redshift_metrics, regression_metrics
from astroloom.model.checkpoint import load_checkpoint

METHODS = ("frozen", "lora", "full", "cnn")


class LoRALinear(nn.Module):
    """``W x + (α/r) B A x`` with ``W`` frozen and ``B`` starting at zero, so that training
    begins exactly at the pretrained model."""

    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float = 8.0) -> None:
        super().__init__()
        self.base = base.requires_grad_(False)
        self.a = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.b = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.a.T @ self.b.T) * self.scale


def add_lora(model: nn.Module, rank: int = 4, alpha: float = 8.0) -> list[nn.Parameter]:
    """Freeze ``model`` and put adapters on every block's attention and MLP matrices;
    returns the adapters' parameters."""
    model.requires_grad_(False)
    params: list[nn.Parameter] = []
    for block in model.blocks:
        for parent, name in (
            (block.attn, "qkv"),
            (block.attn, "proj"),
            (block.mlp, "fc"),
            (block.mlp, "proj"),
        ):
            lora = LoRALinear(getattr(parent, name), rank, alpha)
            setattr(parent, name, lora)
            params += [lora.a, lora.b]
    return params


class Regressor(nn.Module):
    """The pretrained transformer's pooled state at ``layer`` → one number."""

    def __init__(self, backbone: nn.Module, layer: int) -> None:
        super().__init__()
        self.backbone, self.layer = backbone, layer
        self.head = nn.Linear(backbone.cfg.n_embd, 1)

    def forward(self, inputs) -> torch.Tensor:
        return self.head(self.backbone.pooled_state(inputs, self.layer)).squeeze(-1)


class ResNet(nn.Module):
    """A small ResNet for ``(C, H, W)`` stretched cutouts: three stages of two residual
    blocks (16, 32, 64 channels), global average pooling, a linear head."""

    def __init__(self, in_channels: int, widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 3, padding=1),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        c = widths[0]
        for i, w in enumerate(widths):
            for k in range(2):
                layers.append(_Residual(c, w, stride=2 if (k == 0 and i > 0) else 1))
                c = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3))).squeeze(-1)


class _Residual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.skip(x) + self.bn2(self.conv2(h)))


def split_digest(train: np.ndarray, test: np.ndarray) -> str:
    """A short fingerprint of a train/test split (row indices), recorded with each score."""
    import hashlib

    parts = [np.sort(np.asarray(x, np.int64)).tobytes() for x in (train, test)]
    return hashlib.sha1(parts[0] + b"|" + parts[1]).hexdigest()[:12]


@dataclass
class FineTuneResult:
    target: str
    rows: list[dict] = field(default_factory=list)  # method, budget, seed, r2
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[tuple[str, int], tuple[float, float]]:
        groups: dict[tuple[str, int], list[float]] = {}
        for r in self.rows:
            groups.setdefault((r["method"], r["budget"]), []).append(r["r2"])
        return {k: (float(np.mean(v)), float(np.std(v))) for k, v in groups.items()}

    def markdown(self) -> str:
        summary = self.summary()
        budgets = sorted({b for _, b in summary}, key=lambda b: (b < 0, b))
        methods = [m for m in METHODS if any(k[0] == m for k in summary)]
        head = "| method | " + " | ".join("all" if b < 0 else str(b) for b in budgets) + " |"
        lines = [
            f"### {self.target}: R² by number of labels",
            "",
            head,
            "|---" * (len(budgets) + 1) + "|",
        ]
        for m in methods:
            cells = []
            for b in budgets:
                mean, std = summary.get((m, b), (float("nan"), 0.0))
                cells.append(f"{mean:.3f} ± {std:.3f}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        return "\n".join(lines + [""] + [f"- {n}" for n in self.notes]) + "\n"


def _fit(
    model: nn.Module,
    params: list[nn.Parameter],
    inputs,
    y: torch.Tensor,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    model.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        pick = torch.randint(len(y), (min(batch_size, len(y)),), generator=gen)
        loss = F.mse_loss(model(inputs(pick)), y[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    model.eval()


@torch.no_grad()
def _predict(model: nn.Module, inputs, n: int, batch_size: int = 256) -> np.ndarray:
    return torch.cat(
        [model(inputs(torch.arange(lo, min(lo + batch_size, n)))) for lo in range(0, n, batch_size)]
    ).numpy()


def finetune_curve(
    run: str | Path,
    data: str | Path,
    target: str,
    budgets: Sequence[int | None] = (30, 100, 300, 1000),
    seeds: int = 3,
    methods: Sequence[str] = METHODS,
    steps: int = 300,
    lr: dict[str, float] | None = None,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
) -> FineTuneResult:
    """R² of each method at each label count on ``data``'s galaxy images."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {METHODS}")
    check_budgets(budgets, seeds)
    if steps < 1:
        raise ValueError(f"need at least 1 optimiser step, got {steps}")
    rates = {"lora": 2e-3, "full": 3e-4, "cnn": 3e-3, **(lr or {})}
    images = load_image_set(data)
    if target not in images.labels or images.labels[target].dtype == object:
        have = sorted(images.labels)
        raise DataError(
            f"{target!r} is not a numeric label of {data}; "
            + (
                f"have {have}"
                if have
                else f"it has no labels ({LABELS_FROM_CATALOGUE})"
            )
        )
    y_all = images.labels[target].astype(float)
    known = np.flatnonzero(np.isfinite(y_all))
    result = FineTuneResult(target)
    if len(known) < len(y_all):
        result.notes.append(f"{len(y_all) - len(known)} objects without a {target} label left out")
    pixels, y_all = images.images[known], y_all[known]
    base, _, tokenizer = load_checkpoint(run)
    layer = base.default_layer()
    image_tok = tokenizer.image
    stretched = torch.nan_to_num(image_tok.stretch(torch.from_numpy(pixels)))

    def tokens(index: torch.Tensor):
        chunk = torch.from_numpy(pixels[index.numpy()])
        return {"image": image_tok.tokens(chunk)}

    frozen = None
    if "frozen" in methods:
        frozen = np.concatenate(
            [
                base.embed(
                    tokens(torch.arange(lo, min(lo + 256, len(pixels)))), layer, EMBED_POOL
                ).numpy()
                for lo in range(0, len(pixels), 256)
            ]
        )
    splits = list(
        few_shot_splits(len(y_all), target, budgets, seeds, seed=seed, notes=result.notes)
    )
    bar = tqdm(total=len(splits) * len(methods), desc=f"fine-tune {target}", disable=not progress)
    for budget, s, size, pick, test in splits:
        mu, sd = y_all[pick].mean(), y_all[pick].std() + 1e-9
        y_train = torch.from_numpy(((y_all[pick] - mu) / sd).astype(np.float32))
        for method in methods:
            torch.manual_seed(seed * 1000 + s)
            if method == "frozen":
                probe = make_probe("linear", "regression", size, s).fit(frozen[pick], y_all[pick])
                pred = probe.predict(frozen[test])
            else:
                if method == "cnn":
                    model: nn.Module = ResNet(pixels.shape[1])
                    params = list(model.parameters())
                    inputs_train = lambda i, p=pick: stretched[p][i]  # noqa: E731
                    inputs_test = lambda i, t=test: stretched[t][i]  # noqa: E731
                else:
                    backbone, _, _ = load_checkpoint(run)
                    model = Regressor(backbone, layer)
                    params = add_lora(backbone) if method == "lora" else list(backbone.parameters())
                    params += list(model.head.parameters())
                    inputs_train = lambda i, p=pick: tokens(torch.from_numpy(p)[i])  # noqa: E731
                    inputs_test = lambda i, t=test: tokens(torch.from_numpy(t)[i])  # noqa: E731
                _fit(
                    model, params, inputs_train, y_train, steps, rates[method], batch_size, seed + s
                )
                pred = _predict(model, inputs_test, len(test)) * sd + mu
            metrics = redshift_metrics if target == "redshift" else regression_metrics
            result.rows.append(
                {
                    "method": method,
                    "budget": size if budget is not None else -1,
                    "seed": s,
                    # Which objects trained and which tested: the same for every method.
                    "split": split_digest(pick, test),
                    **metrics(y_all[test], pred),
                }
            )
            bar.update(1)
    bar.close()
    return result
