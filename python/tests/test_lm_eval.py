"""``mb_stats.read_lm_eval`` returns the table ``mb-stats import lm-eval`` writes, with its checks."""

import json

import pandas as pd
import pytest

import mb_stats
from conftest import ROOT

SUITE = ROOT / "tests" / "fixtures" / "lm-eval" / "v0.4.3"


def test_read_lm_eval_is_the_cli_import(cli, tmp_path):
    out = tmp_path / "suite.parquet"
    done = cli("import", "lm-eval", SUITE, "-o", out)
    assert done.returncode == 0, done.stderr
    frame = mb_stats.read_lm_eval(SUITE)
    expected = mb_stats.read_results(out)
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), expected.reset_index(drop=True))
    assert len(frame) == 1800
    assert "arc_easy: acc: equal in 20 of 20" in frame.attrs["report"]
    scores = dict(frame.attrs["metadata"])["mb_stats.scores"]
    assert json.loads(scores) == {"arc_easy": "acc", "lambada_openai": "acc"}
    # The table is an ordinary results table: the analyses take it as it is.
    summary = mb_stats.bootstrap(frame, by=["task", "step"], metric="mean", nboot=200)
    assert set(summary["task"]) == {"arc_easy", "lambada_openai"}


def test_read_lm_eval_options_and_errors(tmp_path):
    seed3 = SUITE / "EleutherAI__pythia-160m-seed3"
    frame = mb_stats.read_lm_eval([seed3], seeds={"EleutherAI/pythia-160m-seed3": 30}, metric="acc_norm")
    assert set(frame["seed"]) == {30}
    assert "acc" in frame.columns
    with pytest.raises(ValueError, match="has no seed in its name"):
        mb_stats.read_lm_eval(seed3, seed_pattern=r"size(\d+)")
    with pytest.raises(ValueError, match="no task has such a per-sample metric"):
        mb_stats.read_lm_eval(seed3, metric="f1")
    with pytest.raises(ValueError, match="no such file or folder"):
        mb_stats.read_lm_eval(tmp_path / "missing")
