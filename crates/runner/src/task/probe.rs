//! L2-regularised logistic-regression probes on frozen features, matching scikit-learn's
//! `LogisticRegression(C = 1/l2)` (lbfgs; one weight vector for two classes, multinomial above).
//!
//! The objective is `sum_i logloss_i + l2/2 · ‖W‖²`, the intercepts not penalised. Written here
//! rather than taken from a crate: linfa-logistic 0.8 and argmin(-math) 0.5 are built on ndarray
//! 0.16, not this crate's 0.17, and a smooth convex objective needs only a compact L-BFGS
//! with a strong-Wolfe line search. Features are not standardised (the penalty stays on the
//! original weights), but the optimiser works on column-centred features (an exact
//! reparametrisation of the intercepts) with a diagonal preconditioner from the column variances,
//! so a few large or far-from-zero dimensions, as in BERT features, do not slow it down.

use std::fmt;
use std::ops::Range;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;

/// Settings of the probe.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// L2 penalty strength on the weights (scikit-learn's `1/C`); 0 fits without penalty.
    pub l2: f64,
    /// Most L-BFGS iterations.
    pub max_iter: usize,
    /// Stop when every gradient entry of the objective divided by n (scikit-learn's scaling) is
    /// at most this in absolute value.
    pub tol: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            l2: 1.0,
            max_iter: 1000,
            tol: 1e-4,
        }
    }
}

/// A trained probe.
#[derive(Clone, Debug)]
pub struct LogisticProbe {
    weights: Array2<f64>,
    intercepts: Array1<f64>,
    n_classes: usize,
}

/// How the fit went.
#[derive(Clone, Debug)]
pub struct FitReport {
    /// L-BFGS iterations done.
    pub iterations: usize,
    /// Whether the gradient reached `tol`, or the objective stopped decreasing at machine
    /// precision (scipy's `ftol = 64ε`, as scikit-learn); false after `max_iter` or a failed
    /// line search.
    pub converged: bool,
    /// The objective at the returned weights: `sum_i logloss_i + l2/2 · ‖W‖²`.
    pub loss: f64,
}

/// Why a probe cannot be fitted.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeError {
    /// No examples or no features.
    Empty,
    /// The number of labels differs from the number of feature rows.
    LengthMismatch {
        /// Feature rows.
        rows: usize,
        /// Labels.
        labels: usize,
    },
    /// A label is not below `n_classes`.
    LabelOutOfRange {
        /// The example.
        index: usize,
        /// Its label.
        label: usize,
        /// The number of classes asked for.
        n_classes: usize,
    },
    /// Fewer than two distinct labels occur.
    TooFewClasses {
        /// Distinct labels present.
        present: usize,
    },
    /// A feature is NaN or infinite.
    NonFiniteFeature {
        /// The example.
        row: usize,
        /// The feature.
        column: usize,
    },
    /// `l2` is negative or not finite, or `tol` is negative or NaN.
    InvalidConfig,
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "probe: no examples or no features"),
            Self::LengthMismatch { rows, labels } => {
                write!(f, "probe: {rows} feature rows but {labels} labels")
            }
            Self::LabelOutOfRange {
                index,
                label,
                n_classes,
            } => {
                write!(
                    f,
                    "probe: label {label} of example {index} is out of range for {n_classes} classes"
                )
            }
            Self::TooFewClasses { present } => {
                write!(f, "probe: {present} distinct label(s) present, at least 2 needed")
            }
            Self::NonFiniteFeature { row, column } => {
                write!(f, "probe: feature {column} of example {row} is not finite")
            }
            Self::InvalidConfig => write!(f, "probe: l2 must be finite and >= 0, tol must be >= 0"),
        }
    }
}

impl std::error::Error for ProbeError {}

