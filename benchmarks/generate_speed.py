"""Diffusion budget on this machine: denoiser training steps/s and the time to sample 64
images of 64×64×3 (25 DDIM steps, classifier-free guidance, i.e. 2 network passes per
step). Usage: generate_speed.py [CHANNELS e.g. 32,64,96]"""

import sys
import time

import torch

from astroloom.generate.denoiser import Denoiser
from astroloom.generate.pipeline import sample_unit
from astroloom.generate.schedule import CosineSchedule
from astroloom.generate.unet import UNet, UNetConfig


def main() -> None:
    channels = [int(c) for c in (sys.argv[1] if len(sys.argv) > 1 else "32,64,96").split(",")]
    torch.set_num_threads(2)
    net = UNet(UNetConfig(cond_dim=128, channels=channels))
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x, c = torch.randn(32, 3, 64, 64), torch.randn(32, 128)
    for i in range(23):
        if i == 3:
            began = time.perf_counter()
        t = torch.randint(1, 1001, (32,))
        loss = net(x, t, c).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    rate = 20 / (time.perf_counter() - began)
    den = Denoiser(net.eval(), CosineSchedule(), "v", [1, 1, 1], 1.0, None, None, {})
    began = time.perf_counter()
    sample_unit(den, torch.randn(64, 128), 64, steps=25, guidance=2.0)
    seconds = time.perf_counter() - began
    print(
        f"channels {channels}: {net.num_parameters():,} parameters; train {rate:.2f} "
        f"steps/s at batch 32 ({600 * rate:.0f} steps in 10 min); sample 64 images, "
        f"25 DDIM steps with CFG: {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
