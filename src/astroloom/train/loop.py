"""The one training loop: single process or DDP under torchrun, gradient accumulation,
AdamW with warmup + cosine, clipping, metrics.jsonl, atomic checkpoints, exact resume and
an impact statement.

Every rank draws the same global batch from the same seeded generator and keeps its own
contiguous slice, so N ranks together see exactly the batch one process would, and the
loss is normalised by the whole batch's count of valid values: the gradients equal the
single-process ones (tests/test_distributed.py checks this under torchrun).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from astroloom.config import ConfigError, RunConfig, model_differences
from astroloom.data.schema import DataError
from astroloom.model.checkpoint import (
    FINAL,
    CheckpointError,
    find_checkpoint,
    latest_step_checkpoint,
    load_checkpoint,
    load_train_state,
    load_weights,
    save_checkpoint,
)
from astroloom.model.device import pick_device
from astroloom.model.multimodal import build_model
from astroloom.paths import record_path
from astroloom.train.impact import EnergyMeter, model_card, run_impact
from astroloom.train.sharding import full_state_dict, load_optimizer_state, optimizer_state
from astroloom.train.tasks import MultimodalTask, StreamingTask, make_task


def learning_rate(step: int, cfg: RunConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``min_lr`` at the last step."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@dataclass(frozen=True)
class Ranks:
    """Where this process sits in a torchrun job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1  # ranks on this node

    @classmethod
    def from_env(cls) -> Ranks:
        world = int(os.environ.get("WORLD_SIZE", 1))
        return cls(
            rank=int(os.environ.get("RANK", 0)),
            world=world,
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
            local_world=int(os.environ.get("LOCAL_WORLD_SIZE", world)),
        )

    @property
    def nodes(self) -> int:
        return max(1, self.world // max(1, self.local_world))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch."""
        per_rank = len(batch) // self.world
        return batch[self.rank * per_rank : (self.rank + 1) * per_rank]


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    # Matrices decay; biases, norms and the learned start and mask tokens do not (as nanoGPT).
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


PEAK_EVERY = 100  # steps between measurements of the job's matmul peak


def job_peak(device: torch.device, ranks: Ranks, seconds: float = 0.3) -> float:
    """The matmul peak of the hardware the whole job runs on, measured the way the run uses
    it: every rank measures at the same moment (after a barrier), with the threads it
    trains with, so ranks sharing a node share its cores as they do in training; the
    ranks' figures are summed. MFU = tokens/s × FLOPs per token / this; it cannot exceed 1
    as a per-rank peak measured on a node the other ranks leave idle let it do."""
    if ranks.world > 1:
        dist.barrier()
    peak = torch.tensor([measure_matmul_peak(device, seconds)], device=device)
    if ranks.world > 1:
        dist.all_reduce(peak)  # gloo on the CPU, nccl on the GPU: the tensor lives there
    return float(peak)


def measure_matmul_peak(device: torch.device, seconds: float = 0.3) -> float:
    """Sustained FLOP/s of a large matmul in the training dtype: the denominator of MFU.
    The best of three windows, so that a moment's contention from another process on a
    shared machine does not pass for the hardware's peak."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = 4096 if device.type == "cuda" else 512
    # Its own generator: measuring mid-run must not move the training's random stream.
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    (a @ b).sum().item()
    best = 0.0
    for _ in range(3):
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            a @ b
            reps += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = max(best, 2.0 * n**3 * reps / (time.perf_counter() - start))
    return best


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.AdamW:
    """AdamW, fused where this torch build has the kernel (CUDA, and CPU since torch 2.4:
    measured 7.8 → 2.1 ms per step for the small model)."""
    t = cfg.train
    groups = _param_groups(model, t.weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2))


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    final_train_loss: float
    final_val_loss: float | None
    tokens_seen: int
    wall_time_s: float
    n_parameters: int
    # Distinct tokens one pass over the training objects shows (training objects × their
    # mean tokens): tokens_seen / unique_tokens is the number of epochs.
    unique_tokens: int = 0


def _prune(checkpoints: Path, keep: int) -> None:
    done = sorted(p for p in checkpoints.glob("step-*[0-9]") if p.is_dir())
    for old in done[:-keep]:
        shutil.rmtree(old)


def _wrap_distributed(model: torch.nn.Module, cfg: RunConfig, device: torch.device, ranks: Ranks):
    """DDP (replicated weights) or FSDP (sharded weights, gradients and optimizer state)."""
    if ranks.world == 1:
        return model
    if cfg.train.parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        return fully_shard(model)
    return torch.nn.parallel.DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        # No parameter is left out of a step's graph: the model adds every idle one with a
        # zero weight (MultimodalModel.forward), so DDP need not search for unused ones.
        find_unused_parameters=False,
    )


def _no_sync(net: torch.nn.Module, sync: bool):
    if sync:
        return nullcontext()
    if hasattr(net, "no_sync"):
        return net.no_sync()
    if hasattr(net, "set_requires_gradient_sync"):  # FSDP2
        net.set_requires_gradient_sync(False)
    return nullcontext()


def start_from(model: torch.nn.Module, cfg: RunConfig, run: str):
    """Load another run's weights into ``model`` for continued pretraining; return its
    tokenizer. Refused, naming each difference, when the two models' shapes or modalities
    disagree."""
    base, base_cfg, tokenizer = load_checkpoint(run)
    source = find_checkpoint(run).resolve()
    if Path(cfg.out).resolve() in (source, source.parent):
        raise ConfigError(
            f"train.init={run!r}: out={cfg.out!r} is that run's own folder; continued "
            "pretraining writes a new run (--set out=runs/NEW)"
        )
    differences = model_differences(base_cfg.model, cfg.model)
    if differences:
        raise ConfigError(
            f"train.init={run!r} cannot start this run: its model differs in "
            + "; ".join(differences)
            + f". Copy its [model] settings (they are in {find_checkpoint(run)}/config.json)"
        )
    # The context read-outs (model.keep_context) are training aids, not part of what the
    # base run learned: a head the base lacks starts fresh, one this run lacks is dropped.
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    stray = [k for k in (*missing, *unexpected) if not k.startswith("context_heads.")]
    if stray:
        raise ConfigError(f"train.init={run!r}: weights that do not match this model: {stray[:5]}")
    return tokenizer


def train(cfg: RunConfig, progress: bool = True, resume: bool = False) -> TrainResult:
    """Pretrain the model described by ``cfg``; returns where it went and how."""
    cfg.validate()
    t = cfg.train
    ranks = Ranks.from_env()
    if t.batch_size % (ranks.world * t.grad_accum_steps):
        raise DataError(
            f"train.batch_size ({t.batch_size}) must be divisible by ranks × grad_accum_steps "
            f"({ranks.world} × {t.grad_accum_steps})"
        )
    device = pick_device(t.device, ranks.local_rank)
    threads = t.threads or max(1, (os.cpu_count() or 1) // ranks.world)
    torch.set_num_threads(threads)
    if ranks.world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(t.seed)
    meter = EnergyMeter() if ranks.main else None

    model = build_model(cfg.model)
    init_tokenizer = None
    if t.init:
        init_tokenizer = start_from(model, cfg, t.init)
    model = model.to(device)
    model.activation_checkpointing = t.activation_checkpointing
    task = make_task(cfg, model, init_tokenizer, ranks.rank, ranks.world)
    task.device = device
    train_idx, val_idx = task.split(cfg.data.val_fraction, t.seed)
    if len(train_idx) == 0 and not task.streaming:
        raise DataError(f"{cfg.data.path} has no objects left for training after the split")

    # In memory every rank draws the same global batch and keeps its slice; streamed, each
    # rank reads its own objects and draws its own plans.
    generator = torch.Generator().manual_seed(t.seed + (7919 * ranks.rank if task.streaming else 0))
    start = 0
    run = Path(cfg.out)
    metrics_path = run / "metrics.jsonl"
    resume_state = None
    if resume:
        ckpt = latest_step_checkpoint(run)
        if ckpt is None:
            raise CheckpointError(f"--resume: {run} has no step checkpoint to resume from")
        load_weights(model, ckpt / "model.safetensors")
        resume_state = load_train_state(ckpt)
        start = int(resume_state["step"])
        if task.streaming:
            restore_stream(task, resume_state, ranks, generator)
        elif "streams" in resume_state:
            raise CheckpointError(
                f"{ckpt} was written by a run that streamed its data; resume it with "
                "data.stream = true"
            )
        else:
            generator.set_state(resume_state["generator"])
            torch.set_rng_state(resume_state["torch_rng"])
    if ranks.main:
        run.mkdir(parents=True, exist_ok=True)
        if resume and metrics_path.exists():
            # Forget what was logged after the checkpoint, so no step appears twice.
            rows = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()]
            kept = "".join(json.dumps(r) + "\n" for r in rows if r["step"] <= start)
            metrics_path.write_text(kept)
        elif not resume:
            metrics_path.write_text("")
        cfg.save(run / "config.json")
    net = _wrap_distributed(model, cfg, device, ranks)
    sharded = ranks.world > 1 and t.parallel == "fsdp"
    optimizer = make_optimizer(model, cfg)
    if resume_state is not None:
        load_optimizer_state(model, optimizer, resume_state["optimizer"], sharded)

    if t.compile:
        net = torch.compile(net)
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    train_idx_t = torch.from_numpy(train_idx)
    # A seeded sample of the held-out objects, not the first ones: shards are grouped by
    # kind (galaxies, then stars), and every kind should be in the validation loss.
    val_sample = np.random.default_rng(t.seed).permutation(val_idx)[: t.eval_batches * t.batch_size]
    val_batches = torch.from_numpy(np.sort(val_sample))

    @torch.no_grad()
    def evaluate() -> tuple[float | None, dict[str, float]]:
        """Validation loss: each modality's mean error, then their mean; plans drawn from
        a fixed seed so that every evaluation asks the same questions."""
        if len(val_batches) == 0:
            return None, {}
        model.eval()
        sums: dict[str, list[float]] = {}
        fixed = torch.Generator().manual_seed(t.seed + 12345)
        for chunk in val_batches.split(t.batch_size):
            with amp:
                errors = task.errors(
                    net if sharded else model,
                    task.draw(chunk, fixed, augment=False),
                    t.huber_delta,
                )
            for m, (e, c) in errors.items():
                acc = sums.setdefault(m, [0.0, 0.0])
                acc[0], acc[1] = acc[0] + float(e), acc[1] + float(c)
        model.train()
        per = {m: e / c for m, (e, c) in sums.items() if c > 0}
        return (sum(per.values()) / len(per) if per else None), per

    flops_per_token = model.flops_per_token(round(task.mean_tokens))
    peak = job_peak(device, ranks)
    micro = t.batch_size // (ranks.world * t.grad_accum_steps)
    per_rank = t.batch_size // ranks.world
    model.train()
    began = time.perf_counter()
    window: dict[str, float] = {}
    window_steps, window_tokens, window_start = 0, 0, time.perf_counter()
    loss_value, val_loss, val_per, tokens_seen = float("nan"), None, {}, 0
    log = metrics_path.open("a") if ranks.main else None
    logged_peak = False  # the first logged row carries the job's measured peak (and the
    # first row after a higher one is measured)
    bar = tqdm(
        total=t.steps,
        initial=start,
        desc="train",
        unit="step",
        disable=not (progress and ranks.main),
    )
    for step in range(start, t.steps):
        lr = learning_rate(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        n_chunks = t.grad_accum_steps
        if task.streaming:
            parts = [task.next_batch(generator) for _ in range(n_chunks)]
            norms, n_tok = streamed_norms(task, parts, ranks, device)
        else:
            pick = train_idx_t[
                torch.randint(len(train_idx_t), (t.batch_size,), generator=generator)
            ]
            batch = task.draw(pick, generator)
            norms, n_tok = task.norms(batch), task.n_tokens(batch)
            parts = [
                task.take(batch, slice(lo, lo + micro))
                for lo in (ranks.rank * per_rank + k * micro for k in range(n_chunks))
            ]
        # Each micro-batch's loss is its error sum over the whole global batch's count, and
        # DDP averages over ranks, hence the × world: the sum of gradients is the batch mean's.
        optimizer.zero_grad(set_to_none=True)
        step_error = {m: torch.zeros((), device=device) for m in norms}
        step_count = {m: torch.zeros((), device=device) for m in norms}
        for k, part in enumerate(parts):
            sync = k == n_chunks - 1 or ranks.world == 1
            with _no_sync(net, sync), amp:
                errors = task.errors(net, part, t.huber_delta)
                loss = sum(errors[m][0] * (ranks.world / norms[m]) for m in norms if m in errors)
                loss.backward()
            for m in norms:
                if m in errors:
                    step_error[m] += errors[m][0].detach()
                    step_count[m] += errors[m][1].detach()
        if sharded and hasattr(net, "set_requires_gradient_sync"):
            net.set_requires_gradient_sync(True)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        if hasattr(grad_norm, "full_tensor"):  # FSDP: a distributed tensor
            grad_norm = grad_norm.full_tensor()
        optimizer.step()
        names = sorted(norms)
        totals = torch.stack([step_error[m] for m in names] + [step_count[m] for m in names])
        if ranks.world > 1:
            dist.all_reduce(totals)
        errs, counts = totals[: len(names)].tolist(), totals[len(names) :].tolist()
        loss_value = sum(e / norms[m] for m, e in zip(names, errs, strict=True))
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"training loss became {loss_value} at step {step + 1}; lower train.lr "
                f"(now {t.lr}) or check the data for extreme values"
            )
        window["loss"] = window.get("loss", 0.0) + loss_value
        for m, e, c in zip(names, errs, counts, strict=True):
            window[f"loss_{m}"] = window.get(f"loss_{m}", 0.0) + e / max(c, 1.0)
        window_steps += 1
        window_tokens += n_tok
        tokens_seen += n_tok
        done = step + 1
        if done % 10 == 0 or done == t.steps:
            evaluate_now = done % t.eval_every == 0 or done == t.steps
            if ranks.main:
                elapsed = time.perf_counter() - window_start
                rate = window_tokens / max(elapsed, 1e-9)
                row = {
                    "step": done,
                    **({"peak_flops": peak} if not logged_peak else {}),
                    **{k: v / window_steps for k, v in window.items()},
                    "lr": lr,
                    "grad_norm": float(grad_norm),
                    "tokens_per_s": rate,
                    "mfu": rate * flops_per_token / peak,
                    "elapsed_s": time.perf_counter() - began,
                }
                if evaluate_now:
                    val_loss, val_per = evaluate()
                    row["val_loss"] = val_loss
                    row.update({f"val_loss_{m}": v for m, v in val_per.items()})
                log.write(json.dumps(row) + "\n")
                logged_peak = True
                log.flush()
                bar.set_postfix(
                    loss=f"{row['loss']:.4f}",
                    tok_s=f"{rate:,.0f}",
                    mfu=f"{row['mfu']:.1%}",
                    refresh=False,
                )
            elif evaluate_now and sharded:
                evaluate()  # every rank joins the sharded forward passes
            if done % PEAK_EVERY == 0 and done < t.steps:
                # A shared machine's speed drifts: measured only at the start, the peak
                # let the demo's MFU read 130 % once the box sped up. Every rank measures
                # again at the same step (outside the timed window); the peak only rises,
                # and the next row records it.
                again = job_peak(device, ranks)
                if again > peak:
                    peak, logged_peak = again, False
            window, window_steps, window_tokens = {}, 0, 0
            window_start = time.perf_counter()
        bar.update(1)
        if done % t.checkpoint_every == 0 and done < t.steps:
            weights = full_state_dict(model, sharded)
            opt_state = optimizer_state(model, optimizer, sharded)
            streams = stream_states(task, ranks, generator)
            if ranks.main:
                state = {
                    "step": done,
                    "optimizer": opt_state,
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    **({"streams": streams} if streams is not None else {}),
                }
                save_checkpoint(
                    run / "checkpoints" / f"step-{done:07d}",
                    weights,
                    cfg,
                    task.tokenizer,
                    state,
                )
                _prune(run / "checkpoints", t.keep_checkpoints)
            if ranks.world > 1:
                dist.barrier()
    bar.close()
    wall = time.perf_counter() - began
    weights = full_state_dict(model, sharded)
    n_parameters = model.num_parameters()  # a sharded tensor counts its global size
    if ranks.main:
        log.close()
        save_checkpoint(run / FINAL, weights, cfg, task.tokenizer)
        wall, measured = meter.stop()
        impact = run_impact(
            parameters=n_parameters,
            tokens_seen=tokens_seen,
            flops=flops_per_token * tokens_seen,
            wall_time_s=wall,
            measured=measured,
            device=device,
            # On CPUs a "device" is a node and its busy cores are what every rank there
            # uses, never more than the node has; on GPUs, one device per rank.
            n_devices=ranks.nodes if device.type == "cpu" else ranks.world,
            threads=min(threads * ranks.local_world, os.cpu_count() or threads),
            grid_intensity=t.grid_intensity,
            power_w=t.device_power_w,
        )
        impact.save(run / "impact.json")
        data_meta = {
            "name": task.info.name,
            # Relative to the run (astroloom.paths): the card reads true wherever it is opened.
            "path": record_path(cfg.data.path, run),
            "n_objects": task.n_objects,
            "bands": task.info.image.bands,
            "modalities": list(cfg.model.modalities),
            "seed": task.info.seed,
        }
        losses = {
            "train": round(loss_value, 5),
            "val": None if val_loss is None else round(val_loss, 5),
        }
        losses["per_modality"] = {m: round(v, 5) for m, v in val_per.items()}
        (run / "MODEL_CARD.md").write_text(model_card(impact, cfg.to_dict(), data_meta, losses))
    if ranks.world > 1:
        dist.barrier()
    return TrainResult(
        run_dir=run,
        steps=t.steps,
        final_train_loss=loss_value,
        final_val_loss=val_loss,
        tokens_seen=tokens_seen,
        wall_time_s=wall,
        n_parameters=n_parameters,
        unique_tokens=int(round(task.mean_tokens * n_training_objects(task, train_idx))),
    )


def n_training_objects(task: MultimodalTask, train_idx: np.ndarray) -> int:
    """Objects one epoch shows; streamed, the dataset's count less the held-out share (the
    split is by hash, so the share is expected, not counted)."""
    if task.streaming:
        return int(round(task.n_objects * (1 - task.feed.stream.val_fraction)))
    return len(train_idx)


def streamed_norms(
    task: StreamingTask, parts: list, ranks: Ranks, device: torch.device
) -> tuple[dict[str, float], int]:
    """The loss normalisers of a streamed step and its token count: each rank holds only
    its own micro-batches, so the counts are summed over them and then over ranks (in a
    fixed modality order, so every rank holds the same normalisers)."""
    names = list(task.tokenizer.modalities)
    counts = torch.zeros(len(names) + 1, dtype=torch.float64)
    for tokens, plan in parts:
        c = task.model.target_counts(tokens, plan)
        counts[: len(names)] += torch.tensor([c.get(m, 0.0) for m in names], dtype=torch.float64)
        counts[-1] += task.n_tokens((tokens, plan))
    if ranks.world > 1:
        counts = counts.to(device)
        dist.all_reduce(counts)
        counts = counts.cpu()
    active = [m for m, c in zip(names, counts[:-1].tolist(), strict=True) if c > 0]
    return {m: float(counts[names.index(m)]) * len(active) for m in active}, int(counts[-1])


def stream_states(
    task: MultimodalTask, ranks: Ranks, generator: torch.Generator
) -> list[dict] | None:
    """Every rank's stream position and random state (rank 0 receives them): a collective
    when ranks > 1, so every rank calls it."""
    if not task.streaming:
        return None
    mine = {
        "feed": task.feed.state(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    if ranks.world == 1:
        return [mine]
    gathered: list = [None] * ranks.world
    dist.all_gather_object(gathered, mine)
    return gathered


def restore_stream(
    task: StreamingTask, state: dict, ranks: Ranks, generator: torch.Generator
) -> None:
    streams = state.get("streams")
    if streams is None:
        raise CheckpointError(
            "the checkpoint was written by a run that held its data in memory; resume it "
            "with data.stream = false"
        )
    if len(streams) != ranks.world:
        raise CheckpointError(
            f"the run streamed on {len(streams)} ranks; resume it on the same number "
            f"(now {ranks.world})"
        )
    mine = streams[ranks.rank]
    task.feed.load_state(mine["feed"])
    generator.set_state(mine["generator"])
    torch.set_rng_state(mine["torch_rng"])