impl LogisticProbe {
    /// Fits the probe. `features`: n × d (row per example), `labels` in `0..n_classes`.
    pub fn fit(
        features: ArrayView2<f32>,
        labels: &[usize],
        n_classes: usize,
        config: &ProbeConfig,
    ) -> Result<(Self, FitReport), ProbeError> {
        let (n, d) = features.dim();
        if n == 0 || d == 0 {
            return Err(ProbeError::Empty);
        }
        if labels.len() != n {
            return Err(ProbeError::LengthMismatch {
                rows: n,
                labels: labels.len(),
            });
        }
        if let Some((index, &label)) = labels.iter().enumerate().find(|&(_, &l)| l >= n_classes) {
            return Err(ProbeError::LabelOutOfRange {
                index,
                label,
                n_classes,
            });
        }
        let mut seen = vec![false; n_classes];
        labels.iter().for_each(|&l| seen[l] = true);
        let present = seen.iter().filter(|&&s| s).count();
        if present < 2 {
            return Err(ProbeError::TooFewClasses { present });
        }
        let features = features.as_standard_layout();
        let x = features.as_slice().expect("standard layout");
        if let Some(at) = x.iter().position(|v| !v.is_finite()) {
            return Err(ProbeError::NonFiniteFeature {
                row: at / d,
                column: at % d,
            });
        }
        if !(config.l2.is_finite() && config.l2 >= 0.0 && config.tol >= 0.0) {
            return Err(ProbeError::InvalidConfig);
        }

        let problem = Problem::new(x, d, labels, n_classes, config.l2);
        let (theta, iterations, converged, f) = lbfgs(&problem, config);
        let rows = problem.rows;
        let weights = Array2::from_shape_vec((rows, d), theta[..rows * d].to_vec()).expect("shape");
        let intercepts = Array1::from(theta[rows * d..].to_vec()) - weights.dot(&problem.mean);
        let report = FitReport {
            iterations,
            converged,
            loss: f * n as f64,
        };
        Ok((
            Self {
                weights,
                intercepts,
                n_classes,
            },
            report,
        ))
    }

    /// Weights: 1 × d for two classes (towards class 1, like scikit-learn's `coef_`), else
    /// n_classes × d.
    pub fn weights(&self) -> ArrayView2<'_, f64> {
        self.weights.view()
    }

    /// Intercepts, one per row of [`weights`](Self::weights).
    pub fn intercepts(&self) -> ArrayView1<'_, f64> {
        self.intercepts.view()
    }

    /// n × n_classes probabilities (rows sum to 1; for 2 classes column 1 is P(class 1)).
    ///
    /// Panics if the number of columns differs from the training features'.
    pub fn predict_proba(&self, features: ArrayView2<f32>) -> Array2<f64> {
        assert_eq!(
            features.ncols(),
            self.weights.ncols(),
            "probe: feature count differs from training"
        );
        let mut z = Array2::zeros((features.nrows(), self.weights.nrows()));
        let mut x = Array1::zeros(features.ncols());
        for (xi, mut zi) in features.rows().into_iter().zip(z.rows_mut()) {
            x.zip_mut_with(&xi, |x, &v| *x = f64::from(v));
            for ((z, w), b) in zi.iter_mut().zip(self.weights.rows()).zip(&self.intercepts) {
                *z = w.dot(&x) + b;
            }
        }
        if self.n_classes == 2 {
            let mut p = Array2::zeros((z.nrows(), 2));
            for (mut row, &zi) in p.rows_mut().into_iter().zip(z.column(0)) {
                let p1 = sigmoid(zi);
                row[0] = 1.0 - p1;
                row[1] = p1;
            }
            return p;
        }
        for mut row in z.rows_mut() {
            let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            row.mapv_inplace(|v| (v - max).exp());
            let sum = row.sum();
            row /= sum;
        }
        z
    }

    /// Most probable class per row (the first on ties).
    pub fn predict(&self, features: ArrayView2<f32>) -> Vec<usize> {
        self.predict_proba(features)
            .rows()
            .into_iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold(0, |best, (k, &p)| if p > row[best] { k } else { best })
            })
            .collect()
    }
}

/// Examples per parallel task of the objective (a fixed partition, summed in order).
const BLOCK_ROWS: usize = 256;
/// L-BFGS memory: scipy's default `maxcor` is 10; 30 pairs save a third to a half of the
/// iterations on ill-conditioned features, for a negligible cost per iteration.
const MEMORY: usize = 30;
/// Line-search constants (scipy's L-BFGS-B: sufficient decrease, curvature, at most 50 trials
/// as scikit-learn sets).
const C1: f64 = 1e-3;
const C2: f64 = 0.9;
const MAX_LINE_SEARCH: usize = 50;

