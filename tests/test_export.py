"""ONNX export of the image embedding path, checked with onnxruntime against what
`astroloom embed` writes for the same galaxies."""

import numpy as np
import onnxruntime as ort
import pytest
from conftest import cli

from astroloom.data.schema import DatasetInfo
from astroloom.data.shards import load_image_set
from astroloom.evaluate.embed import embed_dataset, read_embeddings
from astroloom.model.checkpoint import CheckpointError
from astroloom.model.export import export_onnx


def test_onnx_graph_embeds_galaxies_as_astroloom_embed_does(trained_run, mock_dir, tmp_path):
    zero_point = DatasetInfo.load(mock_dir).image.known_zero_point()
    assert zero_point is not None  # nanomaggies: the brightness context is in the graph
    path = export_onnx(trained_run, tmp_path / "embed.onnx", zero_point=zero_point)
    want = read_embeddings(
        embed_dataset(trained_run, mock_dir, tmp_path / "emb.parquet", progress=False)
    )
    images = load_image_set(mock_dir, limit=37)  # another batch size than the trace's 2
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": images.images.astype(np.float32)})[0]
    index = {i: k for k, i in enumerate(want.ids)}
    expected = want.vectors[[index[i] for i in images.ids]]
    assert got.shape == expected.shape == (37, 320)  # mean, spread, three moments × 64 wide
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    # Different galaxies, different vectors: a constant graph would not pass.
    assert np.abs(got[0] - got[1]).max() > 1e-2


def test_export_on_the_command_line_and_bad_runs(tmp_path):
    out = tmp_path / "mock-tiny.onnx"
    result = cli("export", "astroloom/mock-tiny", "--onnx", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "onnxruntime matches PyTorch" in result.stdout and out.stat().st_size > 1e6
    result = cli("export", "astroloom/mock-tiny", "--onnx", str(out), "--zooms", "0.5")
    assert result.returncode == 2 and "zooms must be" in result.stderr
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        export_onnx(tmp_path, tmp_path / "x.onnx")


def test_onnx_graph_embeds_photographs_from_their_closer_views(trained_run, mock_dir, tmp_path):
    """Exported with the views `astroloom embed` takes of a photograph (pixel scale and
    zero point unknown), the graph gives its vectors: the resampling is in the graph. The
    masking of a photograph's neighbours is not (photutils' segmentation does not trace):
    the graph matches `embed_images` with the neighbours kept."""
    from astroloom.evaluate.embed import embed_images
    from astroloom.model.checkpoint import load_checkpoint
    from astroloom.tokenize.image import PHOTO_ZOOMS

    path = export_onnx(trained_run, tmp_path / "photo.onnx", zooms=PHOTO_ZOOMS)
    images = load_image_set(mock_dir, limit=9).images.astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": images})[0]
    model, _, tokenizer = load_checkpoint(trained_run)
    # Unknown scale: the views.
    want = embed_images(model, tokenizer, images, progress=False, neighbours=False)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    as_given = embed_images(model, tokenizer, images, progress=False, zooms=[1], neighbours=False)
    assert np.abs(got - as_given).max() > 1e-2
