"""Attribution, attention and surprise maps (``astroloom explain``), tested on answers known
in advance: a label planted in one corner of the image, satellite trails and lensed arcs
painted onto ordinary galaxies, the completeness of integrated gradients, the sanity
checks of Adebayo et al. (2018) — all with the shipped model ``astroloom/mock-tiny``."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from astropy.io import fits
from conftest import cli
from PIL import Image
from sklearn.metrics import roc_auc_score

from astroloom.data.multiset import keep, load_multimodal_set
from astroloom.data.schema import DataError
from astroloom.interpret import tuned as tuned_module
from astroloom.interpret.attribution import Explainer, ExplainError, continuum_of
from astroloom.interpret.explain import explain_object
from astroloom.interpret.known import (
    SOURCE_PATCHES,
    line_significance,
    near_lines,
    paint_rare,
    plant_source,
    region_share,
    surprise_hits,
    without_lines,
)
from astroloom.interpret.sanity import sanity_checks
from astroloom.interpret.surprise import surprise_anomaly_scores
from astroloom.interpret.tuned import (
    TunedEnsemble,
    TunedProbe,
    ensemble,
    fine_tune,
    flat_continuum,
    mixed_views,
    strongest_line,
)
from astroloom.model.foundation import Foundation
from astroloom.model.multimodal import ModalityError, build_model
from astroloom.tokenize.image import spiral_order
from astroloom.tokenize.tokens import ModalityTokens

MODEL = "astroloom/mock-tiny"


@pytest.fixture(scope="module")
def foundation() -> Foundation:
    return Foundation.from_pretrained(MODEL)


@pytest.fixture(scope="module")
def galaxies(survey_dir):
    data = load_multimodal_set(survey_dir, ["image"])
    return keep(data, data.present["image"] & (data.labels["is_rare"] == 0))


@pytest.fixture(scope="module")
def image_explainer(foundation, galaxies) -> Explainer:
    return Explainer(foundation, galaxies, use=["image"])


@pytest.fixture(scope="module")
def planted(foundation, galaxies):
    return plant_source(foundation, galaxies)


def test_a_label_planted_in_one_corner_is_found_there(foundation, planted):
    """Half the galaxies get a compact source at pixel (16, 16) — four of the 64 patches —
    and the label says which. Each galaxy appears in four orientations, the source always
    at the same place, so that nothing but the source carries the label. With the model's
    own fill, most of the occlusion and integrated-gradient mass of the probe's logit
    falls in those four patches (6 % of the image); emptying the patches instead puts
    less there."""
    data, has = planted
    chosen = [str(i) for i in data.ids[has][:16]]
    mean_share = {}
    for fill in ("inpaint", "empty"):
        explainer = Explainer(foundation, data, use=["image"], fill=fill)
        target = explainer.probe("planted", "source")
        for method in ("occlusion", "integrated-gradients"):
            shares = [
                region_share(explainer.explain(i, method, target).tokens["image"]) for i in chosen
            ]
            mean_share[fill, method] = np.mean(shares)
            if fill == "inpaint":  # the default; the issue asked for 60 %
                assert np.mean(shares) >= 0.6, (method, np.round(shares, 2))
                assert np.median(shares) >= 0.6, (method, np.round(shares, 2))
    for method in ("occlusion", "integrated-gradients"):
        assert mean_share["inpaint", method] > mean_share["empty", method] + 0.03, mean_share


def test_the_models_fill_keeps_the_galaxy_and_drops_the_planted_source(foundation, planted):
    """What replaces a patch: the model's prediction of it from the others. A galaxy's
    bright centre is predicted from its surroundings; a source that no neighbour announces
    is not, so its patches are filled with much less light than they hold."""
    data, has = planted
    explainer = Explainer(foundation, data, use=["image"])
    assert explainer.fill == "inpaint"
    order = np.array(spiral_order(8))
    source_tokens = np.flatnonzero(SOURCE_PATCHES.reshape(-1)[order])
    kept, dropped = [], []
    for object_id in data.ids[has][:8]:
        row = explainer.row(str(object_id))
        actual = explainer.tokens["image"].values[row]
        fill = explainer.fills(str(object_id))["image"]
        # The central patch (token 0 of the spiral) and the source's patches: the light
        # the fill puts there over the light there is. Measured: 0.77–2.3 (median 0.97)
        # for the centre, 0.01–0.07 for the source.
        kept.append(float(fill[0].sum() / actual[0].sum()))
        dropped.append(float(fill[source_tokens].sum() / actual[source_tokens].sum()))
    assert 0.8 < np.median(kept) < 1.25, kept
    assert np.max(dropped) < 0.2, dropped
    with pytest.raises(ExplainError, match="unknown fill"):
        Explainer(foundation, data, use=["image"], fill="noise")


def test_integrated_gradients_add_up_to_the_change_from_the_empty_input(image_explainer):
    target = image_explainer.probe("redshift")
    for object_id in image_explainer.data.ids[:3]:
        m = image_explainer.integrated_gradients(str(object_id), target, steps=64)
        total = np.nansum(m.values["image"])
        assert total == pytest.approx(m.value - m.baseline_value, rel=0.03, abs=1e-3)
        # The per-token map is the per-value map summed over each patch's values.
        assert np.allclose(np.nansum(m.values["image"], axis=1), m.tokens["image"], atol=1e-6)


def test_occlusion_is_the_drop_when_one_patch_is_filled(foundation, galaxies, image_explainer):
    """Occluding a patch by hand — with the model's fill, or with sky — gives the same
    number the map holds."""
    object_id = str(image_explainer.data.ids[5])
    sky = Explainer(foundation, galaxies, use=["image"], fill="empty")
    for explainer in (image_explainer, sky):
        target = explainer.probe("redshift")
        m = explainer.occlusion(object_id, target)
        assert m.fill == explainer.fill
        batch = explainer.object_tokens(object_id)
        batch["image"].values[0, 7] = explainer.fills(object_id)["image"][7]
        with torch.no_grad():
            by_hand = m.value - float(target(explainer.embed(batch))[0])
        assert m.tokens["image"][7] == pytest.approx(by_hand, abs=1e-5)
    assert not sky.fills(object_id)["image"].any()


def test_attention_rollout_is_a_share_and_uniform_before_any_block(foundation, galaxies):
    object_id = str(galaxies.ids[0])
    m = Explainer(foundation, galaxies, use=["image"]).attention(object_id)
    share = m.tokens["image"]
    assert np.all(share >= 0) and share.sum() == pytest.approx(1.0, abs=1e-5)
    # Read before the first block, an embedding is the plain mean of its tokens.
    flat = Explainer(foundation, galaxies, use=["image"], layer=0).attention(object_id)
    assert np.allclose(flat.tokens["image"], 1 / 64, atol=1e-7)
    # After three blocks the galaxy's centre (the first tokens of the spiral) draws more
    # than the sky at the cutout's edge (the last ones).
    assert share[:4].mean() > share[-28:].mean()


def test_surprise_maps_point_at_painted_trails_and_arcs(foundation, galaxies):
    """Satellite trails and lensed arcs painted onto ordinary galaxies with the survey's
    own drawing code: the most surprising patch lies on the painted light for most of
    them, and the surprise score ranks the painted galaxies above the others."""
    data, where = paint_rare(galaxies, 30)
    explainer = Explainer(foundation, data, use=["image"])
    hits = surprise_hits(explainer, where)
    assert np.mean(hits["trail"]) >= 0.8, hits
    assert np.mean(hits["arc"]) >= 0.7, hits
    scores = surprise_anomaly_scores(foundation.model, explainer.tokens)
    truth = np.isin(data.ids, list(where))
    assert roc_auc_score(truth, scores) > 0.9


def test_maps_fail_the_sanity_checks_they_should(image_explainer):
    """Randomising the weights, or training the probe on shuffled labels, changes the maps
    (Adebayo et al. 2018): the rank correlation with the original falls."""
    ids = [str(i) for i in image_explainer.data.ids[:6]]
    rows = {r["check"]: r["rho_mean"] for r in sanity_checks(image_explainer, ids, "redshift")}
    assert rows["every weight randomised"] < 0.6
    assert rows["probe on shuffled labels"] < 0.6
    assert rows["blocks 0–2 randomised"] < rows["block 2 randomised"]


def test_neighbour_and_anomaly_targets(image_explainer):
    a, b = (str(i) for i in image_explainer.data.ids[:2])
    similarity = image_explainer.neighbour(b)
    m = image_explainer.occlusion(a, similarity)
    emb = image_explainer.embeddings()
    cosine = emb[0] @ emb[1] / np.linalg.norm(emb[0]) / np.linalg.norm(emb[1])
    assert m.value == pytest.approx(cosine, abs=1e-4)
    anomaly = image_explainer.anomaly(a)
    assert image_explainer.occlusion(a, anomaly).value > 0


def test_bad_requests_get_clear_errors(foundation, galaxies, image_explainer, survey_dir):
    with pytest.raises(ExplainError, match="is the object itself"):
        explain_object(MODEL, survey_dir, str(galaxies.ids[0]), neighbour=str(galaxies.ids[0]))
    with pytest.raises(ExplainError, match="no object '../../etc/passwd'"):
        image_explainer.row("../../etc/passwd")
    with pytest.raises(ExplainError, match="no label 'colour'"):
        image_explainer.probe("colour")
    with pytest.raises(ExplainError, match="nothing a probe can learn"):
        image_explainer.probe("is_rare")  # every galaxy here is ordinary
    with pytest.raises(ExplainError, match="explains a number"):
        image_explainer.explain(str(galaxies.ids[0]), "occlusion")
    with pytest.raises(ExplainError, match="do not depend on a target"):
        image_explainer.explain(str(galaxies.ids[0]), "surprise", image_explainer.probe("g_r"))
    with pytest.raises(ExplainError, match="unknown method"):
        image_explainer.explain(str(galaxies.ids[0]), "saliency")
    with pytest.raises(ExplainError, match="holds no"):
        Explainer(foundation, galaxies, use=["lightcurve"])
    with pytest.raises(ModalityError, match="cannot explain"):
        Explainer(foundation, galaxies, use=["radio"])
    # A model that only ever predicted the next token cannot fill one in from both sides.
    causal = build_model(dataclasses.replace(foundation.model.cfg, objective="autoregressive"))
    causal_foundation = Foundation(causal, foundation.tokenizer)
    assert Explainer(causal_foundation, galaxies, use=["image"]).fill == "empty"
    with pytest.raises(ExplainError, match="needs a model pretrained to fill in"):
        Explainer(causal_foundation, galaxies, use=["image"], fill="inpaint")


def test_explain_command_writes_a_picture_and_the_raw_maps(survey_dir, tmp_path):
    data = load_multimodal_set(survey_dir, ["image", "spectrum", "photometry"])
    object_id = str(data.ids[np.flatnonzero(data.present["spectrum"])[0]])
    asked = ("explain", MODEL, str(survey_dir), "--id", object_id, "--target", "redshift")
    result = cli(*asked, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "occlusion map of" in result.stdout and "redshift" in result.stdout
    png = tmp_path / f"explain-{object_id}-occlusion.png"
    picture = np.asarray(Image.open(png).convert("L"), float)
    assert picture.std() > 10  # not blank
    with fits.open(tmp_path / f"explain-{object_id}-occlusion.fits") as hdus:
        assert hdus[0].header["OBJECT"] == object_id
        image_map = hdus["IMAGE"].data
        spectrum_map = hdus["SPECTRUM"].data
    again = explain_object(
        MODEL,
        survey_dir,
        object_id,
        target="redshift",
        modalities=["image", "spectrum", "photometry"],
    )
    assert image_map.shape == (64, 64)
    assert np.allclose(image_map, again.physical[0]["image"], atol=1e-5)
    assert spectrum_map.shape == (1551,)
    # The command's own checks, in this process (the exit status 2 and one-line message of
    # every user error are tested on the real command in tests/test_cli.py).
    from typer.testing import CliRunner

    from astroloom.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["explain", MODEL, str(survey_dir), "--id", "no-such-galaxy",
                              "--target", "redshift"])  # fmt: skip
    assert bad.exit_code != 0 and "no object 'no-such-galaxy'" in str(bad.exception)
    both = runner.invoke(app, [*asked, "--anomaly"])
    assert both.exit_code != 0 and "not several" in str(both.exception)


def test_a_folder_of_photographs_is_explained_by_a_multimodal_model(galaxies, tmp_path):
    """8-bit colour pictures ingested as a user would (unit and pixel scale unknown, images
    only) are explained by the multimodal model from their images, without --modality; a
    trail painted across the lower left of half of them is where the surprise map peaks."""
    from typer.testing import CliRunner

    from astroloom.cli import app

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        img = galaxies.arrays["image"][i]  # g, r, z
        rgb = np.arcsinh(img[::-1] / (np.median(np.abs(img)) + 1e-3))  # z, r, g: red to blue
        rgb = np.clip(rgb / np.percentile(rgb, 99.5), 0, 1)
        if i % 2 == 0:
            rgb[:, 40:43, 4:28] = 1.0
        Image.fromarray((rgb.transpose(1, 2, 0) * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    ingested = CliRunner().invoke(
        app, ["data", "ingest", "images", str(folder), "--out", str(tmp_path / "ds"),
              "--bands", "g,r,z"],
    )  # fmt: skip
    assert ingested.exit_code == 0, ingested.output
    for i in (0, 2, 4):
        result = explain_object(MODEL, tmp_path / "ds", f"p{i}")
        assert list(result.maps[0].tokens) == ["image"]
        surprise = result.physical[0]["image"]
        y, x = np.unravel_index(np.argmax(surprise), surprise.shape)
        assert 32 <= y < 51 and x < 36, (i, y, x)  # the patches the trail crosses
    with pytest.raises(DataError, match="none of the modalities"):
        explain_object(MODEL, tmp_path / "ds", "p0", modalities=["spectrum"])


def test_light_curve_epochs_and_spectrum_windows_get_their_own_maps(foundation, survey_dir):
    """A variable star's class probe attributed to its light-curve epochs, drawn at their
    times; a galaxy's redshift from its spectrum attributed per wavelength pixel."""
    stars = load_multimodal_set(survey_dir, ["lightcurve"])
    explainer = Explainer(foundation, stars, use=["lightcurve"])
    star = str(stars.ids[0])
    kind = str(stars.labels["var_class"][0])
    m = explainer.occlusion(star, explainer.probe("var_class", kind))
    present = explainer.tokens["lightcurve"].present[0].numpy()
    assert np.isfinite(m.tokens["lightcurve"][present]).all()
    assert np.isnan(m.tokens["lightcurve"][~present]).all()
    assert np.abs(m.tokens["lightcurve"][present]).max() > 0
    from astroloom.interpret.explain import physical_maps

    drawn = physical_maps(explainer, m)
    assert len(drawn["lightcurve"]) == len(drawn["lightcurve_time"]) == present.sum()
    assert np.all(np.diff(drawn["lightcurve_time"]) >= 0)  # epochs in time order

    galaxies = load_multimodal_set(survey_dir, ["spectrum"])
    spectra = Explainer(foundation, galaxies, use=["spectrum"])
    galaxy = str(galaxies.ids[np.flatnonzero(galaxies.present["spectrum"])[0]])
    ig = spectra.integrated_gradients(galaxy, spectra.probe("redshift"))
    per_pixel = physical_maps(spectra, ig)["spectrum"]
    assert per_pixel.shape == (1551,)
    assert np.nansum(per_pixel) == pytest.approx(ig.value - ig.baseline_value, rel=0.05, abs=2e-3)