/// The objective divided by n, on column-centred features. Parameters `theta`: the weights
/// (rows × d, row-major) then the centred intercepts (rows); rows = 1 for two classes, else
/// n_classes.
///
/// Evaluated one example at a time (its logits, then its gradient contribution, while the row
/// is in cache), in parallel over blocks of examples: with a handful of weight rows, GEMM
/// spends most of its time packing the features, which this single pass avoids.
struct Problem<'a> {
    /// Features, n × d row-major.
    x: &'a [f32],
    d: usize,
    labels: &'a [usize],
    mean: Array1<f64>,
    rows: usize,
    l2: f64,
}

impl<'a> Problem<'a> {
    fn new(x: &'a [f32], d: usize, labels: &'a [usize], n_classes: usize, l2: f64) -> Self {
        let mut mean = Array1::zeros(d);
        for row in x.chunks_exact(d) {
            mean.iter_mut().zip(row).for_each(|(m, &v)| *m += f64::from(v));
        }
        mean /= labels.len() as f64;
        let rows = if n_classes == 2 { 1 } else { n_classes };
        Self {
            x,
            d,
            labels,
            mean,
            rows,
            l2,
        }
    }

    fn len(&self) -> usize {
        self.rows * (self.d + 1)
    }

    /// Objective / n and its gradient, summed over blocks of examples in parallel and in a
    /// fixed order (the result does not depend on the number of threads).
    fn evaluate(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let n = self.labels.len();
        let parts: Vec<(f64, Vec<f64>)> = (0..n.div_ceil(BLOCK_ROWS))
            .into_par_iter()
            .map(|block| self.block(block * BLOCK_ROWS..n.min((block + 1) * BLOCK_ROWS), theta))
            .collect();
        let weights = &theta[..self.rows * self.d];
        let mut loss = 0.5 * self.l2 * dot(weights, weights);
        grad.fill(0.0);
        grad.iter_mut().zip(weights).for_each(|(g, &w)| *g = self.l2 * w);
        for (l, g) in parts {
            loss += l;
            grad.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
        }
        let n = n as f64;
        grad.iter_mut().for_each(|g| *g /= n);
        loss / n
    }

    /// Log-loss sum and its gradient (laid out like `theta`) over the examples `range`.
    fn block(&self, range: Range<usize>, theta: &[f64]) -> (f64, Vec<f64>) {
        let d = self.d;
        let (w, b) = theta.split_at(self.rows * d);
        let mut grad = vec![0.0; theta.len()];
        let (gw, gb) = grad.split_at_mut(self.rows * d);
        let mean = self.mean.as_slice().expect("contiguous");
        let mut x = vec![0.0; d];
        let mut z = vec![0.0; self.rows];
        let mut loss = 0.0;
        for (xi, &y) in self.x[range.start * d..range.end * d]
            .chunks_exact(d)
            .zip(&self.labels[range])
        {
            x.iter_mut()
                .zip(xi.iter().zip(mean))
                .for_each(|(x, (&v, m))| *x = f64::from(v) - m);
            z.iter_mut()
                .zip(w.chunks_exact(d).zip(b))
                .for_each(|(z, (wk, bk))| *z = dot(wk, &x) + bk);
            // z becomes d loss / d logits.
            if self.rows == 1 {
                let t = z[0];
                loss += t.max(0.0) + (-t.abs()).exp().ln_1p() - if y == 1 { t } else { 0.0 };
                z[0] = sigmoid(t) - if y == 1 { 1.0 } else { 0.0 };
            } else {
                let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                let zy = z[y];
                z.iter_mut().for_each(|v| *v = (*v - max).exp());
                let sum: f64 = z.iter().sum();
                loss += max + sum.ln() - zy;
                z.iter_mut().for_each(|v| *v /= sum);
                z[y] -= 1.0;
            }
            for ((gk, &r), gb) in gw.chunks_exact_mut(d).zip(&z).zip(gb.iter_mut()) {
                gk.iter_mut().zip(&x).for_each(|(g, x)| *g += r * x);
                *gb += r;
            }
        }
        (loss, grad)
    }

