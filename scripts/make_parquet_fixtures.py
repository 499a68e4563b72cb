"""Results tables with column types other tools write (pandas, pyarrow), for tests/reliability.rs.

Each holds schema v1 (`group`, `seed`, `example`, `label`, `prediction`) and one more column of
a type the analyses never read (timestamp, date, decimal, float16, struct, map), or a
dictionary-encoded `group` (a pandas `category`), or a decimal `label`.

    pip install pyarrow && python scripts/make_parquet_fixtures.py
"""

import datetime
import decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "parquet"
N = 40


def base():
    return dict(
        group=pa.array(["a"] * 20 + ["b"] * 20),
        seed=pa.array([i % 4 for i in range(N)], pa.int64()),
        example=pa.array([i // 4 % 5 for i in range(N)], pa.int64()),
        label=pa.array([1] * N, pa.int64()),
        prediction=pa.array([i % 2 for i in range(N)], pa.int64()),
    )


EXTRAS = {
    "timestamp": pa.array([datetime.datetime(2020, 1, 1)] * N, pa.timestamp("us")),
    "date": pa.array([datetime.date(2020, 1, 1)] * N, pa.date32()),
    "decimal": pa.array([decimal.Decimal("1.5")] * N, pa.decimal128(5, 2)),
    "float16": pa.array(np.ones(N, dtype=np.float16), pa.float16()),
    "struct": pa.array([{"x": 1}] * N, pa.struct([("x", pa.int64())])),
    "map": pa.array([[("k", 1)]] * N, pa.map_(pa.string(), pa.int64())),
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, column in EXTRAS.items():
        pq.write_table(pa.table({**base(), name: column}), OUT / f"extra-{name}.parquet")
    columns = base()
    columns["group"] = columns["group"].dictionary_encode()
    pq.write_table(pa.table(columns), OUT / "categorical-group.parquet")
    columns = base()
    columns["label"] = pa.array([decimal.Decimal("1")] * N, pa.decimal128(5, 2))
    pq.write_table(pa.table(columns), OUT / "decimal-label.parquet")


if __name__ == "__main__":
    main()