def test_a_spectrums_continuum_fill_credits_what_departs_from_it(foundation, survey_dir, tmp_path):
    """The continuum fill replaces each spectrum by its running median: the lines of the
    galaxies whose lines stand out (a pixel above 5σ) are gone from it and from
    ``without_lines``, whose other pixels are untouched; integrated gradients from it sum to
    f(spectrum) − f(continuum), and only departures from the continuum can get credit."""
    data = load_multimodal_set(survey_dir, ["spectrum"])
    data = keep(data, data.present["spectrum"])
    wave = foundation.tokenizer["spectrum"].wavelength
    flux, ivar = data.arrays["spectrum_flux"], data.arrays["spectrum_ivar"]
    z = data.labels["redshift"]
    late = np.flatnonzero(data.labels["morph_type"] == "late")
    visible = [i for i in late if line_significance(flux[i], ivar[i], wave, z[i]) > 5]
    assert len(visible) >= 20  # measured: 54 of 210 late types
    smooth = continuum_of(data).arrays["spectrum_flux"]
    gone = without_lines(keep(data, np.array(visible)), wave)
    for k, i in enumerate(visible):
        # Measured: 104σ at most before; 1.9σ at most after, in both copies.
        assert line_significance(smooth[i], ivar[i], wave, z[i]) < 3
        lines = near_lines(wave, z[i])
        assert line_significance(gone.arrays["spectrum_flux"][k], ivar[i], wave, z[i]) < 3
        np.testing.assert_array_equal(gone.arrays["spectrum_flux"][k][~lines], flux[i][~lines])

    explainer = Explainer(foundation, data, use=["spectrum"], fill="continuum")
    galaxy = str(data.ids[visible[0]])
    fill = explainer.fills(galaxy)["spectrum"]
    tokens = explainer.tokens["spectrum"].values[visible[0]]
    assert not torch.equal(fill, tokens)
    ig = explainer.integrated_gradients(galaxy, explainer.probe("redshift"))
    assert ig.fill == "continuum"
    assert np.nansum(ig.values["spectrum"]) == pytest.approx(
        ig.value - ig.baseline_value, rel=0.02, abs=1e-4
    )
    # Where a pixel is its own running median the path starts and ends there: no credit.
    per_pixel = ig.values["spectrum"].reshape(-1)[: len(wave)]
    same = flux[visible[0]][: len(wave)] == smooth[visible[0]][: len(wave)]
    assert same.sum() > 50
    assert np.all(per_pixel[same] == 0) and np.all(per_pixel[~same] != 0)

    # From the command's Python face, with the fill recorded in the FITS file.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a FITS card too long for its comment
        done = explain_object(
            MODEL, survey_dir, galaxy, target="redshift", method="integrated-gradients",
            modalities=["spectrum"], out=tmp_path, fill="continuum",
        )  # fmt: skip
    np.testing.assert_allclose(done.maps[0].values["spectrum"], ig.values["spectrum"], atol=1e-6)
    with fits.open(tmp_path / f"explain-{galaxy}-integrated-gradients.fits") as hdus:
        assert hdus[0].header["FILL"] == "continuum"
    images = load_multimodal_set(survey_dir, ["image"])
    with pytest.raises(ExplainError, match="continuum"):
        Explainer(foundation, images, use=["image"], fill="continuum")
    with pytest.raises(ExplainError, match="redshift"):
        without_lines(dataclasses.replace(data, labels={}), wave)
    with pytest.raises(ExplainError, match="odd width"):
        continuum_of(data, pixels=30)


