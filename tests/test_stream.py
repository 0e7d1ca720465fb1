"""Streaming: each object exactly once per epoch across ranks × workers, seeded, resumable."""

import itertools

import numpy as np
import pytest
from torch.utils.data import DataLoader

from astroloom.data.schema import DataError
from astroloom.data.shards import load_image_set
from astroloom.data.sim.galaxies import simulate_galaxies
from astroloom.data.stream import ShardStream, collate_images


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded")
    simulate_galaxies(out, n=90, seed=2, shard_size=10, workers=1, progress=False)
    return out


def ids_seen(directory, rank, world, workers, epoch=0, seed=0):
    stream = ShardStream(
        directory, labels=["mag_r"], seed=seed, shuffle_buffer=16, rank=rank, world=world
    )
    stream.set_epoch(epoch)
    loader = DataLoader(stream, batch_size=None, num_workers=workers)
    return [row["id"] for row in loader]


def test_two_ranks_two_workers_see_everything_once(sharded):
    everything = set(load_image_set(sharded).ids)
    per_rank = [ids_seen(sharded, rank, 2, workers=2) for rank in range(2)]
    seen = list(itertools.chain(*per_rank))
    assert len(seen) == len(set(seen)) == len(everything)
    assert set(seen) == everything
    assert all(len(r) > 20 for r in per_rank)  # both ranks get a real share


def test_order_is_seeded_and_changes_with_epoch(sharded):
    a = ids_seen(sharded, 0, 1, workers=0, epoch=0)
    assert a == ids_seen(sharded, 0, 1, workers=0, epoch=0)
    b = ids_seen(sharded, 0, 1, workers=0, epoch=1)
    assert a != b and sorted(a) == sorted(b)
    assert a != ids_seen(sharded, 0, 1, workers=0, epoch=0, seed=1)
    # The shuffle really mixes shards: the first ten do not all come from one shard.
    assert len({x[:-1] for x in a[:10]}) > 1


def test_resume_from_a_recorded_position(sharded):
    stream = ShardStream(sharded, seed=3, shuffle_buffer=16, rank=0, world=1)
    full = [row["id"] for row in stream]
    partial = []
    for row in stream:
        partial.append(row["id"])
        if len(partial) == 37:
            break
    position = stream.position()
    resumed = ShardStream(sharded, seed=3, shuffle_buffer=16, rank=0, world=1)
    resumed.set_epoch(position["epoch"], position["start"])
    assert partial + [row["id"] for row in resumed] == full


def test_rows_carry_images_and_labels(sharded):
    data = load_image_set(sharded)
    lookup = {obj: i for i, obj in enumerate(data.ids)}
    stream = ShardStream(sharded, labels=["mag_r"], rank=0, world=1)
    loader = DataLoader(stream, batch_size=16, collate_fn=collate_images)
    ids, images = next(iter(loader))
    assert images.shape == (16, 3, 64, 64)
    for k, obj in enumerate(ids):
        np.testing.assert_array_equal(images[k].numpy(), data.images[lookup[obj]])
    row = next(iter(stream))
    assert row["mag_r"] == pytest.approx(data.labels["mag_r"][lookup[row["id"]]])


def test_unknown_label_and_bad_shard(sharded, tmp_path):
    with pytest.raises(DataError, match="labels"):
        ShardStream(sharded, labels=["colour_of_sky"])
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(sharded, broken)
    next(broken.glob("*.parquet")).write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable Parquet"):
        ShardStream(broken)


@pytest.mark.parametrize("workers", [0, 2])
def test_batch_mode_sees_everything_once_and_resumes(sharded, workers):
    everything = set(load_image_set(sharded).ids)
    seen = []
    for rank in range(2):
        stream = ShardStream(
            sharded, labels=["mag_r"], shuffle_buffer=16, rank=rank, world=2, batch_size=8
        )
        for batch in DataLoader(stream, batch_size=None, num_workers=workers):
            assert batch["image"].shape[1:] == (3, 64, 64)
            assert len(batch["mag_r"]) == len(batch["id"]) <= 8
            seen += list(batch["id"])
    assert len(seen) == len(set(seen)) == len(everything)
    single = ShardStream(sharded, shuffle_buffer=16, rank=0, world=1, batch_size=8)
    full = [obj for b in single for obj in b["id"]]
    assert full != sorted(full)  # shuffled
    resumed = ShardStream(sharded, shuffle_buffer=16, rank=0, world=1, batch_size=8)
    resumed.set_epoch(0, start=21)
    assert [obj for b in resumed for obj in b["id"]] == full[21:]


def test_batch_images_match_the_shards(sharded):
    data = load_image_set(sharded)
    lookup = {obj: i for i, obj in enumerate(data.ids)}
    batch = next(iter(ShardStream(sharded, labels=["mag_r"], rank=0, world=1, batch_size=16)))
    for k, obj in enumerate(batch["id"]):
        np.testing.assert_array_equal(batch["image"][k], data.images[lookup[obj]])
        assert batch["mag_r"][k] == pytest.approx(data.labels["mag_r"][lookup[obj]])
