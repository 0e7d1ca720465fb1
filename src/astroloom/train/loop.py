"""The training loop: AdamW, warmup + cosine, clipping, metrics.jsonl, atomic checkpoints."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from astroloom.config import RunConfig
from astroloom.data.schema import DataError
from astroloom.data.shards import ImageSet, load_image_set
from astroloom.model.gpt import FoundationModel
from astroloom.tokenize.image import ImageTokenizer, robust_noise_scale
from astroloom.train.checkpoint import (
    FINAL,
    CheckpointError,
    latest_step_checkpoint,
    load_train_state,
    load_weights,
    save_checkpoint,
)


def learning_rate(step: int, cfg: RunConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``min_lr`` at the last step."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device asks for CUDA but no CUDA device is available")
    return device


def tokenizer_for(data: ImageSet, cfg: RunConfig) -> ImageTokenizer:
    """The dataset's recorded arcsinh scales, or ones measured now from its borders."""
    info = data.info
    c, h, w = info.image.shape
    if (c, h) != (cfg.model.n_bands, cfg.model.image_size) or h != w:
        raise DataError(
            f"{cfg.data.path} holds {c}-band {h}×{w} images but the model is configured for "
            f"{cfg.model.n_bands}-band {cfg.model.image_size}×{cfg.model.image_size}; "
            "set model.n_bands / model.image_size to match"
        )
    norm = info.normalisation.get("image", {})
    scale = norm.get("scale") if norm.get("kind") == "arcsinh" else None
    if scale is None:
        scale = robust_noise_scale(data.images[:1000])
    return ImageTokenizer(
        patch_size=cfg.model.patch_size, scale=list(scale), bands=info.image.bands
    )


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    # Matrices decay; biases, norms and position tables do not (as in nanoGPT).
    decay = [
        p for p in model.parameters() if p.requires_grad and p.ndim >= 2 and p is not model.pos
    ]
    rest = [p for p in model.parameters() if p.requires_grad and not any(p is q for q in decay)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    final_train_loss: float
    final_val_loss: float | None
    tokens_seen: int
    wall_time_s: float
    n_parameters: int


def _prune(checkpoints: Path, keep: int) -> None:
    done = sorted(p for p in checkpoints.glob("step-*[0-9]") if p.is_dir())
    for old in done[:-keep]:
        shutil.rmtree(old)


def train(cfg: RunConfig, progress: bool = True, resume: bool = False) -> TrainResult:
    """Pretrain the next-patch model described by ``cfg``; returns where it went and how."""
    cfg.validate()
    t = cfg.train
    run = Path(cfg.out)
    device = pick_device(t.device)
    torch.set_num_threads(t.threads or os.cpu_count() or 1)
    torch.manual_seed(t.seed)

    data = load_image_set(cfg.data.path)
    tokenizer = tokenizer_for(data, cfg)
    train_idx, val_idx = split_indices(len(data), cfg.data.val_fraction, t.seed)
    if len(train_idx) == 0:
        raise DataError(f"{cfg.data.path} has no objects left for training after the split")
    tokens, valid = tokenizer.encode(torch.from_numpy(data.images))
    # Most surveys' cutouts are complete; only carry a mask when some pixel is missing.
    valid = None if bool(valid.all()) else valid

    model = FoundationModel(cfg.model).to(device)
    optimizer = torch.optim.AdamW(
        _param_groups(model, t.weight_decay),
        lr=t.lr,
        betas=(t.beta1, t.beta2),
        fused=device.type == "cuda",
    )
    generator = torch.Generator().manual_seed(t.seed)
    start = 0
    run.mkdir(parents=True, exist_ok=True)
    metrics_path = run / "metrics.jsonl"
    if resume:
        ckpt = latest_step_checkpoint(run)
        if ckpt is None:
            raise CheckpointError(f"--resume: {run} has no step checkpoint to resume from")
        load_weights(model, ckpt / "model.safetensors")
        state = load_train_state(ckpt)
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        start = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
        # Forget metrics logged after the checkpoint, so the curve has no repeated steps.
        if metrics_path.exists():
            rows = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()]
            metrics_path.write_text(
                "".join(json.dumps(r) + "\n" for r in rows if r["step"] <= start)
            )
    else:
        metrics_path.write_text("")
    cfg.save(run / "config.json")

    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    train_idx_t = torch.from_numpy(train_idx)
    val_batches = torch.from_numpy(val_idx[: t.eval_batches * t.batch_size])

    def batch(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = tokens[index].to(device, non_blocking=True)
        return x, None if valid is None else valid[index].to(device)

    @torch.no_grad()
    def evaluate() -> float | None:
        if len(val_batches) == 0:
            return None
        model.eval()
        losses = []
        for chunk in val_batches.split(t.batch_size):
            x, m = batch(chunk)
            with amp:
                losses.append(float(model.loss(x, m, delta=t.huber_delta)))
        model.train()
        return float(np.mean(losses))

    tokens_per_step = t.batch_size * cfg.model.n_patches
    model.train()
    began = time.perf_counter()
    window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
    loss_value, val_loss = float("nan"), None
    with (
        metrics_path.open("a") as log,
        tqdm(total=t.steps, initial=start, desc="train", unit="step", disable=not progress) as bar,
    ):
        for step in range(start, t.steps):
            lr = learning_rate(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            pick = train_idx_t[
                torch.randint(len(train_idx_t), (t.batch_size,), generator=generator)
            ]
            x, m = batch(pick)
            with amp:
                loss = model.loss(x, m, delta=t.huber_delta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            optimizer.step()
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(
                    f"training loss became {loss_value} at step {step + 1}; lower train.lr "
                    f"(now {t.lr}) or check the data for extreme values"
                )
            window_loss += loss_value
            window_steps += 1
            done = step + 1
            if done % 10 == 0 or done == t.steps:
                elapsed = time.perf_counter() - window_start
                rate = window_steps * tokens_per_step / max(elapsed, 1e-9)
                row = {
                    "step": done,
                    "loss": window_loss / window_steps,
                    "lr": lr,
                    "grad_norm": float(grad_norm),
                    "tokens_per_s": rate,
                    "elapsed_s": time.perf_counter() - began,
                }
                if done % t.eval_every == 0 or done == t.steps:
                    val_loss = evaluate()
                    row["val_loss"] = val_loss
                log.write(json.dumps(row) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{row['loss']:.4f}", tok_s=f"{rate:,.0f}", refresh=False)
                window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
            bar.update(1)
            if done % t.checkpoint_every == 0 and done < t.steps:
                state = {
                    "step": done,
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                }
                save_checkpoint(
                    run / "checkpoints" / f"step-{done:07d}", model, cfg, tokenizer, state
                )
                _prune(run / "checkpoints", t.keep_checkpoints)
    save_checkpoint(run / FINAL, model, cfg, tokenizer)
    wall = time.perf_counter() - began
    return TrainResult(
        run_dir=run,
        steps=t.steps,
        final_train_loss=loss_value,
        final_val_loss=val_loss,
        tokens_seen=(t.steps - start) * tokens_per_step,
        wall_time_s=wall,
        n_parameters=model.num_parameters(),
    )
