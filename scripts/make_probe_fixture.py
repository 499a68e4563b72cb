"""Make the scikit-learn reference results that tests/probe.rs checks `mb_stats::probe` against.

    .venv/bin/python scripts/make_probe_fixture.py

regenerates tests/fixtures/probe/ (deterministic: fixed seed). Two data sets of float32 features
with overlapping classes, mimicking BERT features (a few dimensions scaled x20, one of them also
shifted far from zero, correlated dimensions):

- binary: 600 train + 300 test examples, 40 features, 2 classes;
- three: 600 train + 300 test examples, 40 features, 3 classes.

For each case (binary with l2 = 1.0 and l2 = 0.01, three with l2 = 1.0) it fits scikit-learn's
`LogisticRegression(C=1/l2, max_iter=1000)` (defaults otherwise: lbfgs, tol 1e-4, multinomial for
three classes; the default max_iter of 100 stops these ill-conditioned fits early) on the float32
features widened to float64, and writes its test probabilities, test accuracy, coef_ and
intercept_; and the test probabilities at the optimum itself (solver newton-cholesky, tol 1e-12:
its gradient is ~1e-13). It prints how far the default lbfgs fit lies from the optimum.

Files (all little-endian, row-major): `{set}_x_{train,test}.f32` (n x 40 float32),
`{set}_y_{train,test}.u8` (one byte per label), `{case}_proba.f64` (300 x n_classes float64),
`{case}_proba_optimum.f64` (the same, at the optimum), `{case}_coef.f64` (rows x 40: 1 row for two
classes, 3 rows for three), `{case}_intercept.f64`;
`cases.txt` lists one case per line as `key=value` fields. Needs numpy and scikit-learn.
"""

from pathlib import Path

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "probe"
N_TRAIN, N_TEST, N_FEATURES = 600, 300, 40
MAX_ITER = 1000
SCALED_DIMS, SCALE, SHIFTED_DIM, SHIFT = (3, 17, 31), 20.0, 17, -60.0


def make_set(rng, n_classes):
    """Features with class-dependent means in 8 dimensions, correlated, a few dimensions scaled."""
    n = N_TRAIN + N_TEST
    y = rng.integers(0, n_classes, n)
    means = rng.normal(0.0, 0.45, (n_classes, N_FEATURES))
    means[:, 8:] = 0.0
    mixing = np.eye(N_FEATURES) + 0.25 * rng.normal(0.0, 1.0, (N_FEATURES, N_FEATURES)) / np.sqrt(N_FEATURES)
    x = (means[y] + rng.normal(0.0, 1.0, (n, N_FEATURES))) @ mixing
    x[:, SCALED_DIMS] *= SCALE
    x[:, SHIFTED_DIM] += SHIFT
    x = x.astype(np.float32)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240617)
    lines = [f"# scikit-learn {sklearn.__version__}, LogisticRegression(C=1/l2), lbfgs defaults"]
    for name, n_classes, l2s in (("binary", 2, (1.0, 0.01)), ("three", 3, (1.0,))):
        x_train, y_train, x_test, y_test = make_set(rng, n_classes)
        x_train.astype("<f4").tofile(OUT / f"{name}_x_train.f32")
        x_test.astype("<f4").tofile(OUT / f"{name}_x_test.f32")
        y_train.astype(np.uint8).tofile(OUT / f"{name}_y_train.u8")
        y_test.astype(np.uint8).tofile(OUT / f"{name}_y_test.u8")
        for l2 in l2s:
            case = f"{name}_l2_{l2:g}"
            model = LogisticRegression(C=1.0 / l2, max_iter=MAX_ITER).fit(x_train.astype(np.float64), y_train)
            proba = model.predict_proba(x_test.astype(np.float64))
            accuracy = float(np.mean(proba.argmax(axis=1) == y_test))
            proba.astype("<f8").tofile(OUT / f"{case}_proba.f64")
            model.coef_.astype("<f8").tofile(OUT / f"{case}_coef.f64")
            model.intercept_.astype("<f8").tofile(OUT / f"{case}_intercept.f64")
            optimum = LogisticRegression(C=1.0 / l2, solver="newton-cholesky", tol=1e-12, max_iter=MAX_ITER)
            proba_optimum = optimum.fit(x_train.astype(np.float64), y_train).predict_proba(x_test.astype(np.float64))
            proba_optimum.astype("<f8").tofile(OUT / f"{case}_proba_optimum.f64")
            gap = float(np.abs(proba_optimum - proba).max())
            n_iter = int(model.n_iter_[0])
            lines.append(
                f"case={case} set={name} n_train={N_TRAIN} n_test={N_TEST} n_features={N_FEATURES} "
                f"n_classes={n_classes} l2={l2!r} accuracy={accuracy!r} n_iter={n_iter}"
            )
            print(f"{case}: accuracy {accuracy:.4f}, {n_iter} iterations, max |p - p_optimum| {gap:.2e}")
    (OUT / "cases.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
