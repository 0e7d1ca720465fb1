"""Light-curve tokenizer: one token per observation, placed by its time and band.

A light curve is irregularly sampled, so a token's position is its time in days (since the
first observation in the sequence) rather than an index, plus the band it was taken in.
The model's surrogate task is to predict the next observation's magnitude at its known
next time and band. Long curves are subsampled to ``max_tokens`` observations: a random
sorted subset during training (an augmentation that keeps the whole time baseline), an
evenly spaced one otherwise.

Period-aware tokens (``phase=True``, the default for new runs): each curve's best
Lomb–Scargle period is found once, in its best-sampled band; every observation then also
carries its phase at that period as a second coordinate, so the model sees the folded
curve, and the period, the periodogram's peak power and the curve's median magnitude are
given to the model as context values. Magnitudes are taken relative to the curve's median
(unit-free: any zero point), 0.5 mag to one unit.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from astroloom.tokenize.tokens import ModalityTokens

LOG_PERIOD_ZERO = 0.5  # context value of log10(period / day) is centred here
MAG_ZERO_CONTEXT, MAG_UNIT_CONTEXT = 16.0, 2.0  # median magnitude context = (m − 16) / 2
RELATIVE_MAG_UNIT = 0.5  # period-aware tokens: magnitudes relative to the median, per 0.5 mag


def best_period(time: np.ndarray, mag: np.ndarray) -> tuple[float, float]:
    """(period in days, peak power) of the Lomb–Scargle periodogram (astropy; frequencies
    from one per baseline to 20 per day); (NaN, NaN) for fewer than 12 observations. The
    hand-crafted light-curve baseline uses the same search (evaluate/lightcurve_features)."""
    import warnings

    from astropy.timeseries import LombScargle

    good = np.isfinite(time) & np.isfinite(mag)
    t, m = np.asarray(time, float)[good], np.asarray(mag, float)[good]
    if len(t) < 12 or np.ptp(m) == 0:
        return float("nan"), float("nan")
    baseline = t.max() - t.min()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        periodogram = LombScargle(t, m)
        freq, power = periodogram.autopower(
            minimum_frequency=1.0 / max(baseline, 1.0),
            maximum_frequency=20.0,
            samples_per_peak=2,
            method="fast",
            method_kwds={"use_fft": True},
        )
        k = int(np.argmax(power))
        # Refine the peak on a grid 20× finer: folding hundreds of cycles needs the period
        # to a small fraction of a cycle over the whole baseline.
        step = freq[1] - freq[0] if len(freq) > 1 else 1.0 / max(baseline, 1.0)
        fine = np.linspace(freq[k] - step, freq[k] + step, 41)
        fine = fine[fine > 0]
        fine_power = periodogram.power(fine)
    j = int(np.argmax(fine_power))
    return float(1.0 / fine[j]), float(fine_power[j])


_PERIODS: dict[bytes, tuple[float, float]] = {}  # this process's periodograms, by curve


def _key(curve: tuple[np.ndarray, np.ndarray]) -> bytes:
    """The same curve whatever its time origin and float width (the periodogram is too)."""
    t, m = (np.asarray(x, np.float32) for x in curve)
    t = t - t[0] if len(t) else t
    return hashlib.sha1(t.tobytes() + m.tobytes()).digest()


def _search(curve: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    return best_period(*curve)


def periods_of(
    curves: list[tuple[np.ndarray, np.ndarray] | None], workers: int | None = None
) -> list[tuple[float, float]]:
    """``best_period`` of every (time, mag) curve (None: no curve → NaN), reusing this
    process's earlier answers and spreading new ones over ``workers`` processes."""
    nan = (float("nan"), float("nan"))
    keys = [None if c is None else _key(c) for c in curves]
    todo = {k: c for k, c in zip(keys, curves, strict=True) if k is not None and k not in _PERIODS}
    if todo:
        workers = workers or os.cpu_count() or 1
        items = list(todo.items())
        if workers > 1 and len(items) >= 32:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(min(workers, len(items))) as pool:
                found = list(pool.map(_search, [c for _, c in items], chunksize=8))
        else:
            found = [_search(c) for _, c in items]
        _PERIODS.update(zip([k for k, _ in items], found, strict=True))
    return [nan if k is None else _PERIODS[k] for k in keys]


