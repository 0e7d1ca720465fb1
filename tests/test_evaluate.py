"""Few-shot curves, metrics, similarity search, anomalies and the bench command."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import StandardScaler

from astroloom.data.normalise import robust_z
from astroloom.data.schema import DataError
from astroloom.discover.anomaly import LOF_RANGE, anomaly_scores, either_scores, tail_scaled
from astroloom.discover.search import SimilarityIndex
from astroloom.evaluate.bench import MAIN_METRIC
from astroloom.evaluate.fewshot import METHODS, few_shot_curve
from astroloom.evaluate.metrics import (
    anomaly_metrics,
    classification_metrics,
    precision_at_k,
    redshift_metrics,
)


def test_redshift_metrics_nmad_and_outliers():
    rng = np.random.default_rng(0)
    z = rng.uniform(0.1, 1.0, 20000)
    z_pred = z + 0.02 * (1 + z) * rng.normal(size=z.size)
    out = redshift_metrics(z, z_pred)
    assert out["nmad"] == pytest.approx(0.02, rel=0.05)
    assert out["outlier_fraction"] < 0.001
    z_pred[:2000] += 0.6 * (1 + z[:2000])  # 10 % catastrophic outliers
    assert redshift_metrics(z, z_pred)["outlier_fraction"] == pytest.approx(0.1, abs=0.005)


def test_classification_and_ranking_metrics():
    truth = np.array(["a", "b", "a", "b"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    out = classification_metrics(truth, truth, proba, np.array(["a", "b"]))
    assert out == {"accuracy": 1.0, "macro_f1": 1.0, "roc_auc": 1.0}
    scores = np.array([0.9, 0.1, 0.8, 0.2])
    assert precision_at_k(scores, np.array([1, 0, 0, 1], bool), 2) == 0.5


def test_few_shot_curve_improves_with_labels_and_notes_gaps():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1200, 30))
    y = x @ rng.normal(size=30) + 0.5 * rng.normal(size=1200)
    y[:50] = np.nan
    noise = rng.normal(size=(1200, 30))
    curve = few_shot_curve(
        {"signal": x, "noise": noise}, y, "y", budgets=(10, 100, 5000, None), seeds=3
    )
    summary = curve.summary("r2")
    assert summary[("signal", "linear", 100)][0] > summary[("signal", "linear", 10)][0]
    assert summary[("signal", "linear", -1)][0] > 0.9
    assert summary[("noise", "linear", -1)][0] < 0.05
    assert summary[("signal", "linear", 10)][1] > 0  # spread over seeds is reported
    assert any("50 objects without a y label" in n for n in curve.notes)
    assert any("budget 5000 skipped" in n for n in curve.notes)


def test_few_shot_classification_and_methods():
    rng = np.random.default_rng(2)
    kinds = np.where(rng.random(600) < 0.5, "early", "late").astype(object)
    x = rng.normal(size=(600, 8)) + (kinds == "early")[:, None] * 2.0
    curve = few_shot_curve(
        {"emb": x},
        kinds,
        "kind",
        "classification",
        budgets=(30, None),
        methods=("linear", "knn", "mlp"),
        seeds=2,
    )
    summary = curve.summary("accuracy")
    for method in ("linear", "knn", "mlp"):
        assert summary[("emb", method, -1)][0] > 0.9
    with pytest.raises(ValueError, match="unknown probe method"):
        few_shot_curve({"emb": x}, kinds, "kind", "classification", methods=("svm",), seeds=1)


def test_probes_in_worker_processes_give_the_rows_of_one_process():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 12))
    y = x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.normal(size=400)
    kinds = np.where(x[:, 2] + 0.5 * rng.normal(size=400) > 0, "early", "late").astype(object)
    features = {"signal": x, "noise": rng.normal(size=(400, 12))}
    for labels, task in ((y, "regression"), (kinds, "classification")):
        runs = [
            few_shot_curve(
                features, labels, "t", task, (10, 100, None), METHODS, seeds=2, jobs=jobs
            )
            for jobs in (1, 2)
        ]
        one, two = (pd.DataFrame(c.rows) for c in runs)
        assert len(one) == 2 * 3 * (2 + 2 + 1)  # features × probes × draws, none lost
        pd.testing.assert_frame_equal(one, two, rtol=1e-9)
        # The rows mean what they say: the signal beats the noise with every label.
        best = one[one.budget == -1].groupby("feature")[MAIN_METRIC[task]].max()
        assert best["signal"] > best["noise"] + 0.3
    with pytest.raises(ValueError, match="jobs must be a count"):
        few_shot_curve(features, y, "t", jobs=0)


def test_similarity_search_finds_the_twin():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    vectors[42] = vectors[7] * 3.0 + 0.01  # same direction, different length
    ids = np.array([f"obj{i}" for i in range(500)])
    found, dist = SimilarityIndex(vectors, ids).query("obj7", k=5)
    assert found[0] == "obj42" and dist[0] < 1e-3 and "obj7" not in found
    assert np.all(np.diff(dist) >= 0)
    with pytest.raises(DataError, match="not among"):
        SimilarityIndex(vectors, ids).query("nobody")
    for k in (0, -3):  # no neighbour asked for: an error, not an empty list or FAISS's assert
        with pytest.raises(DataError, match="at least 1"):
            SimilarityIndex(vectors, ids).query("obj7", k=k)


def test_either_score_finds_what_one_score_misses():
    """A tight cluster of twelve identical outliers is invisible to the 10-neighbour distance
    (they are each other's neighbours) but not to a second score; scattered outliers the
    other way round. The combination ranks both kinds first."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1000, 8))
    x[:12] = 8.0  # twelve identical rare objects
    x[12:24] += rng.normal(0, 6.0, size=(12, 8))  # twelve scattered ones
    second = rng.normal(size=1000)
    second[:12] += 10.0  # what the second score sees: the cluster only
    rare = np.zeros(1000, bool)
    rare[:24] = True
    knn = anomaly_scores(x, "knn")
    cluster = np.r_[0:12, 24:1000]
    assert roc_auc_score(rare[cluster], knn[cluster]) < 0.1
    both = either_scores(second, knn)
    assert anomaly_metrics(both, rare)["roc_auc"] > 0.99
    assert roc_auc_score(rare, both) > max(roc_auc_score(rare, knn), roc_auc_score(rare, second))
    with pytest.raises(ValueError, match="at least one"):
        either_scores()


def test_either_score_scales_each_score_by_its_tail():
    """One score has a long tail among ordinary objects (Cauchy, as the model's surprise
    has), the other a short one (Gaussian, as the neighbour distance). Rare objects seen only
    by the short-tailed score, 4σ out, must not drown under the long tail's ordinary
    objects: scaled by the interquartile range they do, scaled by where each score's top
    percent begins they do not."""
    rng = np.random.default_rng(11)
    n, n_rare = 5000, 50
    long_tail = rng.standard_t(1.0, size=n)
    short_tail = rng.normal(size=n)
    short_tail[:n_rare] += 4.0
    rare = np.zeros(n, bool)
    rare[:n_rare] = True
    iqr_scaled = np.maximum(robust_z(long_tail), robust_z(short_tail))
    both = either_scores(long_tail, short_tail)
    assert roc_auc_score(rare, both) > 0.97
    assert roc_auc_score(rare, both) > roc_auc_score(rare, iqr_scaled) + 0.05
    scaled = tail_scaled(short_tail)
    assert np.median(scaled) == pytest.approx(0.0, abs=1e-9)
    assert np.mean(scaled >= 1.0) == pytest.approx(0.01, abs=0.001)
    gap = short_tail.copy()
    gap[7] = np.nan  # an object without this score keeps no score, the others theirs
    assert np.isnan(tail_scaled(gap)[7]) and np.isfinite(np.delete(tail_scaled(gap), 7)).all()
    assert either_scores(gap, long_tail)[7] == pytest.approx(tail_scaled(long_tail)[7])
    with pytest.raises(ValueError, match="quantile"):
        tail_scaled(short_tail, 1.5)


def test_local_outlier_factor_finds_what_lies_just_outside_a_dense_crowd():
    """Ten rare objects a little outside a dense crowd, nearer to it than the members of a
    sparse crowd are to each other (a merger beside the ordinary galaxies of its colour):
    the plain neighbour distance ranks the sparse crowd's members above them, the local
    outlier factor, which divides by the neighbours' own distances, ranks them first."""
    rng = np.random.default_rng(0)
    way = rng.normal(size=(10, 8))
    rare = 1.5 * way / np.linalg.norm(way, axis=1, keepdims=True)
    dense = rng.normal(0, 0.2, size=(900, 8))
    sparse = rng.normal(12.0, 2.0, size=(300, 8))
    x = np.vstack([rare, dense, sparse])
    is_rare = np.arange(len(x)) < 10
    assert roc_auc_score(is_rare, anomaly_scores(x, "knn")) < 0.8
    lof = anomaly_metrics(anomaly_scores(x, "lof"), is_rare)
    assert lof["roc_auc"] > 0.99 and lof["precision_at_10"] >= 0.9
    with pytest.raises(ValueError, match="unknown anomaly method"):
        anomaly_scores(x, "lfo")
    with pytest.raises(ValueError, match="more than 20 objects, not 12"):
        anomaly_scores(x[:12], "lof")


def test_the_largest_outlier_factor_over_neighbourhoods_finds_a_group_larger_than_k():
    """Twenty-five rare objects alike (as the survey's bright stars are) sit together away
    from the crowd: at 20 neighbours each one's neighbours are the group itself and the
    local outlier factor calls them ordinary; over 10–50 neighbours the largest factor sees
    past the group to the crowd."""
    rng = np.random.default_rng(1)
    group = rng.normal(4.0, 0.05, size=(25, 6))
    crowd = rng.normal(0.0, 1.0, size=(2000, 6))
    x = np.vstack([group, crowd])
    is_rare = np.arange(len(x)) < 25
    assert roc_auc_score(is_rare, anomaly_scores(x, "lof")) < 0.7
    ranged = anomaly_metrics(anomaly_scores(x, "lof-range"), is_rare)
    assert ranged["roc_auc"] > 0.99 and ranged["precision_at_10"] == 1.0
    # It is the largest of scikit-learn's own factors over the neighbourhood sizes, found
    # from one FAISS search instead of one scikit-learn fit per size.
    z = StandardScaler().fit_transform(x)
    each = [-LocalOutlierFactor(n_neighbors=k).fit(z).negative_outlier_factor_ for k in LOF_RANGE]
    np.testing.assert_allclose(anomaly_scores(x, "lof-range"), np.max(each, axis=0), rtol=1e-4)
    np.testing.assert_allclose(anomaly_scores(x, "lof"), each[2], rtol=1e-4)  # k = 20
    with pytest.raises(ValueError, match="more than 50 objects, not 40"):
        anomaly_scores(x[:40], "lof-range")
    with pytest.raises(ValueError, match="give k to lof or knn"):
        anomaly_scores(x, "lof-range", k=20)


def test_anomaly_metrics_say_which_rare_kinds_a_score_finds():
    """A score that sees arcs and not rings: all rare objects together read half-way, each
    kind alone against the ordinary objects reads what the score does for it."""
    rng = np.random.default_rng(2)
    kinds = np.array(["late"] * 900 + ["arc"] * 50 + ["ring"] * 50, dtype=object)
    rare = kinds != "late"
    score = rng.normal(size=1000) + 5.0 * (kinds == "arc")
    metrics = anomaly_metrics(score, rare, kinds)
    assert set(metrics["roc_auc_by_kind"]) == {"arc", "ring"}  # ordinary kinds are not listed
    assert metrics["roc_auc_by_kind"]["arc"] > 0.99
    assert abs(metrics["roc_auc_by_kind"]["ring"] - 0.5) < 0.1
    assert 0.65 < metrics["roc_auc"] < 0.85
    assert "roc_auc_by_kind" not in anomaly_metrics(score, rare)


def test_paired_auc_interval_tells_a_gap_from_the_draw_of_rare_objects():
    """With a hundred rare objects among thousands, two scores of the same skill differ in
    ROC-AUC by the draw of objects alone: the paired bootstrap's interval holds level. A
    truly better score — the same signal with less noise on every object — leaves level
    outside it although the gap is smaller than either ROC-AUC's own spread over the draws:
    the draw's luck is shared and cancels."""
    from astroloom.evaluate.metrics import _weighted_auc, paired_auc_difference

    rng = np.random.default_rng(7)
    n, n_rare = 5000, 100
    rare = np.arange(n) < n_rare
    signal = 2.5 * rare + rng.normal(size=n)
    better = signal + rng.normal(0, 0.3, size=n)
    worse = signal + rng.normal(0, 0.6, size=n)
    twin = signal + rng.normal(0, 0.3, size=n)  # as good as ``better``, other noise
    gap = paired_auc_difference(better, worse, rare)
    assert gap["difference"] == pytest.approx(
        roc_auc_score(rare, better) - roc_auc_score(rare, worse)
    )
    assert 0 < gap["low"] <= gap["difference"] <= gap["high"] and gap["share_ahead"] > 0.975
    assert gap["high"] - gap["low"] < 0.03
    same = paired_auc_difference(better, twin, rare)
    assert same["low"] < 0 < same["high"] and 0.05 < same["share_ahead"] < 0.95
    itself = paired_auc_difference(better, better, rare)
    assert itself["low"] == itself["high"] == 0.0
    # Each draw's ROC-AUC counts every object as often as it was drawn, ties a half: as
    # scikit-learn's on the resampled objects written out one by one.
    tied = np.round(signal, 1)
    times_pos = rng.multinomial(n_rare, np.full(n_rare, 1 / n_rare), size=1)
    times_neg = rng.multinomial(n - n_rare, np.full(n - n_rare, 1 / (n - n_rare)), size=1)
    written = np.r_[np.repeat(tied[rare], times_pos[0]), np.repeat(tied[~rare], times_neg[0])]
    truth = np.r_[np.ones(n_rare, bool), np.zeros(n - n_rare, bool)]
    assert _weighted_auc(tied, rare, times_pos, times_neg)[0] == pytest.approx(
        roc_auc_score(truth, written)
    )
    with pytest.raises(ValueError, match="one per object"):
        paired_auc_difference(better[:10], worse, rare)
    with pytest.raises(ValueError, match="both positives and negatives"):
        paired_auc_difference(better, worse, np.zeros(n, bool))


@pytest.mark.parametrize("method", ["iforest", "knn", "lof", "lof-range"])
def test_anomaly_scores_rank_outliers_first(method):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1000, 10))
    x[:10] += 6.0
    rare = np.zeros(1000, bool)
    rare[:10] = True
    metrics = anomaly_metrics(anomaly_scores(x, method), rare)
    assert metrics["roc_auc"] > 0.99 and metrics["precision_at_10"] >= 0.9


