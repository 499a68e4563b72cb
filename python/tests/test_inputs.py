"""pandas, polars, pyarrow and path inputs give the same table and the same numbers;
read_results returns the table the analyses see."""

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

import mb_stats
from conftest import DEMO

OPTIONS = dict(base="group=base", treatment="group=cda", paired=True, nboot=300, rng_seed=5)


def test_every_input_kind_gives_the_same_numbers():
    want = mb_stats.bootstrap(DEMO, **OPTIONS)
    arrow = pq.read_table(DEMO)
    inputs = {
        "str": str(DEMO),
        "pyarrow": arrow,
        "pyarrow batch": arrow.combine_chunks().to_batches()[0],
        "pandas": arrow.to_pandas(),
        "polars": pl.read_parquet(DEMO),
        "pandas categorical": arrow.to_pandas().astype({"group": "category", "cluster": "category"}),
        "pandas nullable ints": arrow.to_pandas().astype({"seed": "Int64", "label": "Int32"}),
        "chunked": pa.concat_tables([arrow.slice(0, 1000), arrow.slice(1000)]),
    }
    for name, results in inputs.items():
        got = mb_stats.bootstrap(results, **OPTIONS)
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=name)


def test_read_results_round_trips_the_table():
    frame = mb_stats.read_results(DEMO)
    original = pq.read_table(DEMO).to_pandas()
    assert list(frame.columns) == list(original.columns)
    for column in original.columns:
        assert frame[column].tolist() == original[column].tolist(), column
    assert frame.attrs["metadata"].get("mb_stats.schema") == "1"
    pd.testing.assert_frame_equal(mb_stats.bootstrap(frame, **OPTIONS), mb_stats.bootstrap(DEMO, **OPTIONS))


def test_validate_accepts_good_tables_and_extra_columns():
    frame = pq.read_table(DEMO).to_pandas()
    assert mb_stats.validate(frame) is None
    assert mb_stats.validate(frame.assign(lr=2e-5, note="x")) is None
    # An index is not a column: a filtered frame with its old index is fine.
    assert mb_stats.validate(frame[frame.group == "base"]) is None


def test_integer_widths_and_float_labels_are_read_as_the_cli_reads_them(tmp_path):
    frame = pq.read_table(DEMO).to_pandas()
    narrow = frame.astype({"seed": np.int8, "example": np.uint16, "label": np.float32, "prediction": np.int16})
    path = tmp_path / "narrow.parquet"
    pq.write_table(pa.Table.from_pandas(narrow, preserve_index=False), path)
    pd.testing.assert_frame_equal(mb_stats.bootstrap(narrow, **OPTIONS), mb_stats.bootstrap(path, **OPTIONS))
