"""Whole-model weights and optimizer state from a model that may be sharded (FSDP): what a
checkpoint needs, gathered the same way whether one process or many trained it."""

from __future__ import annotations

import torch


def full_state_dict(model: torch.nn.Module, sharded: bool = False) -> dict[str, torch.Tensor]:
    """The whole model's weights on the CPU; under FSDP gathered from every rank (a
    collective: every rank calls it, rank 0 receives the tensors)."""
    if not sharded:
        return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def optimizer_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, sharded: bool
) -> dict:
    if not sharded:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict, sharded: bool
) -> None:
    if not sharded:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    # Not strict: a parameter no step has used yet (the mask token after only
    # autoregressive steps) has no optimizer state to restore, as in the plain optimizer.
    set_optimizer_state_dict(
        model, optimizer, state, options=StateDictOptions(full_state_dict=True, strict=False)
    )
