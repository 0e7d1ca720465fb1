"""The impact statement of a training run (the review's §10(b)): compute, energy, CO2e.

Energy is measured with codecarbon when it is installed and can read the hardware's
counters; otherwise it is estimated as device power × device-hours, and the assumed
power is written down beside the number. The review's worked examples are reproduced by
tests/test_impact.py:

* GPT-3: 3.14e23 FLOPs on 10,000 V100s at 2.8e13 FLOP/s and 300 W → ≈311 h,
  ≈933,000 kWh, ≈400,000 kg CO2e at 0.429 kg/kWh;
* PaLM: 378.5 W × (6144 × 1200 + 3072 × 336) chip-hours ≈ 3,180,000 kWh.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

# kg CO2e per kWh used by the review for its worked examples (US average).
DEFAULT_GRID_INTENSITY = 0.429

# Board power (W) of common accelerators, used when nothing measures it.
GPU_POWER_W = {
    "H200": 700.0,
    "H100": 700.0,
    "A100": 400.0,
    "V100": 300.0,
    "A10": 150.0,
    "L4": 72.0,
    "T4": 70.0,
}
# A server core under full load draws roughly this much; stated in every estimate.
CPU_POWER_PER_THREAD_W = 10.0


def training_hours(flops: float, n_devices: int, flops_per_device: float) -> float:
    """Wall-clock hours to do ``flops`` on ``n_devices`` each sustaining ``flops_per_device``."""
    return flops / (n_devices * flops_per_device) / 3600.0


def energy_kwh(power_w: float, device_hours: float) -> float:
    return power_w * device_hours / 1000.0


def co2e_kg(kwh: float, grid_intensity: float = DEFAULT_GRID_INTENSITY) -> float:
    return kwh * grid_intensity


def assumed_power(device: torch.device, threads: int) -> tuple[float, str]:
    """Power of the device(s) the run used and how that figure was chosen."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, watts in GPU_POWER_W.items():
            if key in name:
                return watts, f"{name}: board power {watts:.0f} W assumed for the whole run"
        return 300.0, f"{name}: unknown board, 300 W assumed"
    watts = CPU_POWER_PER_THREAD_W * threads
    return watts, f"CPU: {CPU_POWER_PER_THREAD_W:.0f} W per busy thread × {threads} threads assumed"


class EnergyMeter:
    """codecarbon's tracker when available, else a clock; ``stop()`` returns kWh or None."""

    def __init__(self) -> None:
        self.tracker = None
        self.began = time.perf_counter()
        if os.environ.get("ASTROLOOM_NO_CODECARBON"):
            return
        try:  # optional: measures RAPL/NVML counters where the machine exposes them
            from codecarbon import OfflineEmissionsTracker

            self.tracker = OfflineEmissionsTracker(
                country_iso_code="USA", save_to_file=False, log_level="error"
            )
            self.tracker.start()
        except Exception:  # noqa: BLE001 — any failure means "not measurable here"
            self.tracker = None

    def stop(self) -> tuple[float, float | None]:
        """(wall seconds, measured kWh or None)."""
        wall = time.perf_counter() - self.began
        if self.tracker is None:
            return wall, None
        try:
            self.tracker.stop()
            kwh = float(self.tracker.final_emissions_data.energy_consumed)
            return wall, kwh if kwh > 0 else None
        except Exception:  # noqa: BLE001
            return wall, None


@dataclass
class Impact:
    parameters: int
    tokens_seen: int
    flops: float
    wall_time_s: float
    device: str
    n_devices: int
    energy_kwh: float
    energy_method: str
    grid_intensity_kg_per_kwh: float
    co2e_kg: float
    assumptions: list[str] = field(default_factory=list)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