@dataclass
class PaddedCurves:
    """Ragged curves as padded tensors: ``(N, L)`` time (days), mag, band and a count; with
    each curve's Lomb–Scargle period and peak power when they were searched for."""

    time: torch.Tensor
    mag: torch.Tensor
    band: torch.Tensor
    count: torch.Tensor
    period: torch.Tensor | None = None  # (N,) days, NaN where none was found
    power: torch.Tensor | None = None  # (N,)

    def __len__(self) -> int:
        return len(self.count)

    def take(self, index: torch.Tensor) -> PaddedCurves:
        pick = (lambda t: None if t is None else t[index])  # noqa: E731
        return PaddedCurves(
            self.time[index],
            self.mag[index],
            self.band[index],
            self.count[index],
            pick(self.period),
            pick(self.power),
        )

    def with_periods(self, workers: int | None = None) -> PaddedCurves:
        """The same curves with each one's period searched in its best-sampled band (in
        parallel over the machine's cores, and remembered for curves seen before in this
        process: a periodogram of a multi-year curve costs ~0.1 s)."""
        if self.period is not None:
            return self
        jobs = []
        for i in range(len(self)):
            n = int(self.count[i])
            if n == 0:
                jobs.append(None)
                continue
            band = self.band[i, :n].numpy()
            sel = band == np.bincount(band).argmax()
            jobs.append((self.time[i, :n].numpy()[sel], self.mag[i, :n].numpy()[sel]))
        found = periods_of(jobs, workers)
        period = np.array([p for p, _ in found], dtype=np.float64)
        power = np.array([w for _, w in found], dtype=np.float64)
        return PaddedCurves(
            self.time,
            self.mag,
            self.band,
            self.count,
            torch.from_numpy(period).float(),
            torch.from_numpy(power).float(),
        )


