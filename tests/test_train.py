import json
import shutil

import numpy as np
import pytest
import torch
from conftest import tiny_config

from astroloom.config import load_config
from astroloom.data.schema import DataError
from astroloom.data.shards import load_image_set
from astroloom.model.checkpoint import load_checkpoint
from astroloom.train.loop import learning_rate, train


def test_schedule_warms_up_then_decays_to_min():
    cfg = load_config(
        None, ["train.steps=100", "train.warmup_steps=10", "train.lr=1e-3", "train.min_lr=1e-4"]
    )
    lrs = [learning_rate(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert learning_rate(100, cfg) == pytest.approx(1e-4)


def test_run_learns_and_logs(trained_run, mock_dir):
    rows = [json.loads(x) for x in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(10, 151, 10))
    assert rows[-1]["loss"] < 0.85 * rows[0]["loss"]
    val = [r["val_loss"] for r in rows if "val_loss" in r]
    assert len(val) == 8 and val[-1] < val[0]
    # Most of the loss is sky noise no model can predict; the trained model must still beat
    # "the next patch is empty sky" and "the next patch repeats this one".
    model, cfg, tokenizer = load_checkpoint(trained_run)
    images = torch.from_numpy(load_image_set(mock_dir).images[:64])
    batch = {"image": tokenizer.image.tokens(images)}
    tokens = batch["image"].values
    huber = torch.nn.functional.huber_loss
    sky = float(huber(torch.zeros_like(tokens[:, 1:]), tokens[:, 1:]))
    repeat = float(huber(tokens[:, :-1], tokens[:, 1:]))
    with torch.no_grad():  # slot j predicts patch j from the patches before it
        _, h = model.predictions(batch, model.canonical_plan(batch, "autoregressive"))
        learned = float(huber(model.decoders["image"](h)[:, 1:], tokens[:, 1:]))
    assert learned < 0.9 * min(sky, repeat), (learned, sky, repeat)
    assert all(r["tokens_per_s"] > 0 for r in rows)
    # Only the newest keep_checkpoints (2) step checkpoints stay.
    names = sorted(p.name for p in (trained_run / "checkpoints").iterdir())
    assert names == ["step-0000120", "step-0000140"]


def test_nan_pixels_train_without_nan_loss(mock_dir, tmp_path):
    from astroloom.data.schema import DatasetInfo
    from astroloom.data.shards import write_shard

    data_dir = tmp_path / "holes"
    shutil.copytree(mock_dir, data_dir)
    info = DatasetInfo.load(data_dir)
    data = load_image_set(data_dir)
    images = data.images.copy()
    images[::3, :, 10:20, 30:40] = np.nan  # a masked region in a third of the objects
    write_shard(data_dir / info.shards[0], list(data.ids), images, data.labels)
    info.shards = info.shards[:1]
    info.save(data_dir)
    result = train(tiny_config(data_dir, tmp_path / "run", 20), progress=False)
    assert np.isfinite(result.final_train_loss)


def test_data_shape_must_match_model(mock_dir, tmp_path):
    cfg = tiny_config(mock_dir, tmp_path / "r", 5, "model.n_bands=5")
    with pytest.raises(
        DataError, match="holds 3-band images; the model is configured for 5 bands"
    ):
        train(cfg, progress=False)


def test_compiled_training_follows_eager(mock_dir, tmp_path):
    eager = train(
        tiny_config(mock_dir, tmp_path / "eager", 3, "train.eval_every=1"), progress=False
    )
    compiled = train(
        tiny_config(mock_dir, tmp_path / "compiled", 3, "train.eval_every=1", "train.compile=true"),
        progress=False,
    )
    assert compiled.final_train_loss == pytest.approx(eager.final_train_loss, rel=1e-3)
    assert compiled.final_val_loss == pytest.approx(eager.final_val_loss, rel=1e-3)


def test_activation_checkpointed_training_matches(mock_dir, tmp_path):
    plain = train(tiny_config(mock_dir, tmp_path / "plain", 3), progress=False)
    saved = train(
        tiny_config(mock_dir, tmp_path / "ckpt", 3, "train.activation_checkpointing=true"),
        progress=False,
    )
    assert saved.final_train_loss == pytest.approx(plain.final_train_loss, rel=1e-5)