@pytest.fixture(scope="module")
def survey_run(tmp_path_factory):
    from conftest import tiny_config

    from astroloom.data.sim.survey import simulate_survey
    from astroloom.train.loop import train

    data = tmp_path_factory.mktemp("survey-bench")
    simulate_survey(
        data, n_galaxies=400, n_stars=10, seed=3, rare_fraction=0.05, workers=2, progress=False
    )
    run = tmp_path_factory.mktemp("survey-run") / "run"
    train(tiny_config(data, run, 150), progress=False)
    return run, data


def test_bench_on_the_mock_survey(survey_run, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from astroloom.cli import app
    from astroloom.paths import resolve_recorded

    run, data = survey_run
    # Given relative to the working directory, as a user types them.
    monkeypatch.chdir(run.parent)
    result = CliRunner().invoke(
        app,
        [
            "bench",
            os.path.relpath(run),
            os.path.relpath(data),
            "--out",
            str(tmp_path),
            "--seeds",
            "2",
            "--budgets",
            "30,100,all",
        ],
    )
    assert result.exit_code == 0, result.output
    bench = json.loads((tmp_path / "bench.json").read_text())
    # The run and data it names resolve beside bench.json, from any working directory.
    monkeypatch.chdir(tmp_path.parent)
    assert resolve_recorded(bench["meta"]["run"], tmp_path) == run.resolve()
    assert resolve_recorded(bench["meta"]["data"], tmp_path) == data.resolve()
    targets = {c["target"] for c in bench["curves"]}
    assert {"redshift", "log_stellar_mass", "morph_type"} <= targets
    rows = [r for c in bench["curves"] if c["target"] == "mag_r" for r in c["rows"]]
    best = max(r["r2"] for r in rows if r["feature"] == "foundation" and r["budget"] == -1)
    assert best > 0.6  # brightness is in the pixels; even a brief pretraining encodes it
    z_rows = [r for c in bench["curves"] if c["target"] == "redshift" for r in c["rows"]]
    assert all("nmad" in r and "outlier_fraction" in r for r in z_rows)
    assert set(bench["anomalies"]) == {
        "foundation",
        "foundation surprise",
        "foundation surprise or LOF",
        "pixel PCA",
        "random weights",
        "hand-crafted",
    }
    assert set(bench["anomalies"]["foundation surprise"]) == {"two-sided", "one-sided"}
    assert set(bench["anomalies"]["foundation surprise or LOF"]) == {"max"}
    # Each rare kind alone, and the verdict's two scores with the bootstrap of their gap.
    by_kind = bench["anomalies"]["hand-crafted"]["lof"]["roc_auc_by_kind"]
    assert set(by_kind) <= {"ring", "merger", "star", "trail", "arc"} and len(by_kind) >= 3
    versus = bench["anomaly_versus_best_baseline"]
    ours, theirs = versus["foundation"], versus["baseline"]
    assert ours[0].startswith("foundation") and not theirs[0].startswith("foundation")
    assert versus["difference"] == pytest.approx(
        bench["anomalies"][ours[0]][ours[1]]["roc_auc"]
        - bench["anomalies"][theirs[0]][theirs[1]]["roc_auc"]
    )
    assert versus["low"] <= versus["high"] and versus["draws"] == 2000
    assert "95 % interval" in (tmp_path / "bench.md").read_text()
    assert bench["meta"]["pool"] == "moments"
    # The three waves are read alike: every feature set by every probe type.
    for curve in bench["curves"]:
        pairs = {
            (r["feature"], r["method"]) for r in curve["rows"] if r["feature"] != "supervised CNN"
        }
        features = {f for f, _ in pairs}
        assert pairs == {(f, m) for f in features for m in ("linear", "knn", "mlp")}, curve[
            "target"
        ]
    # The every-label point is one draw; its spread is a bootstrap of the test set.
    every = [r for r in rows if r["budget"] == -1]
    assert every and all(r["r2_bootstrap_std"] > 0 for r in every)
    hand = [r for r in rows if r["feature"] == "hand-crafted" and r["budget"] == -1]
    assert hand and hand[0]["r2"] > 0.8  # flux is measured directly: a strong first-wave baseline
    assert bench["anomalies"]["foundation"]["iforest"]["n_positive"] == 20
    assert (tmp_path / "bench.png").stat().st_size > 20_000
    layers = bench["layers"]
    assert sorted(int(k) for k in layers) == [0, 1, 2]  # embeddings and both blocks
    assert all("redshift" in by for by in layers.values())
    assert "## Layer sweep" in (tmp_path / "bench.md").read_text()
    # Where the time went, stage by stage (the layer sweep's embeddings in the foundation's;
    # this model reads no light curves).
    seconds = bench["meta"]["seconds"]
    assert set(seconds) == {
        "foundation embeddings",
        "baseline features",
        "galaxy probes",
        "anomalies",
        "layer sweep",
    }
    assert all(t >= 0 for t in seconds.values()) and seconds["galaxy probes"] > 0
    assert "| foundation | linear |" in (tmp_path / "bench.md").read_text()
    assert "## Foundation vs best baseline" in (tmp_path / "bench.md").read_text()
    # An unknown target is an error naming those bench knows, not other targets' results.
    wrong = CliRunner().invoke(app, ["bench", str(run), str(data), "--target", "redshfit"])
    assert wrong.exit_code != 0 and "unknown bench target(s) ['redshfit']" in str(wrong.exception)
    # A count of processes that means nothing is refused before any work.
    wrong = CliRunner().invoke(app, ["bench", str(run), str(data), "--jobs", "0"])
    assert wrong.exit_code == 2 and "jobs must be a count of processes" in wrong.output


def test_bench_trains_the_supervised_cnn_on_the_same_splits(survey_run):
    from astroloom.evaluate.bench import run_bench

    run, data = survey_run
    result = run_bench(
        run,
        data,
        budgets=(None,),
        seeds=1,
        targets=["mag_r"],
        layer_sweep=False,
        progress=False,
        cnn_steps=100,
    )
    (curve,) = result.curves
    cnn = {r["budget"]: r for r in curve.rows if r["feature"] == "supervised CNN"}
    probe = {r["budget"]: r for r in curve.rows if r["feature"] == "foundation"}
    assert set(cnn) == set(probe) == {-1}
    assert {"r2", "rmse", "bias"} <= set(cnn[-1])
    # A CNN sees brightness directly in the pixels: with every label it learns it.
    assert cnn[-1]["r2"] > 0.5, cnn
    assert "| supervised CNN | resnet |" in result.markdown()


def test_bench_embeds_at_the_block_asked_for(survey_run):
    from astroloom.evaluate.bench import run_bench

    run, data = survey_run

    def foundation_r2(layer):
        result = run_bench(
            run,
            data,
            budgets=(None,),
            seeds=1,
            targets=["half_light_radius"],
            layer_sweep=False,
            progress=False,
            layer=layer,
        )
        (curve,) = result.curves
        rows = [r for r in curve.rows if r["feature"] == "foundation" and r["method"] == "linear"]
        return result.meta["layer"], rows[0]["r2"]

    # The tiny model has two blocks: the middle one by default, the patch embeddings on request.
    middle, patches = foundation_r2(None), foundation_r2(0)
    assert middle[0] == 1 and patches[0] == 0
    assert middle[1] != patches[1] and max(middle[1], patches[1]) > 0.3  # size is in the pixels
    with pytest.raises(DataError, match="layer 3 is not a block of this model: choose 0"):
        run_bench(run, data, targets=["mag_r"], progress=False, layer=3)


def test_bench_of_a_class_target_alone_skips_the_regression_layer_sweep(survey_run):
    from astroloom.evaluate.bench import run_bench

    run, data = survey_run
    result = run_bench(run, data, budgets=(None,), seeds=1, targets=["morph_type"], progress=False)
    assert [c.target for c in result.curves] == ["morph_type"]
    # The sweep probes regression targets: none asked, so no blocks embedded, no empty table.
    assert result.layers == {}
    assert "## Layer sweep" not in result.markdown()
    assert "| morph_type |" in result.markdown()


def test_search_and_anomaly_commands(survey_run, tmp_path):
    from typer.testing import CliRunner

    from astroloom.cli import app
    from astroloom.evaluate.embed import embed_dataset, read_embeddings, write_embeddings

    run, data = survey_run
    path = embed_dataset(run, data, tmp_path / "emb.parquet", progress=False)
    first = read_embeddings(path).ids[0]
    result = CliRunner().invoke(
        app, ["search", str(path), "--like", first, "-k", "5", "--out", str(tmp_path / "near.png")]
    )
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 6 and (tmp_path / "near.png").exists()
    result = CliRunner().invoke(app, ["anomalies", str(path), "--top", "5"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    # The printed ROC-AUC is the rare labels' against the printed method's scores.

    emb = read_embeddings(path)
    expected = roc_auc_score(emb.labels["is_rare"] == 1, anomaly_scores(emb.vectors, "lof"))
    assert metrics["n_positive"] == 20
    assert metrics["roc_auc"] == pytest.approx(expected, abs=1e-9)
    # A label asked for by name must exist and be 0/1; --top cannot be negative.
    for asked, says in (
        (["--label", "nope"], "no label 'nope'; available"),
        (["--label", "mag_r"], "must be 0/1"),
        (["--top", "-1"], "0 or more"),
    ):
        refused = CliRunner().invoke(app, ["anomalies", str(path), *asked])
        assert refused.exit_code != 0 and says in str(refused.exception), asked
    # The radial pooling: the moments vector first, the radial terms after it, and the
    # anomaly command reads such a file like any other.
    radial_path = embed_dataset(
        run, data, tmp_path / "radial.parquet", modalities=["image"], pool="radial",
        progress=False,
    )
    radial = read_embeddings(radial_path)
    width = radial.meta["n_embd"]
    assert radial.vectors.shape[1] == 7 * width and radial.meta["pool"] == "radial"
    # The model reads images alone, so the default file above holds their moments vectors.
    assert emb.meta["pool"] == "moments" and emb.meta["modalities"] == ["image"]
    np.testing.assert_allclose(radial.vectors[:, : 5 * width], emb.vectors, atol=1e-5)
    assert np.abs(radial.vectors[:, 5 * width :]).max() > 1e-3
    result = CliRunner().invoke(app, ["anomalies", str(radial_path), "--top", "3"])
    assert result.exit_code == 0, result.output
    expected = roc_auc_score(radial.labels["is_rare"] == 1, anomaly_scores(radial.vectors, "lof"))
    assert json.loads(result.stdout.strip().splitlines()[-1])["roc_auc"] == pytest.approx(
        expected, abs=1e-9
    )
    # And a planted outlier tops the ranking: an embedding pushed far from the rest.
    planted = emb.vectors.copy()
    planted[7] += 50 * emb.vectors.std(0)
    assert int(np.argmax(anomaly_scores(planted, "knn"))) == 7

    png, coords = tmp_path / "map.png", tmp_path / "map.parquet"
    args = ["map", str(path), "--color", "redshift", "--color", "morph_type", "--out", str(png)]
    result = CliRunner().invoke(app, [*args, "--coords", str(coords)])
    assert result.exit_code == 0, result.output
    emb = read_embeddings(path)
    n = len(emb.ids)
    recall = float(result.output.split("neighbour recall: ")[1].split()[0])
    assert recall > 5 * 15 / n  # far better than a random layout
    assert png.stat().st_size > 20_000
    mapped = read_embeddings(coords)
    assert mapped.vectors.shape == (n, 2) and list(mapped.ids) == list(emb.ids)
    assert np.isfinite(mapped.vectors).all()

    emb.labels["redshift"][:7] = np.nan  # objects without the label are drawn grey and counted
    write_embeddings(tmp_path / "holes.parquet", emb)
    result = CliRunner().invoke(app, ["map", str(tmp_path / "holes.parquet"), *args[2:]])
    assert result.exit_code == 0, result.output
    assert f"7 of {n} objects have no redshift" in result.output
    result = CliRunner().invoke(app, ["map", str(path), "--color", "no_such_label"])
    assert result.exit_code != 0 and "available:" in str(result.exception)


def test_umap_map_keeps_clusters_apart_and_is_reproducible():
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from astroloom.discover.embedding_map import umap_map

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 32)) * 3
    kind = rng.integers(0, 4, 800)
    x = centres[kind] + rng.normal(size=(800, 32))
    first, again = umap_map(x, seed=1), umap_map(x, seed=1)
    np.testing.assert_array_equal(first.coords, again.coords)
    knn = KNeighborsClassifier(5)
    assert cross_val_score(knn, first.coords, kind, cv=5).mean() > 0.97
    assert first.neighbour_recall > 0.2  # a random layout keeps 15 / 800 ≈ 0.02

    x[3, 5] = np.nan
    with pytest.raises(DataError, match="1 of 800 embeddings hold NaN"):
        umap_map(x)
    with pytest.raises(DataError, match="needs more than n_neighbors"):
        umap_map(x[4:14])


def test_handcrafted_features_measure_what_they_say(mock_dir):
    from astroloom.data.shards import load_image_set
    from astroloom.evaluate.handcrafted import handcrafted_features
    from astroloom.evaluate.probe import ridge_probe

    data = load_image_set(mock_dir, limit=150)
    features = handcrafted_features(
        data.images, data.info.normalisation["image"]["scale"], progress=False
    )
    assert features.shape == (150, 3 + 2 + 7) and np.isfinite(features).all()
    # Column 3 is the measured g − r inside the segment. These galaxies have red bulges in
    # blue disks, so it is not the total colour, but it must follow it.
    assert np.corrcoef(features[:, 3], data.labels["g_r"])[0, 1] > 0.6
    assert ridge_probe(features, data.labels["half_light_radius"]).r2 > 0.5
    # Measured in chunks by worker processes: the same numbers (here 300 cutouts, 2 chunks).
    twice = np.concatenate([data.images, data.images[::-1]])
    noise = data.info.normalisation["image"]["scale"]
    one, two = (handcrafted_features(twice, noise, False, jobs) for jobs in (1, 2))
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one[:150], features)


