import numpy as np
import pytest
import torch

from astroloom.data.schema import DataError
from astroloom.evaluate.embed import Embeddings, embed_dataset, read_embeddings, write_embeddings
from astroloom.evaluate.probe import (
    ALPHAS,
    ProbeReport,
    ProbeScore,
    probe,
    ridge_probe,
    ridge_probes,
)


def test_ridge_probe_scores_signal_and_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 20))
    y = x @ rng.normal(size=20) + 0.1 * rng.normal(size=400)
    good = ridge_probe(x, y)
    assert good.r2 > 0.98 and good.rmse < 0.2
    noise = ridge_probe(x, rng.normal(size=400))
    assert noise.r2 < 0.05
    with pytest.raises(ValueError, match="too few"):
        ridge_probe(x[:6], y[:6])


def test_probing_targets_together_equals_probing_each_alone():
    """One decomposition per fold for several targets, each with its own penalty: the
    out-of-fold predictions are scikit-learn's own per-target RidgeCV's (default GCV mode),
    whether a target is easy (needs a weak penalty) or nearly noise (a strong one)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 40))
    ys = np.stack(
        [
            x @ rng.normal(size=40) + 0.1 * rng.normal(size=300),
            0.2 * x[:, 0] + rng.normal(size=300),
            rng.normal(size=300),
        ],
        axis=1,
    )
    together = ridge_probes(x, ys, folds=5, seed=3)
    for k, score in enumerate(together):
        alone = cross_val_predict(
            make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS)),
            x,
            ys[:, k],
            cv=KFold(5, shuffle=True, random_state=3),
        )
        np.testing.assert_allclose(score.predictions, alone, rtol=1e-6, atol=1e-8)
        assert score.r2 == pytest.approx(ridge_probe(x, ys[:, k], seed=3).r2, abs=1e-10)
    assert together[0].r2 > 0.98 and together[2].r2 < 0.05


@pytest.fixture(scope="module")
def embeddings(trained_run, mock_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("emb") / "emb.parquet"
    return embed_dataset(trained_run, mock_dir, out, progress=False)


def test_embeddings_file_round_trip(embeddings, mock_dir):
    emb = read_embeddings(embeddings)
    # Mean and spread of the token states and the image's three angular moments: five
    # times the model's width (64).
    assert emb.vectors.shape == (400, 320) and emb.vectors.dtype == np.float32
    assert emb.meta["pool"] == "moments" and emb.meta["dim"] == 320
    assert emb.meta["layer"] == 1 and emb.meta["weights"] == "trained"
    assert np.isfinite(emb.vectors).all()
    assert set(emb.labels) >= {"mag_r", "g_r", "half_light_radius"}


def test_embeddings_do_not_depend_on_the_cutouts_orientation(embeddings, trained_run, mock_dir):
    """`astroloom embed` averages each image's vector over its four quarter turns: a turned
    galaxy gets the same vector, which it does not when embedded as it lies; with eight
    orientations a mirrored one does too."""
    from astroloom.data.shards import load_image_set
    from astroloom.evaluate.embed import embed_images
    from astroloom.model.checkpoint import load_checkpoint

    model, _, tok = load_checkpoint(trained_run)
    images = load_image_set(mock_dir).images[:16]
    turned = np.ascontiguousarray(np.rot90(images, 1, axes=(-2, -1)))
    mirrored = np.ascontiguousarray(images[..., ::-1])

    def vectors(x, n):
        return embed_images(model, tok, x, orientations=n, progress=False)

    averaged = vectors(images, 4)
    spread = np.abs(averaged).max()
    np.testing.assert_allclose(vectors(turned, 4), averaged, atol=1e-5 * spread)
    as_it_lies = np.abs(vectors(turned, 1) - vectors(images, 1)).max()
    assert as_it_lies > 1e-2 * spread
    np.testing.assert_allclose(vectors(mirrored, 8), vectors(images, 8), atol=1e-5 * spread)
    emb = read_embeddings(embeddings)
    assert emb.meta["orientations"] == 4
    with pytest.raises(DataError, match="orientations must be 1, 4 or 8"):
        embed_dataset(trained_run, mock_dir, "never.parquet", orientations=3, progress=False)


def test_one_pass_embeds_every_layer_as_each_layer_alone(trained_run, mock_dir):
    """The bench's layer sweep embeds every block from one pass through the blocks: each
    layer's vectors are those embedding that layer alone gives, and the layers differ."""
    from astroloom.data.shards import load_image_set
    from astroloom.evaluate.embed import embed_images, embed_images_by_layer
    from astroloom.model.checkpoint import load_checkpoint

    model, cfg, tok = load_checkpoint(trained_run)
    images = load_image_set(mock_dir).images[:24]
    depths = list(range(cfg.model.n_layer + 1))
    together = embed_images_by_layer(model, tok, images, [1, *depths], progress=False)
    assert list(together) == depths[1:2] + depths[:1] + depths[2:]  # once each, as asked
    for depth in depths:
        alone = embed_images(model, tok, images, depth, progress=False)
        spread = np.abs(alone).max()
        np.testing.assert_allclose(together[depth], alone, atol=1e-5 * spread)
    assert np.abs(together[0] - together[depths[-1]]).max() > 1e-2 * np.abs(together[0]).max()
    with pytest.raises(ValueError, match="layer must lie in"):
        embed_images_by_layer(model, tok, images, [cfg.model.n_layer + 1], progress=False)


