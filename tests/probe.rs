//! `mb_stats_runner::task::probe`: parity with scikit-learn's `LogisticRegression` on the committed cases of
//! tests/fixtures/probe (scripts/make_probe_fixture.py), optimality against a plainly written
//! objective, non-convergence and input checks.

use std::collections::HashMap;
use std::path::PathBuf;

use mb_stats_runner::task::probe::{LogisticProbe, ProbeConfig, ProbeError};
use ndarray::{Array1, Array2, ArrayView2};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/probe")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f32s(name: &str) -> Vec<f32> {
    fixture(name)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn f64s(name: &str) -> Vec<f64> {
    fixture(name)
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn labels(name: &str) -> Vec<usize> {
    fixture(name).into_iter().map(usize::from).collect()
}

/// One line of cases.txt with its data and scikit-learn's results.
struct Case {
    name: String,
    n_classes: usize,
    l2: f64,
    sklearn_iterations: usize,
    x_train: Array2<f32>,
    y_train: Vec<usize>,
    x_test: Array2<f32>,
    y_test: Vec<usize>,
    proba: Array2<f64>,
    /// scikit-learn's test probabilities at the optimum itself (newton-cholesky, tol 1e-12).
    proba_optimum: Array2<f64>,
    accuracy: f64,
    coef: Array2<f64>,
    intercept: Array1<f64>,
}

fn cases() -> Vec<Case> {
    let text = String::from_utf8(fixture("cases.txt")).unwrap();
    let cases: Vec<Case> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let f: HashMap<&str, &str> = line.split_whitespace().filter_map(|kv| kv.split_once('=')).collect();
            let int = |k: &str| f[k].parse::<usize>().unwrap();
            let (name, set) = (f["case"], f["set"]);
            let (n_train, n_test, d, n_classes) = (int("n_train"), int("n_test"), int("n_features"), int("n_classes"));
            let rows = if n_classes == 2 { 1 } else { n_classes };
            Case {
                name: name.to_string(),
                n_classes,
                l2: f["l2"].parse().unwrap(),
                sklearn_iterations: int("n_iter"),
                x_train: Array2::from_shape_vec((n_train, d), f32s(&format!("{set}_x_train.f32"))).unwrap(),
                y_train: labels(&format!("{set}_y_train.u8")),
                x_test: Array2::from_shape_vec((n_test, d), f32s(&format!("{set}_x_test.f32"))).unwrap(),
                y_test: labels(&format!("{set}_y_test.u8")),
                proba: Array2::from_shape_vec((n_test, n_classes), f64s(&format!("{name}_proba.f64"))).unwrap(),
                proba_optimum: Array2::from_shape_vec((n_test, n_classes), f64s(&format!("{name}_proba_optimum.f64")))
                    .unwrap(),
                accuracy: f["accuracy"].parse().unwrap(),
                coef: Array2::from_shape_vec((rows, d), f64s(&format!("{name}_coef.f64"))).unwrap(),
                intercept: Array1::from(f64s(&format!("{name}_intercept.f64"))),
            }
        })
        .collect();
    assert_eq!(cases.len(), 3, "two binary cases and one three-class case");
    cases
}

