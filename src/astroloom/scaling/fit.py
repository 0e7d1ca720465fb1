"""Fitting L(N, D) to measured runs: Hoffmann et al.'s approach 3, with bootstrap intervals.

The fit minimises the Huber loss (δ = 1e-3) between ``log L`` and
``LSE(a − α log N, b − β log D, e)`` — the law in log space with ``A = eᵃ``, ``B = eᵇ``,
``E = eᵉ`` — by L-BFGS from every point of a grid of starting values, keeping the best.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize, nnls
from scipy.special import logsumexp, softmax
from tqdm.auto import tqdm

from astroloom.scaling.law import ScalingLaw

# Hoffmann et al.'s initialisation grid.
DEFAULT_GRID = {
    "alpha": np.arange(0.0, 2.01, 0.5),
    "beta": np.arange(0.0, 2.01, 0.5),
    "e": np.arange(-1.0, 1.51, 0.5),
    "a": np.arange(0.0, 25.1, 5.0),
    "b": np.arange(0.0, 25.1, 5.0),
}


def _objective(
    theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float
) -> tuple[float, np.ndarray]:
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    pred = logsumexp(terms, axis=0)
    r = pred - log_l
    small = np.abs(r) <= delta
    value = np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)).sum()
    dr = np.where(small, r, delta * np.sign(r))  # d huber / d pred
    w = softmax(terms, axis=0) * dr  # d pred / d term, times d huber / d pred
    grad = np.array(
        [w[0].sum(), w[1].sum(), w[2].sum(), -(w[0] * log_n).sum(), -(w[1] * log_d).sum()]
    )
    return float(value), grad


def _grid_values(
    thetas: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float
) -> np.ndarray:
    """The objective at many parameter vectors ``(K, 5)`` at once."""
    a, b, e, alpha, beta = (thetas[:, i : i + 1] for i in range(5))
    terms = np.stack(
        [a - alpha * log_n, b - beta * log_d, np.broadcast_to(e, (len(thetas), len(log_n)))]
    )
    r = np.abs(logsumexp(terms, axis=0) - log_l)
    return np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).sum(axis=1)


def _projected_starts(n: np.ndarray, d: np.ndarray, loss: np.ndarray, k: int) -> list[np.ndarray]:
    """Best ``k`` exponent pairs on a fine grid, each with its optimal E, A, B.

    For fixed (α, β) the law is linear in (E, A, B), so non-negative least squares on
    relative residuals gives them at once; this lands L-BFGS in the right basin far more
    reliably than a coarse grid over all five constants.
    """
    exps = np.linspace(0.05, 2.0, 40)
    scored = []
    for alpha, beta in itertools.product(exps, exps):
        design = np.stack([np.ones_like(n), n**-alpha, d**-beta], axis=1) / loss[:, None]
        coef, _ = nnls(design, np.ones_like(loss))
        resid = float(np.sum((design @ coef - 1.0) ** 2))
        e, a, b = np.log(np.maximum(coef, 1e-12))
        scored.append((resid, np.array([a, b, e, alpha, beta])))
    scored.sort(key=lambda item: item[0])
    return [theta for _, theta in scored[:k]]


def _check(n: np.ndarray, d: np.ndarray, loss: np.ndarray) -> None:
    if not (len(n) == len(d) == len(loss)):
        raise ValueError(f"N, D and L must have equal lengths, got {len(n)}, {len(d)}, {len(loss)}")
    if len(n) < 5:
        raise ValueError(f"fitting five constants needs at least 5 runs, got {len(n)}")
    for name, v in (("N", n), ("D", d), ("L", loss)):
        if not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise ValueError(f"every {name} must be positive and finite")


def fit_law(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    delta: float = 1e-3,
    grid: dict[str, np.ndarray] | None = None,
    starts: list[np.ndarray] | None = None,
    n_starts: int = 32,
) -> ScalingLaw:
    """Best L-BFGS fit from the ``n_starts`` best grid points (or from the given ``starts``)."""
    n, d, loss = (np.asarray(x, dtype=float) for x in (n, d, loss))
    _check(n, d, loss)
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)
    if starts is None:
        g = grid or DEFAULT_GRID
        candidates = np.array(
            list(itertools.product(g["a"], g["b"], g["e"], g["alpha"], g["beta"]))
        )
        # Scoring the whole grid at once is cheap; L-BFGS then runs from its best points and
        # from the best exponent pairs of a variable-projection scan, instead of from all
        # few thousand grid points.
        ranked = candidates[np.argsort(_grid_values(candidates, log_n, log_d, log_l, delta))]
        starts = [*ranked[: n_starts // 2], *_projected_starts(n, d, loss, n_starts // 2)]
    best, best_value = None, np.inf
    for x0 in starts:
        res = minimize(
            _objective,
            x0,
            args=(log_n, log_d, log_l, delta),
            jac=True,
            method="L-BFGS-B",
            bounds=[(None, None)] * 3 + [(0.0, 5.0)] * 2,
        )
        if res.fun < best_value:
            best, best_value = res.x, res.fun
    a, b, e, alpha, beta = best
    return ScalingLaw(
        E=float(np.exp(e)),
        A=float(np.exp(a)),
        B=float(np.exp(b)),
        alpha=float(alpha),
        beta=float(beta),
    )


def _theta(law: ScalingLaw) -> np.ndarray:
    return np.array([np.log(law.A), np.log(law.B), np.log(law.E), law.alpha, law.beta])


@dataclass
class FitResult:
    law: ScalingLaw
    intervals: dict[str, tuple[float, float]]  # constant → (2.5 %, 97.5 %)
    samples: list[ScalingLaw] = field(repr=False, default_factory=list)

    def plan(self, flops: float) -> dict[str, tuple[float, float, float]]:
        """Compute-optimal N and D at ``flops``: (best fit, 2.5 %, 97.5 %)."""
        n_best, d_best = self.law.compute_optimal(flops)
        plans = np.array([s.compute_optimal(flops) for s in self.samples]) if self.samples else None
        out = {}
        for i, (name, value) in enumerate((("N", n_best), ("D", d_best))):
            lo, hi = (
                np.percentile(plans[:, i], [2.5, 97.5]) if plans is not None else (np.nan, np.nan)
            )
            out[name] = (float(value), float(lo), float(hi))
        n, d = out["N"][0], out["D"][0]
        out["L"] = (float(self.law.loss(n, d)), np.nan, np.nan)
        return out

    def to_dict(self) -> dict:
        return {
            "law": self.law.to_dict(),
            "intervals_95": {k: list(v) for k, v in self.intervals.items()},
            "n_bootstrap": len(self.samples),
        }


def bootstrap_fit(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
    delta: float = 1e-3,
    grid: dict[str, np.ndarray] | None = None,
    progress: bool = True,
) -> FitResult:
    """Fit on all runs, then refit on runs resampled with replacement for 95 % intervals.

    Each resample starts from the full fit and from four spread-out points, so it finds the
    same basin when the data allow and another one when they do not.
    """
    n, d, loss = (np.asarray(x, dtype=float) for x in (n, d, loss))
    law = fit_law(n, d, loss, delta=delta, grid=grid)
    coarse = [
        np.array([a, b, np.log(law.E), al, be])
        for a, b, al, be in [
            (0.0, 0.0, 0.2, 0.2),
            (10.0, 10.0, 0.8, 0.8),
            (0.0, 10.0, 0.2, 0.8),
            (10.0, 0.0, 0.8, 0.2),
        ]
    ]
    rng = np.random.default_rng(seed)
    samples = []
    for _ in tqdm(range(n_boot), desc="bootstrap", disable=not progress):
        pick = rng.integers(0, len(n), len(n))
        if len(np.unique(pick)) < 5:
            continue
        samples.append(
            fit_law(n[pick], d[pick], loss[pick], delta=delta, starts=[_theta(law), *coarse])
        )
    intervals = {}
    for key in ("E", "A", "B", "alpha", "beta"):
        values = np.array([getattr(s, key) for s in samples])
        intervals[key] = (
            tuple(float(x) for x in np.percentile(values, [2.5, 97.5]))
            if len(values)
            else (np.nan, np.nan)
        )
    return FitResult(law=law, intervals=intervals, samples=samples)
