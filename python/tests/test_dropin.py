"""The drop-in for the original library: against an independent numpy implementation of the
definition, on the same draws where the RNG allows (a Python score_fn) and within Monte-Carlo
error where it does not (the fast engine draws its own numbers)."""

import functools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_score, recall_score, roc_auc_score

from mb_stats import multibootstrap as mb


def design(seeds=(0, 1, 2, 3, 4), runs=2, examples=150, effect=0.04, seed=0, scores=False):
    """run_info, preds, labels of a two-arm study with seed and example effects."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, examples)
    hardness = rng.normal(0, 1, examples)
    rows, preds = [], []
    for intervention in (False, True):
        for s in seeds:
            seed_effect = rng.normal(0, 0.3)
            for r in range(runs):
                p = 1 / (1 + np.exp(-(0.8 + 4 * effect * intervention + seed_effect + hardness)))
                correct = rng.random(examples) < p
                if scores:
                    preds.append(np.where(labels == 1, p, 1 - p) + rng.normal(0, 0.2, examples))
                else:
                    preds.append(np.where(correct, labels, 1 - labels))
                rows.append({"seed": s, "intervention": intervention, "run": r})
    return pd.DataFrame(rows), np.array(preds), labels


def reference(run_info, preds, labels, score_runs, paired, sample_seeds, sample_examples, nboot, rng):
    """The definition, written independently: per replicate, draw seeds (base, then treatment
    when unpaired) and examples from ``rng``; a side is the mean over drawn seeds of the mean
    over the seed's runs of the score on the drawn examples. ``score_runs(y, P)`` scores every
    row of P against y."""
    mask = run_info["intervention"].to_numpy(bool)
    seed_of = run_info["seed"].to_numpy()
    base_seeds = sorted(set(seed_of[~mask]))
    expt_seeds = sorted(set(seed_of[mask]))
    if paired:
        base_seeds = expt_seeds = sorted(set(base_seeds) & set(expt_seeds))
    runs = {(bool(m), s): np.flatnonzero((mask == m) & (seed_of == s)) for m in (False, True) for s in set(seed_of)}
    n = len(labels)
    out = np.empty((nboot, 2))
    for b in range(nboot):
        bs = rng.choice(base_seeds, size=len(base_seeds), replace=True) if sample_seeds else base_seeds
        if not sample_seeds:
            es = expt_seeds
        else:
            es = bs if paired else rng.choice(expt_seeds, size=len(expt_seeds), replace=True)
        idx = rng.choice(n, size=n, replace=True) if sample_examples else np.arange(n)
        per_run = np.asarray(score_runs(labels[idx], preds[:, idx]), dtype=float)
        out[b, 0] = np.mean([per_run[runs[(False, s)]].mean() for s in bs])
        out[b, 1] = np.mean([per_run[runs[(True, s)]].mean() for s in es])
    return out


def each_run(score):
    """A scalar ``score(y, p)`` applied to every row."""
    return lambda y, P: [score(y, p) for p in P]


def _f1(tp, fp, fn):
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _counts(y, P, positive=1):
    t, p = (y == positive)[None, :], P == positive
    return (t & p).sum(1), (~t & p).sum(1), (t & ~p).sum(1), (~t & ~p).sum(1)


def _auc(y, S):
    from scipy.stats import rankdata

    ranks = rankdata(S, axis=1)
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return (ranks[:, pos].sum(1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def _mcc(y, P):
    tp, fp, fn, tn = (c.astype(float) for c in _counts(y, P))
    d = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return np.where(d > 0, (tp * tn - fp * fn) / np.where(d > 0, d, 1), 0.0)


def _macro_f1(y, P):
    out = []
    for p in P:
        classes = np.union1d(y, p)
        out.append(np.mean([_f1(*(c[0] for c in _counts(y, p[None, :], k)[:3])) for k in classes]))
    return out


#: The scores' definitions in numpy, vectorised over runs (independent of scikit-learn and mb-stats).
NUMPY = {
    "accuracy": lambda y, P: (P == y).mean(1),
    "f1": lambda y, P: _f1(*_counts(y, P)[:3]),
    "precision": lambda y, P: (lambda tp, fp, fn, tn: np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0))(*_counts(y, P)),
    "recall": lambda y, P: (lambda tp, fp, fn, tn: np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0))(*_counts(y, P)),
    "mcc": _mcc,
    "macro-f1": _macro_f1,
    "auc": _auc,
}


@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("sampling", [(True, True), (True, False), (False, True)])
def test_python_score_fn_reproduces_the_definition_on_the_same_draws(paired, sampling):
    run_info, preds, labels = design()
    score = lambda y, p: float(np.mean(y == p))  # noqa: E731  (not recognised: the Python path)
    got = mb.multibootstrap(run_info, preds, labels, score, paired_seeds=paired, sample_seeds=sampling[0],
                            sample_examples=sampling[1], nboot=60, rng=11, verbose=False)
    want = reference(run_info, preds, labels, each_run(score), paired, *sampling, 60, np.random.RandomState(11))
    assert np.array_equal(np.array(got), want)


def within_monte_carlo_error(fast, slow):
    """Two independent sets of replicates of the same statistic agree (L, L' and L' - L): means
    within 5 standard errors, standard deviations within 10%, 2.5% and 97.5% quantiles within a
    quarter of a standard deviation (about 3 standard errors at 2,000 replicates each)."""
    fast, slow = np.asarray(fast), np.asarray(slow)
    for a, b in ((fast[:, 0], slow[:, 0]), (fast[:, 1], slow[:, 1]), (fast[:, 1] - fast[:, 0], slow[:, 1] - slow[:, 0])):
        sd = b.std()
        assert abs(a.mean() - b.mean()) < 5 * sd * np.sqrt(2 / len(b)), (a.mean(), b.mean(), sd)
        assert abs(a.std() / sd - 1) < 0.1, (a.std(), sd)
        for q in (0.025, 0.975):
            assert abs(np.quantile(a, q) - np.quantile(b, q)) < sd / 4, (q, np.quantile(a, q), np.quantile(b, q))


@pytest.mark.parametrize(
    "score_fn,metric",
    [
        (accuracy_score, "accuracy"),
        (f1_score, "f1"),
        (precision_score, "precision"),
        (recall_score, "recall"),
        (matthews_corrcoef, "mcc"),
        (functools.partial(f1_score, average="macro"), "macro-f1"),
        (roc_auc_score, "auc"),
        ("accuracy", "accuracy"),
    ],
    ids=["accuracy", "f1", "precision", "recall", "mcc", "macro-f1", "auc", "name"],
)
@pytest.mark.parametrize("paired", [False, True])
def test_fast_engine_agrees_within_monte_carlo_error(score_fn, metric, paired):
    run_info, preds, labels = design(scores=metric == "auc", examples=120, seed=3)
    assert mb._fast_metric(score_fn, labels, preds) == metric
    fast = mb.multibootstrap(run_info, preds, labels, score_fn, paired_seeds=paired, nboot=2000, rng=1, verbose=False)
    slow = reference(run_info, preds, labels, NUMPY[metric], paired, True, True, 2000, np.random.RandomState(2))
    assert len(fast) == 2000 and all(isinstance(x, float) for pair in fast[:3] for x in pair)
    within_monte_carlo_error(fast, slow)


def test_numpy_definitions_are_scikit_learns():
    """The reference's vectorised scores equal scikit-learn's on every run of a design."""
    run_info, preds, labels = design(examples=60)
    _, scores, _ = design(examples=60, scores=True)
    sklearn = {"accuracy": accuracy_score, "f1": f1_score, "precision": precision_score, "recall": recall_score,
               "mcc": matthews_corrcoef, "macro-f1": functools.partial(f1_score, average="macro"), "auc": roc_auc_score}
    for name, score in sklearn.items():
        P = scores if name == "auc" else preds
        np.testing.assert_allclose(NUMPY[name](labels, P), [score(labels, p) for p in P], rtol=0, atol=1e-12, err_msg=name)


def test_without_resampling_every_replicate_is_the_point_estimate():
    run_info, preds, labels = design(seeds=(3, 7, 9), runs=3)
    for paired in (False, True):
        fast = mb.multibootstrap(run_info, preds, labels, accuracy_score, paired_seeds=paired,
                                 sample_seeds=False, sample_examples=False, nboot=5, verbose=False)
        want = reference(run_info, preds, labels, NUMPY["accuracy"], paired, False, False, 1, None)[0]
        assert len(fast) == 5
        np.testing.assert_allclose(np.array(fast), np.tile(want, (5, 1)), rtol=0, atol=1e-12)


def test_seeds_of_any_type_and_one_sided_seeds():
    run_info, preds, labels = design(seeds=("a", "b", "c", "d"), runs=1)
    extra = run_info.iloc[[0]].assign(seed="only-base")
    run_info = pd.concat([run_info, extra], ignore_index=True)
    preds = np.vstack([preds, preds[:1]])
    fast = mb.multibootstrap(run_info, preds, labels, accuracy_score, paired_seeds=True, nboot=2000, rng=4, verbose=False)
    slow = reference(run_info, preds, labels, NUMPY["accuracy"], True, True, True, 2000, np.random.RandomState(5))
    within_monte_carlo_error(fast, slow)


def test_rng_kinds_and_reproducibility():
    run_info, preds, labels = design()
    call = lambda rng: mb.multibootstrap(run_info, preds, labels, accuracy_score, nboot=50, rng=rng, verbose=False)  # noqa: E731
    assert call(5) == call(5)
    assert call(np.random.RandomState(5)) == call(np.random.RandomState(5))
    assert call(np.random.default_rng(5)) == call(np.random.default_rng(5))
    assert call(5) != call(6)
    np.random.seed(0)
    first = call(np.random)
    assert first != call(np.random)  # the global state advanced, as with the original


def test_unrecognised_options_fall_back_to_python():
    run_info, preds, labels = design()
    multiclass = labels + (np.arange(len(labels)) % 3 == 0)
    assert mb._fast_metric(f1_score, multiclass, preds) is None
    assert mb._fast_metric(functools.partial(f1_score, pos_label=0), labels, preds) is None
    assert mb._fast_metric(lambda y, p: 0.0, labels, preds) is None
    assert mb._fast_metric(accuracy_score, labels.astype(str), preds.astype(str)) is None
    got = mb.multibootstrap(run_info, preds.astype(str), labels.astype(str), accuracy_score, nboot=20, rng=3, verbose=False)
    want = reference(run_info, preds.astype(str), labels.astype(str), each_run(accuracy_score), False, True, True, 20, np.random.RandomState(3))
    assert np.array_equal(np.array(got), want)


def test_report_ci_matches_the_definition(capsys):
    rng = np.random.default_rng(0)
    samples = [(float(b), float(b + d)) for b, d in zip(rng.normal(0.7, 0.02, 999), rng.normal(0.01, 0.01, 999))]
    stats = mb.report_ci(samples, c=0.9, abs_threshold=0.005, rel_threshold=0.01)
    v = np.array(samples)
    delta = v[:, 1] - v[:, 0]
    for key, values in (("base", v[:, 0]), ("expt", v[:, 1]), ("delta", delta)):
        assert stats[key]["mean"] == pytest.approx(values.mean(), rel=0, abs=1e-15)
        assert stats[key]["low"] == np.quantile(values, (1 - 0.9) / 2)
        assert stats[key]["high"] == np.quantile(values, 1 - (1 - 0.9) / 2)
    assert stats["delta"]["p"] == max(np.mean(delta <= 0), 1 / 999)
    printed = capsys.readouterr().out
    assert "Bootstrap statistics from 999 samples" in printed and "p-value" in printed
    assert "E[L' ≥ L + 0.005]" in printed and "E[(L'-L)/L ≥ 0.01]" in printed
    negative = mb.report_ci(samples, expect_negative_effect=True)
    assert negative["delta"]["p"] == max(np.mean(delta >= 0), 1 / 999)
    certain = mb.report_ci([(0.5, 0.9)] * 10)
    assert certain["delta"]["p"] == 0.1


def test_bad_inputs_raise_value_errors():
    run_info, preds, labels = design()
    for call in (
        lambda: mb.multibootstrap(run_info, preds[:-1], labels, accuracy_score),
        lambda: mb.multibootstrap(run_info, preds, labels[:-1], accuracy_score),
        lambda: mb.multibootstrap(run_info.drop(columns="intervention"), preds, labels, accuracy_score),
        lambda: mb.multibootstrap(run_info.assign(intervention=False), preds, labels, accuracy_score),
        lambda: mb.multibootstrap(run_info, preds[0], labels, accuracy_score),
        lambda: mb.multibootstrap(run_info, preds, labels, "accuracyy"),
        lambda: mb.multibootstrap(run_info, preds, labels, accuracy_score, nboot=0),
        lambda: mb.multibootstrap(run_info.assign(seed=run_info.seed + 10 * run_info.intervention), preds, labels,
                                  accuracy_score, paired_seeds=True),
        lambda: mb.report_ci([]),
        lambda: mb.report_ci([(0.1, 0.2)], c=1.2),
    ):
        with pytest.raises(ValueError):
            call()


def test_verbose_describes_the_design(capsys):
    run_info, preds, labels = design()
    mb.multibootstrap(run_info, preds, labels, accuracy_score, paired_seeds=True, nboot=10)
    out = capsys.readouterr().out
    assert "Multibootstrap (paired) on 150 examples" in out and "Common seeds (5): [0, 1, 2, 3, 4]" in out