def test_few_shot_ridge_does_not_collapse_with_fewer_labels_than_dimensions():
    """30 labels, 128 dimensions: k-fold CV picks a penalty strong enough that a feature set
    carrying little signal predicts about the mean (the LOO-GCV ridge gave R² −1.3 ± 2.9
    here), while a real signal is still found."""
    rng = np.random.default_rng(0)
    # Embedding-like features: a few strong latent directions spread over 128 dimensions.
    latent = rng.normal(size=(600, 4))
    x = latent @ rng.normal(size=(4, 128)) + 0.5 * rng.normal(size=(600, 128))
    weak = 0.1 * x[:, 5] + rng.normal(size=600)
    strong = latent @ np.array([1.0, -1.0, 0.5, 0.2]) + 0.3 * rng.normal(size=600)
    for y, floor in ((weak, -0.1), (strong, 0.5)):
        curve = few_shot_curve({"f": x}, y, "y", budgets=(30,), seeds=5)
        mean, _ = curve.summary("r2")[("f", "linear", 30)]
        assert mean > floor, (floor, mean)


def test_a_few_shot_probe_does_not_extrapolate_from_one_wild_feature():
    """A feature that tracks the label in the training objects but lies far out for a few
    test objects (a radius from a segmentation that merged two galaxies): the linear probe
    and the MLP clip each feature to the training objects' range, so those objects get a
    prediction within reach of the labels and the test R² stays near what the good objects
    give; the unclipped ridge, scored the same way, collapses."""
    from astroloom.evaluate.fewshot import make_probe, standardised

    rng = np.random.default_rng(1)
    n = 600
    y = rng.normal(size=n)
    x = np.stack([y + 0.3 * rng.normal(size=n), y + 0.3 * rng.normal(size=n)], axis=1)
    wild = rng.choice(n, 6, replace=False)
    x[wild, 1] += 60.0  # six objects, 60 standard deviations out in one feature
    for method in ("linear", "mlp"):
        curve = few_shot_curve({"f": x}, y, "y", budgets=(30,), methods=(method,), seeds=5)
        mean, _ = curve.summary("r2")[("f", method, 30)]
        assert mean > 0.6, (method, mean)
    train = np.setdiff1d(np.arange(n), wild)[:30]
    probe = make_probe("linear", "regression", 30, 0, 2).fit(x[train], y[train])
    assert np.abs(probe.predict(x[wild])).max() < 2 * np.abs(y[train]).max()
    from sklearn.linear_model import Ridge

    plain = standardised(Ridge(alpha=1.0), clip=False).fit(x[train], y[train])
    assert np.abs(plain.predict(x[wild])).max() > 10 * np.abs(y[train]).max()