def canonical_curve(
    time: np.ndarray | None, mag: np.ndarray | None, band: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One curve as the tokenizer holds it: finite epochs in time order, time in days since
    the first one and magnitudes both as float32, bands as int64. The hand-crafted features
    search their periods on the same arrays, so a curve's periodogram is computed once."""
    if time is None or mag is None:
        return np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    t, m = np.asarray(time, np.float64), np.asarray(mag, np.float64)
    b = np.zeros(len(t), np.int64) if band is None else np.asarray(band, np.int64)
    good = np.isfinite(t) & np.isfinite(m)
    order = np.argsort(t[good], kind="stable")
    t, m, b = t[good][order], m[good][order], b[good][order]
    since_first = t - t[0] if len(t) else t
    return since_first.astype(np.float32), m.astype(np.float32), b


def pad_curves(
    times: Sequence[np.ndarray | None],
    mags: Sequence[np.ndarray | None],
    bands: Sequence[np.ndarray | None],
) -> PaddedCurves:
    """Pad ragged curves (``None`` for an object without one); drop non-finite epochs."""
    kept = [canonical_curve(*c) for c in zip(times, mags, bands, strict=True)]
    n, width = len(kept), max([len(k[0]) for k in kept] + [1])
    time = np.zeros((n, width), np.float32)
    mag = np.zeros((n, width), np.float32)
    band = np.zeros((n, width), np.int64)
    count = np.zeros(n, np.int64)
    for i, (t, m, b) in enumerate(kept):
        count[i] = len(t)
        time[i, : len(t)], mag[i, : len(t)], band[i, : len(t)] = t, m, b
    return PaddedCurves(
        torch.from_numpy(time),
        torch.from_numpy(mag),
        torch.from_numpy(band),
        torch.from_numpy(count),
    )


@dataclass
class LightCurveTokenizer:
    bands: list[str]
    max_tokens: int = 64
    mag_zero: float = 16.0  # magnitudes are stored as (mag - mag_zero) / mag_scale
    mag_scale: float = 2.0
    phase: bool = False  # period-aware tokens (see the module's docstring); off in 0.1 runs

    @property
    def n_context(self) -> int:
        return 3 if self.phase else 0

    @property
    def n_coords(self) -> int:
        return 2 if self.phase else 1

    def __post_init__(self) -> None:
        if self.max_tokens <= 0 or self.mag_scale <= 0 or not self.bands:
            raise ValueError("light-curve max_tokens and mag_scale must be positive, bands given")

    @property
    def n_tokens(self) -> int:
        return self.max_tokens

    def select(self, count: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``(B, max_tokens)`` indices of the epochs to keep (sorted; padding repeats 0)."""
        b, k = len(count), self.max_tokens
        slots = torch.arange(k, dtype=torch.float64)
        if generator is None:
            # Evenly spaced over the whole curve: deterministic, keeps the full baseline.
            spaced = (slots[None] * count[:, None].double() / k).floor().long()
            short = torch.arange(k)[None].expand(b, k)
            index = torch.where((count > k)[:, None], spaced, short)
        else:
            width = int(count.max()) if len(count) else 1
            keys = torch.rand(b, max(width, k), generator=generator)
            keys[torch.arange(keys.shape[1])[None] >= count[:, None]] = 2.0  # padding last
            index = keys.argsort(dim=1)[:, :k].sort(dim=1).values
        return torch.where(
            torch.arange(k)[None] < count[:, None], index, torch.zeros((), dtype=torch.long)
        )

    def tokens(
        self, curves: PaddedCurves, generator: torch.Generator | None = None
    ) -> ModalityTokens:
        if (curves.band >= len(self.bands)).any() or (curves.band < 0).any():
            raise ValueError(
                f"light-curve band codes must lie in 0…{len(self.bands) - 1} ({self.bands})"
            )
        index = self.select(curves.count, generator)
        present = torch.arange(self.max_tokens)[None] < curves.count[:, None]
        time = curves.time.gather(1, index)
        time = time - time[:, :1]
        mag = curves.mag.gather(1, index)
        band = torch.where(present, curves.band.gather(1, index), torch.zeros((), dtype=torch.long))
        if not self.phase:
            values = torch.where(present, (mag - self.mag_zero) / self.mag_scale, torch.zeros(()))
            return ModalityTokens(
                values[..., None], present[..., None], present, time[..., None], band
            )
        curves = curves.with_periods()
        median = self.medians(curves)
        values = torch.where(present, (mag - median[:, None]) / RELATIVE_MAG_UNIT, torch.zeros(()))
        period = curves.period
        known = torch.isfinite(period) & (period > 0)
        safe = torch.where(known, period, torch.ones(()))
        # Phase of each observation at the curve's period (0 where no period was found).
        phase = torch.where(known[:, None], torch.remainder(time / safe[:, None], 1.0), 0.0)
        position = torch.stack([time, phase], dim=-1)
        context = torch.stack(
            [
                torch.where(known, torch.log10(safe) - LOG_PERIOD_ZERO, torch.nan),
                curves.power,
                (median - MAG_ZERO_CONTEXT) / MAG_UNIT_CONTEXT,
            ],
            dim=1,
        )
        return ModalityTokens(
            values[..., None], present[..., None], present, position, band, context=context
        )

    @staticmethod
    def medians(curves: PaddedCurves) -> torch.Tensor:
        """Each curve's median magnitude over all its observations (NaN for an empty one)."""
        width = curves.mag.shape[1]
        observed = torch.arange(width)[None] < curves.count[:, None]
        return torch.nanmedian(curves.mag.masked_fill(~observed, float("nan")), dim=1).values

    def decode(self, values: torch.Tensor, median: torch.Tensor | None = None) -> torch.Tensor:
        """Token values ``(B, N, 1)`` → magnitudes (period-aware tokens: relative to each
        curve's ``median`` magnitude when it is not given)."""
        if not self.phase:
            return values[..., 0] * self.mag_scale + self.mag_zero
        base = 0.0 if median is None else torch.as_tensor(median)[:, None]
        return values[..., 0] * RELATIVE_MAG_UNIT + base

    def to_dict(self) -> dict:
        return {"kind": "lightcurve", **asdict(self)}
