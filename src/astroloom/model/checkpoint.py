"""Checkpoints as files: safetensors weights, JSON config and tokenizer, no pickle.

A checkpoint is a directory::

    model.safetensors   weights
    config.json         the full run config
    tokenizer.json      each modality's normalisation the weights were trained with
    train_state.pt      optimizer/schedule state (tensors and numbers; weights_only load)

It is written under a temporary name and renamed, so a killed run never leaves a
half-written checkpoint that looks complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from astroloom.config import ConfigError, RunConfig, config_from_json
from astroloom.model.multimodal import MultimodalModel, build_model
from astroloom.tokenize.multimodal import MultimodalTokenizer

Model = MultimodalModel
Tokenizer = MultimodalTokenizer


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or does not fit the model asked for."""


FINAL = "final"


def save_checkpoint(
    directory: str | Path,
    model: torch.nn.Module | dict[str, torch.Tensor],
    cfg: RunConfig,
    tokenizer: Tokenizer,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write weights (a model or its full state dict), config, tokenizer and train state."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = model if isinstance(model, dict) else model.state_dict()
    state = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
    cfg.save(tmp / "config.json")
    tokenizer.save(tmp / "tokenizer.json")
    if train_state is not None:
        torch.save(train_state, tmp / "train_state.pt")
    if directory.exists():
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old)
    else:
        tmp.rename(directory)
    return directory


def load_weights(model: Model, path: str | Path) -> None:
    """Load safetensors weights into ``model``, naming any tensor whose shape differs."""
    path = Path(path)
    try:
        state = load_file(path)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"cannot read weights {path}: {err}") from err
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match this model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{path}: tensor {name!r} has shape {tuple(tensor.shape)} but the model "
                f"(n_layer={model.cfg.n_layer}, n_embd={model.cfg.n_embd}, "
                f"patch_dim={model.cfg.patch_dim}, modalities={model.cfg.modalities}) "
                f"needs {tuple(expected[name].shape)}; "
                "the checkpoint was trained with a different model shape"
            )
    model.load_state_dict(state)


def latest_step_checkpoint(run: str | Path) -> Path | None:
    """The newest complete ``checkpoints/step-N`` of a run (temporary ones never match)."""
    steps = sorted(Path(run, "checkpoints").glob("step-*[0-9]"))
    complete = [s for s in steps if (s / "model.safetensors").is_file()]
    return complete[-1] if complete else None


def find_checkpoint(run_or_checkpoint: str | Path) -> Path:
    """Resolve a run directory to its final checkpoint, else its newest step checkpoint. A
    name that is not on disk is a model name: shipped with astroloom or on the Hub."""
    from astroloom.model.hub import resolve_model  # hub → checkpoint errors, not the reverse

    path = resolve_model(run_or_checkpoint)
    if (path / "model.safetensors").is_file():
        return path
    if (path / FINAL / "model.safetensors").is_file():
        return path / FINAL
    latest = latest_step_checkpoint(path)
    if latest is not None:
        return latest
    raise CheckpointError(
        f"no checkpoint found in {path} (looked for model.safetensors, {FINAL}/, checkpoints/)"
    )


def load_checkpoint(
    run_or_checkpoint: str | Path, map_location: str = "cpu"
) -> tuple[Model, RunConfig, Tokenizer]:
    """Rebuild the model from its config and weights; never unpickles code."""
    ckpt = find_checkpoint(run_or_checkpoint)
    try:
        cfg = config_from_json(ckpt / "config.json")
    except (ConfigError, OSError, ValueError) as err:
        raise CheckpointError(f"{ckpt}/config.json is unusable: {err}") from err
    try:
        kind = json.loads((ckpt / "tokenizer.json").read_text()).get("kind")
        if kind == "image":
            raise legacy_gpt_error(ckpt)
        tokenizer = MultimodalTokenizer.load(ckpt / "tokenizer.json")
    except CheckpointError:
        raise
    except (OSError, ValueError, TypeError) as err:
        raise CheckpointError(f"{ckpt}/tokenizer.json is unusable: {err}") from err
    model = build_model(cfg.model)
    load_weights(model, ckpt / "model.safetensors")
    return model.to(map_location).eval(), cfg, tokenizer


def legacy_gpt_error(ckpt: Path) -> CheckpointError:
    """What to do with a checkpoint of the separate image-only GPT of astroloom 0.1."""
    return CheckpointError(
        f"{ckpt} holds an image-only GPT checkpoint written by astroloom 0.1 (tokenizer kind "
        "'image', a learned position table). astroloom now builds one model for every list of "
        "modalities, with physical-coordinate positions, so these weights cannot be mapped onto "
        "it. Retrain with the same settings (its config.json is a valid config): "
        f"`astroloom train {ckpt / 'config.json'} --set out=NEW_RUN`"
    )


def load_train_state(checkpoint: str | Path) -> dict[str, Any]:
    path = Path(checkpoint) / "train_state.pt"
    if not path.is_file():
        raise CheckpointError(f"{checkpoint} has no train_state.pt to resume from")
    return torch.load(path, map_location="cpu", weights_only=True)