    /// Inverse of the Hessian's diagonal at zero weights (p = 1/n_classes), the L-BFGS
    /// preconditioner.
    fn preconditioner(&self) -> Vec<f64> {
        let (n, d) = (self.labels.len(), self.d);
        let mut variance = vec![0.0; d];
        for row in self.x.chunks_exact(d) {
            variance
                .iter_mut()
                .zip(row.iter().zip(&self.mean))
                .for_each(|(s, (&v, m))| *s += (f64::from(v) - m).powi(2));
        }
        let k = self.rows.max(2) as f64;
        let curvature = (k - 1.0) / (k * k);
        let inverse = |h: f64| if h > 0.0 { 1.0 / h } else { 1.0 };
        let mut diag = Vec::with_capacity(self.len());
        for _ in 0..self.rows {
            diag.extend(variance.iter().map(|&v| inverse((curvature * v + self.l2) / n as f64)));
        }
        diag.extend(std::iter::repeat_n(inverse(curvature), self.rows));
        diag
    }

    /// Largest gradient entry in the original (uncentred) parametrisation: the weights'
    /// gradient gains the intercepts' gradient times the column means.
    fn max_original_gradient(&self, grad: &[f64]) -> f64 {
        let d = self.d;
        let (gw, gb) = grad.split_at(self.rows * d);
        let weights = gw
            .chunks(d)
            .zip(gb)
            .flat_map(|(row, &g)| row.iter().zip(&self.mean).map(move |(w, m)| w + g * m));
        weights
            .chain(gb.iter().copied())
            .fold(0.0, |acc: f64, g| acc.max(g.abs()))
    }
}

fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// Dot product with eight partial sums, so that it vectorises.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// One stored L-BFGS correction pair: step s, gradient change y, 1 / sᵀy.
struct Pair {
    s: Vec<f64>,
    y: Vec<f64>,
    rho: f64,
}

/// Preconditioned L-BFGS from zero; returns (parameters, iterations, converged, objective / n).
fn lbfgs(problem: &Problem, config: &ProbeConfig) -> (Vec<f64>, usize, bool, f64) {
    let len = problem.len();
    let diag = problem.preconditioner();
    let mut theta = vec![0.0; len];
    let mut grad = vec![0.0; len];
    let mut f = problem.evaluate(&theta, &mut grad);
    let mut memory: Vec<Pair> = Vec::with_capacity(MEMORY);
    let mut iterations = 0;
    if problem.max_original_gradient(&grad) <= config.tol {
        return (theta, 0, true, f);
    }
    while iterations < config.max_iter {
        let direction = two_loop(&grad, &memory, &diag);
        let Some(step) = line_search(problem, &theta, f, &grad, &direction) else {
            if memory.is_empty() {
                return (theta, iterations, false, f);
            }
            memory.clear(); // retry along the preconditioned steepest descent
            continue;
        };
        iterations += 1;
        let s: Vec<f64> = direction.iter().map(|d| step.alpha * d).collect();
        let y: Vec<f64> = step.grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > f64::EPSILON * dot(&y, &y) {
            if memory.len() == MEMORY {
                memory.remove(0);
            }
            memory.push(Pair { s, y, rho: 1.0 / sy });
        }
        let previous = f;
        (theta, f, grad) = (step.theta, step.f, step.grad);
        if problem.max_original_gradient(&grad) <= config.tol
            || previous - f <= 64.0 * f64::EPSILON * previous.abs().max(f.abs()).max(1.0)
        {
            return (theta, iterations, true, f);
        }
    }
    (theta, iterations, false, f)
}

/// The L-BFGS direction −H·grad, H from the pairs with the initial matrix γ·diag.
fn two_loop(grad: &[f64], memory: &[Pair], diag: &[f64]) -> Vec<f64> {
    let mut q = grad.to_vec();
    let mut alphas = vec![0.0; memory.len()];
    for (pair, alpha) in memory.iter().zip(&mut alphas).rev() {
        *alpha = pair.rho * dot(&pair.s, &q);
        q.iter_mut().zip(&pair.y).for_each(|(q, y)| *q -= *alpha * y);
    }
    let gamma = memory.last().map_or(1.0, |p| {
        1.0 / (p.rho * p.y.iter().zip(diag).map(|(y, h)| y * y * h).sum::<f64>())
    });
    q.iter_mut().zip(diag).for_each(|(q, h)| *q *= gamma * h);
    for (pair, alpha) in memory.iter().zip(&alphas) {
        let beta = pair.rho * dot(&pair.y, &q);
        q.iter_mut().zip(&pair.s).for_each(|(q, s)| *q += (alpha - beta) * s);
    }
    q.iter_mut().for_each(|q| *q = -*q);
    q
}