def test_the_bench_scores_the_embeddings_astroloom_embed_writes(embeddings, trained_run, mock_dir):
    """The bench reads the data's pixel scale and zero point as `astroloom embed` does; told
    nothing, the model would take every galaxy's brightness for unknown and embed it
    otherwise (the bench once did, and under-scored the model)."""
    from astroloom.data.shards import load_image_set
    from astroloom.evaluate.bench import bench_features
    from astroloom.evaluate.embed import embed_images
    from astroloom.model.checkpoint import load_checkpoint

    model, cfg, tok = load_checkpoint(trained_run)
    images = load_image_set(mock_dir)
    assert images.info.image.known_zero_point() is not None
    features = bench_features(model, cfg, tok, images, model.default_layer(), progress=False)
    assert set(features) == {"foundation", "pixel PCA", "random weights", "hand-crafted"}
    assert all(len(x) == len(images.ids) for x in features.values())
    emb = read_embeddings(embeddings)
    row = {obj: k for k, obj in enumerate(images.ids)}
    bench = features["foundation"][[row[obj] for obj in emb.ids]]
    spread = np.abs(emb.vectors).max()
    np.testing.assert_allclose(bench, emb.vectors, atol=1e-4 * spread)
    told_nothing = embed_images(model, tok, images.images[:32], progress=False)
    assert np.abs(told_nothing - features["foundation"][:32]).max() > 1e-2 * spread


def test_probe_finds_physics_in_embeddings(embeddings):
    report = probe(embeddings, targets=["mag_r", "half_light_radius"], progress=False)
    assert report.methods == ["foundation", "pixel PCA", "random weights"]
    # Brightness and size are plain in the pixels: even a briefly trained model encodes them.
    assert report.scores["mag_r"]["foundation"].r2 > 0.8
    assert report.scores["half_light_radius"]["foundation"].r2 > 0.5
    for by in report.scores.values():
        assert set(by) == set(report.methods)
        assert all(s.n == 400 for s in by.values())
    table = report.markdown()
    assert table.count("\n") == 4 and "| mag_r |" in table


def test_probe_saves_json_and_markdown(embeddings, tmp_path):
    import json

    report = probe(embeddings, targets=["g_r"], baselines=False, progress=False)
    js, md = report.save(tmp_path)
    saved = json.loads(js.read_text())
    assert saved["labels"]["g_r"]["foundation"]["r2"] == pytest.approx(
        report.scores["g_r"]["foundation"].r2
    )
    assert "g_r" in md.read_text()


