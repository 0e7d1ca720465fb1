"""``astroloom explain``: one object's map, drawn where it belongs (over the image, under the
spectrum, on the light curve) and written as a PNG and a FITS file of the raw maps.

    >>> from astroloom.interpret.explain import explain_object
    >>> result = explain_object("astroloom/mock-tiny", "data/mock", "survey-5-g00000000",
    ...                         target="redshift", method="occlusion", out="explain")

The explorer's object page (when it exists) calls :func:`explain_object` the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from astroloom.data.multiset import MultimodalSet, load_multimodal_set
from astroloom.interpret.attribution import METHODS, TARGETED, Explainer, ExplainError, TokenMap
from astroloom.interpret.tuned import (
    DEFAULT_LR,
    FLAT_LINES_SIGMA,
    HEAD_INITS,
    TunedEnsemble,
    TunedProbe,
    ensemble,
    fine_tune,
)
from astroloom.model.foundation import Foundation
from astroloom.report.plots import plot_explanation
from astroloom.tokenize.image import spiral_order


@dataclass
class Explanation:
    maps: list[TokenMap]  # the object's map; for a neighbour, the neighbour's map second
    physical: list[dict[str, np.ndarray]]  # each map in pixels / wavelengths / epochs
    png: Path | None = None
    fits: Path | None = None
    notes: list[str] = field(default_factory=list)


def image_map(tm: TokenMap, patch_size: int, bands: int, image_size: int) -> np.ndarray:
    """An image's token map as an ``(H, W)`` map: per pixel (summed over bands) where the
    method gives one number per pixel, else each patch's number over its pixels."""
    g = image_size // patch_size
    inverse = np.argsort(np.array(spiral_order(g)))
    if "image" in tm.values:
        v = np.nan_to_num(tm.values["image"])[inverse]
        v = v.reshape(g, g, patch_size, patch_size, bands).sum(-1)
        return v.transpose(0, 2, 1, 3).reshape(image_size, image_size)
    grid = tm.tokens["image"][inverse].reshape(g, g)
    return np.kron(grid, np.ones((patch_size, patch_size)))


def physical_maps(explainer: Explainer, tm: TokenMap) -> dict[str, np.ndarray]:
    """Each modality's map in its own coordinates: ``image`` (H, W); ``spectrum`` per pixel
    of the wavelength grid; ``photometry`` per band; ``lightcurve`` per token epoch, with
    the epochs' times beside it (``lightcurve_time``, days from the first)."""
    out: dict[str, np.ndarray] = {}
    tokenizer = explainer.foundation.tokenizer
    row = explainer.row(tm.object_id)
    for m, tokens in tm.tokens.items():
        if not np.isfinite(tokens).any():
            continue
        if m == "image":
            tok = tokenizer["image"]
            size = int(round(len(tokens) ** 0.5)) * tok.patch_size
            out[m] = image_map(tm, tok.patch_size, tok.n_bands, size)
        elif m == "spectrum":
            tok = tokenizer["spectrum"]
            if m in tm.values:
                flat = tm.values[m].reshape(-1)
            else:
                flat = np.repeat(tokens, tok.patch_size)
            out[m] = flat[: tok.n_pixels]
            out["spectrum_wavelength"] = tok.wavelength
        elif m == "lightcurve":
            t = explainer.tokens[m]
            present = t.present[row].numpy()
            out[m] = tokens[present]
            out["lightcurve_time"] = t.position[row, :, 0].numpy()[present]
        else:
            out[m] = tokens
    return out


