import json

import numpy as np
import pytest
from conftest import MULTIMODAL, tiny_config
from typer.testing import CliRunner

from astroloom.cli import app
from astroloom.config import ConfigError
from astroloom.model.multimodal import MultimodalModel
from astroloom.scaling import sweep as sweep_module
from astroloom.scaling.fit import bootstrap_fit, fit_law
from astroloom.scaling.law import PUBLISHED, ScalingLaw, loss_table
from astroloom.scaling.sweep import read_sweep, repeated_runs, run_sweep


@pytest.mark.parametrize(
    ("n", "d", "model_term", "data_term", "total"),
    [
        (175e9, 300e9, 0.061, 0.251, 2.002),  # GPT-3
        (70e9, 1.4e12, None, None, 1.936),  # Chinchilla
        (540e9, 780e9, None, None, 1.924),  # PaLM
    ],
)
def test_review_fig26_values(n, d, model_term, data_term, total):
    assert PUBLISHED.loss(n, d) == pytest.approx(total, abs=0.002)
    if model_term is not None:
        assert PUBLISHED.model_term(n) == pytest.approx(model_term, abs=0.001)
        assert PUBLISHED.data_term(d) == pytest.approx(data_term, abs=0.001)


def test_table_lists_terms():
    table = loss_table(PUBLISHED, [("GPT-3", 175e9, 300e9)])
    assert "| GPT-3 | 1.75e+11 | 3e+11 | 0.061 | 0.251 | 1.690 | 2.002 |" in table


def test_compute_optimal_is_the_iso_flop_minimum():
    flops = 5.76e23  # Chinchilla's budget
    n_opt, d_opt = PUBLISHED.compute_optimal(flops)
    assert 6 * n_opt * d_opt == pytest.approx(flops, rel=1e-9)
    sizes = np.geomspace(n_opt / 10, n_opt * 10, 2001)
    losses = PUBLISHED.loss(sizes, flops / (6 * sizes))
    assert sizes[np.argmin(losses)] == pytest.approx(n_opt, rel=0.01)