def test_nan_labels_are_dropped_and_counted(embeddings, tmp_path):
    emb = read_embeddings(embeddings)
    emb.labels["mag_r"][:37] = np.nan
    path = write_embeddings(tmp_path / "nan.parquet", emb)
    report = probe(path, targets=["mag_r"], baselines=False, progress=False)
    assert report.dropped["mag_r"] == 37
    assert report.scores["mag_r"]["foundation"].n == 400 - 37
    # Asked for no label in particular, one without enough values is left out and listed;
    # asked for by name, it is an error.
    emb.labels["mag_r"][:] = np.nan
    path = write_embeddings(tmp_path / "empty.parquet", emb)
    report = probe(path, baselines=False, progress=False)
    assert "mag_r" not in report.scores and report.scores
    assert report.meta["skipped_labels"] == {"mag_r": 0}
    assert "mag_r: left out, 0 finite values" in report.markdown()
    with pytest.raises(DataError, match="'mag_r' has 0 finite values"):
        probe(path, targets=["mag_r"], baselines=False, progress=False)
    # No numeric label with values at all (pictures ingested without a catalogue): an
    # error that says where labels come from, not an empty table.
    for name in emb.labels:
        if emb.labels[name].dtype != object:
            emb.labels[name][:] = np.nan
    path = write_embeddings(tmp_path / "unlabelled.parquet", emb)
    with pytest.raises(DataError, match="nothing to probe.*--catalog"):
        probe(path, baselines=False, progress=False)


def test_unknown_label_and_missing_provenance(embeddings, tmp_path):
    with pytest.raises(DataError, match="redshift.*available"):
        probe(embeddings, targets=["redshift"], progress=False)
    emb = read_embeddings(embeddings)
    bare = write_embeddings(tmp_path / "bare.parquet", Embeddings(emb.ids, emb.vectors, emb.labels))
    with pytest.raises(DataError, match="does not record its run"):
        probe(bare, targets=["mag_r"], progress=False)
    with pytest.raises(DataError, match="not found"):
        read_embeddings(tmp_path / "none.parquet")


