"""mb_stats: Multi-Bootstrap statistics for seed suites of language models, from Python.

The same analyses as the ``mb-stats`` command line, on the same Rust engine: for the same
table, options and ``rng_seed`` every function returns the numbers of the CLI's CSV, bit for bit.

Every function takes a results table (schema v1: ``group``, ``seed``, ``example`` and the
columns the metric reads) as a pandas DataFrame, a polars DataFrame, a pyarrow Table or a path
to a Parquet file, and returns a pandas DataFrame with the CLI's columns; the text the CLI
prints is in ``df.attrs["report"]``. Bad input raises ``ValueError`` with the CLI's message.
Computations release the GIL and stop on Ctrl-C.

``from mb_stats import multibootstrap`` is a drop-in for the original library's module
(``multibootstrap.multibootstrap`` and ``multibootstrap.report_ci``).
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import pyarrow as pa

from . import _native

try:
    __version__ = version("mb-stats")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0"

__all__ = [
    "bootstrap",
    "seeds",
    "curve",
    "variance",
    "power",
    "read_results",
    "read_lm_eval",
    "validate",
    "multibootstrap",
]

#: What the functions accept as a results table.
Results = Union[pd.DataFrame, pa.Table, "os.PathLike[str]", str, Any]
#: A row filter: the CLI's ``column=value[,column=value]`` or a dict ``{column: value}``.
FilterLike = Union[str, Mapping[str, Any]]


def read_results(path: Union[str, "os.PathLike[str]"]) -> pd.DataFrame:
    """Reads a results table (Parquet, schema v1) with the CLI's reader and checks.

    Args:
        path: the Parquet file.

    Returns:
        The table as the analyses see it (integer widths widened, a byte-order mark dropped
        from column names); the file's footer metadata is in ``df.attrs["metadata"]``.

    Raises:
        ValueError: the file is missing, not Parquet, or not schema v1 (the CLI's message).
    """
    table = _native.read_parquet(os.fspath(path))
    return _to_pandas(table)


def read_lm_eval(
    paths: Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]],
    *,
    metric: Optional[str] = None,
    group: Optional[str] = None,
    seed_pattern: Optional[str] = None,
    seeds: Optional[Mapping[str, int]] = None,
    force: bool = False,
) -> pd.DataFrame:
    """Reads lm-evaluation-harness per-sample output (``--log_samples``) as a results table, as
    ``mb-stats import lm-eval`` does (same rows, same checks, same messages).

    Args:
        paths: samples files, folders (searched recursively) or globs; one or a list.
        metric: the per-sample metric in ``score`` (default: each task's first averaged one).
        group: the group of every row (default: the model's name without its seed).
        seed_pattern: regular expression whose first group is the seed (default ``seed(\\d+)``).
        seeds: seeds of models whose names have none, e.g. ``{"EleutherAI/pythia-160m": 0}``.
        force: keep the table when a check against the harness's aggregates or across seeds
            fails (the failures are in ``df.attrs["report"]``).

    Returns:
        The table; ``df.attrs["report"]`` holds what was checked, ``df.attrs["metadata"]`` the
        footer (``mb_stats.scores``: which metric each task's ``score`` holds).

    Raises:
        ValueError: a file of no known layout, a model without a seed, a failed check (the
            CLI's message).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    settings = {"metric": metric, "group": group, "seed_pattern": seed_pattern, "seeds": seeds, "force": force}
    table, report = _native.import_lm_eval([os.fspath(p) for p in paths], settings)
    df = _to_pandas(table)
    df.attrs["report"] = report
    return df


def validate(results: Results) -> None:
    """Checks a results table against schema v1 with the CLI's checks and messages.

    Args:
        results: pandas or polars DataFrame, pyarrow Table, or a path to a Parquet file.

    Raises:
        ValueError: the first problem, in the CLI's words (e.g. ``results: missing required
            column(s) seed (schema v1 needs group, seed, example)``).
    """
    _results(results)


def bootstrap(
    results: Results,
    *,
    metric: str = "accuracy",
    base: Optional[FilterLike] = None,
    treatment: Optional[FilterLike] = None,
    paired: bool = False,
    sample: str = "both",
    nboot: int = _native.DEFAULT_NBOOT,
    confidence: float = 0.95,
    interval: str = "calibrated",
    alternative: str = "greater",
    by: Union[str, Sequence[str], None] = None,
    ignore_clusters: bool = False,
    rng_seed: int = 0,
    threshold_abs: Optional[float] = None,
    threshold_rel: Optional[float] = None,
    samples: bool = False,
) -> Union[pd.DataFrame, Tuple[pd.DataFrame, pd.DataFrame]]:
    """Multi-Bootstrap confidence intervals and tests (``mb-stats bootstrap``).

    Without ``base``/``treatment``: one estimate per group (and cell of ``by``). With them: the
    baseline, the treatment and their difference delta, with a p-value (Holm and
    Benjamini-Hochberg adjusted across cells).

    Args:
        results: pandas or polars DataFrame, pyarrow Table, or a path to a Parquet file.
        metric: accuracy, precision, recall, f1, macro-f1, mcc, pearson, spearman, auc or mean.
        base: baseline rows, e.g. ``"group=base"`` or ``{"group": "base"}``.
        treatment: treatment rows, like ``base``.
        paired: pair the two sides on seed values (seeds on one side only are dropped).
        sample: what each replicate resamples: both, seeds or examples.
        nboot: bootstrap replicates (at least 2).
        confidence: confidence level of the intervals.
        interval: calibrated (the default, right with few seeds), percentile (the paper's),
            expanded or student.
        alternative: of the p-value of delta: greater, less or two-sided.
        by: columns whose values split the table into separate analyses (task, layer, step).
        ignore_clusters: resample examples even when the table has a cluster column.
        rng_seed: seed of the random draws (same seed, same numbers on any machine).
        threshold_abs: also report P(delta >= threshold_abs).
        threshold_rel: also report P(delta / base >= threshold_rel).
        samples: also return every replicate (columns cell, group, replicate, base, treatment).

    Returns:
        The summary (the CLI's CSV columns), or ``(summary, replicates)`` when ``samples``.
    """
    settings = _analysis_settings(locals())
    settings.update(threshold_abs=threshold_abs, threshold_rel=threshold_rel)
    summary, report, replicates = _native.bootstrap(_results(results), settings, bool(samples))
    frame = _frame(summary, report)
    if samples:
        return frame, _frame(replicates, report)
    return frame


def seeds(
    results: Results,
    *,
    metric: str = "accuracy",
    base: Optional[FilterLike] = None,
    treatment: Optional[FilterLike] = None,
    paired: bool = False,
    sample: str = "both",
    nboot: int = _native.DEFAULT_NBOOT,
    confidence: float = 0.95,
    interval: str = "calibrated",
    alternative: str = "greater",
    by: Union[str, Sequence[str], None] = None,
    ignore_clusters: bool = False,
    rng_seed: int = 0,
    alpha: float = 0.05,
    permutations: int = 1000,
) -> pd.DataFrame:
    """Artifact or procedure (``mb-stats seeds``): each seed's own conclusion beside the
    procedure's, their agreement, and a test of "no seed effect".

    Args:
        results: pandas or polars DataFrame, pyarrow Table, or a path to a Parquet file.
        metric, base, treatment, paired, sample, nboot, confidence, interval, alternative, by,
            ignore_clusters, rng_seed: as in :func:`bootstrap`.
        alpha: significance level of the per-seed and procedure conclusions.
        permutations: permutations of the no-seed-effect test (seeds with several runs).

    Returns:
        The CLI's CSV columns, one row per seed and per procedure summary.
    """
    settings = _analysis_settings(locals())
    settings.update(alpha=alpha, permutations=permutations)
    return _frame(*_native.seeds(_results(results), settings))


def curve(
    results: Results,
    *,
    metric: str = "accuracy",
    base: Optional[FilterLike] = None,
    treatment: Optional[FilterLike] = None,
    paired: bool = False,
    sample: str = "both",
    nboot: int = _native.DEFAULT_NBOOT,
    confidence: float = 0.95,
    interval: str = "calibrated",
    alternative: str = "greater",
    by: Union[str, Sequence[str], None] = None,
    ignore_clusters: bool = False,
    rng_seed: int = 0,
    tolerance: float = 0.01,
) -> pd.DataFrame:
    """Learning dynamics over intermediate checkpoints (``mb-stats curve``): per-step
    intervals, simultaneous bands, paired deltas between steps and the convergence step.

    Args:
        results: a table with a ``step`` column (pandas, polars, pyarrow or a path).
        metric, base, treatment, paired, sample, nboot, confidence, interval, alternative,
            ignore_clusters, rng_seed: as in :func:`bootstrap`.
        by: task or layer splits the curves.
        tolerance: of "within the final value", in metric units (0.01 = one accuracy point).

    Returns:
        The CLI's CSV columns.
    """
    settings = _analysis_settings(locals())
    settings.update(tolerance=tolerance)
    return _frame(*_native.curve(_results(results), settings))


def variance(
    results: Results,
    *,
    metric: str = "accuracy",
    base: Optional[FilterLike] = None,
    treatment: Optional[FilterLike] = None,
    paired: bool = False,
    sample: str = "both",
    nboot: int = _native.DEFAULT_NBOOT,
    confidence: float = 0.95,
    interval: str = "calibrated",
    alternative: str = "greater",
    by: Union[str, Sequence[str], None] = None,
    ignore_clusters: bool = False,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """Variance components (seed, run, example, seed x example) and the standard errors they
    imply (``mb-stats variance``), with modified large-sample intervals from the ANOVA's mean
    squares (never below 0, containing their estimates, valid at and near 0) and the seed test
    of ``mb-stats seeds`` in the report.

    Args:
        results: pandas or polars DataFrame, pyarrow Table, or a path to a Parquet file.
        metric: a per-example metric: accuracy or mean.
        base, treatment, paired, sample, nboot, confidence, interval, alternative, by,
            ignore_clusters, rng_seed: as in :func:`bootstrap` (nboot: replicates of the seed
            test with one run per seed).

    Returns:
        The CLI's CSV columns.
    """
    return _frame(*_native.variance(_results(results), _analysis_settings(locals())))


def power(
    results: Results,
    *,
    effect: float,
    metric: str = "accuracy",
    base: Optional[FilterLike] = None,
    treatment: Optional[FilterLike] = None,
    paired: bool = False,
    sample: str = "both",
    nboot: int = _native.DEFAULT_NBOOT,
    confidence: float = 0.95,
    interval: str = "calibrated",
    alternative: str = "greater",
    by: Union[str, Sequence[str], None] = None,
    ignore_clusters: bool = False,
    rng_seed: int = 0,
    alpha: float = 0.05,
    seeds: Sequence[int] = (2, 5, 10, 25),
    examples: Optional[Sequence[int]] = None,
    simulations: int = 200,
) -> pd.DataFrame:
    """How many seeds (and examples) a study needs to detect ``effect`` (``mb-stats power``),
    by simulating studies from the table's own variance components.

    Args:
        results: pandas or polars DataFrame, pyarrow Table, or a path to a Parquet file.
        effect: the effect to detect, in metric units (0.01 = one accuracy point).
        metric, base, treatment, paired, sample, nboot, confidence, interval, alternative, by,
            ignore_clusters, rng_seed: as in :func:`bootstrap` (nboot is each simulated
            study's own bootstrap).
        alpha: significance level.
        seeds: seeds per procedure to try.
        examples: examples (or clusters) to try; default: all of the table's.
        simulations: simulated studies per size.

    Returns:
        The CLI's CSV columns, one row per study size.
    """
    settings = _analysis_settings(locals())
    settings.update(
        effect=effect,
        alpha=alpha,
        seeds=_list(seeds),
        examples=None if examples is None else _list(examples),
        simulations=simulations,
    )
    return _frame(*_native.power(_results(results), settings))


_ANALYSIS = (
    "metric",
    "base",
    "treatment",
    "paired",
    "sample",
    "nboot",
    "confidence",
    "interval",
    "alternative",
    "by",
    "ignore_clusters",
    "rng_seed",
)


def _analysis_settings(arguments: Mapping[str, Any]) -> dict:
    """The shared analysis settings of a call, filters and lists in the CLI's spelling."""
    settings = {name: arguments[name] for name in _ANALYSIS}
    for side in ("base", "treatment"):
        settings[side] = _filter(side, settings[side])
    by = settings["by"]
    settings["by"] = None if by is None else [b for b in (by.split(",") if isinstance(by, str) else by)]
    return settings


def _filter(name: str, value: Optional[FilterLike]) -> Optional[str]:
    """A filter as the CLI's ``column=value[,column=value]``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        parts = []
        for column, v in value.items():
            text = str(v)
            if "," in text or "=" in text:
                raise ValueError(f"{name}={value!r}: a value may not contain ',' or '=' ({text!r})")
            parts.append(f"{column}={text}")
        return ",".join(parts)
    raise ValueError(f"{name}={value!r}: expected 'column=value[,column=value]' or a dict")


def _list(values: Any) -> list:
    return [values] if isinstance(values, (str, int)) else list(values)


def _results(results: Results) -> "_native.Results":
    """Any accepted table as the checked native table (one copy into Rust; Arrow columns are
    read in place)."""
    if isinstance(results, _native.Results):
        return results
    if isinstance(results, (str, os.PathLike)):
        return _native.read_parquet(os.fspath(results))
    return _native.from_arrow(_arrow(results).__arrow_c_stream__(), "results")


def _arrow(results: Any) -> pa.Table:
    """A pandas, polars or pyarrow table (or any Arrow stream) as a pyarrow Table, with
    dictionary (categorical) columns decoded."""
    if isinstance(results, pd.DataFrame):
        table = pa.Table.from_pandas(results, preserve_index=False)
    elif isinstance(results, pa.Table):
        table = results
    elif isinstance(results, pa.RecordBatch):
        table = pa.Table.from_batches([results])
    elif type(results).__module__.split(".")[0] == "polars" and hasattr(results, "to_arrow"):
        table = results.to_arrow()
    elif hasattr(results, "__arrow_c_stream__"):
        table = pa.table(results)
    else:
        raise ValueError(
            "results: expected a pandas or polars DataFrame, a pyarrow Table or a path to a "
            f"Parquet file, got {type(results).__name__}"
        )
    columns = [
        c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names, metadata=table.schema.metadata)


def _frame(columns: list, report: str) -> pd.DataFrame:
    """The native long table as a DataFrame: floats as float64 (NaN where the CSV is empty),
    counts as int64 (nullable Int64 where some are empty), text as objects."""
    data = {}
    for name, (kind, values) in columns:
        if kind == "float":
            data[name] = np.array(values, dtype=np.float64)
        elif kind == "int":
            dtype = "Int64" if any(v is None for v in values) else np.int64
            data[name] = pd.array(values, dtype=dtype)
        else:
            data[name] = pd.array(values, dtype=object)
    frame = pd.DataFrame(data, columns=[name for name, _ in columns])
    frame.attrs["report"] = report
    return frame


def _to_pandas(table: "_native.Results") -> pd.DataFrame:
    frame = pa.RecordBatchReader.from_stream(table).read_all().to_pandas()
    frame.attrs["metadata"] = dict(table.metadata)
    return frame


from . import multibootstrap  # noqa: E402  (the drop-in module uses the functions above)
