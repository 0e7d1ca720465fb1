"""The whole journey on the mock survey: simulate → pretrain the multimodal model → embed →
probe → predict spectra from images → train and evaluate the diffusion simulator → report."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from astroloom.config import load_config
from astroloom.data.multiset import keep, load_multimodal_set
from astroloom.data.schema import DataError, DatasetInfo
from astroloom.data.shards import load_image_set
from astroloom.data.sim.survey import simulate_survey
from astroloom.discover.embedding_map import label_colours, umap_map
from astroloom.evaluate.embed import embed_dataset, read_embeddings
from astroloom.evaluate.predict import predict_set, redshift_from_spectra
from astroloom.evaluate.probe import ProbeReport, probe, save_tables
from astroloom.generate.denoiser import DenoiserConfig, load_denoiser, train_denoiser
from astroloom.generate.evaluate import evaluate_denoiser, frechet_text, markdown
from astroloom.generate.jobs import generate_mode, objects, preview
from astroloom.model.checkpoint import load_checkpoint
from astroloom.model.foundation import load_foundation
from astroloom.report.html import Report
from astroloom.report.plots import (
    plot_embedding_map,
    plot_image_rows,
    plot_loss,
    plot_predicted_vs_true,
    plot_spectra,
    plot_survey_modalities,
)
from astroloom.train.loop import TrainResult, train

# Numeric labels of the mock survey's galaxies that the demo probes.
DEMO_TARGETS = [
    "redshift",
    "log_stellar_mass",
    "mag_r",
    "g_r",
    "r_z",
    "bulge_to_total",
    "half_light_radius",
    "ellipticity",
    "psf_fwhm",
]


MODALITIES = ["image", "spectrum", "photometry", "lightcurve"]
# Foundation training steps. 1,500 took 598 s on a slower day of the shared 2-core machine
# and pushed `make demo` to 16 min 23 s; 1,000 took 417 s on such a day, with the image
# embeddings' probe R² within 0.016 of 1,500 steps' on every demo label (docs/benchmarks.md,
# "Demo budget").
DEMO_STEPS = 1000


@dataclass
class DemoResult:
    report: Path
    probe: ProbeReport
    train: TrainResult
    timings: dict[str, float]
    cross_modal: dict
    generation: dict


def _ensure_data(path: Path, n: int, seed: int, progress: bool) -> DatasetInfo:
    """Reuse a mock survey already simulated with the same size and seed."""
    n_stars = max(20, n // 20)
    try:
        info = DatasetInfo.load(path)
        same = info.name == "mock-survey" and info.n_objects == n + n_stars and info.seed == seed
        if same and info.normalisation:
            return info
    except DataError:
        pass
    return simulate_survey(path, n_galaxies=n, n_stars=n_stars, seed=seed, progress=progress)


def probe_table(report: Report, result: ProbeReport) -> None:
    """R² per label and method, and each foundation column's margin over the best baseline
    (pixel PCA, random weights, …), never over another foundation column."""
    ours = result.foundation_methods
    header = (
        ["label"]
        + [f"{m} R²" for m in result.methods]
        + [f"{m} − best baseline" for m in ours]
    )
    margins = result.margins()
    rows, best = [], []
    for label, by in result.scores.items():
        r2 = [by[m].r2 for m in result.methods]
        rows.append(
            [label] + [f"{v:.3f}" for v in r2] + [f"{margins[label][m]:+.3f}" for m in ours]
        )
        best.append(1 + int(np.argmax(r2)))
    report.table(header, rows, best)


def run_demo(
    out: str | Path = "runs/demo",
    n_objects: int = 6000,
    steps: int = DEMO_STEPS,
    preset: str = "tiny",
    seed: int = 0,
    progress: bool = True,
    extra_overrides: list[str] | None = None,
    # The denoiser's loss is flat after ~300 of these steps; 400 keeps the demo inside its
    # 15 minutes on a slower day of the shared 2-core machine (docs/benchmarks.md, "Test suite").
    denoiser_steps: int = 400,
    # 96 held-out galaxies scored instead of 128: 17 s less on a day when training alone
    # took 568 s, while fewer denoiser steps cost fidelity (300: Fréchet distance 26.6 against
    # 18.8); docs/benchmarks.md, "Test suite".
    generate_n: int = 96,
    sample_steps: int = 25,
    inversion_iters: int = 100,
) -> DemoResult:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    data_dir = out / "data"
    _ensure_data(data_dir, n_objects, seed, progress)
    timings["simulate"] = time.perf_counter() - clock

    clock = time.perf_counter()
    cfg = load_config(
        None,
        [
            f"model.preset='{preset}'",
            f"model.modalities={MODALITIES}",
            "model.objective='mixed'",
            "model.spectrum_patch=64",
            # Rotations, flips and 8-bit photograph renditions: the demo model is the one
            # users point at their own pictures (docs/benchmarks.md, "Transfer").
            "augment.preset='photo'",
            # The object's colours as context, kept linearly readable in the embedding with
            # the light curve's period: early/late type on the mock photographs 0.992 ROC-AUC
            # with two training seeds (0.988 / 0.985 without; photutils features 0.988;
            # docs/benchmarks.md, "Colours as context").
            "model.image_colours=true",
            "model.keep_context=['lightcurve','image']",
            "model.keep_context_rows=8",
            # Each cutout's ellipticity, concentration and size read back linearly from its
            # embedding while pretraining: early/late ROC-AUC on 175 mock photographs 0.975
            # with two training seeds (0.971 / 0.968 without), size and ellipticity up on the
            # survey and the second instrument (docs/benchmarks.md, "Shape read-out").
            "model.keep_shape=0.3",
            f"data.path='{data_dir}'",
            f"out='{out / 'run'}'",
            f"train.steps={steps}",
            f"train.seed={seed}",
            f"train.warmup_steps={max(1, steps // 20)}",
            "train.lr=2e-3",
            f"train.eval_every={max(1, steps // 10)}",
            f"train.checkpoint_every={max(1, steps // 4)}",
            *(extra_overrides or []),
        ],
    )
    trained = train(cfg, progress=progress)
    plot_loss(trained.run_dir / "metrics.jsonl", trained.run_dir / "loss.png")
    timings["train"] = time.perf_counter() - clock

    clock = time.perf_counter()
    # Image-only embeddings meet the image baselines on equal terms; the embeddings from
    # every modality an object has show what the other modalities add. Each cutout is
    # embedded as it lies, not averaged over its turns as `astroloom embed` does by default:
    # four turns would cost the demo about 40 s more (embeddings and their random-weights
    # baseline) that its 15 minutes do not hold.
    emb_path = embed_dataset(
        trained.run_dir,
        data_dir,
        out / "embeddings.parquet",
        progress=progress,
        modalities=["image"],
        orientations=1,
    )
    all_path = embed_dataset(
        trained.run_dir,
        data_dir,
        out / "embeddings-all.parquet",
        progress=progress,
        orientations=1,
    )
    timings["embed"] = time.perf_counter() - clock

    clock = time.perf_counter()
    probed = probe(
        emb_path,
        targets=DEMO_TARGETS,
        seed=seed,
        progress=progress,
        extra={"foundation, all modalities": read_embeddings(all_path)},
    )
    probed.save(out)
    timings["probe"] = time.perf_counter() - clock

    clock = time.perf_counter()
    mapped = demo_map(all_path, out / "figures" / "map.png", seed)
    (out / "map.json").write_text(json.dumps(mapped, indent=2) + "\n")
    timings["map"] = time.perf_counter() - clock

    clock = time.perf_counter()
    explained = explain_examples(trained.run_dir, data_dir, emb_path, out)
    timings["explain"] = time.perf_counter() - clock

    clock = time.perf_counter()
    cross = cross_modal(trained.run_dir, data_dir, out, seed)
    timings["predict"] = time.perf_counter() - clock

    clock = time.perf_counter()
    den_dir = out / "denoiser"
    train_denoiser(
        trained.run_dir,
        data_dir,
        den_dir,
        DenoiserConfig(steps=denoiser_steps, seed=seed),
        progress=progress,
    )
    timings["train denoiser"] = time.perf_counter() - clock

    clock = time.perf_counter()
    generation = evaluate_denoiser(
        den_dir, n=generate_n, steps=sample_steps, seed=seed, progress=progress
    )
    save_tables(out, "generate_eval", generation, generation_markdown(generation))
    timings["generate"] = time.perf_counter() - clock

    clock = time.perf_counter()
    report_path = write_demo_report(
        out,
        trained,
        probed,
        timings,
        data_dir,
        cross,
        generation,
        sampling={"steps": sample_steps, "inversion_iters": inversion_iters},
        mapped=mapped,
        explained=explained,
    )
    timings["report"] = time.perf_counter() - clock
    (out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    return DemoResult(
        report=report_path,
        probe=probed,
        train=trained,
        timings=timings,
        cross_modal=cross,
        generation=generation,
    )


def demo_map(embeddings: Path, out: Path, seed: int) -> dict:
    """UMAP of the all-modality embeddings, coloured by redshift, galaxy type and star class."""
    emb = read_embeddings(embeddings)
    names = [n for n in ("redshift", "morph_type", "var_class") if n in emb.labels]
    colours, _ = label_colours(emb.labels, names)
    result = umap_map(emb.vectors, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_embedding_map(result.coords, colours, out)
    return {
        "n": len(emb.ids),
        "neighbour_recall": result.neighbour_recall,
        "n_neighbors": result.n_neighbors,
        "figure": str(out),
    }


def cross_modal(run: Path, data_dir: Path, out: Path, seed: int, limit: int = 2000) -> dict:
    """Spectra predicted from images alone: can a probe read redshift from them?"""
    foundation = load_foundation(run)
    data = load_multimodal_set(data_dir, ["image", "spectrum"])
    data = keep(data, np.flatnonzero(data.present["image"] & data.present["spectrum"])[:limit])
    pred = predict_set(foundation, data, "spectrum", ["image"])
    scores = redshift_from_spectra(pred, seed=seed)
    phot = predict_set(
        foundation, load_multimodal_set(data_dir, ["image", "photometry"]), "photometry", ["image"]
    )
    tok_phot = foundation.tokenizer["photometry"]
    phot_r2 = {}
    for k, band in enumerate(tok_phot.fields):
        pred_k, true_k = (
            np.arcsinh(v[:, k] / tok_phot.scale[k]) for v in (phot.predicted, phot.observed)
        )
        ok = np.isfinite(true_k)
        phot_r2[band] = float(np.corrcoef(pred_k[ok], true_k[ok])[0, 1] ** 2)
    result = {"redshift_r2_from_spectra": scores, "photometry_r2_from_image": phot_r2}
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "cross_modal.json").write_text(json.dumps(result, indent=2) + "\n")
    pick = np.argsort(data.labels["redshift"])[np.linspace(0, len(data) - 1, 4).astype(int)]
    tok = foundation.tokenizer["spectrum"]
    plot_spectra(
        tok.wavelength,
        pred.observed[pick],
        pred.predicted[pick],
        data.labels["redshift"][pick],
        out / "figures" / "predicted_spectra.png",
        unit=tok.flux_unit,
    )
    result["reconstruction"] = reconstructions(foundation, data, pick, out / "figures")
    (out / "cross_modal.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def reconstructions(foundation, data, pick: np.ndarray, figs: Path, n: int = 128) -> dict:
    """Images and spectra beside the model's prediction of each of their tokens from the
    rest (figures of the ``pick`` galaxies), and the share of the token values' spread the
    predictions explain over ``n`` galaxies, beside that of another galaxy's values."""
    from astroloom.evaluate.reconstruct import explained_variance, reconstruct_tokens

    rows = np.union1d(np.arange(min(n, len(data))), pick)
    sub = keep(data, rows)
    batch = foundation.tokens_from_set(sub, ["image", "spectrum"])
    where = np.searchsorted(rows, pick)
    other = np.roll(np.arange(len(rows)), 1)
    scores, predicted = {}, {}
    for m in ("image", "spectrum"):
        values = reconstruct_tokens(foundation.model, batch, m)
        scores[m] = {
            "explained": explained_variance(values, batch[m]),
            "other_object": explained_variance(values, batch[m], pairs=other),
            "n": len(rows),
        }
        predicted[m] = values[where]
    img_tok = foundation.tokenizer["image"]
    images = sub.arrays["image"][where]
    norm = img_tok.normalise(torch.from_numpy(images))
    drawn = img_tok.decode(predicted["image"], images.shape[-1], norm.offset, norm.soft)
    scale = foundation.tokenizer["image"].scale
    plot_image_rows(
        [("observed", images), ("each patch from the rest", drawn.numpy())],
        scale,
        figs / "reconstructed_images.png",
    )
    tok = foundation.tokenizer["spectrum"]
    plot_spectra(
        tok.wavelength,
        sub.arrays["spectrum_flux"][where],
        tok.decode(predicted["spectrum"]).numpy(),
        sub.labels["redshift"][where],
        figs / "reconstructed_spectra.png",
        unit=tok.flux_unit,
        label="each window from the rest",
    )
    return {**scores, "image_patch": img_tok.patch_size, "spectrum_window": tok.patch_size}


