"""Diffusion budget on this machine: denoiser training steps/s and the time to sample 64
images of 64×64×3 (25 DDIM steps, classifier-free guidance, i.e. 2 network passes per
step), for the U-Net's channels-last activations (the default) and the standard layout,
measured alternately in one process so that the ratio survives a noisy shared machine.

Usage: generate_speed.py [CHANNELS e.g. 32,64,96] [--rounds N]"""

import argparse
import time

import torch

from astroloom.generate.denoiser import Denoiser
from astroloom.generate.pipeline import sample_unit
from astroloom.generate.schedule import CosineSchedule
from astroloom.generate.unet import UNet, UNetConfig

LAYOUTS = {"channels-last": torch.channels_last, "standard": torch.contiguous_format}


def train_rate(net: UNet, steps: int = 20) -> float:
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x, c = torch.randn(32, 3, 64, 64), torch.randn(32, 128)
    for i in range(steps + 3):
        if i == 3:
            began = time.perf_counter()
        t = torch.randint(1, 1001, (32,))
        loss = net(x, t, c).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - began)


def sample_seconds(net: UNet) -> float:
    den = Denoiser(net.eval(), CosineSchedule(), "v", [1, 1, 1], 1.0, None, None, {})
    began = time.perf_counter()
    sample_unit(den, torch.randn(64, 128), 64, steps=25, guidance=2.0)
    seconds = time.perf_counter() - began
    net.train()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("channels", nargs="?", default="32,64,96")
    parser.add_argument("--rounds", type=int, default=2, help="Alternations of the layouts.")
    args = parser.parse_args()
    channels = [int(c) for c in args.channels.split(",")]
    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = UNet(UNetConfig(cond_dim=128, channels=channels))
    seen: dict[str, list[tuple[float, float]]] = {name: [] for name in LAYOUTS}
    for _ in range(args.rounds):
        for name, layout in LAYOUTS.items():
            net.memory_format = layout
            seen[name].append((train_rate(net), sample_seconds(net)))
    print(f"channels {channels}: {net.num_parameters():,} parameters")
    for name, runs in seen.items():
        rate = sum(r for r, _ in runs) / len(runs)
        seconds = sum(s for _, s in runs) / len(runs)
        print(
            f"  {name}: train {rate:.2f} steps/s at batch 32 ({600 * rate:.0f} steps in 10 min); "
            f"sample 64 images, 25 DDIM steps with CFG: {seconds:.1f} s"
        )


if __name__ == "__main__":
    main()
