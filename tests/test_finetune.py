"""Fine-tuning (LoRA, full) and the supervised CNN baseline on the same splits as probes."""

import json

import pytest
import torch
from typer.testing import CliRunner

from astroloom.cli import app
from astroloom.evaluate.finetune import Regressor, ResNet, add_lora, finetune_curve
from astroloom.model.checkpoint import load_checkpoint


def test_lora_starts_at_the_pretrained_model_and_trains_only_adapters(trained_run):
    model, _, tokenizer = load_checkpoint(trained_run)
    tokens = {"image": tokenizer.image.tokens(0.05 * torch.randn(4, 3, 64, 64))}
    before = model.embed(tokens)
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    params = add_lora(model, rank=2)
    torch.testing.assert_close(model.embed(tokens), before)  # B = 0: no change yet
    reg = Regressor(model, model.default_layer())
    opt = torch.optim.SGD(params + list(reg.head.parameters()), lr=0.1)
    loss = (reg(tokens) - 1.0).pow(2).mean()
    loss.backward()
    opt.step()
    assert not torch.allclose(model.embed(tokens), before)  # the adapters moved it
    state = model.state_dict()
    for name, value in frozen.items():  # …and no pretrained weight changed
        key = (
            name
            if name in state
            else name.replace(".weight", ".base.weight").replace(".bias", ".base.bias")
        )
        torch.testing.assert_close(state[key], value)
    assert len(params) == 4 * 2 * model.cfg.n_layer


def test_resnet_reads_cutouts():
    net = ResNet(3)
    assert net(torch.randn(2, 3, 64, 64)).shape == (2,)


def test_finetune_curve_every_method_same_splits(trained_run, mock_dir, tmp_path):
    result = finetune_curve(
        trained_run, mock_dir, "mag_r", budgets=(40,), seeds=2, steps=15, progress=False
    )
    methods = {r["method"] for r in result.rows}
    assert methods == {"frozen", "lora", "full", "cnn"}
    assert all(r["budget"] == 40 for r in result.rows)
    # Every method is scored on the same split for a seed; the seeds' splits differ.
    splits = {s: {r["split"] for r in result.rows if r["seed"] == s} for s in (0, 1)}
    assert all(len(v) == 1 for v in splits.values()) and splits[0] != splits[1]
    # Brightness is easy: the frozen probe on 40 labels already explains most of it.
    assert result.summary()[("frozen", 40)][0] > 0.5
    assert "| lora |" in result.markdown()
    with pytest.raises(ValueError, match="not a numeric label.*have \\['"):
        finetune_curve(trained_run, mock_dir, "no_such_label", budgets=(40,), progress=False)
    for bad, says in (
        ({"budgets": (0,)}, "positive counts"),
        ({"seeds": 0}, "at least 1 seed"),
        ({"steps": 0}, "1 optimiser step"),
    ):  # nothing to fit: refused before the data is read
        with pytest.raises(ValueError, match=says):
            finetune_curve(trained_run, mock_dir, "mag_r", **{"budgets": (40,), **bad})
    # Pictures ingested without a catalogue: the error says where labels come from.
    from PIL import Image

    from astroloom.data.readers import ingest, read_image_folder

    (tmp_path / "pictures").mkdir()
    for i in range(3):
        Image.new("RGB", (64, 64), (i, 2 * i, 3 * i)).save(tmp_path / "pictures" / f"p{i}.png")
    ingest(read_image_folder(tmp_path / "pictures"), tmp_path / "bare", "bare", progress=False)
    with pytest.raises(ValueError, match="no labels.*--catalog"):
        finetune_curve(trained_run, tmp_path / "bare", "redshift", budgets=(2,), progress=False)
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "finetune",
            str(trained_run),
            str(mock_dir),
            "--target",
            "mag_r",
            "--budget",
            "40",
            "--method",
            "lora",
            "--seeds",
            "1",
            "--steps",
            "5",
            "--out",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "finetune_mag_r.json").read_text())["rows"]
    assert [row["method"] for row in rows] == ["lora"]