def safe_name(object_id: str) -> str:
    """An id as a file name: anything but letters, digits, dot, dash and underscore → _."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(object_id))[:120] or "object"


def write_fits(path: Path, maps: list[TokenMap], physical: list[dict[str, np.ndarray]]) -> Path:
    """One HDU per map and modality, named ``MODALITY`` (``MODALITY_2`` for a neighbour's),
    with the object, method and what is explained in the header."""
    hdus = [fits.PrimaryHDU()]
    hdus[0].header["METHOD"] = maps[0].method
    hdus[0].header["OBJECT"] = maps[0].object_id
    hdus[0].header["EXPLAINS"] = maps[0].what[:68]
    if maps[0].value is not None:
        hdus[0].header["VALUE"] = maps[0].value
    if maps[0].fill is not None:
        hdus[0].header["FILL"] = (maps[0].fill, "what replaced a token (--fill)")
    for k, (tm, phys) in enumerate(zip(maps, physical, strict=True)):
        for name, array in phys.items():
            hdu = fits.ImageHDU(
                np.asarray(array, np.float32), name=name.upper() + (f"_{k + 1}" if k else "")
            )
            hdu.header["OBJECT"] = tm.object_id
            hdus.append(hdu)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def tuned_probe(
    foundation: Foundation,
    data_set: MultimodalSet,
    run: str | Path,
    data: str | Path,
    label: str,
    explainer: Explainer,
    steps: int,
    out: str | Path | None,
    progress: bool = True,
    seed: int = 0,
    flat_views: float = 0.0,
    flat_lines_sigma: float = FLAT_LINES_SIGMA,
    head_init: str = "random",
    lr: float | None = None,
) -> TunedProbe:
    """The network fine-tuned for ``label`` with ``seed``: read from ``out`` when it was made
    there from the same model, data, modalities, steps, views, head and learning rate, else
    trained and (with ``out``) kept there (``tuned-LABEL-MODALITIES-STEPS``, then ``-flatF``
    with flattened views, ``-aboveS`` when they are not the spectra with a line above 5σ,
    ``-probehead`` for a head started at the frozen probe, ``-lrL`` for a learning rate not
    the head's default, and ``-seedS`` for seeds but 0). ``head_init`` is one of
    ``HEAD_INITS`` (:func:`explain_object` checks it)."""
    lr = DEFAULT_LR[head_init] if lr is None else lr
    where = Path(run)
    made_from = {
        "model": str(where.resolve()) if where.exists() else str(run),
        "data": str(Path(data).resolve()),
    }
    kept = None
    if out is not None:
        kept = Path(out) / f"tuned-{safe_name(label)}-{'+'.join(explainer.use)}-{steps}"
        if flat_views:
            kept = kept.with_name(f"{kept.name}-flat{flat_views:g}")
            if flat_lines_sigma != FLAT_LINES_SIGMA:
                kept = kept.with_name(f"{kept.name}-above{flat_lines_sigma:g}")
        if head_init != "random":
            kept = kept.with_name(f"{kept.name}-{head_init}head")
        if lr != DEFAULT_LR[head_init]:
            kept = kept.with_name(f"{kept.name}-lr{lr:g}")
        if seed:
            kept = kept.with_name(f"{kept.name}-seed{seed}")
        if (kept / "probe.json").is_file():
            try:
                tuned = TunedProbe.load(kept, foundation)
            except ExplainError:  # made from another model, or damaged: make it again
                tuned = None
            same = tuned is not None and {k: tuned.settings.get(k) for k in made_from} == made_from
            same = same and tuned.settings.get("seed", 0) == seed
            same = same and tuned.settings.get("flat_views", 0.0) == flat_views
            same = same and tuned.settings.get("head_init", "random") == head_init
            same = same and tuned.settings.get("lr") == lr
            if flat_views:  # runs kept before the choice of spectra flattened any
                same = same and tuned.settings.get("flat_lines_sigma", 0.0) == flat_lines_sigma
            if same and tuned.label == label and tuned.layer == explainer.layer:
                return tuned
    tuned = fine_tune(
        foundation, data_set, label, explainer.use, explainer.layer, steps=steps,
        seed=seed, flat_views=flat_views, flat_lines_sigma=flat_lines_sigma, progress=progress,
        head_init=head_init, lr=lr,
    )  # fmt: skip
    tuned.settings.update(made_from)
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        tuned.save(kept)
    return tuned


def tuned_note(tuned: TunedProbe | TunedEnsemble, label: str, steps: int) -> str:
    """What the fine-tuning gave, on objects it never trained on."""
    score = tuned.held_out
    runs = len(tuned.members) if isinstance(tuned, TunedEnsemble) else 1
    said = f"fine-tuned for {label} in {steps} steps"
    first = tuned.members[0] if isinstance(tuned, TunedEnsemble) else tuned
    if first.settings.get("flat_views"):
        sigma = first.settings.get("flat_lines_sigma") or 0
        which = f"the spectra with a line above {sigma:g}σ" if sigma else "the spectra"
        said += f" ({first.settings['flat_views']:.0%} of {which} shown with flattened continua)"
    if first.settings.get("head_init", "random") == "probe":
        said += ", the head started at the frozen probe"
    if runs > 1:
        said += f", {runs} runs averaged"
    if not score:
        return said + " (no objects held out to score it)"
    said += (
        f": held-out {score['metric']} {score['fine-tuned']:.3f} against the frozen probe's "
        f"{score['frozen probe']:.3f} ({score['n']} objects)"
    )
    if "runs" in score:
        said += "; each run alone " + " / ".join(f"{v:.3f}" for v in score["runs"])
    return said


def explain_object(
    run: str | Path,
    data: str | Path,
    object_id: str,
    target: str | None = None,
    anomaly: bool = False,
    neighbour: str | None = None,
    method: str | None = None,
    modalities: list[str] | None = None,
    layer: int | None = None,
    class_name: str | None = None,
    out: str | Path | None = None,
    fill: str | None = None,
    fine_tune: int | None = None,
    runs: int = 1,
    flat_views: float = 0.0,
    flat_lines_sigma: float | None = None,
    head_init: str = "random",
    lr: float | None = None,
    progress: bool = True,
) -> Explanation:
    """Explain one object of ``data`` with the model of ``run`` (a path or a model name).

    Give at most one of ``target`` (a label: its probe's prediction), ``anomaly`` (the
    anomaly score) or ``neighbour`` (the similarity to another object). ``method``
    defaults to occlusion when something is to be explained, else to the surprise map.
    ``fill`` is what replaces a token for occlusion and integrated gradients (``inpaint``,
    the model's prediction of it from the others — the default for models that can —
    ``empty``, or ``continuum``: a spectrum's own smoothed continuum, so that its lines get
    the credit). With ``out`` a PNG and a FITS file are written there.

    ``fine_tune`` (with ``target``): explain, instead of the frozen probe, a copy of the
    network fine-tuned with a linear head for that many steps (:mod:`.tuned`), trained on
    the data's labels once and kept in ``out`` (``tuned-LABEL-MODALITIES-STEPS``) to be
    reused while the model, data and label stay the same. ``runs`` > 1 fine-tunes that many
    copies with seeds 0, 1, … and explains their mean prediction by the mean of their maps
    (:class:`~astroloom.interpret.tuned.TunedEnsemble`): whether one run leans on a
    spectrum's emission lines is left to its draw, and the mean map depends on it less.
    ``flat_views``: the share of the spectra with a line (a pixel ``flat_lines_sigma``, by
    default 5, times its noise above the continuum; 0: any spectrum) shown, while
    fine-tuning, with their continuum flattened, so that the network learns to read their
    lines (:func:`~astroloom.interpret.tuned.fine_tune`). ``head_init``: ``random``, or
    ``probe`` to start the head at the frozen probe (steadier, often worse); ``lr``: the
    peak learning rate (default: 1e-3 for a random head, 3e-4 for the probe's)."""
    asked = [x for x in (target, neighbour) if x is not None] + (["anomaly"] if anomaly else [])
    if len(asked) > 1:
        raise ExplainError("give one of --target, --anomaly and --neighbour, not several")
    if neighbour is not None and str(neighbour) == str(object_id):
        raise ExplainError(
            f"--neighbour {neighbour!r} is the object itself (similarity 1 whatever it looks "
            "like); give another object's id"
        )
    method = method or ("occlusion" if asked else "surprise")
    if method not in METHODS:
        raise ExplainError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method in TARGETED and not asked:
        raise ExplainError(
            f"{method} explains a number: give --target LABEL, --anomaly or --neighbour ID"
        )
    if method not in TARGETED and asked:
        raise ExplainError(
            f"{method} maps do not depend on a target; drop it, or use occlusion or "
            "integrated-gradients"
        )
    if fine_tune is not None and target is None:
        raise ExplainError("--fine-tune trains the network for a label: give --target LABEL")
    if runs < 1:
        raise ExplainError(f"--runs is how many fine-tuned copies to average; got {runs}")
    if runs > 1 and fine_tune is None:
        raise ExplainError("--runs averages fine-tuned copies: give --fine-tune STEPS too")
    if flat_views and fine_tune is None:
        raise ExplainError("--flat-views is a way to fine-tune: give --fine-tune STEPS too")
    if flat_lines_sigma is not None and not flat_views:
        raise ExplainError("--flat-lines-sigma chooses the spectra --flat-views flattens: give "
                           "--flat-views SHARE too")  # fmt: skip
    if (head_init != "random" or lr is not None) and fine_tune is None:
        raise ExplainError("--head-init and --lr are ways to fine-tune: give --fine-tune STEPS too")
    if head_init not in HEAD_INITS:
        raise ExplainError(f"unknown head start {head_init!r}; choose from {', '.join(HEAD_INITS)}")
    if lr is not None and not (np.isfinite(lr) and lr > 0):
        raise ExplainError(f"--lr is a learning rate, a positive number; got {lr}")
    if flat_lines_sigma is None:
        flat_lines_sigma = FLAT_LINES_SIGMA
    foundation = Foundation.from_pretrained(run)
    # Without --modality, every modality both the model and the data have: a multimodal
    # model explains a folder of photographs from their images.
    data_set = load_multimodal_set(data, list(modalities or foundation.modalities))
    explainer = Explainer(foundation, data_set, modalities or None, layer, fill=fill)
    explainer.row(object_id)  # an unknown id fails before any work
    if neighbour is not None:
        explainer.row(neighbour)
    notes = []
    tuned = None
    if fine_tune is not None:
        members = [
            tuned_probe(foundation, data_set, run, data, target, explainer, fine_tune, out,
                        progress, seed, flat_views, flat_lines_sigma, head_init, lr)  # fmt: skip
            for seed in range(runs)
        ]
        tuned = ensemble(members, foundation, data_set) if runs > 1 else members[0]
        explainer = members[0].explainer(data_set, fill=fill)
        notes.append(tuned_note(tuned, target, fine_tune))
    maps = []
    if isinstance(tuned, TunedEnsemble):
        maps.append(tuned.explain(data_set, object_id, method, class_name, fill, explainer))
    elif tuned is not None:
        maps.append(explainer.explain(object_id, method, tuned.target(class_name)))
    elif target is not None:
        maps.append(explainer.explain(object_id, method, explainer.probe(target, class_name)))
    elif anomaly:
        maps.append(explainer.explain(object_id, method, explainer.anomaly(object_id)))
    elif neighbour is not None:
        maps.append(explainer.explain(object_id, method, explainer.neighbour(neighbour)))
        maps.append(explainer.explain(neighbour, method, explainer.neighbour(object_id)))
    else:
        maps.append(explainer.explain(object_id, method))
    physical = [physical_maps(explainer, tm) for tm in maps]
    result = Explanation(maps, physical, notes=notes)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"explain-{safe_name(object_id)}-{method}"
        result.fits = write_fits(out / f"{stem}.fits", maps, physical)
        panels = []
        for tm, phys in zip(maps, physical, strict=True):
            row = explainer.row(tm.object_id)
            observed = {}
            if "image" in phys:
                observed["image"] = explainer.data.arrays["image"][row]
            if "spectrum" in phys:
                observed["spectrum"] = explainer.data.arrays["spectrum_flux"][row]
            if "lightcurve" in phys:
                t = explainer.tokens["lightcurve"]
                present = t.present[row].numpy()
                observed["lightcurve"] = t.values[row, :, 0].numpy()[present]
            panels.append((tm, phys, observed))
        scale = explainer.data.info.normalisation.get("image", {}).get("scale")
        result.png = plot_explanation(panels, out / f"{stem}.png", scale)
    return result
