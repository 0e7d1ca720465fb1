"""The demo's whole journey on a small survey: every stage runs and the report shows it."""

import json
import re

from astroloom.demo import DEMO_TARGETS, run_demo


def test_demo_writes_a_complete_report(tmp_path):
    result = run_demo(
        tmp_path / "demo",
        n_objects=300,
        steps=40,
        progress=False,
        extra_overrides=["train.batch_size=16"],
        denoiser_steps=20,
        generate_n=24,
        sample_steps=4,
        inversion_iters=5,
    )
    html = result.report.read_text()
    assert result.report == tmp_path / "demo" / "report.html"
    # Loss curve, probe scatter, the UMAP map, the attribution and surprise maps, predicted
    # spectra, images and spectra beside their reconstructions, four pages of generated
    # galaxies and the modalities are embedded as PNGs.
    assert len(re.findall(r"data:image/png;base64,", html)) == 12
    assert "What the model looks at" in html
    assert "What the model sees: each token from the rest" in html
    rec = json.loads((tmp_path / "demo" / "cross_modal.json").read_text())["reconstruction"]
    assert rec["spectrum"]["explained"] > rec["spectrum"]["other_object"]
    for label in DEMO_TARGETS:
        assert f"<td>{label}</td>" in html
    probe = json.loads((tmp_path / "demo" / "probe.json").read_text())
    assert set(probe["labels"]) == set(DEMO_TARGETS)
    assert probe["methods"] == [
        "foundation",
        "foundation, all modalities",
        "pixel PCA",
        "random weights",
    ]
    assert set(result.timings) == {
        "simulate",
        "train",
        "embed",
        "probe",
        "map",
        "explain",
        "predict",
        "train denoiser",
        "generate",
        "report",
    }
    mapped = json.loads((tmp_path / "demo" / "map.json").read_text())
    assert mapped["n"] >= 300 and mapped["neighbour_recall"] > 5 * 15 / mapped["n"]
    cross = json.loads((tmp_path / "demo" / "cross_modal.json").read_text())
    assert set(cross["photometry_r2_from_image"]) == {"g", "r", "z"}
    generated = json.loads((tmp_path / "demo" / "generate_eval.json").read_text())
    assert set(generated["modes"]) == {"image", "others", "all"}
    assert "Generated galaxies" in html
    # A second run reuses the simulated survey rather than drawing it again.
    shard = next((tmp_path / "demo" / "data").glob("*.parquet"))
    before = shard.stat().st_mtime_ns
    run_demo(
        tmp_path / "demo",
        n_objects=300,
        steps=10,
        progress=False,
        denoiser_steps=5,
        generate_n=16,
        sample_steps=2,
        inversion_iters=2,
    )
    assert shard.stat().st_mtime_ns == before
