"""Shared fixtures: the mb-stats binary (the reference every function is held to), the demo
table, and generated tables."""

import csv
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo-results.parquet"


def binary() -> Path:
    """The CLI built by cargo (scripts/test builds it first; MB_STATS_BIN overrides)."""
    if "MB_STATS_BIN" in os.environ:
        return Path(os.environ["MB_STATS_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "mb-stats"


@pytest.fixture(scope="session")
def cli():
    """Runs the CLI: ``cli("bootstrap", path, "--paired", ...)`` -> CompletedProcess."""
    path = binary()
    assert path.exists(), f"{path}: build the CLI first (cargo build --release) or set MB_STATS_BIN"

    def run(*args):
        return subprocess.run([str(path), *map(str, args)], capture_output=True, text=True)

    return run


def cli_csv(cli, command, results, flags, tmp_path):
    """The CLI's CSV of ``command`` on ``results`` as (header, rows of cells)."""
    out = tmp_path / f"{command}.csv"
    done = cli(command, results, *flags, "-o", out)
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def assert_same_as_csv(frame: pd.DataFrame, header, rows):
    """Every cell of ``frame`` equals the CSV's cell bit for bit: floats read back from the CSV's
    shortest round-trip text, empty cells as NaN/None, integers and text exactly."""
    assert list(frame.columns) == header
    assert len(frame) == len(rows)
    for j, name in enumerate(header):
        column = frame[name].tolist()
        for i, cell in enumerate(rows):
            got, want = column[i], cell[j]
            if want == "":  # an empty cell: no value, or empty text
                assert got is None or got is pd.NA or got == "" or (isinstance(got, float) and math.isnan(got)), (name, i, got)
            elif isinstance(got, float):
                assert got == float(want) or (math.isnan(got) and want.lower() == "nan"), (name, i, got, want)
                assert np.float64(got).tobytes() == np.float64(float(want)).tobytes(), (name, i)
            elif isinstance(got, (int, np.integer)):
                assert int(got) == int(want), (name, i, got, want)
            else:
                assert got == want, (name, i, got, want)


def study(seeds=6, runs=2, examples=80, steps=None, effect=0.05, clusters=False, rng_seed=1):
    """A generated two-arm results table (classification, per-example scores, optional steps
    and clusters), as a pandas DataFrame."""
    rng = np.random.default_rng(rng_seed)
    difficulty = rng.normal(0, 1, examples)
    label = rng.integers(0, 2, examples)
    rows = []
    for group, shift in (("base", 0.0), ("treat", effect)):
        for seed in range(seeds):
            seed_shift = rng.normal(0, 0.3)
            for step in steps or [None]:
                for run in range(runs):
                    p = 1 / (1 + np.exp(-(1.0 + shift * 10 + seed_shift + difficulty + (step or 0) / 1e5)))
                    correct = rng.random(examples) < p
                    for e in range(examples):
                        row = {
                            "group": group,
                            "seed": seed,
                            "run": run,
                            "example": e,
                            "label": int(label[e]),
                            "prediction": int(label[e] if correct[e] else 1 - label[e]),
                            "score": float(p[e] + rng.normal(0, 0.05)),
                        }
                        if step is not None:
                            row["step"] = step
                        if clusters:
                            row["cluster"] = f"c{e // 4}"
                        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """Generated tables written as Parquet: {name: path}."""
    folder = tmp_path_factory.mktemp("generated")
    tables = {
        "plain": study(),
        "clustered": study(seeds=5, runs=1, examples=60, clusters=True, rng_seed=2),
        "steps": study(seeds=4, runs=1, examples=40, steps=[0, 20000, 100000, 200000], rng_seed=3),
    }
    paths = {}
    for name, frame in tables.items():
        path = folder / f"{name}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        paths[name] = path
    return paths
