"""Every function against the CLI's CSV: same columns, same numbers bit for bit, for the same
table, options and rng_seed (the demo data and generated tables)."""

import pytest

import mb_stats
from conftest import DEMO, assert_same_as_csv, cli_csv


def flags(options):
    """Keyword arguments as the CLI's flags (``paired=True`` -> ``--paired``)."""
    out = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, (list, tuple)):
            out += [flag, ",".join(map(str, value))]
        else:
            out += [flag, str(value)]
    return out


COMPARE = {"base": "group=base", "treatment": "group=cda"}
CASES = [
    ("bootstrap", "demo", {}),
    ("bootstrap", "demo", dict(COMPARE, paired=True, nboot=500, rng_seed=7)),
    ("bootstrap", "demo", dict(COMPARE, metric="f1", sample="seeds", alternative="two-sided", threshold_abs=0.01)),
    ("bootstrap", "demo", dict(COMPARE, paired=True, metric="auc", interval="percentile", confidence=0.9)),
    ("bootstrap", "demo", dict(COMPARE, paired=True, ignore_clusters=True, threshold_rel=0.02, sample="examples")),
    ("bootstrap", "demo", dict(metric="mcc", by=["task"], nboot=300)),
    ("bootstrap", "plain", dict(base="group=base", treatment="group=treat", paired=True, metric="macro-f1")),
    ("bootstrap", "clustered", dict(metric="mean", interval="student")),
    ("bootstrap", "steps", dict(base="group=base", treatment="group=treat", by=["step"], interval="expanded")),
    ("seeds", "demo", dict(COMPARE, paired=True, permutations=200)),
    ("seeds", "plain", dict(metric="accuracy", alpha=0.1)),
    ("variance", "demo", dict(nboot=200)),
    ("variance", "plain", dict(metric="mean", sample="examples", nboot=200, confidence=0.8)),
    ("curve", "steps", dict(nboot=200)),
    ("curve", "steps", dict(metric="mean", interval="percentile", nboot=200, tolerance=0.02, rng_seed=9)),
    ("power", "demo", dict(COMPARE, paired=True, effect=0.03, nboot=100, simulations=20, seeds=[2, 5])),
    ("power", "plain", dict(base="group=base", treatment="group=treat", effect=0.05, nboot=100, simulations=10, examples=[40, 80])),
]


def table_path(name, generated):
    return DEMO if name == "demo" else generated[name]


@pytest.mark.parametrize("command,table,options", CASES, ids=[f"{c}-{t}-{i}" for i, (c, t, _) in enumerate(CASES)])
def test_function_matches_cli_csv(command, table, options, cli, generated, tmp_path):
    path = table_path(table, generated)
    header, rows = cli_csv(cli, command, path, flags(options), tmp_path)
    frame = getattr(mb_stats, command)(path, **options)
    assert_same_as_csv(frame, header, rows)
    assert frame.attrs["report"].strip()


def test_samples_match_cli_replicates(cli, tmp_path):
    import pyarrow.parquet as pq

    options = dict(COMPARE, paired=True, nboot=200, rng_seed=3)
    out = tmp_path / "samples.parquet"
    done = cli("bootstrap", DEMO, *flags(options), "--samples", out)
    assert done.returncode == 0, done.stderr
    want = pq.read_table(out).to_pandas()
    summary, samples = mb_stats.bootstrap(DEMO, samples=True, **options)
    assert list(samples.columns) == list(want.columns)
    assert samples["replicate"].tolist() == want["replicate"].tolist()
    assert samples["base"].tolist() == want["base"].tolist()
    assert samples["treatment"].tolist() == want["treatment"].tolist()
    assert samples["cell"].tolist() == want["cell"].tolist()
    assert len(samples) == 200 and len(summary) == 3


def test_filters_as_dicts_equal_filter_strings():
    a = mb_stats.bootstrap(DEMO, base={"group": "base"}, treatment={"group": "cda", "task": "coref-demo"}, nboot=100)
    b = mb_stats.bootstrap(DEMO, base="group=base", treatment="group=cda,task=coref-demo", nboot=100)
    assert a.equals(b)


def test_defaults_are_the_cli_defaults(cli, tmp_path):
    """No keyword at all gives the CLI's output with no flag at all, for every function."""
    for command in ("bootstrap", "seeds", "variance"):
        header, rows = cli_csv(cli, command, DEMO, [], tmp_path)
        assert_same_as_csv(getattr(mb_stats, command)(DEMO), header, rows)