/// An accepted line-search point.
struct Step {
    alpha: f64,
    theta: Vec<f64>,
    f: f64,
    grad: Vec<f64>,
}

/// A trial point of the line search: step, objective, directional derivative.
#[derive(Clone, Copy)]
struct Trial {
    alpha: f64,
    f: f64,
    slope: f64,
}

/// Strong-Wolfe line search along `direction` from step 1 (Nocedal & Wright, algorithms 3.5 and
/// 3.6, cubic interpolation with safeguards). `None` if the direction does not descend or no
/// step lowers the objective within the trial budget.
fn line_search(problem: &Problem, theta: &[f64], f0: f64, grad0: &[f64], direction: &[f64]) -> Option<Step> {
    let slope0 = dot(grad0, direction);
    if slope0.is_nan() || slope0 >= 0.0 {
        return None;
    }
    let trial = |alpha: f64| {
        let point: Vec<f64> = theta.iter().zip(direction).map(|(t, d)| t + alpha * d).collect();
        let mut grad = vec![0.0; point.len()];
        let f = problem.evaluate(&point, &mut grad);
        let slope = dot(&grad, direction);
        (
            Trial {
                alpha,
                f: if f.is_nan() { f64::INFINITY } else { f },
                slope,
            },
            Step {
                alpha,
                theta: point,
                f,
                grad,
            },
        )
    };
    let sufficient = |t: &Trial| t.f <= f0 + C1 * t.alpha * slope0;
    let curvature = |t: &Trial| t.slope.abs() <= -C2 * slope0;
    let mut previous = Trial {
        alpha: 0.0,
        f: f0,
        slope: slope0,
    };
    let mut best: Option<Step> = None;
    let mut alpha = 1.0;
    let (mut lo, mut hi);
    let mut evaluations = 0;
    loop {
        if evaluations == MAX_LINE_SEARCH {
            return None;
        }
        evaluations += 1;
        let (t, step) = trial(alpha);
        if !sufficient(&t) || (evaluations > 1 && t.f >= previous.f) {
            (lo, hi) = (previous, t);
            break;
        }
        if curvature(&t) {
            return Some(step);
        }
        best = Some(step);
        if t.slope >= 0.0 {
            (lo, hi) = (t, previous);
            break;
        }
        previous = t;
        alpha *= 4.0;
    }
    // Zoom: lo satisfies sufficient decrease with the lowest objective so far; the minimiser
    // along the direction lies between lo and hi.
    while evaluations < MAX_LINE_SEARCH && (hi.alpha - lo.alpha).abs() > f64::EPSILON * lo.alpha.max(hi.alpha) {
        evaluations += 1;
        let (t, step) = trial(interpolate(&lo, &hi));
        if !sufficient(&t) || t.f >= lo.f {
            hi = t;
        } else {
            if curvature(&t) {
                return Some(step);
            }
            if t.slope * (hi.alpha - lo.alpha) >= 0.0 {
                hi = lo;
            }
            lo = t;
            best = Some(step);
        }
    }
    best.filter(|b| b.alpha == lo.alpha && lo.alpha > 0.0)
}

/// The minimiser of the cubic through two trials, kept inside the middle 80% of the interval
/// (bisection when the cubic has none).
fn interpolate(a: &Trial, b: &Trial) -> f64 {
    let d1 = a.slope + b.slope - 3.0 * (a.f - b.f) / (a.alpha - b.alpha);
    let root = d1 * d1 - a.slope * b.slope;
    let (low, high) = (a.alpha.min(b.alpha), a.alpha.max(b.alpha));
    let margin = 0.1 * (high - low);
    let mid = 0.5 * (low + high);
    if root.is_nan() || root < 0.0 || !b.f.is_finite() {
        return mid;
    }
    let d2 = (b.alpha - a.alpha).signum() * root.sqrt();
    let alpha = b.alpha - (b.alpha - a.alpha) * (b.slope + d2 - d1) / (b.slope - a.slope + 2.0 * d2);
    if alpha.is_finite() && alpha >= low + margin && alpha <= high - margin {
        alpha
    } else {
        mid
    }
}