def explain_examples(
    run: Path, data_dir: Path, embeddings: Path, out: Path, limit: int = 2000
) -> dict:
    """Two maps for the report: where the redshift probe reads an ordinary galaxy's
    redshift (occlusion), and where a galaxy crossed by a satellite trail surprises the
    model (its prediction error per patch against the usual error there)."""
    from astroloom.interpret.attribution import Explainer
    from astroloom.interpret.explain import physical_maps
    from astroloom.report.plots import plot_explanation

    foundation = load_foundation(run)
    data = load_multimodal_set(data_dir, ["image"])
    rows = np.flatnonzero(data.present["image"])
    unusual = rows[np.isin(data.labels["morph_type"][rows], ["trail", "arc"])][:1]
    unusual_ids = [str(i) for i in data.ids[unusual]]
    data = keep(data, np.union1d(rows[:limit], unusual))
    emb = read_embeddings(embeddings)
    where = {str(i): k for k, i in enumerate(emb.ids)}
    vectors = emb.vectors[[where[str(i)] for i in data.ids]]
    explainer = Explainer(
        foundation,
        data,
        ["image"],
        emb.meta.get("layer"),
        emb.meta.get("pool", "meanstd"),
        embeddings=vectors,
        orientations=emb.meta.get("orientations", 1),
    )
    explainer.reference(limit=500)
    ordinary = str(data.ids[np.flatnonzero(data.labels["morph_type"] == "late")[0]])
    maps = [explainer.occlusion(ordinary, explainer.probe("redshift"))]
    if unusual_ids:
        maps.append(explainer.surprise(unusual_ids[0]))
    panels = []
    for tm in maps:
        row = explainer.row(tm.object_id)
        panels.append(
            (tm, physical_maps(explainer, tm), {"image": data.arrays["image"][row]})
        )
    figure = out / "figures" / "explain.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    plot_explanation(panels, figure, data.info.normalisation.get("image", {}).get("scale"))
    return {
        "figure": str(figure),
        "maps": [
            {"id": tm.object_id, "method": tm.method, "what": tm.what, "value": tm.value}
            for tm in maps
        ],
    }


