"""Training from streamed shards (data.stream): every object once per epoch across ranks and
loader workers, exact resume from a checkpoint, and a run that learns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import MULTIMODAL, tiny_config, tiny_overrides, torchrun_cli
from safetensors.torch import load_file

from astroloom.config import load_config
from astroloom.data.multiset import load_multimodal_set
from astroloom.data.schema import DataError, DatasetInfo
from astroloom.model.checkpoint import CheckpointError
from astroloom.train.loop import train
from astroloom.train.stream import Feed, TrainingStream, held_out
from astroloom.train.tasks import measured_tokenizer

MODALITIES = ["image", "spectrum", "photometry", "lightcurve"]


@pytest.fixture(scope="module")
def regrouped(survey_dir, tmp_path_factory) -> Path:
    """The small survey rewritten in 40-row row groups: enough units for 2 ranks × 2
    workers."""
    out = tmp_path_factory.mktemp("regrouped")
    info = DatasetInfo.load(survey_dir)
    for name in info.shards:
        pq.write_table(pq.read_table(survey_dir / name), out / name, row_group_size=40)
    info.save(out)
    return out


def stream_for(data: Path, rank: int, world: int, workers: int, batch: int = 16) -> Feed:
    cfg = load_config(None, [f"data.path='{data}'", MULTIMODAL])
    tokenizer = measured_tokenizer(cfg, load_multimodal_set(data, MODALITIES))
    stream = TrainingStream(
        data,
        MODALITIES,
        tokenizer,
        batch,
        seed=3,
        val_fraction=0.2,
        shuffle_buffer=30,
        rank=rank,
        world=world,
        workers=workers,
    )
    return Feed(stream, workers)


def epochs(feed: Feed, n: int = 1) -> list[list[str]]:
    """The ids of each of the first ``n`` epochs, in the order they came."""
    out: list[list[str]] = [[] for _ in range(n)]
    while (batch := next(feed)).epoch < n:
        out[batch.epoch] += list(batch.ids)
    return out


def test_ranks_and_workers_see_every_training_object_once_per_epoch(regrouped):
    every = load_multimodal_set(regrouped, MODALITIES).ids
    validation = set(every[held_out(every, 0.2, seed=3)])
    assert 0.1 < len(validation) / len(every) < 0.3  # the hash split holds out ~20 %
    seen: list[str] = []
    for rank in range(2):
        (ids,) = epochs(stream_for(regrouped, rank, world=2, workers=2))
        assert ids, f"rank {rank} received nothing"
        seen += ids
    assert len(seen) == len(set(seen)), "an object came twice in one epoch"
    assert set(seen) == set(every) - validation
    # Multimodal rows stream too: stars (light curves only) beside galaxies.
    assert any("-s" in i for i in seen) and any("-g" in i for i in seen)


def test_the_next_epoch_is_a_new_order_of_the_same_objects(regrouped):
    first, second = epochs(stream_for(regrouped, 0, world=1, workers=0), 2)
    assert sorted(first) == sorted(second) and first != second


@pytest.mark.parametrize("workers", [0, 2])
def test_a_feed_resumes_exactly_where_it_stopped(regrouped, workers):
    """Past an epoch's end, with two loader workers handing out batches in turn."""
    feed = stream_for(regrouped, 0, world=1, workers=workers)
    for _ in range(13):
        next(feed)
    state = feed.state()
    expected = [list(next(feed).ids) for _ in range(12)]
    assert feed.epoch == 1  # the continuation crossed into the next epoch
    resumed = stream_for(regrouped, 0, world=1, workers=workers)
    resumed.load_state(state)
    assert [list(next(resumed).ids) for _ in range(12)] == expected
    if workers:
        other = stream_for(regrouped, 0, world=1, workers=1)
        with pytest.raises(DataError, match="same data.workers"):
            other.load_state(state)


def streamed_config(data: Path, out: Path, steps: int, *extra: str):
    return tiny_config(
        data,
        out,
        steps,
        MULTIMODAL,
        "model.objective='mixed'",
        "data.stream=true",
        "data.workers=2",
        "data.shuffle_buffer=40",
        *extra,
    )


