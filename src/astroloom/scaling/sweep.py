"""A grid of model sizes × token budgets, trained one run at a time and recorded.

Each finished run appends one line to ``sweep.jsonl``: its final validation loss, N
(non-embedding parameters), D (tokens the model read, counted per present token, so right
for any mix of modalities), the distinct tokens of one pass over the training objects and
the epochs D spans (a sweep whose D repeats data says so), and C = 6 N D (training FLOPs,
attention scores left out as in Hoffmann et al.). Re-running the same sweep skips finished runs, so
a sweep killed half-way continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from astroloom.config import MODEL_PRESETS, ConfigError, RunConfig
from astroloom.model.multimodal import MultimodalModel
from astroloom.scaling.law import FLOPS_PER_PARAM_TOKEN
from astroloom.train.loop import train

SWEEP_FILE = "sweep.jsonl"


def run_name(size: str, tokens: float) -> str:
    return f"{size}-{tokens:.3g}tok"


def read_sweep(path: str | Path) -> list[dict[str, Any]]:
    """Records of a sweep directory (or its ``sweep.jsonl``)."""
    path = Path(path)
    file = path / SWEEP_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no {SWEEP_FILE} in {path}; run `astroloom scaling sweep` first")
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def run_sweep(
    base: RunConfig,
    sizes: list[str],
    tokens: list[float],
    out: str | Path,
    val_batches: int = 16,
    progress: bool = True,
) -> list[dict[str, Any]]:
    unknown = [s for s in sizes if s not in MODEL_PRESETS]
    if unknown:
        raise ConfigError(f"unknown model size(s) {unknown}; allowed: {', '.join(MODEL_PRESETS)}")
    if not sizes or not tokens or any(t <= 0 for t in tokens):
        raise ConfigError("a sweep needs at least one size and positive token budgets")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done = {r["name"]: r for r in read_sweep(out)} if (out / SWEEP_FILE).exists() else {}
    records = []
    for size in sizes:
        for budget in sorted(tokens):
            name = run_name(size, budget)
            if name in done:
                records.append(done[name])
                continue
            model_cfg = dataclasses.replace(base.model, **MODEL_PRESETS[size])
            per_step = base.train.batch_size * tokens_per_object(base)
            steps = max(1, int(round(budget / per_step)))
            train_cfg = dataclasses.replace(
                base.train,
                steps=steps,
                warmup_steps=min(base.train.warmup_steps, max(1, steps // 10)),
                eval_every=steps,
                checkpoint_every=steps,
                eval_batches=val_batches,
            )
            cfg = RunConfig(model=model_cfg, data=base.data, train=train_cfg, out=str(out / name))
            if progress:
                print(f"[sweep] {name}: {steps} steps of {per_step} tokens", flush=True)
            result = train(cfg, progress=progress)
            if result.final_val_loss is None:
                raise ConfigError("the sweep needs held-out objects: set data.val_fraction > 0")
            n = MultimodalModel(model_cfg).num_parameters(non_embedding=True)
            d = result.tokens_seen  # tokens the model read, whatever its modalities
            epochs = d / max(result.unique_tokens, 1)
            if epochs > 1 and progress:
                print(
                    f"[sweep] warning: {name} saw its {result.unique_tokens:,} distinct tokens "
                    f"{epochs:.2f} times: D counts repeated data",
                    flush=True,
                )
            record = {
                "name": name,
                "size": size,
                "N": n,
                "N_total": result.n_parameters,
                "D": d,
                "unique_tokens": result.unique_tokens,
                "epochs": epochs,
                "C": FLOPS_PER_PARAM_TOKEN * n * d,
                "val_loss": result.final_val_loss,
                "train_loss": result.final_train_loss,
                "steps": steps,
                "wall_time_s": result.wall_time_s,
            }
            with (out / SWEEP_FILE).open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            records.append(record)
    return records


def tokens_per_object(cfg: RunConfig) -> float:
    """Mean tokens the model reads per training object: the patch count for images alone;
    measured on the data for other modalities (spectra, light curves, absent modalities)."""
    if list(cfg.model.modalities) == ["image"]:
        return float(cfg.model.n_patches)
    from astroloom.train.tasks import make_task

    return make_task(cfg, MultimodalModel(cfg.model)).mean_tokens


def repeated_runs(records: list[dict[str, Any]]) -> list[str]:
    """Names of runs whose token budget exceeded one pass over their data (D repeats)."""
    return [r["name"] for r in records if r.get("epochs", 0) > 1]


def sweep_arrays(records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.array([r[k] for r in records], dtype=float) for k in ("N", "D", "val_loss"))