fn max_abs_diff<'a>(a: impl IntoIterator<Item = &'a f64>, b: impl IntoIterator<Item = &'a f64>) -> f64 {
    a.into_iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn matches_scikit_learn_on_committed_cases() {
    for case in cases() {
        let config = ProbeConfig {
            l2: case.l2,
            ..ProbeConfig::default()
        };
        let (probe, report) = LogisticProbe::fit(case.x_train.view(), &case.y_train, case.n_classes, &config).unwrap();
        assert!(report.converged, "{}: {report:?}", case.name);
        let proba = probe.predict_proba(case.x_test.view());
        assert_eq!(proba.dim(), case.proba.dim());
        for row in proba.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-12, "{}: rows sum to 1", case.name);
        }
        let dp = max_abs_diff(&proba, &case.proba);
        let predicted = probe.predict(case.x_test.view());
        let accuracy =
            predicted.iter().zip(&case.y_test).filter(|(p, y)| p == y).count() as f64 / case.y_test.len() as f64;
        // Logit-scale parameters: scikit-learn stops at tol = 1e-4 as well, so only loosely equal.
        let dw = max_abs_diff(probe.weights(), &case.coef) / case.coef.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
        let db = max_abs_diff(probe.intercepts(), &case.intercept);
        println!(
            "{}: max |dp| {dp:.2e}, accuracy {accuracy:.4} vs {:.4}, weights rel {dw:.1e}, intercepts {db:.1e}, \
             {} iterations vs scikit-learn's {}",
            case.name, case.accuracy, report.iterations, case.sklearn_iterations
        );
        assert!(dp <= 1e-3, "{}: max |p - p_sklearn| = {dp}", case.name);
        assert!(
            (accuracy - case.accuracy).abs() <= 0.005,
            "{}: accuracy {accuracy} vs {}",
            case.name,
            case.accuracy
        );
        assert!(dw <= 0.05 && db <= 0.05, "{}: weights {dw}, intercepts {db}", case.name);

        // Converged tightly, both sit on the same optimum: the objectives are the same.
        let tight = ProbeConfig { tol: 1e-9, ..config };
        let (probe, report) = LogisticProbe::fit(case.x_train.view(), &case.y_train, case.n_classes, &tight).unwrap();
        assert!(report.converged, "{}: {report:?}", case.name);
        let dp = max_abs_diff(&probe.predict_proba(case.x_test.view()), &case.proba_optimum);
        println!(
            "{} at tol 1e-9: max |dp| {dp:.2e} from scikit-learn's optimum",
            case.name
        );
        assert!(dp <= 1e-6, "{}: max |p - p_sklearn_optimum| = {dp}", case.name);
    }
}

/// The objective `sum_i -ln p_i(y_i) + l2/2 ‖W‖²` and its gradient, by plain loops. `x`: n × d
/// row-major; `theta`: the weights (rows × d, row-major) then the intercepts; a binary probe is
/// the two-class softmax with logits (0, z).
fn plain_objective(x: &[f64], d: usize, y: &[usize], n_classes: usize, l2: f64, theta: &[f64]) -> (f64, Vec<f64>) {
    let rows = theta.len() / (d + 1);
    let mut f = 0.0;
    let mut grad = vec![0.0; theta.len()];
    for (i, &yi) in y.iter().enumerate() {
        let mut logits = vec![0.0; n_classes];
        for r in 0..rows {
            let mut z = theta[rows * d + r];
            for j in 0..d {
                z += theta[r * d + j] * x[i * d + j];
            }
            logits[if rows == 1 { 1 } else { r }] = z;
        }
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = max + logits.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
        f += log_sum - logits[yi];
        for r in 0..rows {
            let k = if rows == 1 { 1 } else { r };
            let residual = (logits[k] - log_sum).exp() - if yi == k { 1.0 } else { 0.0 };
            for j in 0..d {
                grad[r * d + j] += residual * x[i * d + j];
            }
            grad[rows * d + r] += residual;
        }
    }
    for j in 0..rows * d {
        f += 0.5 * l2 * theta[j] * theta[j];
        grad[j] += l2 * theta[j];
    }
    (f, grad)
}

#[test]
fn solution_is_a_minimum_of_the_plain_objective() {
    // (tol, bound on max |gradient| / n, bound on what gradient descent gains relative to f):
    // at tol 1e-8 the fit stops where the objective no longer decreases in f64 (scipy's ftol).
    for (tol, gradient_bound, descent_bound) in [(1e-4, 1e-4, 1e-8), (1e-8, 1e-6, 1e-12)] {
        for case in cases() {
            let (n, d) = case.x_train.dim();
            let config = ProbeConfig {
                l2: case.l2,
                tol,
                ..ProbeConfig::default()
            };
            let (probe, report) =
                LogisticProbe::fit(case.x_train.view(), &case.y_train, case.n_classes, &config).unwrap();
            assert!(report.converged, "{} tol {tol}: {report:?}", case.name);
            let x: Vec<f64> = case.x_train.iter().map(|&v| f64::from(v)).collect();
            let objective = |theta: &[f64]| plain_objective(&x, d, &case.y_train, case.n_classes, case.l2, theta);
            let mut theta: Vec<f64> = probe.weights().iter().chain(probe.intercepts()).copied().collect();
            let (f, grad) = objective(&theta);
            assert!(
                (f - report.loss).abs() <= 1e-9 * f,
                "{}: loss {} vs plain {f}",
                case.name,
                report.loss
            );
            let g_max = grad.iter().fold(0.0, |m: f64, g| m.max(g.abs())) / n as f64;
            assert!(
                g_max <= gradient_bound * (1.0 + 1e-9),
                "{} tol {tol}: max |grad| / n = {g_max}",
                case.name
            );
            // Gradient descent with backtracking, started from the solution, until it stalls.
            let mut f_descent = f;
            'descent: for _ in 0..20 {
                let grad = objective(&theta).1;
                let mut step = 1.0 / n as f64;
                loop {
                    let next: Vec<f64> = theta.iter().zip(&grad).map(|(t, g)| t - step * g).collect();
                    let f_next = objective(&next).0;
                    if f_next < f_descent {
                        (theta, f_descent) = (next, f_next);
                        break;
                    }
                    step /= 4.0;
                    if step < 1e-12 / n as f64 {
                        break 'descent;
                    }
                }
            }
            println!(
                "{} tol {tol}: max |grad| / n {g_max:.1e}, descent lowers f by {:.1e}",
                case.name,
                f - f_descent
            );
            assert!(
                f - f_descent <= descent_bound * f,
                "{} tol {tol}: descent lowered {f} to {f_descent}",
                case.name
            );
        }
    }
}

