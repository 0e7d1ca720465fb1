"""Plots for runs and evaluations. Every function writes one PNG and returns its path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def plot_loss(metrics: str | Path, out: str | Path) -> Path:
    rows = read_metrics(metrics)
    if not rows:
        raise ValueError(f"{metrics} holds no logged steps to plot")
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label="train", lw=1.2)
    val = [r for r in rows if r.get("val_loss") is not None]
    if val:
        ax.plot(
            [r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation", ms=3
        )
    ax.set(xlabel="step", ylabel="Huber loss (next patch)", yscale="log", title="Pretraining loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def plot_predicted_vs_true(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, float]], out: str | Path, ncols: int = 4
) -> Path:
    """One panel per (label, truth, prediction, R²)."""
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.2 * ncols, 3.1 * nrows), dpi=100, squeeze=False
    )
    for ax, (label, truth, pred, r2) in zip(axes.flat, panels, strict=False):
        ax.scatter(truth, pred, s=3, alpha=0.35, lw=0)
        lo, hi = np.percentile(np.concatenate([truth, pred]), [0.5, 99.5])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=f"true {label}", ylabel="predicted")
        ax.set_title(f"{label}  R²={r2:.3f}", fontsize=10)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def rgb_composite(image: np.ndarray, scale: Sequence[float]) -> np.ndarray:
    """``(3, H, W)`` g, r, z fluxes → ``(H, W, 3)`` arcsinh colour picture (z→red, g→blue)."""
    stretched = np.arcsinh(np.nan_to_num(image) / np.asarray(scale)[:, None, None])
    top = np.percentile(stretched[1], 99.7)
    rgb = np.clip(stretched / max(top, 1e-6), 0.0, 1.0)
    return rgb[::-1].transpose(1, 2, 0)


def plot_image_rows(
    rows: Sequence[tuple[str, np.ndarray]], scale: Sequence[float], out: str | Path, titles=None
) -> Path:
    """A grid: one row per (name, images ``(N, 3, H, W)``), same columns in every row."""
    ncols = len(rows[0][1])
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(1.7 * ncols, 1.8 * len(rows)), dpi=100, squeeze=False
    )
    for r, (name, images) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.imshow(rgb_composite(images[c], scale), origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
            if r == 0 and titles is not None:
                ax.set_title(titles[c], fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)
