"""Which device a command runs on: the one choice that training, embedding and the
diffusion simulator share."""

from __future__ import annotations

import torch


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """auto (CUDA when present), cpu, cuda (this rank's GPU under torchrun) or cuda:N.
    A name that is none of these, or a GPU this machine lacks, is a ValueError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cpu" and name != "cuda" and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}: auto, cpu, cuda or cuda:N")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r}: auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r} asked for, but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device
