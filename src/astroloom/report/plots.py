"""Plots for runs and evaluations. Every function writes one PNG and returns its path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def plot_loss(metrics: str | Path, out: str | Path) -> Path:
    rows = read_metrics(metrics)
    if not rows:
        raise ValueError(f"{metrics} holds no logged steps to plot")
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["loss"] for r in rows], label="train", lw=1.2, color="k")
    val = [r for r in rows if r.get("val_loss") is not None]
    if val:
        ax.plot(
            [r["step"] for r in val],
            [r["val_loss"] for r in val],
            "o-",
            label="validation",
            ms=3,
            color="k",
            alpha=0.6,
        )
    # A multimodal run logs each modality's loss too: one thin line each.
    modalities = sorted(k[5:] for k in rows[-1] if k.startswith("loss_"))
    for m in modalities:
        ax.plot(steps, [r.get(f"loss_{m}", np.nan) for r in rows], lw=0.8, label=f"train, {m}")
    ylabel = "Huber loss (per modality, mean)" if modalities else "Huber loss (next patch)"
    ax.set(xlabel="step", ylabel=ylabel, yscale="log", title="Pretraining loss")
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
    rows: Sequence[tuple[str, np.ndarray]], scale: Sequence[float], out, titles=None
) -> Path:
    """A grid: one row per (name, images ``(N, 3, H, W)``), same columns in every row;
    ``out`` a path or a binary file object."""
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
    fig.savefig(out, format="png")
    plt.close(fig)
    return Path(out) if isinstance(out, str | Path) else out


def plot_scaling(records: Sequence[dict], law, out: str | Path) -> Path:
    """Four panels: loss vs N (per D), loss vs D (per N), iso-FLOP curves, the frontier.

    ``law`` is an :class:`astroloom.scaling.law.ScalingLaw` fitted to ``records``.
    """
    n = np.array([r["N"] for r in records], float)
    d = np.array([r["D"] for r in records], float)
    loss = np.array([r["val_loss"] for r in records], float)
    fig, axes = plt.subplots(2, 2, figsize=(10, 8), dpi=100)
    colours = plt.cm.viridis(np.linspace(0, 0.9, max(len(np.unique(d)), len(np.unique(n)))))

    ax = axes[0, 0]
    grid_n = np.geomspace(n.min() / 2, n.max() * 2, 100)
    for colour, dv in zip(colours, np.unique(d), strict=False):
        pick = d == dv
        ax.scatter(n[pick], loss[pick], color=colour, label=f"D={dv:.2g}", zorder=3)
        ax.plot(grid_n, law.loss(grid_n, dv), color=colour, lw=1)
    ax.set(
        xscale="log",
        xlabel="N (non-embedding parameters)",
        ylabel="validation loss",
        title="Loss vs model size",
    )
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    grid_d = np.geomspace(d.min() / 2, d.max() * 2, 100)
    for colour, nv in zip(colours, np.unique(n), strict=False):
        pick = n == nv
        ax.scatter(d[pick], loss[pick], color=colour, label=f"N={nv:.2g}", zorder=3)
        ax.plot(grid_d, law.loss(nv, grid_d), color=colour, lw=1)
    ax.set(
        xscale="log", xlabel="D (training tokens)", ylabel="validation loss", title="Loss vs data"
    )
    ax.legend(fontsize=8)

    ax = axes[1, 0]
    c = 6 * n * d
    budgets = np.geomspace(c.min(), c.max() * 10, 5)
    for colour, cv in zip(plt.cm.plasma(np.linspace(0, 0.85, len(budgets))), budgets, strict=True):
        sizes = np.geomspace(n.min() / 4, n.max() * 8, 200)
        curve = law.loss(sizes, cv / (6 * sizes))
        ax.plot(sizes, curve, color=colour, label=f"C={cv:.2g}")
        n_opt, d_opt = law.compute_optimal(cv)
        ax.plot(n_opt, law.loss(n_opt, d_opt), "o", color=colour)
    ax.set(xscale="log", xlabel="N", ylabel="predicted loss", title="Iso-FLOP curves (fit)")
    spread = loss.max() - loss.min()
    ax.set_ylim(law.E - 0.05 * spread, loss.max() + 0.5 * spread)
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    flops = np.geomspace(c.min() / 10, c.max() * 1e3, 100)
    n_opt, d_opt = law.compute_optimal(flops)
    ax.plot(flops, n_opt, label="N*(C)")
    ax.plot(flops, d_opt, label="D*(C)")
    ax.scatter(c, n, s=10, color="C0", alpha=0.6)
    ax.scatter(c, d, s=10, color="C1", alpha=0.6)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="C = 6ND (FLOPs)",
        ylabel="compute-optimal N, D",
        title=f"Frontier: α={law.alpha:.2f}, β={law.beta:.2f}, E={law.E:.3f}",
    )
    ax.legend(fontsize=8)
    for ax in axes.flat:
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def plot_survey_modalities(directory: str | Path, out: str | Path) -> Path:
    """The brightest galaxy's spectrum (5-pixel running mean) of the first shard with
    spectra, and the first variable star's light curve folded on its period."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from astroloom.data.schema import DatasetInfo

    directory = Path(directory)
    info = DatasetInfo.load(directory)
    spec_meta = info.modalities["spectrum"]
    fig, (ax_s, ax_l) = plt.subplots(1, 2, figsize=(11, 3.4), dpi=100)
    for name in info.shards:
        table = pq.read_table(directory / name)
        galaxies = table.filter(pc.is_valid(table.column("spectrum_flux")))
        stars = table.filter(pc.is_valid(table.column("lc_time")))
        if len(galaxies) and not ax_s.lines:
            brightest = int(np.nanargmin(galaxies.column("mag_r").to_numpy(zero_copy_only=False)))
            row = galaxies.slice(brightest, 1).to_pylist()[0]
            flux = np.convolve(np.asarray(row["spectrum_flux"]), np.ones(5) / 5, mode="same")
            wave = spec_meta["wavelength_start"] + spec_meta["wavelength_step"] * np.arange(
                len(flux)
            )
            ax_s.plot(wave, flux, lw=0.5, color="0.3")
            ax_s.set(
                xlabel="observed wavelength (Å)",
                ylabel=f"flux ({spec_meta['flux_unit']})",
                title=f"{row['id']}: z = {row['redshift']:.3f}, {row['morph_type']}",
            )
            ax_s.set_ylim(np.percentile(flux, 0.5), np.percentile(flux, 99.8) * 1.2)
        if len(stars) and not ax_l.collections:
            row = stars.slice(0, 1).to_pylist()[0]
            t, mag, band = (np.asarray(row[k]) for k in ("lc_time", "lc_mag", "lc_band"))
            phase = (t / row["period"]) % 1.0
            for code, colour in ((0, "C3"), (1, "C0")):
                pick = band == code
                ax_l.scatter(
                    phase[pick],
                    mag[pick],
                    s=6,
                    color=colour,
                    label=info.modalities["lightcurve"]["bands"][code],
                )
            ax_l.invert_yaxis()
            ax_l.set(
                xlabel="phase",
                ylabel="magnitude",
                title=f"{row['var_class']} P = {row['period']:.4g} d",
            )
            ax_l.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def plot_object_grid(
    images: np.ndarray,
    captions: Sequence[str],
    scale: Sequence[float],
    out: str | Path,
    ncols: int = 8,
) -> Path:
    """Cutouts in a grid, each titled with its caption (id and labels)."""
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(1.9 * ncols, 2.4 * nrows), dpi=100, squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions, strict=False):
        if len(image) >= 3:
            ax.imshow(rgb_composite(image[:3], scale[:3]), origin="lower")
        else:
            ax.imshow(np.arcsinh(np.nan_to_num(image[0]) / scale[0]), origin="lower", cmap="gray")
        ax.set_title(caption, fontsize=6)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def plot_label_curves(
    panels: Sequence[tuple[str, str, dict[tuple[str, str, int], tuple[float, float]]]],
    out: str | Path,
    ncols: int = 4,
) -> Path:
    """Metric vs number of labelled objects, one line per (features, probe), one panel per
    (target, metric, summary); ``summary`` maps (feature, method, budget) → (mean, std), with
    budget −1 meaning every labelled object."""
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows), dpi=100, squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, (target, metric, summary) in zip(axes.flat, panels, strict=False):
        ax.axis("on")
        full = max((b for (_, _, b) in summary), default=1)
        for feature, method in dict.fromkeys((f, m) for (f, m, _) in summary):
            points = sorted(
                (full * 2 if b < 0 else b, v)
                for (f, m, b), v in summary.items()
                if (f, m) == (feature, method)
            )
            x = [p[0] for p in points]
            mean = np.array([p[1][0] for p in points])
            std = np.array([p[1][1] for p in points])
            ax.errorbar(
                x, mean, yerr=std, marker="o", ms=3, capsize=2, label=f"{feature} · {method}"
            )
        ax.set(
            xscale="log", xlabel="labelled objects (rightmost: all)", ylabel=metric, title=target
        )
        ax.set_ylim(bottom=max(ax.get_ylim()[0], -0.5))  # tiny budgets can score far below 0
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.set_minor_formatter(NullFormatter())
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 5), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def plot_spectra(
    wavelength: np.ndarray,
    observed: np.ndarray,
    predicted: np.ndarray,
    redshifts: Sequence[float],
    out: str | Path,
    unit: str = "",
    label: str = "predicted from the image",
) -> Path:
    """Observed spectra (grey) beside predicted ones (colour; ``label`` says from what)."""
    n = len(observed)
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 1.7 * n), dpi=100, sharex=True, squeeze=False)
    for ax, obs, pred, z in zip(axes[:, 0], observed, predicted, redshifts, strict=True):
        ax.plot(wavelength, obs, color="0.6", lw=0.5, label="observed")
        ax.plot(wavelength, pred, color="C3", lw=1.0, label=label)
        ax.text(0.01, 0.8, f"z = {z:.3f}", transform=ax.transAxes, fontsize=8)
        lo, hi = np.nanpercentile(np.concatenate([obs, pred]), [1, 99.5])
        ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.2 * (hi - lo))
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("observed wavelength (Å)")
    axes[n // 2, 0].set_ylabel(f"flux {unit}".strip(), fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def _is_categorical(values: np.ndarray) -> bool:
    return values.dtype == object or len(np.unique(values[np.isfinite(values)])) <= 12


def plot_embedding_map(
    coords: np.ndarray,
    colours: Sequence[tuple[str, np.ndarray]],
    out: str | Path,
    title: str = "",
) -> Path:
    """One scatter panel of the 2-D map per label: categories get a legend, numbers a colour
    bar clipped to their 1st–99th percentiles; objects without the label are grey dots."""
    n = max(1, len(colours))
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.2), dpi=110, squeeze=False)
    size = float(np.clip(4000 / max(len(coords), 1), 0.5, 12))
    for ax, (name, values) in zip(axes.flat, colours or [("", None)], strict=True):
        ax.set(xticks=[], yticks=[], title=name)
        if values is None:
            ax.scatter(*coords.T, s=size, c="k", lw=0)
            continue
        categorical = _is_categorical(values)
        if values.dtype == object:
            missing = np.array([v is None or v == "" for v in values])
        else:
            missing = ~np.isfinite(values)
        ax.scatter(*coords[missing].T, s=size, c="0.85", lw=0, label=f"no {name}")
        present = ~missing
        if categorical:
            text = values.astype(str)
            kinds = sorted({str(v) for v in values[present]})
            palette = plt.get_cmap("tab10" if len(kinds) <= 10 else "tab20")
            colour = {kind: palette(i) for i, kind in enumerate(kinds)}
            # Common kinds first, rare ones last and larger, so rare objects stay visible.
            counts = {kind: int((present & (text == kind)).sum()) for kind in kinds}
            for kind in sorted(kinds, key=lambda k: -counts[k]):
                pick = present & (text == kind)
                dot = size if counts[kind] > 0.05 * len(coords) else max(size * 4, 6.0)
                ax.scatter(*coords[pick].T, s=dot, color=colour[kind], lw=0, label=kind)
            handles = [
                Line2D([], [], marker="o", ls="", ms=5, color=colour.get(k, "0.85"), label=k)
                for k in [f"no {name}", *kinds]
                if k in colour or missing.any()
            ]
            ax.legend(handles=handles, fontsize=7, loc="best", frameon=False)
        else:
            v = values[present].astype(float)
            lo, hi = np.percentile(v, [1, 99])
            dots = ax.scatter(
                *coords[present].T, s=size, c=v, cmap="viridis", vmin=lo, vmax=hi, lw=0
            )
            fig.colorbar(dots, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def plot_explanation(
    panels: Sequence[tuple],
    out,
    scale: Sequence[float] | None = None,
) -> Path:
    """One row per map: ``(map, physical, observed)`` with ``map`` a TokenMap (its
    ``object_id``, ``method`` and ``what``), ``physical`` the map per modality in its own
    coordinates, ``observed`` the object's image / spectrum / light curve. The image map is
    drawn beside the picture on a diverging scale; spectrum and light-curve maps under
    the data. ``out``: a path, or a binary file object."""
    kinds = ("image", "spectrum", "photometry", "lightcurve")
    widths = {"image": 2, "spectrum": 3, "photometry": 1, "lightcurve": 2}
    rows = [[k for k in kinds if k in phys] for _, phys, _ in panels]
    ncols = max(sum(widths[k] for k in r) for r in rows)
    fig = plt.figure(figsize=(2.3 * ncols, 2.8 * len(panels)), dpi=100)
    grid = fig.add_gridspec(len(panels), ncols)
    for r, ((tm, phys, obs), present) in enumerate(zip(panels, rows, strict=True)):
        col = 0
        for kind in present:
            values = np.asarray(phys[kind], float)
            lim = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
            lim = lim or 1.0
            signed = bool(np.nanmin(values) < 0) if np.isfinite(values).any() else True
            cmap, vmin = ("RdBu_r", -lim) if signed else ("magma", 0.0)
            if kind == "image":
                ax = fig.add_subplot(grid[r, col])
                image = obs.get("image")
                if image is not None and len(image) >= 3 and scale is not None:
                    ax.imshow(rgb_composite(image[:3], scale[:3]), origin="lower")
                elif image is not None:
                    ax.imshow(np.arcsinh(np.nan_to_num(image[0])), origin="lower", cmap="gray")
                ax.set_title(f"{str(tm.object_id)[-18:]}", fontsize=8)
                ax.set_xticks([])
                ax.set_yticks([])
                ax = fig.add_subplot(grid[r, col + 1])
                shown = ax.imshow(values, origin="lower", cmap=cmap, vmin=vmin, vmax=lim)
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
                ax.set_title(tm.method, fontsize=8)
                ax.set_xticks([])
                ax.set_yticks([])
            elif kind == "spectrum":
                ax = fig.add_subplot(grid[r, col : col + widths[kind]])
                wave = phys.get("spectrum_wavelength", np.arange(len(values)))
                flux = obs.get("spectrum")
                if flux is not None:
                    ax.plot(wave, flux, color="0.6", lw=0.5)
                ax.set_ylabel("flux", fontsize=7)
                twin = ax.twinx()
                twin.fill_between(wave, 0, np.nan_to_num(values), color="C3", alpha=0.6, lw=0)
                twin.set_ylabel(tm.method, fontsize=7, color="C3")
                ax.set_xlabel("observed wavelength (Å)", fontsize=7)
                ax.set_title("spectrum", fontsize=8)
            elif kind == "lightcurve":
                ax = fig.add_subplot(grid[r, col : col + widths[kind]])
                time = phys.get("lightcurve_time", np.arange(len(values)))
                mag = obs.get("lightcurve", np.zeros(len(values)))
                shown = ax.scatter(time, mag, c=values, cmap=cmap, vmin=vmin, vmax=lim, s=10)
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
                ax.invert_yaxis()
                ax.set(xlabel="days", ylabel="relative magnitude")
                ax.set_title("light curve", fontsize=8)
            else:
                ax = fig.add_subplot(grid[r, col])
                ax.bar(np.arange(len(values)), np.nan_to_num(values), color="C0")
                ax.set_title("photometry (per band)", fontsize=8)
            col += widths[kind]
        fig.text(
            0.01,
            1 - (r + 0.02) / len(panels),
            f"{tm.method}: {tm.what}" + (f" = {tm.value:.3g}" if tm.value is not None else ""),
            fontsize=8,
            va="top",
        )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out, format="png")
    plt.close(fig)
    return Path(out) if isinstance(out, str | Path) else out
