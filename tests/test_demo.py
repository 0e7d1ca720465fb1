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
    )
    html = result.report.read_text()
    assert result.report == tmp_path / "demo" / "report.html"
    # Loss curve, probe scatter, modalities and reconstructions are embedded as PNG images.
    assert len(re.findall(r"data:image/png;base64,", html)) == 4
    for label in DEMO_TARGETS:
        assert f"<td>{label}</td>" in html
    probe = json.loads((tmp_path / "demo" / "probe.json").read_text())
    assert set(probe["labels"]) == set(DEMO_TARGETS)
    assert probe["methods"] == ["foundation", "pixel PCA", "random weights"]
    assert set(result.timings) == {"simulate", "train", "embed", "probe", "report"}
    # A second run reuses the simulated survey rather than drawing it again.
    shard = next((tmp_path / "demo" / "data").glob("*.parquet"))
    before = shard.stat().st_mtime_ns
    run_demo(tmp_path / "demo", n_objects=300, steps=10, progress=False)
    assert shard.stat().st_mtime_ns == before