def test_streamed_training_learns_and_resumes_bit_for_bit(regrouped, tmp_path):
    whole = train(streamed_config(regrouped, tmp_path / "whole", 40), progress=False)
    metrics = (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in metrics]
    val = [r["val_loss"] for r in rows if "val_loss" in r]
    assert val[-1] < val[0], f"validation loss did not fall: {val}"
    # 40 steps of up to 16 objects over ~290 training objects: about two epochs (each
    # epoch ends with a short batch).
    assert 1.5 < whole.tokens_seen / whole.unique_tokens < 2.5

    cut = tmp_path / "cut"
    train(streamed_config(regrouped, cut, 40), progress=False)
    shutil.rmtree(cut / "final")
    train(streamed_config(regrouped, cut, 40), progress=False, resume=True)  # from step 20
    a = load_file(tmp_path / "whole" / "final" / "model.safetensors")
    b = load_file(cut / "final" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)

    in_memory = tiny_config(regrouped, cut, 40, MULTIMODAL, "model.objective='mixed'")
    with pytest.raises(CheckpointError, match="data.stream"):
        train(in_memory, progress=False, resume=True)


def test_streamed_validation_objects_are_never_trained_on(regrouped, tmp_path):
    from astroloom.model.multimodal import build_model
    from astroloom.train.tasks import StreamingTask

    cfg = streamed_config(regrouped, tmp_path / "run", 10, "data.workers=0")
    task = StreamingTask(cfg, build_model(cfg.model))
    val_ids = set(task.val.ids)
    assert val_ids and len(val_ids) == len(task.val)
    gen = torch.Generator().manual_seed(0)
    trained = set()
    for _ in range(40):  # two epochs of 16-object batches
        next_batch = next(task.feed)
        trained |= set(next_batch.ids)
    assert not trained & val_ids
    assert task.next_batch(gen)[0]  # tokens of every configured modality present
    assert np.isfinite(task.mean_tokens) and task.mean_tokens > 1


def test_two_ranks_stream_and_resume_bit_for_bit(regrouped, tmp_path):
    """Under torchrun each rank streams its own objects (the loss normalisers summed over
    ranks, every rank's stream position gathered into the checkpoint); a run resumed from
    its step-10 checkpoint ends on the same weights."""
    sets = tiny_overrides(
        regrouped,
        tmp_path / "ddp",
        20,
        MULTIMODAL,
        "model.objective='mixed'",
        "data.stream=true",
        "data.workers=1",
        "data.shuffle_buffer=40",
        "train.threads=1",
        "train.checkpoint_every=10",
    )
    args = [arg for s in sets for arg in ("--set", s)]
    result = torchrun_cli("train", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    final = tmp_path / "ddp" / "final" / "model.safetensors"
    whole = load_file(final)
    state = torch.load(
        tmp_path / "ddp" / "checkpoints" / "step-0000010" / "train_state.pt", weights_only=True
    )
    assert [s["feed"]["workers"] for s in state["streams"]] == [1, 1]  # one entry per rank
    shutil.rmtree(tmp_path / "ddp" / "final")
    resumed = torchrun_cli("train", *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = load_file(final)
    assert all(torch.equal(whole[k], again[k]) for k in whole)


def test_a_dataset_too_big_for_memory_is_refused_before_loading(regrouped, tmp_path, monkeypatch):
    """Training in memory refuses a dataset larger than the memory available, naming the
    way out (streaming), before any of it is read."""
    import types

    import psutil

    import astroloom.train.tasks as tasks

    tasks.refuse_if_too_big(regrouped)  # a few MB: fits
    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=10**6))
    monkeypatch.setattr(tasks, "load_multimodal_set", lambda *a: pytest.fail("it was read"))
    with pytest.raises(DataError, match="data.stream=true"):
        train(tiny_config(regrouped, tmp_path / "run", 2), progress=False)