def test_bench_counts_wins_against_the_best_baseline():
    from astroloom.evaluate.bench import BenchResult
    from astroloom.evaluate.fewshot import Curve

    rows = []
    scores = {"foundation": (0.5, 0.7), "pixel PCA": (0.6, 0.65), "random": (0.1, 0.2)}
    for feature, values in scores.items():
        for budget, v in zip((100, -1), values, strict=True):
            rows.append(
                {"feature": feature, "method": "linear", "budget": budget, "seed": 0, "r2": v}
            )
    anomalies = {
        "foundation": {"knn": {"roc_auc": 0.9}},
        "hand-crafted": {"knn": {"roc_auc": 0.95}},
    }
    result = BenchResult([Curve("size", "regression", rows)], anomalies, {"run": "r"})
    versus = result.versus()
    assert [(r["budget"], r["baseline"], r["win"]) for r in versus] == [
        (100, "pixel PCA", False),
        (-1, "pixel PCA", True),
    ]
    text = result.markdown()
    assert "✗ 0.500 vs 0.600 (pixel PCA)" in text and "in all 1/2" in text
    assert "✗ foundation 0.900 vs 0.950 (hand-crafted)" in text


def test_bench_pairs_each_draw_and_tells_a_tie_from_a_loss():
    """Every feature set is probed on the same labelled objects per draw, so the draws' luck
    is shared and cancels in the draw-by-draw difference: a steady 0.02 deficit is a clear
    loss however much the draws scatter, a 0.001 one among noisy draws is a tie."""
    from astroloom.evaluate.bench import BenchResult
    from astroloom.evaluate.fewshot import Curve

    rng = np.random.default_rng(3)
    luck = rng.normal(0.5, 0.05, size=20)  # each draw's labels: good or bad for every set
    jitter = rng.normal(0.0, 0.004, size=20)
    jitter -= jitter.mean()
    curves = []
    for target, offset, noise in (("mass", -0.02, 0.0), ("size", -0.001, 1.0)):
        rows = []
        for seed in range(20):
            values = {
                "foundation": luck[seed] + offset + noise * jitter[seed],
                "hand-crafted": luck[seed],
                "random": luck[seed] - 0.3,
            }
            for feature, v in values.items():
                rows.append(
                    {"feature": feature, "method": "linear", "budget": 100, "seed": seed, "r2": v}
                )
        curves.append(Curve(target, "regression", rows))
    versus = {r["target"]: r for r in BenchResult(curves, {}, {"run": "r"}).versus()}
    mass, size = versus["mass"], versus["size"]
    assert mass["baseline"] == "hand-crafted" and not mass["win"]
    assert mass["difference"] == pytest.approx(-0.02) and mass["draws_won"] == 0
    assert mass["difference_se"] < 1e-9 and mass["draws"] == 20
    assert size["difference"] == pytest.approx(-0.001)
    assert 0.0005 < size["difference_se"] < 0.002  # 0.004 / √20
    assert 0 < size["draws_won"] < 20
    text = BenchResult(curves, {}, {"run": "r"}).markdown()
    assert "-0.0200 ± 0.0000 (0/20)" in text
    assert "within two standard errors of level: size at 100." in text


