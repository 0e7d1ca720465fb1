import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from astroloom.data.schema import DataError, DatasetInfo
from astroloom.data.shards import load_image_set, write_shard


@pytest.fixture
def copy(mock_dir, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(mock_dir, target)
    return target


def test_round_trip(mock_dir):
    data = load_image_set(mock_dir)
    assert len(data) == 400 and data.images.shape == (400, 3, 64, 64)
    assert data.images.dtype == np.float32
    obs = data.observation(5)
    assert obs.id == data.ids[5] and obs.modalities["image"].shape == (3, 64, 64)
    assert set(obs.labels) == set(DatasetInfo.load(mock_dir).labels)


def test_readable_by_plain_pyarrow(mock_dir):
    info = DatasetInfo.load(mock_dir)
    table = pq.read_table(mock_dir / info.shards[0])
    assert table.column_names[:2] == ["id", "image"]
    assert len(table.column("image")[0]) == 3 * 64 * 64


def test_missing_data_path_and_dataset_json(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_image_set(tmp_path / "nowhere")
    with pytest.raises(DataError, match="dataset.json"):
        load_image_set(tmp_path)


def test_wrong_schema_names_the_shard(copy):
    info = DatasetInfo.load(copy)
    shard = copy / info.shards[1]
    table = pq.read_table(shard).drop(["g_r"])
    pq.write_table(table, shard)
    with pytest.raises(DataError, match=rf"{info.shards[1]}.*lacks column.*g_r"):
        load_image_set(copy)


def test_wrong_image_type_and_length(copy):
    info = DatasetInfo.load(copy)
    shard = copy / info.shards[0]
    table = pq.read_table(shard)
    as_text = table.set_column(1, "image", pa.array(["x"] * len(table)))
    pq.write_table(as_text, shard)
    with pytest.raises(DataError, match="column 'image' has type string"):
        load_image_set(copy)
    write_shard(
        shard,
        ["a", "b"],
        np.zeros((2, 3, 32, 32), np.float32),
        {k: np.zeros(2) for k in info.labels},
    )
    with pytest.raises(DataError, match=r"object 'a' has 3072 pixel values.*\(3, 64, 64\)"):
        load_image_set(copy)


def test_corrupt_and_missing_shards(copy):
    info = DatasetInfo.load(copy)
    (copy / info.shards[0]).write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="not a readable Parquet shard"):
        load_image_set(copy)
    (copy / info.shards[0]).unlink()
    with pytest.raises(DataError, match="does not exist"):
        load_image_set(copy)


def test_duplicate_ids(copy):
    info = DatasetInfo.load(copy)
    info.shards = [info.shards[0], info.shards[0]]
    info.save(copy)
    with pytest.raises(DataError, match="duplicate object ids"):
        load_image_set(copy)


def test_a_damaged_row_group_is_named_with_its_shard(copy, trained_run, tmp_path):
    """A shard whose footer survives but whose data do not (a bad disk sector) fails where
    it is read, naming the shard and the row group; one cut short names the shard too,
    through `astroloom embed`, instead of Arrow's bare message."""
    from astroloom.data.shards import read_row_group
    from astroloom.evaluate.embed import embed_dataset

    info = DatasetInfo.load(copy)
    shard = copy / info.shards[1]
    damaged = bytearray(shard.read_bytes())
    damaged[4:200] = bytes(196)  # the first page header, not the footer
    shard.write_bytes(bytes(damaged))
    assert pq.ParquetFile(shard).metadata.num_row_groups >= 1  # the footer still reads
    with pytest.raises(DataError, match=rf"shard .*{info.shards[1]}.*row group 0"):
        read_row_group(shard, 0)
    with pytest.raises(DataError, match=rf"{info.shards[1]}"):
        embed_dataset(trained_run, copy, tmp_path / "emb.parquet", progress=False)
    shard.write_bytes(bytes(damaged[:5000]))  # cut short: no footer
    with pytest.raises(DataError, match=rf"shard .*{info.shards[1]}.*not a readable Parquet"):
        embed_dataset(trained_run, copy, tmp_path / "emb.parquet", progress=False)