def generation_markdown(result: dict) -> str:
    return markdown(result)


def write_demo_report(
    out: Path,
    trained: TrainResult,
    probed: ProbeReport,
    timings: dict[str, float],
    data_dir: Path,
    cross: dict,
    generation: dict,
    sampling: dict | None = None,
    mapped: dict | None = None,
    explained: dict | None = None,
) -> Path:
    _, cfg, _ = load_checkpoint(trained.run_dir)
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    info = DatasetInfo.load(data_dir)
    n_galaxies = len(load_image_set(data_dir).ids)

    report = Report(
        "astroloom demo: a multimodal foundation model for a mock galaxy survey",
        f"{time.strftime('%Y-%m-%d %H:%M')} · {platform.node()} · torch {torch.__version__} · "
        f"{torch.get_num_threads()} threads",
    )
    report.heading("Journey")
    z = cross["redshift_r2_from_spectra"]
    report.table(
        ["step", "what", "seconds"],
        [
            [
                "simulate",
                f"mock survey: {n_galaxies} galaxies (SkyPy population; GalSim g r z images "
                "64×64 at 0.262″/px, DESI-like spectra, photometry; 1 % rare) and "
                f"{info.n_objects - n_galaxies} OGLE-III variable stars with light curves",
                f"{timings['simulate']:.1f}",
            ],
            [
                "train",
                f"multimodal model ({', '.join(cfg.model.modalities)}; {cfg.model.objective} "
                f"objective): {trained.n_parameters:,} parameters, {trained.steps} steps, "
                f"{trained.tokens_seen:,} tokens",
                f"{timings['train']:.1f}",
            ],
            [
                "embed",
                f"layer {probed.meta.get('layer')} of {cfg.model.n_layer}, "
                f"{probed.meta.get('pool', 'mean')}-pooled, "
                f"{probed.meta.get('dim', cfg.model.n_embd)} dims; from the image alone and "
                "from every modality",
                f"{timings['embed']:.1f}",
            ],
            [
                "probe",
                f"{probed.meta['folds']}-fold ridge, {len(probed.methods)} feature sets",
                f"{timings['probe']:.1f}",
            ],
            [
                "map",
                f"UMAP of the all-modality embeddings of {mapped['n'] if mapped else 0} objects",
                f"{timings.get('map', 0.0):.1f}",
            ],
            [
                "explain",
                "an occlusion map of the redshift probe and a surprise map of a rare galaxy",
                f"{timings.get('explain', 0.0):.1f}",
            ],
            [
                "predict",
                f"spectra from images for {z['n']} galaxies; photometry from images",
                f"{timings['predict']:.1f}",
            ],
            [
                "train denoiser",
                "U-Net diffusion decoder conditioned on the frozen model's embeddings",
                f"{timings['train denoiser']:.1f}",
            ],
            [
                "generate",
                f"{generation['n_held_out']} held-out galaxies per conditioning mode, "
                f"{generation['steps']} DDIM steps, guidance {generation['guidance']}",
                f"{timings['generate']:.1f}",
            ],
        ],
    )
    report.heading("Pretraining loss")
    report.figure(
        trained.run_dir / "loss.png",
        f"final train loss {trained.final_train_loss:.4f}, validation {trained.final_val_loss:.4f}"
        " (each modality's mean Huber loss, averaged over modalities)"
        if trained.final_val_loss is not None
        else "",
    )
    report.heading("Linear probes (cross-validated R²)")
    probe_table(report, probed)
    report.paragraph(
        "foundation: hidden states of the pretrained model reading the image alone, pooled "
        "as their mean and spread over the tokens and the sizes of their angular moments "
        "over the central image patches. "
        "foundation, all modalities: the same model reading every modality the galaxy has "
        "(image, spectrum, photometry). pixel PCA: PCA of the arcsinh-stretched pixels to the "
        "same dimension. random weights: the same transformer untrained, reading the image. "
        "All go through the same standardised ridge on the same folds.",
        note=True,
    )
    panels = [
        (label, by["foundation"].truth, by["foundation"].predictions, by["foundation"].r2)
        for label, by in probed.scores.items()
    ]
    report.figure(
        plot_predicted_vs_true(panels, figs / "probe_scatter.png"),
        "Out-of-fold predictions from the image embeddings against the true labels.",
    )
    if mapped:
        report.heading("A map of the embeddings")
        report.figure(
            Path(mapped["figure"]),
            f"UMAP of the embeddings every object's modalities give (galaxies: image, spectrum, "
            f"photometry; stars: light curve), {mapped['n']} objects. On average "
            f"{mapped['neighbour_recall']:.0%} of an object's {mapped['n_neighbors']} nearest "
            f"neighbours in embedding space are among its nearest in the map "
            f"(a random layout: {mapped['n_neighbors'] / mapped['n']:.1%}). Grey: objects "
            "without that label.",
        )
    if explained:
        report.heading("What the model looks at")
        first = explained["maps"][0]
        caption = (
            f"Top: occlusion map of the redshift probe for galaxy {first['id']} (predicted "
            f"redshift {first['value']:.3f}): red patches raise the prediction when present, "
            "blue ones lower it. "
        )
        if len(explained["maps"]) > 1:
            caption += (
                f"Bottom: surprise map of {explained['maps'][1]['id']}, a galaxy with a "
                "painted rare feature: the log of the model's error in predicting each patch "
                "over its usual error there. `astroloom explain RUN DATA --id ID` draws these "
                "for any object."
            )
        report.figure(Path(explained["figure"]), caption)
    report.heading("Cross-modal prediction: spectra from images")
    phot = cross.get("photometry_r2_from_image") or {}
    report.paragraph(
        f"The model drew each galaxy's spectrum from its image alone (one masked pass). A ridge "
        f"probe reads redshift from these predicted spectra with R² {z['predicted']:.3f}, "
        f"against {z.get('observed', float('nan')):.3f} from the observed spectra "
        f"({z['n']} galaxies, 5-fold). Catalogue fluxes predicted from the image match the "
        "measured ones with R² (arcsinh flux) "
        + ", ".join(f"{b} {v:.3f}" for b, v in phot.items())
        + "."
    )
    report.figure(
        figs / "predicted_spectra.png",
        "Observed spectra (grey) and the spectra predicted from the image alone (red), four "
        "galaxies from low to high redshift.",
    )
    rec = cross.get("reconstruction")
    if rec:
        report.heading("What the model sees: each token from the rest")
        report.paragraph(
            "The masked model predicts each image patch and each spectrum window from all the "
            "galaxy's other tokens (a quarter hidden per pass). Share of the token values' "
            "spread the predictions explain, over "
            f"{rec['image']['n']} galaxies: image {rec['image']['explained']:.3f} (against "
            f"{rec['image']['other_object']:.3f} for another galaxy's patches: pixels are "
            f"mostly sky noise), spectrum {rec['spectrum']['explained']:.3f} (against "
            f"{rec['spectrum']['other_object']:.3f})."
        )
        report.figure(
            figs / "reconstructed_images.png",
            f"Top: observed galaxies. Below: each {rec['image_patch']}×{rec['image_patch']} "
            "patch as the model predicts it from the rest of the galaxy (its spectrum and "
            "photometry included).",
        )
        report.figure(
            figs / "reconstructed_spectra.png",
            f"Observed spectra (grey) and each {rec['spectrum_window']}-pixel window as the "
            "model predicts it from the rest (red).",
        )
    generation_section(report, out, generation, figs, **(sampling or {}))
    report.heading("The survey's other modalities")
    report.figure(
        plot_survey_modalities(data_dir, figs / "modalities.png"),
        "A galaxy's spectrum (observed frame) and an OGLE-III variable star's I and V light "
        "curve folded on its catalogue period; the model reads both.",
    )
    return report.write(out / "report.html")


