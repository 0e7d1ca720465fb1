"""The impact statement of a training run (the review's §10(b)): compute, energy, CO2e.

Energy is measured with codecarbon (a dependency) where it can read the hardware's energy
counters (Intel RAPL for CPUs, NVML for NVIDIA GPUs). The estimate — device power ×
device-hours, the assumed power written down beside it — is always computed too: it is the
headline figure where nothing could be measured, and the cross-check beside a measurement.
``impact.json`` records both and which one the headline is. The review's worked examples
are reproduced by tests/test_impact.py:

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


@dataclass
class Measurement:
    """What codecarbon reported: energy, and how it got it."""

    kwh: float
    how: str  # e.g. "RAPL counters (CPU), NVML (GPU)" or "codecarbon's TDP model (CPU)"
    counters: bool  # True when every component was read from hardware counters
    gpu_counters: bool = False  # the GPU(s) read through NVML, whatever the CPU's mode


def describe_codecarbon(tracker) -> tuple[str, bool, bool]:
    """How codecarbon measured each component: hardware counters, or its own model of
    power from the processor's TDP (which is an estimate, not a measurement). Returns
    (description, every component read from counters, a GPU read through NVML)."""
    parts, counters, gpu = [], True, False
    order = {"CPU": 0, "GPU": 1, "RAM": 2}
    hardware = sorted(
        getattr(tracker, "_hardware", []), key=lambda h: order.get(type(h).__name__, 3)
    )
    for hw in hardware:
        kind = type(hw).__name__
        mode = str(getattr(hw, "_mode", "") or getattr(hw, "mode", ""))
        if kind == "GPU":
            parts.append("NVML (GPU)")
            gpu = True
        elif kind == "CPU":
            if "rapl" in mode.lower() or "powergadget" in mode.lower().replace("_", ""):
                parts.append(f"{mode} counters (CPU)")
            else:
                parts.append(f"codecarbon's power model, mode {mode or 'unknown'} (CPU)")
                counters = False
        elif kind == "RAM":
            parts.append("codecarbon's RAM model")
    return ", ".join(parts) or "unknown", counters, gpu


class EnergyMeter:
    """codecarbon's tracker when it can run, else a clock; ``stop()`` returns the wall
    time and a :class:`Measurement` (or None)."""

    def __init__(self) -> None:
        self.tracker = None
        self.began = time.perf_counter()
        if os.environ.get("ASTROLOOM_NO_CODECARBON"):
            return
        try:  # measures RAPL/NVML counters where the machine exposes them
            import logging

            from codecarbon import OfflineEmissionsTracker

            # Quiet its start-up chatter (set after the import, which resets the level).
            logging.getLogger("codecarbon").setLevel(logging.ERROR)
            self.tracker = OfflineEmissionsTracker(
                country_iso_code="USA", output_methods=[], log_level="error"
            )
            self.tracker.start()
        except Exception:  # noqa: BLE001 — any failure means "not measurable here"
            self.tracker = None

    def stop(self) -> tuple[float, Measurement | None]:
        """(wall seconds, what codecarbon measured, or None)."""
        wall = time.perf_counter() - self.began
        if self.tracker is None:
            return wall, None
        try:
            self.tracker.stop()
            kwh = float(self.tracker.final_emissions_data.energy_consumed)
            how, counters, gpu = describe_codecarbon(self.tracker)
            return wall, Measurement(kwh, how, counters, gpu) if kwh > 0 else None
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
    energy_kwh: float  # the headline: measured where counters were read, else estimated
    energy_method: str
    grid_intensity_kg_per_kwh: float
    co2e_kg: float
    assumptions: list[str] = field(default_factory=list)
    energy_measured_kwh: float | None = None  # codecarbon's figure, when it ran
    energy_measured_how: str | None = None
    energy_estimated_kwh: float = 0.0  # device power × wall time, always

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


def run_impact(
    *,
    parameters: int,
    tokens_seen: int,
    flops: float,
    wall_time_s: float,
    measured: Measurement | float | None,
    device: torch.device,
    n_devices: int,
    threads: int,
    grid_intensity: float,
    power_w: float = 0.0,
) -> Impact:
    """The impact statement. ``measured`` is codecarbon's :class:`Measurement` (a bare
    number counts as read from counters). It is the headline when it was read from
    hardware counters; where codecarbon could only model the power (no counters readable,
    as in most containers), the estimate from the stated device power is the headline and
    codecarbon's figure stays beside it, since a model of a whole chip's TDP overstates a
    share of its cores. A GPU run whose GPUs NVML read is headlined by the reading too: the
    GPU draws most of the power, and board power × wall time overstated it 3.4× on an H200
    running the tiny model (docs/benchmarks.md, "On a GPU")."""
    if isinstance(measured, (int, float)):
        measured = Measurement(float(measured), "codecarbon", True)
    if power_w > 0:
        watts, why = power_w, f"{power_w:.0f} W per device, as configured (train.device_power_w)"
    else:
        watts, why = assumed_power(device, threads)
    estimated = energy_kwh(watts * n_devices, wall_time_s / 3600.0)
    assumptions = [f"estimate: {why}"]
    if measured is not None and measured.counters:
        kwh, method = measured.kwh, "measured with codecarbon"
    elif measured is not None and measured.gpu_counters and device.type == "cuda":
        kwh = measured.kwh
        method = "measured with codecarbon: GPU by NVML, CPU and RAM by its power model"
    else:
        kwh, method = estimated, "estimated: device power × wall time"
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
        energy_measured_kwh=None if measured is None else measured.kwh,
        energy_measured_how=None if measured is None else measured.how,
        energy_estimated_kwh=estimated,
    )


# Training-only terms a model card names when a run set them.
TRAINING_TERMS = {
    "invariance": "two views of each galaxy (turned, fresh noise) pulled together in "
    "embedding space",
    "align": "each galaxy's image-only and spectrum-only embeddings matched against the "
    "batch's others",
    "spectrum_shift": "the stretch between two redshifted views of each spectrum read "
    "back from their embeddings",
    "keep_shape": "each cutout's ellipticity, concentration and radius, measured on its own "
    "pixels, read back from its image embedding",
}


def model_card(
    impact: Impact, cfg: dict[str, Any], data: dict[str, Any], losses: dict[str, Any]
) -> str:
    """A Markdown model card: what was trained on what, how well, and at what cost."""
    model, train = cfg["model"], cfg["train"]
    modalities = model.get("modalities", ["image"])
    summary = (
        f"Self-supervised transformer over {', '.join(modalities)} ({model['objective']} "
        "objective) trained with astroloom."
    )
    context = "brightness and colours" if model.get("image_colours") else "brightness"
    described = {
        "image": f"{model['n_bands']}-band images as {model['patch_size']}×"
        f"{model['patch_size']} patches placed by sky offset"
        + (
            f", unit-free (the object's {context} as context)"
            if model.get("image_norm", "survey") == "object"
            else ""
        ),
        "spectrum": f"spectra as {model['spectrum_patch']}-pixel patches placed by wavelength"
        + (", unit-free" if model.get("spectrum_norm") == "object" else ""),
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
        f"- {data.get('name', '?')} at `{data.get('path', cfg['data']['path'])}`: "
        f"{data.get('n_objects', '?')} objects, bands {data.get('bands', '?')}, "
        f"seed {data.get('seed', '?')}",
        "",
        "## Training",
        f"- {train['steps']} steps, batch {train['batch_size']}, lr {train['lr']} "
        f"(warmup {train['warmup_steps']}, cosine to {train['min_lr']})",
        *(
            [
                f"- `model.keep_context = {list(model['keep_context'])}`: training-only heads "
                "read each object's context values back from its embedding"
            ]
            if model.get("keep_context")
            else []
        ),
        *(
            f"- `model.{key} = {model[key]}`: {what} while training"
            for key, what in TRAINING_TERMS.items()
            if model.get(key)
        ),
        f"- final training loss {losses.get('train')}, validation loss {losses.get('val')}",
        *[f"- validation loss, {m}: {v}" for m, v in losses.get("per_modality", {}).items()],
        "",
        "## Impact statement",
        f"- tokens seen: {impact.tokens_seen:,}; training compute ≈ {impact.flops:.3g} FLOPs",
        f"- wall time {impact.wall_time_s / 3600:.3f} h on {impact.n_devices} × {impact.device}",
        f"- energy {impact.energy_kwh:.4g} kWh ({impact.energy_method}); "
        f"{impact.co2e_kg:.4g} kg CO2e",
        (
            f"- codecarbon: {impact.energy_measured_kwh:.4g} kWh via "
            f"{impact.energy_measured_how}"
            if impact.energy_measured_kwh is not None
            else "- codecarbon: could not measure on this machine"
        ),
        f"- estimate from device power × wall time: {impact.energy_estimated_kwh:.4g} kWh",
        *[f"- assumption: {a}" for a in impact.assumptions],
        "",
        "## Intended use and limits",
        "- Embeddings for probes, search and anomaly detection on data like the training set.",
        "- Not validated on data from other surveys, bands or pixel scales.",
        "",
    ]
    return "\n".join(lines)