def test_a_probe_fine_tuned_with_its_network_beats_the_frozen_one_and_is_kept(
    foundation, survey_dir, tmp_path, monkeypatch
):
    """``--fine-tune``: a copy of the network trained with a linear head for redshift from
    the spectrum, the head started at the frozen probe (``--head-init probe``), predicts it
    better on held-out galaxies than the frozen probe of the same embedding, leaves the model
    it came from untouched, is kept beside the maps and read back with the same predictions
    instead of being trained again."""
    before = {k: v.clone() for k, v in foundation.model.state_dict().items()}
    data = load_multimodal_set(survey_dir, ["spectrum"])
    data = keep(data, data.present["spectrum"])
    galaxy = str(data.ids[np.flatnonzero(data.labels["morph_type"] == "late")[0]])
    done = explain_object(
        MODEL, survey_dir, galaxy, target="redshift", method="integrated-gradients",
        modalities=["spectrum"], out=tmp_path, fine_tune=300, head_init="probe", progress=False,
    )  # fmt: skip
    kept = tmp_path / "tuned-redshift-spectrum-300-probehead"
    tuned = TunedProbe.load(kept, foundation)
    score = tuned.held_out
    # Measured on 32 held-out galaxies, seeds 0-13: R² 0.638-0.744 against the frozen probe's
    # 0.573 (a random head at 1e-3, the other start: 0.200-0.826; docs/benchmarks.md, "A
    # head that starts from the frozen probe"). Started there, a network that learned
    # nothing would score the frozen probe's R² (test_a_head_started_at_the_probe_...).
    assert score["metric"] == "r2" and score["n"] >= 25
    assert tuned.settings["head_init"] == "probe" and tuned.settings["lr"] == 3e-4
    assert score["fine-tuned"] > score["frozen probe"] + 0.02
    assert "held-out r2" in done.notes[0]
    for k, v in foundation.model.state_dict().items():
        assert torch.equal(v, before[k]), f"fine-tuning changed the original model's {k}"
    assert done.maps[0].fill == "continuum"  # a fine-tuned network's default for spectra
    assert "fine-tuned head" in done.maps[0].what
    # Read back: the same map; a second request trains nothing.
    explainer = tuned.explainer(data)
    again = explainer.integrated_gradients(galaxy, tuned.target())
    np.testing.assert_allclose(again.values["spectrum"], done.maps[0].values["spectrum"],
                               atol=1e-6)  # fmt: skip

    def no_training(*args, **kwargs):
        raise AssertionError("the kept probe was trained again")

    written = (kept / "probe.json").stat().st_mtime_ns
    asked = ("--id", galaxy, "--target", "redshift", "--modality", "spectrum")
    result = cli("explain", MODEL, str(survey_dir), *asked, "--fine-tune", "300",
                 "--head-init", "probe", "--out", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "fine-tuned for redshift in 300 steps, the head started at the frozen probe" in (
        result.stdout
    )
    assert (kept / "probe.json").stat().st_mtime_ns == written
    monkeypatch.setattr("astroloom.interpret.explain.fine_tune", no_training)
    explain_object(
        MODEL, survey_dir, galaxy, target="redshift", modalities=["spectrum"], out=tmp_path,
        fine_tune=300, head_init="probe",
    )  # fmt: skip
    # Another head start or learning rate is another probe, not this one read back.
    for other in ({"head_init": "random"}, {"head_init": "probe", "lr": 1e-3}):
        with pytest.raises(AssertionError, match="trained again"):
            explain_object(MODEL, survey_dir, galaxy, target="redshift",
                           modalities=["spectrum"], out=tmp_path, fine_tune=300,
                           progress=False, **other)  # fmt: skip

    # A class label: the logit of one class, accuracy on the held-out objects.
    types = fine_tune(foundation, data, "morph_type", ["spectrum"], steps=20, progress=False)
    assert types.held_out["metric"] == "accuracy" and {"early", "late"} <= set(types.classes)
    with torch.no_grad():
        emb = types.foundation.model.pooled_state(
            types.explainer(data).object_tokens(galaxy), types.layer, types.pool
        )
    assert types.target("late")(emb).shape == (1,)

    # Bad requests.
    with pytest.raises(ExplainError, match="no class 'spiral'"):
        types.target("spiral")
    with pytest.raises(ExplainError, match="is a number"):
        tuned.target("late")
    with pytest.raises(ExplainError, match="give --target"):
        explain_object(MODEL, survey_dir, galaxy, anomaly=True, fine_tune=10)
    with pytest.raises(ExplainError, match="at least one step"):
        fine_tune(foundation, data, "redshift", ["spectrum"], steps=0)
    with pytest.raises(ExplainError, match="no label 'colour'"):
        fine_tune(foundation, data, "colour", ["spectrum"], steps=5)
    other = Foundation(
        build_model(dataclasses.replace(foundation.model.cfg, n_layer=1)), foundation.tokenizer
    )
    with pytest.raises(ExplainError, match="n_layer: this model 1"):
        TunedProbe.load(kept, other)
    (kept / "probe.json").write_text("{not json")
    with pytest.raises(ExplainError, match="no readable fine-tuned probe"):
        TunedProbe.load(kept, foundation)
    monkeypatch.undo()  # a damaged probe is made again, not an error
    explain_object(
        MODEL, survey_dir, galaxy, target="redshift", modalities=["spectrum"], out=tmp_path,
        fine_tune=300, head_init="probe", progress=False,
    )  # fmt: skip
    assert TunedProbe.load(kept, foundation).held_out["n"] == score["n"]


def test_a_head_started_at_the_probe_predicts_what_the_frozen_probe_does(
    foundation, survey_dir
):
    """``head_init="probe"``: before the network moves, the fine-tuned head gives the frozen
    probe's predictions — the probe's standardisation folded into its weights — for a number
    (R²) and for classes (accuracy), so that fine-tuning starts from the frozen probe. A
    random head starts elsewhere. Unknown starts and learning rates are refused."""
    data = load_multimodal_set(survey_dir, ["spectrum"])
    data = keep(data, data.present["spectrum"])
    for label in ("redshift", "morph_type"):
        still = fine_tune(foundation, data, label, ["spectrum"], steps=1, lr=1e-12,
                          head_init="probe", progress=False)  # fmt: skip
        score = still.held_out
        assert score["fine-tuned"] == pytest.approx(score["frozen probe"], abs=1e-4), label
        moved = fine_tune(foundation, data, label, ["spectrum"], steps=1, lr=1e-12,
                          progress=False)  # fmt: skip
        assert moved.held_out["fine-tuned"] != pytest.approx(score["frozen probe"], abs=1e-2)
    with pytest.raises(ExplainError, match="unknown head_init 'zero'"):
        fine_tune(foundation, data, "redshift", ["spectrum"], steps=1, head_init="zero")
    with pytest.raises(ExplainError, match="learning rate must be a positive number"):
        fine_tune(foundation, data, "redshift", ["spectrum"], steps=1, lr=-1.0)
    galaxy = str(data.ids[0])
    with pytest.raises(ExplainError, match="ways to fine-tune: give --fine-tune"):
        explain_object(MODEL, survey_dir, galaxy, target="redshift", head_init="probe")
    with pytest.raises(ExplainError, match="unknown head start 'zero'"):
        explain_object(MODEL, survey_dir, galaxy, target="redshift", fine_tune=5,
                       head_init="zero")  # fmt: skip
    with pytest.raises(ExplainError, match="--lr is a learning rate"):
        explain_object(MODEL, survey_dir, galaxy, target="redshift", fine_tune=5,
                       lr=float("nan"))  # fmt: skip
    result = cli("explain", MODEL, str(survey_dir), "--id", galaxy, "--target", "redshift",
                 "--modality", "spectrum", "--fine-tune", "5", "--head-init", "zero")  # fmt: skip
    assert result.returncode != 0 and "unknown head start 'zero'" in result.stderr


def test_the_map_of_several_fine_tuned_runs_is_the_map_of_their_mean(
    foundation, survey_dir, tmp_path
):
    """``--fine-tune STEPS --runs N``: N copies fine-tuned with seeds 0, 1, … and explained
    as one model, their mean prediction. Its held-out score is that of the mean prediction
    (never below the runs' average R², by convexity of the squared error), its map is the
    mean of the runs' maps and, for integrated gradients, adds up to the mean prediction's
    change from the filled input; a run kept from an earlier request is reused."""
    data = load_multimodal_set(survey_dir, ["spectrum"])
    data = keep(data, data.present["spectrum"])
    galaxy = str(data.ids[np.flatnonzero(data.labels["morph_type"] == "late")[0]])
    asked = dict(target="redshift", method="integrated-gradients", modalities=["spectrum"],
                 out=tmp_path, fine_tune=100, progress=False)  # fmt: skip
    explain_object(MODEL, survey_dir, galaxy, **asked)
    first = tmp_path / "tuned-redshift-spectrum-100"
    written = (first / "probe.json").stat().st_mtime_ns
    done = explain_object(MODEL, survey_dir, galaxy, runs=2, **asked)
    assert (first / "probe.json").stat().st_mtime_ns == written  # seed 0 reused
    assert "2 runs averaged" in done.notes[0] and "each run alone" in done.notes[0]
    second = tmp_path / "tuned-redshift-spectrum-100-seed1"
    members = [TunedProbe.load(first, foundation), TunedProbe.load(second, foundation)]
    assert [m.settings["seed"] for m in members] == [0, 1]

    together = ensemble(members, foundation, data)
    score = together.held_out
    assert score["n"] >= 25 and len(score["runs"]) == 2
    assert score["fine-tuned"] >= np.mean(score["runs"]) - 1e-9
    assert score["fine-tuned"] > score["frozen probe"]

    singles = [m.explainer(data).integrated_gradients(galaxy, m.target()) for m in members]
    a, b = (tm.values["spectrum"] for tm in singles)
    assert np.nanmax(np.abs(a - b)) > 1e-3 * np.nanmax(np.abs(a))  # the seeds differ
    mean = done.maps[0]
    np.testing.assert_allclose(mean.values["spectrum"], (a + b) / 2, atol=1e-6)
    assert "mean of 2 fine-tuned runs" in mean.what
    assert mean.value == pytest.approx(np.mean([tm.value for tm in singles]), abs=1e-6)
    change = mean.value - mean.baseline_value
    assert np.nansum(mean.tokens["spectrum"]) == pytest.approx(change, rel=0.05, abs=1e-3)
    result = cli("explain", MODEL, str(survey_dir), "--id", galaxy, "--target", "redshift",
                 "--modality", "spectrum", "--fine-tune", "100", "--runs", "2",
                 "--out", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 runs averaged" in result.stdout and "mean of 2 fine-tuned runs" in result.stdout
    occlusion = together.explain(data, galaxy, "occlusion")
    alone = [m.explainer(data).occlusion(galaxy, m.target()).tokens["spectrum"] for m in members]
    np.testing.assert_allclose(occlusion.tokens["spectrum"], np.mean(alone, axis=0), atol=1e-6)

    # Bad requests.
    with pytest.raises(ExplainError, match="--runs is how many"):
        explain_object(MODEL, survey_dir, galaxy, runs=0, **asked)
    with pytest.raises(ExplainError, match="give --fine-tune"):
        explain_object(MODEL, survey_dir, galaxy, target="redshift", runs=2)
    types = fine_tune(foundation, data, "morph_type", ["spectrum"], steps=2, progress=False)
    with pytest.raises(ExplainError, match="must share their label"):
        TunedEnsemble([members[0], types])
    with pytest.raises(ExplainError, match="at least one"):
        TunedEnsemble([])
    longer = dataclasses.replace(members[1], settings={**members[1].settings, "steps": 200})
    with pytest.raises(ExplainError, match="differ only in their seed; these differ in steps"):
        TunedEnsemble([members[0], longer])


def test_flattened_views_keep_the_lines_and_replace_the_spectra_drawn(
    foundation, survey_dir, tmp_path, monkeypatch
):
    """``flat_views``: some fine-tuning spectra are shown with their continuum flattened.
    Flattening takes the 4000 Å break out of early types and keeps late types' lines as
    strong as they were, and fine-tuning shows it for the objects drawn."""
    data = load_multimodal_set(survey_dir, ["spectrum"])
    data = keep(data, data.present["spectrum"])
    flat = flat_continuum(data)
    wave = foundation.tokenizer["spectrum"].wavelength
    z = data.labels["redshift"].astype(float)
    kind = data.labels["morph_type"]

    def break_strength(flux: np.ndarray, redshift: float) -> float:
        rest = wave / (1 + redshift)
        red, blue = (rest > 4000) & (rest < 4100), (rest > 3850) & (rest < 3950)
        return float(np.nanmean(flux[red]) / np.nanmean(flux[blue]))

    early = np.flatnonzero(kind == "early")
    before = np.array([break_strength(data.arrays["spectrum_flux"][i], z[i]) for i in early])
    after = np.array([break_strength(flat.arrays["spectrum_flux"][i], z[i]) for i in early])
    ok = np.isfinite(before) & np.isfinite(after)  # the break inside the spectrum's range
    assert ok.sum() >= 10
    before, after = np.median(before[ok]), np.median(after[ok])
    assert before > 1.2 and abs(after - 1) < 0.1, (before, after)
    ivar = data.arrays["spectrum_ivar"]
    late = np.flatnonzero(kind == "late")
    seen = [(line_significance(data.arrays["spectrum_flux"][i], ivar[i], wave, z[i]),
             line_significance(flat.arrays["spectrum_flux"][i], ivar[i], wave, z[i]))
            for i in late]  # fmt: skip
    strong = [(a, b) for a, b in seen if a > 5]
    assert len(strong) >= 10
    assert np.median([b / a for a, b in strong]) == pytest.approx(1, abs=0.1)

    # Only a spectrum with a visible line keeps its redshift once flattened. Without knowing
    # the redshift, `strongest_line` finds exactly the galaxies whose lines stand out 5σ at
    # their catalogue redshift (measured: 65 of 319 here, the same 65).
    at_z = np.array([line_significance(data.arrays["spectrum_flux"][i], ivar[i], wave, z[i])
                     for i in range(len(z))])  # fmt: skip
    lined = strongest_line(data) > 5
    assert lined.sum() >= 20 and np.all(lined[at_z > 5]) and np.all(at_z[lined] > 3)

    # Fine-tuning shows the flattened spectrum instead of the full one for the objects drawn,
    # and only for spectra with a line (any spectrum with flat_lines_sigma=0).
    full = foundation.tokens_from_set(data, ["spectrum"])["spectrum"].take(torch.arange(4))
    flattened = foundation.tokens_from_set(flat, ["spectrum"])["spectrum"].take(torch.arange(4))
    mixed = mixed_views(full, flattened, torch.tensor([True, False, True, False]))
    for k, source in enumerate((flattened, full, flattened, full)):
        assert torch.equal(mixed.values[k], source.values[k])
    assert not torch.equal(full.values[0], flattened.values[0])
    every_flat = foundation.tokens_from_set(flat, ["spectrum"])["spectrum"].values
    whose = {every_flat[i].numpy().tobytes(): i for i in range(len(z))}
    shown_objects: list[int] = []

    def spy(full: ModalityTokens, flat: ModalityTokens, shown: torch.Tensor) -> ModalityTokens:
        shown_objects.extend(whose[v.numpy().tobytes()] for v in flat.values[shown])
        return mixed_views(full, flat, shown)

    monkeypatch.setattr(tuned_module, "mixed_views", spy)
    plain = fine_tune(foundation, data, "redshift", ["spectrum"], steps=20, progress=False)
    views = fine_tune(foundation, data, "redshift", ["spectrum"], steps=20, flat_views=0.5,
                      progress=False)  # fmt: skip
    assert len(shown_objects) >= 20 and lined[shown_objects].all()
    shown_objects.clear()
    fine_tune(foundation, data, "redshift", ["spectrum"], steps=20, flat_views=0.5,
              flat_lines_sigma=0, progress=False)  # fmt: skip
    assert (~lined[shown_objects]).sum() >= 20  # galaxies without a line are flattened too
    monkeypatch.undo()
    assert views.settings["flat_views"] == 0.5 and plain.settings["flat_views"] == 0
    assert views.settings["flat_lines_sigma"] == 5
    assert not torch.equal(views.head.weight, plain.head.weight)  # the same seed, other views
    galaxy = str(data.ids[late[0]])
    result = cli("explain", MODEL, str(survey_dir), "--id", galaxy, "--target", "redshift",
                 "--modality", "spectrum", "--fine-tune", "20", "--flat-views", "0.3",
                 "--out", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "30% of the spectra with a line above 5σ shown with flattened" in result.stdout
    kept = TunedProbe.load(tmp_path / "tuned-redshift-spectrum-20-flat0.3", foundation)
    assert kept.settings["flat_views"] == 0.3
    # How much the views make a network read its lines is measured on the reference survey
    # (benchmarks/lines_ensemble.py --flat-views 0.5): 300 galaxies and a few hundred steps
    # are too few for it to learn them (measured with 0.2 of every spectrum flattened:
    # redshift error on flattened line spectra 0.08 with views or without, 200 and 500
    # steps; there the lines are learned after 1,500-3,000 steps).

    with pytest.raises(ExplainError, match="flat_views is a share"):
        fine_tune(foundation, data, "redshift", ["spectrum"], steps=5, flat_views=1.0)
    with pytest.raises(ExplainError, match="flat_lines_sigma is a line's height"):
        fine_tune(foundation, data, "redshift", ["spectrum"], steps=5, flat_views=0.2,
                  flat_lines_sigma=-1)  # fmt: skip
    with pytest.raises(ExplainError, match="give --flat-views SHARE too"):
        explain_object(MODEL, survey_dir, str(data.ids[0]), target="redshift", fine_tune=5,
                       flat_lines_sigma=3)  # fmt: skip
    with pytest.raises(ExplainError, match="no spectrum to train on has a pixel 1000σ"):
        fine_tune(foundation, data, "redshift", ["spectrum"], steps=5, flat_views=0.2,
                  flat_lines_sigma=1000)  # fmt: skip
    images = load_multimodal_set(survey_dir, ["image"])
    with pytest.raises(ExplainError, match="flat_views flattens spectra"):
        fine_tune(foundation, images, "redshift", ["image"], steps=5, flat_views=0.2)
    with pytest.raises(ExplainError, match="give --fine-tune"):
        explain_object(MODEL, survey_dir, str(data.ids[0]), target="redshift", flat_views=0.2)
