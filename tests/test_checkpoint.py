import json

import pytest
import torch

from astroloom.config import ModelConfig
from astroloom.model.checkpoint import (
    CheckpointError,
    find_checkpoint,
    load_checkpoint,
    load_train_state,
    load_weights,
)
from astroloom.model.multimodal import MultimodalModel


def test_round_trip_gives_identical_outputs(trained_run):
    model, cfg, tokenizer = load_checkpoint(trained_run)
    again, _, _ = load_checkpoint(trained_run / "final")
    x = {"image": tokenizer.image.tokens(torch.randn(2, 3, 64, 64) * 0.05)}
    torch.testing.assert_close(model.embed(x), again.embed(x), rtol=0, atol=0)
    assert tokenizer.image.n_bands == 3
    # A freshly initialised model disagrees: the weights really came from the file.
    assert not torch.allclose(MultimodalModel(cfg.model).eval().embed(x), model.embed(x))


def test_files_need_no_pickle(trained_run):
    ckpt = find_checkpoint(trained_run)
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    json.loads((ckpt / "config.json").read_text())
    steps = sorted((trained_run / "checkpoints").iterdir())
    state = load_train_state(steps[-1])  # weights_only=True inside
    assert state["step"] == int(steps[-1].name.split("-")[1])


def test_checkpoint_from_other_shape_is_refused(trained_run):
    _, cfg, _ = load_checkpoint(trained_run)
    wider = MultimodalModel(ModelConfig(n_layer=cfg.model.n_layer, n_head=4, n_embd=128))
    with pytest.raises(CheckpointError, match="different model shape"):
        load_weights(wider, find_checkpoint(trained_run) / "model.safetensors")
    deeper = MultimodalModel(ModelConfig(n_layer=cfg.model.n_layer + 1, n_head=4, n_embd=64))
    with pytest.raises(CheckpointError, match="missing"):
        load_weights(deeper, find_checkpoint(trained_run) / "model.safetensors")


def test_missing_and_corrupt(tmp_path, trained_run):
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        load_checkpoint(tmp_path)
    model, cfg, _ = load_checkpoint(trained_run)
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_weights(model, bad)


def test_image_only_gpt_checkpoint_of_astroloom_0_1_says_how_to_retrain(tmp_path, trained_run):
    """A checkpoint of the separate image GPT (tokenizer kind 'image') cannot become the one
    model's weights; loading it names what it is and the command that retrains it."""
    old = tmp_path / "old"
    old.mkdir()
    ckpt = find_checkpoint(trained_run)
    for name in ("config.json", "model.safetensors"):
        (old / name).write_bytes((ckpt / name).read_bytes())
    (old / "tokenizer.json").write_text(
        json.dumps({"kind": "image", "patch_size": 8, "scale": [0.01, 0.01, 0.03]})
    )
    with pytest.raises(CheckpointError, match=r"astroloom 0\.1.*astroloom train .*config\.json"):
        load_checkpoint(old)