def test_embedding_device_is_checked_before_any_work(trained_run, mock_dir, tmp_path):
    out = tmp_path / "emb.parquet"
    with pytest.raises(DataError, match="unknown device 'gpu'"):
        embed_dataset(trained_run, mock_dir, out, progress=False, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(DataError, match="no CUDA device"):
            embed_dataset(trained_run, mock_dir, out, progress=False, device="cuda")
    assert not out.exists() and not out.with_name(out.name + ".parts").exists()
    # "auto" on a machine without a GPU is the CPU, and gives the CPU's numbers exactly.
    auto = read_embeddings(embed_dataset(trained_run, mock_dir, out, progress=False))
    cpu = read_embeddings(
        embed_dataset(trained_run, mock_dir, tmp_path / "cpu.parquet", progress=False, device="cpu")
    )
    if not torch.cuda.is_available():
        np.testing.assert_array_equal(auto.vectors, cpu.vectors)


def test_interrupted_embedding_resumes_without_redoing_parts(
    trained_run, mock_dir, tmp_path, monkeypatch
):
    import astroloom.evaluate.embed as embed_module

    reference = read_embeddings(
        embed_dataset(trained_run, mock_dir, tmp_path / "ref.parquet", progress=False)
    )
    real = embed_module.Foundation.embed
    calls = []

    def dies_on_second_part(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user's Ctrl-C, half-way through
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_module.Foundation, "embed", dies_on_second_part)
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(trained_run, mock_dir, tmp_path / "out.parquet", progress=False)
    assert len(list((tmp_path / "out.parquet.parts").glob("part-*.parquet"))) == 1
    calls.clear()
    monkeypatch.setattr(
        embed_module.Foundation, "embed", lambda *a, **k: (calls.append(1), real(*a, **k))[1]
    )
    embed_dataset(trained_run, mock_dir, tmp_path / "out.parquet", progress=False)
    assert len(calls) == 2  # three row groups, one already done
    resumed = read_embeddings(tmp_path / "out.parquet")
    assert list(resumed.ids) == list(reference.ids)
    np.testing.assert_allclose(resumed.vectors, reference.vectors, rtol=1e-6, atol=1e-6)
    assert not (tmp_path / "out.parquet.parts").exists()


def test_torchrun_embedding_matches_one_process(trained_run, mock_dir, tmp_path):
    from conftest import torchrun_cli

    single = read_embeddings(
        embed_dataset(trained_run, mock_dir, tmp_path / "one.parquet", progress=False)
    )
    result = torchrun_cli(
        "embed", str(trained_run), str(mock_dir), "--out", str(tmp_path / "two.parquet")
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("wrote ") == 1  # rank 0 alone reports
    both = read_embeddings(tmp_path / "two.parquet")
    assert list(both.ids) == list(single.ids) and len(set(both.ids)) == 400
    np.testing.assert_allclose(both.vectors, single.vectors, rtol=1e-4, atol=1e-5)


def test_margins_compare_each_foundation_column_with_baselines_only():
    """The all-modality embeddings are the model's own, not a baseline: the image column's
    margin is over pixel PCA, never over its sibling (the demo report once showed −0.215)."""

    def score(r2):
        return ProbeScore(r2=r2, rmse=0.0, n=10, predictions=np.zeros(1), truth=np.zeros(1))

    methods = ["foundation", "foundation, all modalities", "pixel PCA", "random weights"]
    report = ProbeReport(
        methods=methods,
        scores={"redshift": dict(zip(methods, map(score, [0.37, 0.47, 0.40, 0.10]), strict=True))},
        dropped={},
        meta={},
    )
    assert report.foundation_methods == methods[:2]
    margins = report.margins()["redshift"]
    assert margins["foundation"] == pytest.approx(-0.03)
    assert margins["foundation, all modalities"] == pytest.approx(0.07)


def test_logistic_probe_separates_classes_and_refuses_one_class():
    from astroloom.evaluate.probe import logistic_probe

    rng = np.random.default_rng(0)
    kinds = np.where(rng.random(300) < 0.4, "early", "late").astype(object)
    x = rng.normal(size=(300, 8))
    x[:, 0] += 2.0 * (kinds == "early")
    good = logistic_probe(x, kinds)
    assert good.roc_auc > 0.9 and good.classes == ["early", "late"]
    blind = logistic_probe(rng.normal(size=(300, 8)), kinds)
    assert 0.35 < blind.roc_auc < 0.65
    with pytest.raises(ValueError, match="two classes"):
        logistic_probe(x, np.array(["late"] * 300, dtype=object))


def test_resume_never_mixes_parts_of_another_embedding(
    trained_run, mock_dir, tmp_path, monkeypatch
):
    import astroloom.evaluate.embed as embed_module

    real = embed_module.Foundation.embed
    calls = []

    def dies_on_second_part(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_module.Foundation, "embed", dies_on_second_part)
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(trained_run, mock_dir, tmp_path / "out.parquet", layer=1, progress=False)
    monkeypatch.setattr(embed_module.Foundation, "embed", real)
    # Asked again for another layer: the layer-1 part is stale and must not be reused.
    mixed = read_embeddings(
        embed_dataset(trained_run, mock_dir, tmp_path / "out.parquet", layer=2, progress=False)
    )
    fresh = read_embeddings(
        embed_dataset(trained_run, mock_dir, tmp_path / "fresh.parquet", layer=2, progress=False)
    )
    np.testing.assert_allclose(mixed.vectors, fresh.vectors, rtol=1e-6, atol=1e-6)
