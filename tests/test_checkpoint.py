import json

import pytest
import torch

from astroloom.config import ModelConfig
from astroloom.model.gpt import FoundationModel
from astroloom.train.checkpoint import (
    CheckpointError,
    find_checkpoint,
    load_checkpoint,
    load_train_state,
    load_weights,
)


def test_round_trip_gives_identical_outputs(trained_run):
    model, cfg, tokenizer = load_checkpoint(trained_run)
    again, _, _ = load_checkpoint(trained_run / "final")
    x = torch.randn(2, cfg.model.n_patches, cfg.model.patch_dim)
    torch.testing.assert_close(model(x), again(x), rtol=0, atol=0)
    assert tokenizer.n_bands == 3
    # A freshly initialised model disagrees: the weights really came from the file.
    assert not torch.allclose(FoundationModel(cfg.model)(x), model(x))


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
    wider = FoundationModel(ModelConfig(n_layer=cfg.model.n_layer, n_head=4, n_embd=128))
    with pytest.raises(CheckpointError, match="different model shape"):
        load_weights(wider, find_checkpoint(trained_run) / "model.safetensors")
    deeper = FoundationModel(ModelConfig(n_layer=cfg.model.n_layer + 1, n_head=4, n_embd=64))
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
