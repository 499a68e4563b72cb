"""A drop-in for the original Multi-Bootstrap library of the MultiBERTs release
(google-research/language, ``language/multiberts/multibootstrap.py``).

A notebook switches by changing its import::

    # from language.multiberts import multibootstrap
    from mb_stats import multibootstrap

    samples = multibootstrap.multibootstrap(run_info, preds, labels, accuracy_score,
                                            paired_seeds=True, nboot=1000)
    stats = multibootstrap.report_ci(samples, c=0.95)

The arguments and return values are the original's. The scores the notebooks pass
(scikit-learn's ``accuracy_score``, ``f1_score``, ``precision_score``, ``recall_score``,
``matthews_corrcoef``, ``roc_auc_score``, or ``f1_score`` with ``average="macro"`` through
``functools.partial``), or a metric name of mb-stats, run on the Rust engine; any other callable
runs in Python exactly as the original calls it, slower.

Random numbers: with the fast engine the replicates come from mb-stats' own version-stable
generator, seeded from ``rng`` (an int is the seed; a numpy ``RandomState``, ``Generator`` or the
``np.random`` module gives one draw for the seed), so the numbers agree with the original's only
within Monte-Carlo error. A Python ``score_fn`` draws from ``rng`` in the original's order, so it
reproduces the original's numbers for the same ``rng``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np
import pandas as pd
import pyarrow as pa

from . import _native

__all__ = ["multibootstrap", "report_ci"]

#: scikit-learn scores the fast engine computes with the same definition, by function name.
_SKLEARN_METRICS = {
    "accuracy_score": "accuracy",
    "f1_score": "f1",
    "precision_score": "precision",
    "recall_score": "recall",
    "matthews_corrcoef": "mcc",
    "roc_auc_score": "auc",
}
#: Metrics defined for binary labels (class 1 positive), as scikit-learn's defaults are.
_BINARY = {"f1", "precision", "recall", "mcc", "auc"}
#: The metrics of mb-stats (a name given as ``score_fn``).
_METRICS = frozenset(
    ["accuracy", "precision", "recall", "f1", "macro-f1", "mcc", "pearson", "spearman", "auc", "mean"]
)
#: Metrics that read the predictions as scores (mb-stats' ``score`` column).
_SCORES = {"auc", "mean"}


def multibootstrap(
    run_info: pd.DataFrame,
    preds: Any,
    labels: Any,
    score_fn: Union[str, Callable[[Any, Any], float]],
    paired_seeds: bool = False,
    sample_seeds: bool = True,
    sample_examples: bool = True,
    nboot: int = 500,
    rng: Any = np.random,
    verbose: bool = True,
    progress_indicator: Callable[[Iterable[int]], Iterable[int]] = lambda x: x,
) -> List[Tuple[float, float]]:
    """Bootstrap samples of a score over seeds and examples (the original's ``multibootstrap``).

    Each replicate draws seeds (per side, or common seeds for both sides when ``paired_seeds``)
    and one set of examples for both sides; a side's value is the mean over its drawn seeds of
    the mean over that seed's runs of ``score_fn(labels[drawn], preds[run, drawn])``.

    A recognised ``score_fn`` runs on the Rust engine with its own random numbers (seeded from
    ``rng``): the replicates agree with the original's only within Monte-Carlo error. Any other
    callable runs in Python with ``rng``'s draws in the original's order, so it reproduces the
    original's numbers for the same ``rng``.

    Args:
        run_info: DataFrame with columns ``seed`` (any type) and ``intervention`` (bool), one row
            per row of ``preds``; rows with the same (seed, intervention) are runs of one seed.
        preds: [num_runs, num_examples] predictions (or scores for ``roc_auc_score``).
        labels: [num_examples] target labels.
        score_fn: ``score_fn(y_true, y_pred) -> float``: a scikit-learn score or a metric name
            of mb-stats (fast engine), or any callable (run in Python).
        paired_seeds: draw the same seeds for both sides (seeds on one side only are dropped).
        sample_seeds: resample seeds.
        sample_examples: resample examples.
        nboot: number of replicates.
        rng: an int seed, a numpy ``RandomState`` or ``Generator``, or the ``np.random`` module.
        verbose: print the design (seeds, runs) before computing.
        progress_indicator: wraps the replicate loop (e.g. ``tqdm``); used by the Python path,
            the fast engine computes all replicates in one call.

    Returns:
        ``nboot`` pairs ``(L, L')``: the baseline's and the intervention's value per replicate.

    Raises:
        ValueError: mismatched shapes, missing columns, no seeds on a side, or bad settings.
    """
    run_info, preds, labels = _check(run_info, preds, labels, nboot)
    intervention = run_info["intervention"].to_numpy()
    seeds = run_info["seed"].to_numpy()
    sides = {
        False: _rows_by_seed(seeds, ~intervention),
        True: _rows_by_seed(seeds, intervention),
    }
    if not sides[False] or not sides[True]:
        raise ValueError("run_info: needs rows with intervention False and rows with intervention True")
    common = _sorted(set(sides[False]) & set(sides[True]))
    if paired_seeds and not common:
        raise ValueError("paired_seeds=True: no seed has rows on both sides")
    if verbose:
        _describe(run_info, sides, common, paired_seeds, len(labels))
    metric = _fast_metric(score_fn, labels, preds)
    if isinstance(rng, (int, np.integer)):
        rng = np.random.RandomState(rng)
    if metric is None:
        if isinstance(score_fn, str):
            raise ValueError(f"score_fn={score_fn!r}: expected a metric of mb-stats or a callable")
        return _python_replicates(
            sides, common, labels, preds, score_fn, paired_seeds, sample_seeds, sample_examples,
            nboot, rng, progress_indicator,
        )
    return _engine_replicates(
        run_info, sides, labels, preds, metric, paired_seeds, sample_seeds, sample_examples, nboot, rng
    )


def report_ci(
    samples: List[Tuple[float, float]],
    c: float = 0.95,
    abs_threshold: Optional[float] = None,
    rel_threshold: Optional[float] = None,
    expect_negative_effect: bool = False,
) -> Dict[str, Dict[str, float]]:
    """Intervals and a p-value from bootstrap samples (the original's ``report_ci``).

    Percentile intervals (numpy's linear quantiles) of L, L' and delta = L' - L, and the
    one-sided bootstrap p-value of "no improvement" (of "no decline" when
    ``expect_negative_effect``), at least 1/len(samples). Prints them, and the probabilities
    of an effect beyond ``abs_threshold`` (L' - L) or ``rel_threshold`` ((L' - L) / L).

    Args:
        samples: pairs (L, L') as returned by :func:`multibootstrap`.
        c: confidence level.
        abs_threshold: also print P(L' >= L + abs_threshold).
        rel_threshold: also print P((L' - L) / L >= rel_threshold).
        expect_negative_effect: test and threshold the other direction.

    Returns:
        ``{"base": {"mean", "low", "high"}, "expt": {...}, "delta": {..., "p"}}``.
    """
    values = np.asarray(samples, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != 2 or len(values) == 0:
        raise ValueError("samples: expected a non-empty list of (L, L') pairs")
    if not 0 < c < 1:
        raise ValueError(f"c={c!r}: expected a number strictly between 0 and 1")
    tails = [(1 - c) / 2, 1 - (1 - c) / 2]
    base, expt = values[:, 0], values[:, 1]
    delta = expt - base
    stats = {}
    print(f"Bootstrap statistics from {len(values)} samples:")
    for key, label, v in (("base", "E[L]  ", base), ("expt", "E[L'] ", expt), ("delta", "E[L'-L]", delta)):
        low, high = np.quantile(v, tails)
        stats[key] = {"mean": float(np.mean(v)), "low": float(low), "high": float(high)}
    worse = delta >= 0 if expect_negative_effect else delta <= 0
    stats["delta"]["p"] = max(float(np.mean(worse)), 1.0 / len(values))
    for key, label in (("base", "E[L]  "), ("expt", "E[L'] ")):
        s = stats[key]
        print(f"  {label}= {s['mean']:.3g} with {c:.0%} CI of ({s['low']:.3g} to {s['high']:.3g})")
    d = stats["delta"]
    print(
        f"  E[L'-L] = {d['mean']:.3g} with {c:.0%} CI of ({d['low']:.3g} to {d['high']:.3g}); "
        f"p-value = {d['p']:.3g}"
    )
    sign = -1.0 if expect_negative_effect else 1.0
    if rel_threshold:
        relative = delta / base
        beyond = relative <= -rel_threshold if expect_negative_effect else relative >= rel_threshold
        print(f"  E[(L'-L)/L {'≤' if sign < 0 else '≥'} {sign * rel_threshold:.3g}] = {np.mean(beyond):0.2f}")
    if abs_threshold is not None:
        beyond = delta <= -abs_threshold if expect_negative_effect else delta >= abs_threshold
        relation = f"≤ L - {abs_threshold:.3g}" if sign < 0 else f"≥ L + {abs_threshold:.3g}"
        print(f"  E[L' {relation}] = {np.mean(beyond):0.2f}")
    return stats


def _check(run_info: Any, preds: Any, labels: Any, nboot: Any):
    """The inputs as (DataFrame with a 0..n index, 2-D array, 1-D array), or ValueError."""
    if not isinstance(run_info, pd.DataFrame):
        raise ValueError(f"run_info: expected a pandas DataFrame, got {type(run_info).__name__}")
    missing = [c for c in ("seed", "intervention") if c not in run_info.columns]
    if missing:
        raise ValueError(f"run_info: missing column(s) {', '.join(missing)} (needs seed and intervention)")
    run_info = run_info.reset_index(drop=True)
    if run_info["intervention"].isna().any() or run_info["seed"].isna().any():
        raise ValueError("run_info: seed and intervention must not have missing values")
    intervention = run_info["intervention"]
    if not all(isinstance(v, (bool, np.bool_)) or v in (0, 1) for v in intervention):
        raise ValueError("run_info: column intervention must be True/False")
    run_info = run_info.assign(intervention=intervention.astype(bool))
    preds, labels = np.asarray(preds), np.asarray(labels)
    if preds.ndim != 2:
        raise ValueError(f"preds: expected a [num_runs, num_examples] matrix, got shape {preds.shape}")
    if labels.ndim != 1:
        raise ValueError(f"labels: expected one label per example, got shape {labels.shape}")
    if len(run_info) != preds.shape[0]:
        raise ValueError(f"preds: {preds.shape[0]} rows for {len(run_info)} rows of run_info")
    if len(labels) != preds.shape[1]:
        raise ValueError(f"labels: {len(labels)} labels for {preds.shape[1]} columns of preds")
    if len(labels) == 0:
        raise ValueError("labels: no examples")
    if isinstance(nboot, bool) or not isinstance(nboot, (int, np.integer)) or nboot < 1:
        raise ValueError(f"nboot={nboot!r}: expected a whole number at least 1")
    return run_info, preds, labels


def _sorted(values: Iterable[Any]) -> list:
    """Seeds in order (their order of appearance when they do not compare)."""
    values = list(values)
    try:
        return sorted(values)
    except TypeError:
        return values


def _rows_by_seed(seeds: np.ndarray, mask: np.ndarray) -> Dict[Any, List[int]]:
    """Row indices of each seed among the rows of ``mask``, seeds in order."""
    rows: Dict[Any, List[int]] = {}
    for i in np.flatnonzero(mask):
        rows.setdefault(seeds[i].item() if hasattr(seeds[i], "item") else seeds[i], []).append(int(i))
    return {s: rows[s] for s in _sorted(rows)}


def _describe(run_info, sides, common, paired, n_examples) -> None:
    """Prints the design, as the original does with ``verbose``."""
    runs = {side: sum(len(r) for r in sides[side].values()) for side in sides}
    if paired:
        print(f"Multibootstrap (paired) on {n_examples} examples")
        print(f"  Common seeds ({len(common)}): {common}")
        print(f"  Base: {runs[False]} runs")
        print(f"  Expt: {runs[True]} runs")
        for side, name in ((False, "base"), (True, "expt")):
            only = [s for s in sides[side] if s not in common]
            if only:
                print(f"  Warning: {len(only)} seeds found on {name} side only; omitted: {only}")
    else:
        print(f"Multibootstrap (unpaired) on {n_examples} examples")
        print(f"  Base seeds ({len(sides[False])}): {list(sides[False])}")
        print(f"  Base: {runs[False]} runs")
        print(f"  Expt seeds ({len(sides[True])}): {list(sides[True])}")
        print(f"  Expt: {runs[True]} runs")


def _fast_metric(score_fn: Any, labels: np.ndarray, preds: np.ndarray) -> Optional[str]:
    """The mb-stats metric that computes ``score_fn`` on these data, or None (Python path)."""
    if isinstance(score_fn, str):
        return score_fn if score_fn in _METRICS else None
    function, keywords = score_fn, {}
    if isinstance(score_fn, functools.partial):
        if score_fn.args:
            return None
        function, keywords = score_fn.func, dict(score_fn.keywords)
    name = getattr(function, "__name__", "")
    if not getattr(function, "__module__", "").startswith("sklearn.metrics") or name not in _SKLEARN_METRICS:
        return None
    metric = _SKLEARN_METRICS[name]
    if name == "f1_score" and keywords == {"average": "macro"}:
        metric, keywords = "macro-f1", {}
    if keywords:
        return None
    if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == bool):
        return None
    if not (np.issubdtype(preds.dtype, np.number) or preds.dtype == bool):
        return None
    if metric in _BINARY:
        binary = lambda a: bool(np.isin(a, (0, 1)).all())  # noqa: E731
        if not binary(labels) or (metric not in _SCORES and not binary(preds)):
            return None
    return metric


def _engine_seed(rng: Any) -> int:
    """One draw from the caller's generator: the seed of the engine's own draws."""
    high = 2**63 - 1
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, high))
    return int(rng.randint(0, high, dtype=np.int64))


def _engine_replicates(run_info, sides, labels, preds, metric, paired, sample_seeds, sample_examples, nboot, rng):
    """Replicates from the Rust engine, on the design as a results table."""
    n_runs, n_examples = preds.shape
    codes = {seed: code for code, seed in enumerate(_sorted(set(sides[False]) | set(sides[True])))}
    seed_code = np.empty(n_runs, dtype=np.int64)
    run = np.empty(n_runs, dtype=np.int64)
    group = np.empty(n_runs, dtype=object)
    for side, name in ((False, "base"), (True, "expt")):
        for seed, rows in sides[side].items():
            seed_code[rows] = codes[seed]
            run[rows] = np.arange(len(rows))
            group[rows] = name
    values = preds.reshape(-1)
    columns = {
        "group": pa.array(np.repeat(group, n_examples).tolist(), pa.string()),
        "seed": np.repeat(seed_code, n_examples),
        "run": np.repeat(run, n_examples),
        "example": np.tile(np.arange(n_examples, dtype=np.int64), n_runs),
        "label": np.tile(labels.astype(np.float64) if labels.dtype == bool else labels, n_runs),
        ("score" if metric in _SCORES else "prediction"): values.astype(np.float64)
        if values.dtype == bool
        else values,
    }
    results = _native.from_arrow(pa.table(columns).__arrow_c_stream__(), "preds")
    settings = {
        "metric": metric,
        "base": "group=base",
        "treatment": "group=expt",
        "paired": bool(paired),
        "nboot": max(int(nboot), 2),
        "interval": "percentile",
        "rng_seed": _engine_seed(rng),
    }
    if not (sample_seeds or sample_examples):
        summary, _, _ = _native.bootstrap(results, dict(settings, sample="seeds"), False)
        columns = {name: values for name, (_, values) in summary}
        estimate = dict(zip(columns["quantity"], columns["estimate"]))
        return [(float(estimate["base"]), float(estimate["treatment"]))] * int(nboot)
    settings["sample"] = "both" if sample_seeds and sample_examples else ("seeds" if sample_seeds else "examples")
    _, _, replicates = _native.bootstrap(results, settings, True)
    columns = {name: values for name, (_, values) in replicates}
    pairs = list(zip(columns["base"], columns["treatment"]))
    return [(float(b), float(t)) for b, t in pairs[: int(nboot)]]


def _python_replicates(sides, common, labels, preds, score_fn, paired, sample_seeds, sample_examples, nboot, rng, progress):
    """Replicates with a Python ``score_fn``, drawing from ``rng`` in the original's order:
    base seeds, treatment seeds (unpaired), then examples."""
    pools = (common, common) if paired else (list(sides[False]), list(sides[True]))
    n = len(labels)

    def side_value(rows_of, seeds, y, columns):
        return np.mean([np.mean([score_fn(y, preds[i, columns]) for i in rows_of[s]]) for s in seeds])

    replicates = []
    for _ in progress(range(nboot)):
        drawn = list(pools)
        if sample_seeds:
            drawn[0] = rng.choice(pools[0], size=len(pools[0]), replace=True)
            drawn[1] = drawn[0] if paired else rng.choice(pools[1], size=len(pools[1]), replace=True)
        if sample_examples:
            columns = rng.choice(n, size=n, replace=True)
            y = labels[columns]
        else:
            columns, y = slice(None), labels
        replicates.append(
            (side_value(sides[False], drawn[0], y, columns), side_value(sides[True], drawn[1], y, columns))
        )
    return replicates