def test_every_label_spread_is_a_bootstrap_that_shrinks_with_the_test_set():
    """One draw has no spread over seeds; the bootstrap of its test set gives one, and it
    shrinks as 1/√n: ten times the test objects, about a third of the spread."""
    rng = np.random.default_rng(4)
    spreads = {}
    for n in (300, 3000):
        y = rng.normal(size=n)
        x = np.stack([y + rng.normal(scale=1.0, size=n), rng.normal(size=n)], axis=1)
        curve = few_shot_curve({"f": x}, y, "y", "regression", budgets=(None,), seeds=3)
        ((mean, spread),) = curve.summary("r2").values()
        assert 0.3 < mean < 0.7  # R² of y from y + unit noise: 0.5
        spreads[n] = spread
    assert spreads[300] > 0 and 0.2 < spreads[3000] / spreads[300] < 0.5


def test_bench_of_pictures_with_a_catalogue_and_of_pictures_without(survey_dir, tmp_path):
    """A folder of pictures ingested with a catalogue of redshifts is benched on what it
    has (no light curves: no light-curve stage); without a catalogue there is nothing to
    bench, and the error says so before any embedding."""
    from PIL import Image
    from typer.testing import CliRunner

    from astroloom.cli import app
    from astroloom.data.multiset import load_multimodal_set
    from astroloom.evaluate.bench import run_bench

    data = load_multimodal_set(survey_dir, ["image"])
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    rows = ["id,redshift"]
    for i in range(40):
        img = data.arrays["image"][i]
        rgb = np.clip(np.arcsinh(img[::-1] / (np.median(np.abs(img)) + 1e-3)) / 6, 0, 1)
        picture = Image.fromarray((rgb.transpose(1, 2, 0) * 255).astype(np.uint8))
        picture.save(pictures / f"p{i}.png")
        rows.append(f"p{i},{data.labels['redshift'][i]}")
    (tmp_path / "catalogue.csv").write_text("\n".join(rows) + "\n")
    runner = CliRunner()
    for out, extra in (("labelled", ["--catalog", str(tmp_path / "catalogue.csv")]), ("bare", [])):
        ingested = runner.invoke(
            app, ["data", "ingest", "images", str(pictures), "--out", str(tmp_path / out),
                  "--bands", "g,r,z", *extra],
        )  # fmt: skip
        assert ingested.exit_code == 0, ingested.output
    model = "astroloom/mock-tiny"  # multimodal: it reads light curves too
    result = run_bench(
        model, tmp_path / "labelled", budgets=(10,), seeds=1, layer_sweep=False, progress=False
    )
    assert [c.target for c in result.curves] == ["redshift"]
    assert result.anomalies == {}
    with pytest.raises(DataError, match="nothing to bench.*--catalog"):
        run_bench(model, tmp_path / "bare", budgets=(10,), seeds=1, progress=False)