def synthetic(law: ScalingLaw, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n, d = np.meshgrid(np.geomspace(1e6, 1e9, 5), np.geomspace(1e8, 1e11, 5))
    n, d = n.ravel(), d.ravel()
    return n, d, law.loss(n, d) * np.exp(rng.normal(0.0, noise, n.size))


def test_fit_recovers_exponents_from_noisy_losses():
    n, d, loss = synthetic(PUBLISHED, noise=0.003)
    fitted = fit_law(n, d, loss)
    assert fitted.alpha == pytest.approx(PUBLISHED.alpha, rel=0.05)
    assert fitted.beta == pytest.approx(PUBLISHED.beta, rel=0.05)
    assert fitted.E == pytest.approx(PUBLISHED.E, rel=0.02)


def test_fit_recovers_other_constants():
    truth = ScalingLaw(E=0.29, A=3.0, B=40.0, alpha=0.5, beta=0.35)
    n, d, loss = synthetic(truth, noise=0.002, seed=3)
    fitted = fit_law(n, d, loss)
    assert fitted.alpha == pytest.approx(truth.alpha, rel=0.05)
    assert fitted.beta == pytest.approx(truth.beta, rel=0.05)


def test_bootstrap_intervals_cover_the_truth_and_plan():
    n, d, loss = synthetic(PUBLISHED, noise=0.003, seed=1)
    fit = bootstrap_fit(n, d, loss, n_boot=40, progress=False)
    for key in ("alpha", "beta", "E"):
        lo, hi = fit.intervals[key]
        assert lo <= getattr(PUBLISHED, key) <= hi, key
        assert lo < getattr(fit.law, key) < hi
    plan = fit.plan(1e20)
    for key in ("N", "D"):
        best, lo, hi = plan[key]
        assert lo < best < hi
    true_n, _ = PUBLISHED.compute_optimal(1e20)
    assert plan["N"][1] < true_n < plan["N"][2] or plan["N"][0] == pytest.approx(true_n, rel=0.3)


def test_fit_refuses_bad_input():
    with pytest.raises(ValueError, match="at least 5"):
        fit_law([1, 2], [1, 2], [1, 2])
    with pytest.raises(ValueError, match="positive"):
        fit_law([1, 2, 3, 4, -5], [1] * 5, [1] * 5)


def test_sweep_records_resumes_and_fits(mock_dir, tmp_path, monkeypatch):
    base = tiny_config(mock_dir, tmp_path / "unused", 10)
    out = tmp_path / "sweep"
    records = run_sweep(
        base, ["nano", "micro"], [4096, 8192, 16384], out, val_batches=4, progress=False
    )
    assert len(records) == 6 and len(read_sweep(out)) == 6
    nano = [r for r in records if r["size"] == "nano"]
    assert [r["D"] for r in nano] == [4096, 8192, 16384]
    from astroloom.config import MODEL_PRESETS, ModelConfig

    expected_n = MultimodalModel(ModelConfig(**MODEL_PRESETS["nano"])).num_parameters(True)
    assert all(r["N"] == expected_n and r["C"] == 6 * r["N"] * r["D"] for r in nano)
    assert all(np.isfinite(r["val_loss"]) for r in records)
    # 400 objects, 10 % held out, 64 patches each: one pass shows 360 × 64 distinct tokens.
    assert all(r["unique_tokens"] == 360 * 64 for r in records)
    assert [r["epochs"] for r in nano] == pytest.approx(
        [d / (360 * 64) for d in (4096, 8192, 16384)]
    )

    # A second call finds every run done and trains nothing.
    def refuse(*_, **__):
        raise AssertionError("finished runs must not be retrained")

    monkeypatch.setattr(sweep_module, "train", refuse)
    again = run_sweep(base, ["nano", "micro"], [4096, 8192, 16384], out, progress=False)
    assert [r["name"] for r in again] == [r["name"] for r in records]

    result = CliRunner().invoke(
        app, ["scaling", "fit", str(out), "--bootstrap", "5", "--plan", "1e12"]
    )
    assert result.exit_code == 0, result.output
    fit = json.loads((out / "fit.json").read_text())
    assert set(fit["law"]) == {"E", "A", "B", "alpha", "beta"}
    assert fit["plan"]["flops"] == 1e12 and (out / "scaling.png").stat().st_size > 10_000


def test_sweep_counts_multimodal_tokens_and_flags_repeated_data(survey_dir, tmp_path):
    """D is the tokens the model read (spectrum windows, bands, epochs, patches, absent
    modalities not counted), and a budget past one epoch is flagged, also by the fit."""
    base = tiny_config(survey_dir, tmp_path / "unused", 10, MULTIMODAL)
    out = tmp_path / "sweep"
    budgets = [5_000, 10_000, 20_000, 40_000, 80_000]
    records = run_sweep(base, ["nano"], budgets, out, val_batches=2, progress=False)
    for record, budget in zip(records, budgets, strict=True):
        assert record["D"] == pytest.approx(budget, rel=0.2)  # steps sized by measured tokens
        assert record["D"] != record["steps"] * 16 * 64  # not batch × image patches
        assert record["epochs"] == pytest.approx(record["D"] / record["unique_tokens"])
    over = [r["name"] for r in records if r["epochs"] > 1]
    assert 0 < len(over) < len(records) and repeated_runs(records) == over
    result = CliRunner().invoke(app, ["scaling", "fit", str(out), "--bootstrap", "2"])
    assert "saw their data more than once" in result.output
    assert all(name in result.output for name in over)


def test_sweep_rejects_unknown_size(mock_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown model size.*nano"):
        run_sweep(tiny_config(mock_dir, tmp_path, 5), ["gigantic"], [1e4], tmp_path)


def test_table_command():
    result = CliRunner().invoke(app, ["scaling", "table", "GPT-3:175e9:300e9", "PaLM:540e9:780e9"])
    assert result.exit_code == 0
    assert "2.002" in result.output and "1.924" in result.output
