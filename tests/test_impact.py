import json

import pytest
import torch

from astroloom.train.impact import (
    Measurement,
    co2e_kg,
    energy_kwh,
    run_impact,
    training_hours,
)


def test_review_gpt3_example():
    hours = training_hours(3.14e23, n_devices=10_000, flops_per_device=2.8e13)
    assert hours == pytest.approx(311, rel=0.005)
    kwh = energy_kwh(300.0 * 10_000, hours)
    assert kwh == pytest.approx(933_000, rel=0.005)
    assert co2e_kg(kwh, 0.429) == pytest.approx(400_000, rel=0.005)


def test_review_palm_example():
    chip_hours = 6144 * 1200 + 3072 * 336
    assert energy_kwh(378.5, chip_hours) == pytest.approx(3_180_000, rel=0.001)


def test_estimate_states_its_assumptions():
    impact = run_impact(
        parameters=10,
        tokens_seen=100,
        flops=6e3,
        wall_time_s=3600.0,
        measured=None,
        device=torch.device("cpu"),
        n_devices=1,
        threads=2,
        grid_intensity=0.2,
    )
    assert impact.energy_kwh == pytest.approx(0.020)  # 2 threads × 10 W × 1 h
    assert impact.co2e_kg == pytest.approx(0.004)
    assert "estimated" in impact.energy_method
    assert any("10 W per busy thread" in a for a in impact.assumptions)
    assert impact.energy_measured_kwh is None and impact.energy_estimated_kwh == impact.energy_kwh
    configured = run_impact(
        parameters=10,
        tokens_seen=100,
        flops=6e3,
        wall_time_s=1800.0,
        measured=None,
        device=torch.device("cpu"),
        n_devices=2,
        threads=2,
        grid_intensity=0.4,
        power_w=100.0,
    )
    assert configured.energy_kwh == pytest.approx(0.1)  # 2 devices × 100 W × 0.5 h
    measured = run_impact(
        parameters=10,
        tokens_seen=100,
        flops=6e3,
        wall_time_s=10.0,
        measured=0.5,
        device=torch.device("cpu"),
        n_devices=1,
        threads=2,
        grid_intensity=0.4,
    )
    assert measured.energy_kwh == 0.5 and measured.energy_method == "measured with codecarbon"
    # Both figures are kept: the estimate for 10 s of 2 threads at 10 W beside the reading.
    assert measured.energy_estimated_kwh == pytest.approx(20 * 10 / 3600 / 1000)
    # codecarbon without hardware counters only models power: the estimate stays headline.
    modelled = run_impact(
        parameters=10,
        tokens_seen=100,
        flops=6e3,
        wall_time_s=3600.0,
        measured=Measurement(0.09, "codecarbon's power model, mode cpu_load (CPU)", False),
        device=torch.device("cpu"),
        n_devices=1,
        threads=2,
        grid_intensity=0.4,
    )
    assert modelled.energy_kwh == pytest.approx(0.020) and "estimated" in modelled.energy_method
    assert modelled.energy_measured_kwh == 0.09 and "cpu_load" in modelled.energy_measured_how
    # On a GPU read through NVML the reading is the headline, though the CPU is modelled:
    # board power × wall time assumes a busy GPU all along (an H200 reads 700 W of it).
    reading = Measurement(0.0027, "cpu_load (CPU), NVML (GPU), codecarbon's RAM model", False, True)
    args = dict(parameters=10, tokens_seen=100, flops=6e3, wall_time_s=48.0, n_devices=1)
    args.update(threads=16, grid_intensity=0.4, power_w=700.0)
    on_gpu = run_impact(measured=reading, device=torch.device("cuda", 0), **args)
    assert on_gpu.energy_kwh == 0.0027 and "GPU by NVML" in on_gpu.energy_method
    assert on_gpu.energy_estimated_kwh == pytest.approx(700 * 48 / 3600 / 1000)
    # The same reading on a CPU run (a GPU sat idle beside it) does not headline it.
    on_cpu = run_impact(measured=reading, device=torch.device("cpu"), **args)
    assert "estimated" in on_cpu.energy_method


def test_every_run_writes_impact_and_model_card(trained_run):
    impact = json.loads((trained_run / "impact.json").read_text())
    rows = [json.loads(x) for x in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert impact["tokens_seen"] == 150 * 16 * 64
    assert impact["flops"] > 6 * impact["parameters"] * impact["tokens_seen"]
    assert 0 < impact["wall_time_s"] and impact["energy_kwh"] > 0
    assert impact["co2e_kg"] == pytest.approx(impact["energy_kwh"] * 0.429)
    assert all(0 < r["mfu"] < 1 for r in rows)
    card = (trained_run / "MODEL_CARD.md").read_text()
    assert "## Impact statement" in card and f"{impact['parameters']:,} parameters" in card
    assert "unit-free (the object's brightness as context)" in card
    assert "keep_context" not in card  # none kept in this run


def test_the_peak_is_measured_again_and_only_rises(mock_dir, tmp_path, monkeypatch):
    """A box that speeds up mid-run: the peak is re-measured every PEAK_EVERY steps, a
    higher figure replaces it (and is logged), a lower one does not, and every row's MFU
    is its throughput against the peak in force."""
    from conftest import tiny_config

    from astroloom.train import loop

    figures = iter([1e9, 4e9, 2e9])  # start, step 10, step 20
    monkeypatch.setattr(loop, "measure_matmul_peak", lambda device, seconds=0.3: next(figures))
    monkeypatch.setattr(loop, "PEAK_EVERY", 10)
    loop.train(tiny_config(mock_dir, tmp_path / "run", 30), progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert [r.get("peak_flops") for r in rows] == [1e9, 4e9, None]
    flops = rows[0]["mfu"] * 1e9 / rows[0]["tokens_per_s"]
    for row, peak in zip(rows, [1e9, 4e9, 4e9], strict=True):
        assert row["mfu"] == pytest.approx(row["tokens_per_s"] * flops / peak, rel=1e-9)