def run_impact(
    *,
    parameters: int,
    tokens_seen: int,
    flops: float,
    wall_time_s: float,
    measured_kwh: float | None,
    device: torch.device,
    n_devices: int,
    threads: int,
    grid_intensity: float,
    power_w: float = 0.0,
) -> Impact:
    assumptions = []
    if measured_kwh is not None:
        kwh, method = measured_kwh, "measured with codecarbon"
    else:
        if power_w > 0:
            watts, why = (
                power_w,
                f"{power_w:.0f} W per device, as configured (train.device_power_w)",
            )
        else:
            watts, why = assumed_power(device, threads)
        kwh = energy_kwh(watts * n_devices, wall_time_s / 3600.0)
        method = "estimated: device power × wall time"
        assumptions.append(why)
    assumptions.append(f"grid intensity {grid_intensity} kg CO2e/kWh (train.grid_intensity)")
    return Impact(
        parameters=parameters,
        tokens_seen=tokens_seen,
        flops=flops,
        wall_time_s=wall_time_s,
        device=str(device),
        n_devices=n_devices,
        energy_kwh=kwh,
        energy_method=method,
        grid_intensity_kg_per_kwh=grid_intensity,
        co2e_kg=co2e_kg(kwh, grid_intensity),
        assumptions=assumptions,
    )


def model_card(
    impact: Impact, cfg: dict[str, Any], data: dict[str, Any], losses: dict[str, Any]
) -> str:
    """A Markdown model card: what was trained on what, how well, and at what cost."""
    model, train = cfg["model"], cfg["train"]
    modalities = model.get("modalities", ["image"])
    if modalities == ["image"] and model.get("objective", "autoregressive") == "autoregressive":
        summary = "Self-supervised next-patch transformer trained with astroloom."
        inputs = [
            f"- input: {model['n_bands']}-band {model['image_size']}×{model['image_size']} images "
            f"as {model['patch_size']}×{model['patch_size']} patches in centre-out order, "
            "arcsinh stretch"
        ]
    else:
        summary = (
            f"Self-supervised multimodal transformer ({model['objective']} objective) trained "
            "with astroloom."
        )
        described = {
            "image": f"{model['n_bands']}-band images as {model['patch_size']}×"
            f"{model['patch_size']} patches placed by sky offset",
            "spectrum": f"spectra as {model['spectrum_patch']}-pixel patches placed by wavelength",
            "photometry": "catalogue fluxes, one token per band",
            "lightcurve": f"light curves, up to {model['lightcurve_tokens']} observations placed "
            "by time and band",
        }
        inputs = [f"- input: {described[m]}" for m in modalities]
    lines = [
        f"# Model card: {Path(cfg['out']).name}",
        "",
        summary,
        "",
        "## Model",
        f"- {model['n_layer']} layers, {model['n_head']} heads, width {model['n_embd']}; "
        f"{impact.parameters:,} parameters",
        *inputs,
        "",
        "## Data",
        f"- {data.get('name', '?')} at `{cfg['data']['path']}`: "
        f"{data.get('n_objects', '?')} objects, bands {data.get('bands', '?')}, "
        f"seed {data.get('seed', '?')}",
        "",
        "## Training",
        f"- {train['steps']} steps, batch {train['batch_size']}, lr {train['lr']} "
        f"(warmup {train['warmup_steps']}, cosine to {train['min_lr']})",
        f"- final training loss {losses.get('train')}, validation loss {losses.get('val')}",
        *[f"- validation loss, {m}: {v}" for m, v in losses.get("per_modality", {}).items()],
        "",
        "## Impact statement",
        f"- tokens seen: {impact.tokens_seen:,}; training compute ≈ {impact.flops:.3g} FLOPs",
        f"- wall time {impact.wall_time_s / 3600:.3f} h on {impact.n_devices} × {impact.device}",
        f"- energy {impact.energy_kwh:.4g} kWh ({impact.energy_method}); "
        f"{impact.co2e_kg:.4g} kg CO2e",
        *[f"- assumption: {a}" for a in impact.assumptions],
        "",
        "## Intended use and limits",
        "- Embeddings for probes, search and anomaly detection on data like the training set.",
        "- Not validated on data from other surveys, bands or pixel scales.",
        "",
    ]
    return "\n".join(lines)
