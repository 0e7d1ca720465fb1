"""Cross-modal generation over a dataset: predict a modality the objects have from the
ones they are allowed to show, write it in physical units, and ask how much of the
object's physics it carries (e.g. can a probe read redshift from an image's predicted
spectrum?)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from astroloom.data.multiset import MultimodalSet, keep, load_multimodal_set
from astroloom.data.schema import UNKNOWN_UNITS, DataError
from astroloom.data.shards import list_column, write_table
from astroloom.evaluate.embed import META_KEY
from astroloom.evaluate.probe import ridge_probe
from astroloom.model.foundation import Foundation, load_foundation
from astroloom.paths import record_path, record_run

TRUE_COLUMN = {"spectrum": "spectrum_flux", "photometry": "phot_flux", "image": "image"}


@dataclass
class Prediction:
    ids: np.ndarray
    predicted: np.ndarray  # (N, …) physical units
    observed: np.ndarray | None  # the true modality where the data holds it
    labels: dict[str, np.ndarray]
    target: str
    use: list[str]
    scale: float = 1.0  # the target's arcsinh softening: probes read stretched values
    meta: dict = field(default_factory=dict)  # what the written file records of itself


def predict_set(
    foundation: Foundation,
    data: MultimodalSet,
    target: str,
    use: list[str],
    method: str = "auto",
) -> Prediction:
    """Predict ``target`` for every object of ``data`` that has any of ``use``."""
    if target in use:
        raise DataError(f"cannot predict {target!r} from itself; choose other modalities")
    rows = keep(data, np.any([data.present[m] for m in use if m in data.present], axis=0))
    if len(rows) == 0:
        raise DataError(f"no object has any of {use}")
    values = foundation.predict_tokens(foundation.tokens_from_set(rows, use), target, method)
    observed = rows.arrays.get(TRUE_COLUMN.get(target, ""))
    scale = foundation.tokenizer[target].scale if target == "spectrum" else 1.0
    return Prediction(
        rows.ids, foundation.decode(target, values), observed, rows.labels, target, list(use), scale
    )


def predict_dataset(
    run: str | Path,
    data: str | Path,
    target: str,
    use: list[str],
    out: str | Path,
    limit: int | None = None,
    method: str = "auto",
) -> Prediction:
    """Predict ``target`` for a dataset and write Parquet: id, predicted (flattened)."""
    foundation = load_foundation(run)
    full = load_multimodal_set(data, sorted({*use, target} & set(foundation.modalities)))
    if limit is not None:
        full = keep(full, np.arange(min(limit, len(full))))
    pred = predict_set(foundation, full, target, use, method)
    flat = pred.predicted.reshape(len(pred.ids), -1).astype(np.float32)
    out = Path(out)
    meta = {
        "target": target,
        "use": list(use),
        "run": record_run(run, out.parent),
        "data": record_path(data, out.parent),
        **prediction_axes(foundation, target, full),
    }
    write_table(
        out,
        {
            "id": pa.array([str(i) for i in pred.ids]),
            f"predicted_{target}": list_column(list(flat), pa.float32()),
        },
        metadata={META_KEY: json.dumps(meta).encode()},
    )
    pred.meta = meta
    return pred


def prediction_axes(foundation: Foundation, target: str, data: MultimodalSet) -> dict:
    """What a prediction file's numbers are: the unit and the axis of each value (the
    wavelength of each spectrum pixel, the band of each flux), and whether the inputs'
    flux unit was known — without it an image does not say how bright the object is, and
    the predicted level is the model's guess, not a measurement."""
    tok = foundation.tokenizer[target]
    axes: dict = {}
    if target == "spectrum":
        axes = {
            "unit": tok.flux_unit or "the training survey's flux unit",
            "wavelength_angstrom": {
                "start": tok.wavelength_start, "step": tok.wavelength_step, "n": tok.n_pixels
            },
        }
    elif target == "photometry":
        axes = {"unit": tok.unit, "fields": list(tok.fields)}
    elif target == "image":
        size = foundation.model.cfg.image_size
        axes = {"bands": tok.bands, "shape": [tok.n_bands, size, size]}
    image_unit = data.info.image.unit if data.info is not None else None
    if "image" in data.present and data.present["image"].any() and image_unit is not None:
        axes["input_image_unit"] = image_unit
        axes["absolute_level_measured"] = image_unit not in UNKNOWN_UNITS
    return axes


def bin_spectra(flux: np.ndarray, width: int = 16, scale: float = 1.0) -> np.ndarray:
    """The probe's features: ``asinh(flux / scale)`` averaged over ``width`` neighbouring
    pixels (NaN-aware). The stretch keeps bright objects from dominating a linear probe
    (measured: redshift R² 0.77 from observed spectra stretched, negative unstretched)."""
    flux = np.arcsinh(flux / scale)
    n = flux.shape[1] // width * width
    with warnings.catch_warnings():  # a bin with no measured pixel is NaN, and says so
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(flux[:, :n].reshape(len(flux), -1, width), axis=2)


def redshift_from_spectra(pred: Prediction, label: str = "redshift", seed: int = 0) -> dict:
    """Ridge-probe R² of ``label`` from predicted spectra, beside true spectra's."""
    if pred.target != "spectrum":
        raise DataError(f"the prediction is of {pred.target!r}, not spectra")
    if label not in pred.labels:
        raise DataError(f"the data has no {label!r} label")
    y = pred.labels[label]
    ok = np.isfinite(y)
    out = {
        "n": int(ok.sum()),
        "predicted": ridge_probe(
            bin_spectra(pred.predicted[ok], scale=pred.scale), y[ok], seed=seed
        ).r2,
    }
    if pred.observed is not None:
        true = bin_spectra(pred.observed[ok], scale=pred.scale)
        good = np.isfinite(true).all(axis=1)
        out["observed"] = ridge_probe(true[good], y[ok][good], seed=seed).r2
    return out