#[test]
fn result_does_not_depend_on_the_thread_count() {
    let case = cases().pop().unwrap();
    let fit = || {
        LogisticProbe::fit(
            case.x_train.view(),
            &case.y_train,
            case.n_classes,
            &ProbeConfig::default(),
        )
        .unwrap()
        .0
    };
    let pool = |threads| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let (one, three) = (pool(1).install(fit), pool(3).install(fit));
    assert_eq!(one.weights(), three.weights());
    assert_eq!(one.intercepts(), three.intercepts());
}

#[test]
fn reports_non_convergence() {
    let case = cases().pop().unwrap();
    let config = ProbeConfig {
        max_iter: 2,
        ..ProbeConfig::default()
    };
    let (probe, report) = LogisticProbe::fit(case.x_train.view(), &case.y_train, case.n_classes, &config).unwrap();
    assert!(!report.converged);
    assert_eq!(report.iterations, 2);
    assert!(report.loss.is_finite());
    assert!(
        probe
            .predict_proba(case.x_test.view())
            .rows()
            .into_iter()
            .all(|r| (r.sum() - 1.0).abs() < 1e-12)
    );
}

#[test]
fn refuses_bad_input() {
    let x = Array2::from_shape_fn((4, 2), |(i, j)| (i + j) as f32);
    let mut nan = x.clone();
    nan[[2, 1]] = f32::NAN;
    let config = ProbeConfig::default();
    let fit = |x: ArrayView2<f32>, y: &[usize], k: usize| LogisticProbe::fit(x, y, k, &config).map(|_| ()).unwrap_err();
    let cases = [
        (
            fit(x.view(), &[0, 1, 2, 1], 2),
            ProbeError::LabelOutOfRange {
                index: 2,
                label: 2,
                n_classes: 2,
            },
            "out of range",
        ),
        (
            fit(x.view(), &[0, 1, 1], 2),
            ProbeError::LengthMismatch { rows: 4, labels: 3 },
            "3 labels",
        ),
        (
            fit(x.view(), &[1, 1, 1, 1], 2),
            ProbeError::TooFewClasses { present: 1 },
            "at least 2",
        ),
        (
            fit(x.view(), &[0, 0, 0, 0], 1),
            ProbeError::TooFewClasses { present: 1 },
            "at least 2",
        ),
        (
            fit(Array2::<f32>::zeros((0, 2)).view(), &[], 2),
            ProbeError::Empty,
            "no examples",
        ),
        (
            fit(nan.view(), &[0, 1, 0, 1], 2),
            ProbeError::NonFiniteFeature { row: 2, column: 1 },
            "not finite",
        ),
    ];
    for (error, expected, words) in cases {
        assert_eq!(error, expected);
        let message = error.to_string();
        assert!(message.contains(words), "{message:?} should mention {words:?}");
    }
    let negative = ProbeConfig {
        l2: -1.0,
        ..ProbeConfig::default()
    };
    let error = LogisticProbe::fit(x.view(), &[0, 1, 0, 1], 2, &negative)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(error, ProbeError::InvalidConfig);
    assert!(error.to_string().contains("l2"));
}
