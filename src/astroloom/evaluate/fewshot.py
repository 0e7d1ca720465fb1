"""Label-efficiency curves: a probe trained on 10, 30, 100, … labelled objects, 5 seeds each.

Every feature set (foundation embeddings, baselines) is scored on the *same* held-out test
objects and the *same* labelled subsets, so the curves differ only by the features.
"""

from __future__ import annotations

import inspect
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
from scipy.linalg import LinAlgWarning
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV
from sklearn.model_selection import KFold
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from astroloom.data.schema import DataError
from astroloom.evaluate.metrics import classification_metrics, redshift_metrics, regression_metrics

BUDGETS: tuple[int | None, ...] = (10, 30, 100, 300, 1000, None)  # None: every labelled object
METHODS = ("linear", "knn", "mlp")
# Up to 1e6: with standardised features that shrinks a useless feature set's predictions
# to the training mean, which is what keeps few-shot R² from collapsing below zero.
ALPHAS = np.logspace(-3, 6, 19)


def ridge_for(n_train: int, n_features: int | None = None, seed: int = 0) -> RidgeCV:
    """Ridge with its penalty chosen by k-fold cross-validation on the training labels.

    scikit-learn's default, leave-one-out generalised cross-validation, is reliable when
    there are many more labels than features; with fewer (30 labels, 128 dimensions) it
    picks penalties far too weak and the probe collapses (R² −1.3 ± 2.9 at 30 labels
    measured before this change, docs/benchmarks.md). k-fold CV on shuffled labels does not.
    """
    if n_features is not None and n_train > 5 * n_features:
        # Plenty of labels: the exact leave-one-out, from the design matrix's SVD (N × D
        # per penalty; the covariance route scikit-learn picks costs N × D²).
        return RidgeCV(alphas=ALPHAS, gcv_mode="svd")
    folds = max(2, min(5, n_train // 4))
    return RidgeCV(alphas=ALPHAS, cv=KFold(folds, shuffle=True, random_state=seed))


class TrainingRange(TransformerMixin, BaseEstimator):
    """Clips each feature to the range the probe's training objects span, widened by
    ``margin`` × its width on either side.

    A linear probe (or an MLP) fitted on a few labels extrapolates without bound: one test
    object whose feature lies 29 standard deviations out — a photutils radius of a galaxy
    its segmentation merged with a neighbour — gets a prediction far outside any label,
    and one such object drags a whole test set's R² below zero. Clipped, it gets about the
    prediction of the most extreme training object. The margin leaves alone what lies just
    past the training objects (a period a little longer than any labelled one, which a
    linear probe rightly extrapolates to: clipped at the range itself the light-curve
    embeddings' log-period R² at 1,000 labels fell from 0.972 to 0.958; with the margin it
    stays 0.972). Applied to every feature set alike; on the reference run it lifted the
    hand-crafted features' size R² at 30 labels from −4.77 to 0.35 and their g − r from
    −1.10 to 0.76 (docs/benchmarks.md, "Probes that do not extrapolate").
    """

    def __init__(self, margin: float = 0.5) -> None:
        self.margin = margin

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> TrainingRange:
        x = np.asarray(x, dtype=float)
        low, high = x.min(0), x.max(0)
        self.low_ = low - self.margin * (high - low)
        self.high_ = high + self.margin * (high - low)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(x, dtype=float), self.low_, self.high_)


def standardised(head, clip: bool = True):
    """``head`` behind a standard scaler fitted on the training objects, and with ``clip``
    the :class:`TrainingRange` of the scaled features."""
    return make_pipeline(StandardScaler(), *([TrainingRange()] if clip else []), head)


# scikit-learn ≥ 1.8 warns on every fit until these two are set; older versions lack them.
_LOGISTIC_CV_QUIET = {
    k: v
    for k, v in {"l1_ratios": (0.0,), "use_legacy_attributes": False}.items()
    if k in inspect.signature(LogisticRegressionCV).parameters
}


def make_probe(method: str, task: str, n_train: int, seed: int, n_features: int | None = None):
    """A standardised scikit-learn estimator for ``task`` ∈ {regression, classification}."""
    if method == "linear" and task == "regression":
        head = ridge_for(n_train, n_features, seed)
    elif method == "linear":
        # Cross-validated regularisation once there are labels enough to hold some out.
        head = (
            LogisticRegressionCV(
                Cs=8, cv=3, max_iter=2000, scoring="neg_log_loss", **_LOGISTIC_CV_QUIET
            )
            if n_train >= 60
            else LogisticRegression(C=1.0, max_iter=2000)
        )
    elif method == "knn":
        k = max(1, min(10, n_train // 3))
        head = KNeighborsRegressor(k) if task == "regression" else KNeighborsClassifier(k)
    elif method == "mlp":
        kwargs = {
            "hidden_layer_sizes": (128,),
            "max_iter": 400,
            "random_state": seed,
            "early_stopping": n_train >= 100,
            "alpha": 1e-3,
        }
        # The network starts near zero output: standardise regression targets (magnitudes
        # sit near 20) or small budgets never leave the initial guess.
        head = (
            TransformedTargetRegressor(MLPRegressor(**kwargs), transformer=StandardScaler())
            if task == "regression"
            else MLPClassifier(**kwargs)
        )
    else:
        raise ValueError(f"unknown probe method {method!r}; choose from {', '.join(METHODS)}")
    # Nearest neighbours never extrapolate; the linear probe and the MLP do.
    return standardised(head, clip=method != "knn")


def score(
    task: str,
    target: str,
    truth: np.ndarray,
    model,
    x_test: np.ndarray,
    bootstrap: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """The probe's metrics on the test set; with ``bootstrap`` > 0 also each metric's
    spread over that many resamples of the test set (``<metric>_bootstrap_std``): the
    uncertainty of a single draw, such as the curve's every-label point."""
    pred = model.predict(x_test)
    proba = None
    if task == "classification" and hasattr(model, "predict_proba"):
        proba = model.predict_proba(x_test)

    def metrics(rows: np.ndarray | slice) -> dict[str, float]:
        if task == "classification":
            return classification_metrics(
                truth[rows], pred[rows], None if proba is None else proba[rows], model.classes_
            )
        if target == "redshift":
            return redshift_metrics(truth[rows], pred[rows])
        return regression_metrics(truth[rows], pred[rows])

    out = metrics(slice(None))
    if bootstrap:
        rng = np.random.default_rng([seed, 11])
        with warnings.catch_warnings():  # a resample may miss a class: its AUC is NaN
            warnings.simplefilter("ignore")
            draws = [metrics(rng.integers(0, len(truth), len(truth))) for _ in range(bootstrap)]
        for key in list(out):
            values = np.array([d.get(key, np.nan) for d in draws], dtype=float)
            out[f"{key}_bootstrap_std"] = float(np.nanstd(values))
    return out


@dataclass
class Curve:
    target: str
    task: str
    rows: list[dict] = field(default_factory=list)  # one per feature × method × budget × seed
    notes: list[str] = field(default_factory=list)

    def summary(self, metric: str) -> dict[tuple[str, str, int], tuple[float, float]]:
        """(feature, method, budget) → (mean, spread) of ``metric``: the standard deviation
        over seeds, or for a single draw (every label) over bootstrap resamples of its
        test set."""
        groups: dict[tuple[str, str, int], list[dict]] = {}
        for row in self.rows:
            if metric in row:
                groups.setdefault((row["feature"], row["method"], row["budget"]), []).append(row)
        out = {}
        for k, rows in groups.items():
            values = [r[metric] for r in rows]
            spread = (
                rows[0].get(f"{metric}_bootstrap_std", 0.0) if len(rows) == 1 else np.std(values)
            )
            out[k] = (float(np.mean(values)), float(spread))
        return out


def check_budgets(budgets: Sequence[int | None], seeds: int) -> None:
    """Refuse label budgets and draws with no probe behind them, before any work: each
    budget a positive count (None: every label), at least one of them and one seed."""
    if not budgets or any(b is not None and b < 1 for b in budgets):
        raise DataError(f"label budgets must be positive counts (or all), got {list(budgets)}")
    if seeds < 1:
        raise DataError(f"need at least 1 seed (a draw of labels per budget), got {seeds}")


def few_shot_splits(
    n: int,
    target: str,
    budgets: Sequence[int | None],
    seeds: int,
    test_fraction: float = 0.3,
    seed: int = 0,
    notes: list[str] | None = None,
):
    """The train/test splits of a few-shot curve over ``n`` labelled objects: one fixed test
    set, and per budget and seed a draw of ``budget`` training objects (indices into the
    ``n``). Yields (budget, seed, size, train, test). Shared by probes and fine-tuning so
    that every method sees the same objects."""
    rng = np.random.default_rng([seed, 7])
    order = rng.permutation(n)
    n_test = int(round(test_fraction * n))
    test, pool = order[:n_test], order[n_test:]
    if len(pool) < 2 or n_test < 2:
        raise DataError(f"{target}: {n} labelled objects are too few for a few-shot curve")
    for budget in budgets:
        size = len(pool) if budget is None else budget
        if size > len(pool):
            if notes is not None:
                notes.append(f"budget {budget} skipped: only {len(pool)} labelled training objects")
            continue
        for s in range(seeds if budget is not None else 1):
            pick = np.random.default_rng([seed, s, size]).choice(pool, size, replace=False)
            yield budget, s, size, pick, test


def probe_jobs(jobs: int) -> int:
    """``jobs`` as a count of worker processes: -1 is one per core; 0 and other negative
    numbers are refused."""
    if jobs == -1:
        return os.cpu_count() or 1
    if jobs < 1:
        raise ValueError(f"jobs must be a count of processes or -1 (every core); got {jobs}")
    return jobs


def _probe_row(
    task: str,
    target: str,
    method: str,
    size: int,
    seed: int,
    x: np.ndarray,
    y: np.ndarray,
    pick: np.ndarray,
    test: np.ndarray,
    bootstrap: int,
) -> dict[str, float]:
    """One probe of one draw: fitted on ``x[pick]``, scored on ``x[test]``."""
    with warnings.catch_warnings():
        # The weakest penalties tried on collinear features are ill-conditioned; the
        # cross-validation rejects them, so their warnings are not news. The MLP's 400
        # iterations are its fixed budget, converged or not.
        warnings.simplefilter("ignore", LinAlgWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make_probe(method, task, size, seed, x.shape[1]).fit(x[pick], y[pick])
    return score(task, target, y[test], model, x[test], bootstrap, seed)


def _shared(features: dict[str, np.ndarray], folder: Path) -> dict[str, np.ndarray]:
    """Each feature set as a read-only memory map in ``folder``: joblib hands a map to its
    workers by file name, where a plain array would be hashed and copied for every task."""
    out = {}
    for i, (name, x) in enumerate(features.items()):
        path = folder / f"features-{i}.joblib"
        joblib.dump(np.ascontiguousarray(x), path)
        out[name] = joblib.load(path, mmap_mode="r")
    return out


def few_shot_curve(
    features: dict[str, np.ndarray],
    labels: np.ndarray,
    target: str,
    task: str = "regression",
    budgets: Sequence[int | None] = BUDGETS,
    methods: Sequence[str] = ("linear",),
    seeds: int = 5,
    test_fraction: float = 0.3,
    seed: int = 0,
    bootstrap: int = 200,
    jobs: int = 1,
) -> Curve:
    """Train each probe on ``budget`` labelled objects per seed; test on a fixed held-out set.
    The every-label budget (None) is one draw; its spread is that of ``bootstrap``
    resamples of the test set.

    Objects whose label is missing (NaN or None) are left out and counted in the notes; a
    budget larger than the labelled training pool is skipped with a note, never silently.

    ``jobs`` > 1 fits that many probes at a time in worker processes (-1: one per core),
    each worker's linear algebra on its share of the cores; the rows are the same as
    with ``jobs = 1``, in the same order.
    """
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be regression or classification, got {task!r}")
    jobs = probe_jobs(jobs)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:  # before any fit, in whichever process it would run
        raise ValueError(f"unknown probe method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if task == "regression":
        known = np.isfinite(labels.astype(float))
    else:
        known = np.array([v is not None and v == v for v in labels])
    curve = Curve(target=target, task=task)
    if (~known).any():
        curve.notes.append(f"{int((~known).sum())} objects without a {target} label left out")
    index = np.flatnonzero(known)
    y_all = labels[index] if task == "classification" else labels[index].astype(float)
    tasks = []
    for budget, s, size, pick, test in few_shot_splits(
        len(index), target, budgets, seeds, test_fraction, seed, curve.notes
    ):
        if task == "classification" and len(set(y_all[pick])) < 2:
            curve.notes.append(f"budget {budget}, seed {s}: one class only; skipped")
            continue
        for name in features:
            for method in methods:
                # One draw uses every label: its spread comes from resampling the test set.
                tasks.append((name, method, budget, s, size, pick, test))

    def rows_of(x_by_name: dict[str, np.ndarray], parallel) -> list[dict[str, float]]:
        # The largest budgets first, so that no long fit is left to run alone at the end.
        order = sorted(range(len(tasks)), key=lambda i: -tasks[i][4])
        done = parallel(
            joblib.delayed(_probe_row)(
                task,
                target,
                method,
                size,
                s,
                x_by_name[name],
                y_all,
                pick,
                test,
                bootstrap if budget is None else 0,
            )
            for name, method, budget, s, size, pick, test in (tasks[i] for i in order)
        )
        out: list[dict[str, float]] = [{}] * len(tasks)
        for i, row in zip(order, done, strict=True):
            out[i] = row
        return out

    if jobs == 1 or len(tasks) < 2:
        x_by_name = {name: x[index] for name, x in features.items()}
        found = rows_of(x_by_name, joblib.Parallel(n_jobs=1))  # in this process
    else:
        with tempfile.TemporaryDirectory(prefix="astroloom-probes-") as folder:
            x_by_name = _shared({name: x[index] for name, x in features.items()}, Path(folder))
            found = rows_of(x_by_name, joblib.Parallel(n_jobs=min(jobs, len(tasks))))
            del x_by_name  # the maps close before their folder goes
    for (name, method, budget, s, size, _, _), row in zip(tasks, found, strict=True):
        curve.rows.append(
            {
                "feature": name,
                "method": method,
                "seed": s,
                "budget": size if budget is not None else -1,
                **row,
            }
        )
    return curve
