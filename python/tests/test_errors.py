"""Bad input raises ValueError with the CLI's one-line message; no panic reaches Python."""

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mb_stats
from conftest import DEMO


def cli_message(cli, *args):
    """The CLI's error line without its ``error: `` prefix (exit code 2)."""
    done = cli(*args)
    assert done.returncode == 2, (args, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return re.sub(r"^error: ", "", lines[0])


def demo():
    return pq.read_table(DEMO).to_pandas()


BAD_TABLES = {
    "missing seed": lambda t: t.drop(columns=["seed"]),
    "missing group and example": lambda t: t.drop(columns=["group", "example"]),
    "null group": lambda t: t.assign(group=t["group"].where(t.index != 5, None)),
    "text seed": lambda t: t.assign(seed=t["seed"].astype(str) + "x"),
    "fractional seed": lambda t: t.assign(seed=t["seed"] + 0.5),
    "text label": lambda t: t.assign(label=t["label"].astype(str) + "x"),
    "no rows": lambda t: t.iloc[:0],
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_bad_table_gives_the_cli_message(case, cli, tmp_path):
    frame = BAD_TABLES[case](demo())
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    want = cli_message(cli, "bootstrap", path)
    assert want.startswith(f"{path}: ")
    with pytest.raises(ValueError) as from_path:
        mb_stats.bootstrap(path)
    assert str(from_path.value) == want
    # The same problem in a DataFrame: the same message, about the argument instead of a file.
    tail = want[len(f"{path}: "):]
    for table in (frame, pa.Table.from_pandas(frame, preserve_index=False)):
        with pytest.raises(ValueError) as from_frame:
            mb_stats.validate(table)
        assert str(from_frame.value) == f"results: {tail}"


def test_schema_version_and_unreadable_files(cli, tmp_path):
    table = pa.Table.from_pandas(demo(), preserve_index=False)
    future = table.replace_schema_metadata({"mb_stats.schema": "2"})
    path = tmp_path / "future.parquet"
    pq.write_table(future, path)
    for results in (path, future):
        with pytest.raises(ValueError, match="mb_stats.schema is '2', this version reads schema 1"):
            mb_stats.validate(results)
    assert str(pytest.raises(ValueError, mb_stats.validate, path).value) == cli_message(cli, "bootstrap", path)
    text = tmp_path / "notes.parquet"
    text.write_text("not parquet")
    missing = tmp_path / "missing.parquet"
    for bad in (text, missing):
        with pytest.raises(ValueError) as e:
            mb_stats.read_results(bad)
        assert str(e.value) == cli_message(cli, "bootstrap", bad)


# (keyword arguments, the CLI's flags for the same mistake)
BAD_OPTIONS = [
    (dict(nboot=1), ["--nboot", "1"]),
    (dict(nboot=10**9), ["--nboot", str(10**9)]),
    (dict(confidence=1.5), ["--confidence", "1.5"]),
    (dict(confidence=float("nan")), ["--confidence", "nan"]),
    (dict(metric="accuracyy"), ["--metric", "accuracyy"]),
    (dict(sample="runs"), ["--sample", "runs"]),
    (dict(interval="bca"), ["--interval", "bca"]),
    (dict(alternative="up", base="group=base", treatment="group=cda"), ["--alternative", "up", "--base", "group=base", "--treatment", "group=cda"]),
    (dict(by="group"), ["--by", "group"]),
    (dict(base="colour", treatment="group=cda"), ["--base", "colour", "--treatment", "group=cda"]),
    (dict(rng_seed=-1), ["--rng-seed", "-1"]),
    (dict(threshold_abs=float("inf"), base="group=base", treatment="group=cda"), ["--threshold-abs", "inf", "--base", "group=base", "--treatment", "group=cda"]),
]


@pytest.mark.parametrize("options,cli_flags", BAD_OPTIONS, ids=[str(o) for o, _ in BAD_OPTIONS])
def test_bad_option_gives_the_cli_reason(options, cli_flags, cli):
    """The reason after the value is the CLI's (clap words the value part its own way)."""
    want = cli_message(cli, "bootstrap", DEMO, *cli_flags)
    with pytest.raises(ValueError) as e:
        mb_stats.bootstrap(DEMO, **options)
    got = str(e.value)
    assert "\n" not in got
    assert got.split(": ", 1)[1] in want, (got, want)
    key = next(k for k in options if k.replace("_", "-") in " ".join(cli_flags) and (f"--{k.replace('_', '-')}" in want or k == "by"))
    assert got.startswith(key), (got, key)


# Mistakes the library (not clap) finds: the same message, settings named as keywords.
LIBRARY_MISTAKES = [
    (dict(threshold_abs=0.01), ["--threshold-abs", "0.01"]),
    (dict(metric="f1", base="group=base", treatment="group=nobody"), ["--metric", "f1", "--base", "group=base", "--treatment", "group=nobody"]),
    (dict(by="step"), ["--by", "step"]),
]


@pytest.mark.parametrize("options,cli_flags", LIBRARY_MISTAKES, ids=[str(o) for o, _ in LIBRARY_MISTAKES])
def test_library_mistakes_give_the_cli_message(options, cli_flags, cli):
    want = cli_message(cli, "bootstrap", DEMO, *cli_flags)
    with pytest.raises(ValueError) as e:
        mb_stats.bootstrap(DEMO, **options)
    assert str(e.value) == re.sub(r"--([a-z-]+)", lambda m: m.group(1).replace("-", "_"), want)


def test_python_only_mistakes_are_value_errors():
    for call in (
        lambda: mb_stats.bootstrap(DEMO, base="group=base"),
        lambda: mb_stats.bootstrap(DEMO, paired=True),
        lambda: mb_stats.bootstrap(DEMO, paired="yes", base="group=base", treatment="group=cda"),
        lambda: mb_stats.bootstrap(DEMO, base={"group": "a,b"}, treatment="group=cda"),
        lambda: mb_stats.bootstrap([1, 2, 3]),
        lambda: mb_stats.bootstrap(DEMO, nboot="many"),
        lambda: mb_stats.curve(DEMO),
        lambda: mb_stats.power(DEMO, effect=float("nan"), base="group=base", treatment="group=cda"),
        lambda: mb_stats.power(DEMO, effect=0.01, base="group=base", treatment="group=cda", seeds=[0]),
        lambda: mb_stats.seeds(DEMO, alpha=0),
        lambda: mb_stats.seeds(DEMO, permutations=0),
    ):
        with pytest.raises(ValueError) as e:
            call()
        assert "\n" not in str(e.value) and str(e.value)


def test_no_rust_panic_on_odd_tables():
    """Odd but valid tables give answers or ValueError, never a PanicException."""
    one = pd.DataFrame({"group": ["a"], "seed": [0], "example": [0], "label": [1], "prediction": [1]})
    for call in (
        lambda: mb_stats.bootstrap(one),
        lambda: mb_stats.seeds(one),
        lambda: mb_stats.variance(one),
        lambda: mb_stats.bootstrap(one.assign(prediction=np.nan)),
    ):
        try:
            call()
        except ValueError:
            pass


def test_arrow_types_the_schema_cannot_hold():
    """A schema column of a type no check accepts is refused by name; an extra column of any
    type is ignored, as the Parquet reader ignores it; nothing panics."""
    import datetime
    import decimal

    base = {"group": ["a", "b"], "seed": [0, 1], "example": [0, 0], "label": [1, 0], "prediction": [1, 1]}
    refused = {
        "seed": pa.array([decimal.Decimal("1.0"), decimal.Decimal("2.0")]),
        "step": pa.array([datetime.datetime(2020, 1, 1)] * 2),
        "score": pa.array([1, 2], pa.float16()),
        "run": pa.array([datetime.timedelta(1)] * 2),
    }
    for column, values in refused.items():
        table = pa.table({**{k: pa.array(v) for k, v in base.items()}, column: values})
        with pytest.raises(ValueError, match=f"^results: column {column} has Arrow type .*; expected numbers or text$"):
            mb_stats.validate(table)
    ignored = {
        "meta": pa.array([{"x": 1}, {"x": 2}]),
        "tokens": pa.array([[1, 2], [3]]),
        "lr": pa.array([decimal.Decimal("1.0"), decimal.Decimal("2.0")]),
        "when": pa.array([datetime.datetime(2020, 1, 1)] * 2),
    }
    table = pa.table({**{k: pa.array(v) for k, v in base.items()}, **ignored})
    assert mb_stats.validate(table) is None