def generation_section(
    report: Report,
    out: Path,
    generation: dict,
    figs: Path,
    steps: int = 25,
    inversion_iters: int = 100,
) -> None:
    """Generated galaxies beside their conditioning objects, and the evaluation table."""
    den = load_denoiser(out / "denoiser")
    foundation = load_foundation(den.meta["foundation_run"])
    data = load_multimodal_set(den.meta["data"], foundation.modalities)
    chosen = objects(data, den.meta["held_out_ids"][:6])
    report.heading("Generated galaxies (diffusion conditioned on the foundation model)")
    for mode, caption in (
        (
            "others",
            "Top: held-out galaxies. Below: galaxies drawn from their spectrum and photometry "
            'alone, encoded by the frozen foundation model ("draw the galaxy that has this '
            'spectrum"). Orientation is not in a spectrum, so it varies between draws.',
        ),
        ("image", "Variations: galaxies drawn from each held-out image's own embedding."),
    ):
        flux = generate_mode(den, foundation, chosen, mode, n=2, steps=steps)
        preview(flux, chosen, mode, 2, den.scale, figs / f"generated_{mode}.png")
        report.figure(figs / f"generated_{mode}.png", caption)
    like = objects(data, den.meta["held_out_ids"][6:10])
    flux = generate_mode(
        den, foundation, like, "inversion", n=8, steps=steps, inversion_iters=inversion_iters
    )
    preview(flux, like, "inversion", 8, den.scale, figs / "generated_inversion.png")
    report.figure(
        figs / "generated_inversion.png",
        "Inversion: one condition vector optimised to explain the four example galaxies "
        "(top), then eight new draws with it (bottom).",
    )
    pair = objects(data, den.meta["held_out_ids"][10:12])
    flux = generate_mode(den, foundation, pair, "interpolate", n=6, steps=steps)
    preview(flux, pair, "interpolate", 6, den.scale, figs / "generated_interpolation.png")
    report.figure(
        figs / "generated_interpolation.png",
        "DDIM latent interpolation between two held-out galaxies.",
    )
    rows = []
    for mode, r in generation["modes"].items():
        ff, fh = r["frechet_foundation"], r["frechet_handcrafted"]
        fid = r.get("fidelity", {})
        rows.append(
            [
                mode,
                frechet_text(ff),
                frechet_text(fh),
                f"{r['memorisation']['ratio']:.2f}",
                "; ".join(
                    f"{k} {v['generated_r2']:.2f} / {v['real_r2']:.2f}" for k, v in fid.items()
                ),
                "; ".join(f"{k} {v['generated']:.2f} / {v['real']:.2f}" for k, v in fid.items()),
            ]
        )
    report.table(
        [
            "condition",
            "Fréchet, foundation space (floor)",
            "Fréchet, hand-crafted (floor)",
            "NN-distance ratio",
            "fidelity R², generated / real",
            "fidelity ρ², generated / real",
        ],
        rows,
    )
    report.paragraph(
        "Fréchet distances (mean ± spread over 10 random halvings of the held-out galaxies): "
        "images generated from one half's objects against the other half's real images, "
        "beside the floor of the two real halves at the same size. The foundation-space "
        "distance is partly circular — the generator was conditioned through that model's "
        "embeddings —; the hand-crafted space is independent of it. Fidelity: r magnitude, "
        "colours, half-light radius and ellipticity measured with photutils on each generated "
        "image against its conditioning object's true value (R², the measured value taken as "
        "the true one; ρ², squared Spearman correlation), beside the same measured on the "
        "real image. Hand-crafted features are "
        "clipped to the held-out 1–99 % range before the distance. NN-distance ratio: median "
        "distance from a "
        "generated image to its nearest training image over the same for held-out images "
        "(≪ 1 would mean copying).",
        note=True,
    )
