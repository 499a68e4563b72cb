//! Metrics and their count-weighted sufficient statistics.
//!
//! A bootstrap replicate is the full data with integer weights (how often each example was
//! drawn). Most metrics are functions of weighted sums of per-example statistics (confusion
//! indicators, moments), so a replicate is a weighted sum and a batch of replicates a matrix
//! product ([`StatLayout`]). Rank metrics (Spearman, AUC) need the weighted order of the values
//! instead ([`TieGroups`]). Conventions where a metric is undefined on a resample follow
//! scikit-learn's `zero_division=0`: precision, recall, F1 and MCC are 0, a correlation with a
//! constant side is 0, and AUC with one class only is 0.5.

use std::fmt;
use std::str::FromStr;

use super::design::Outcomes;

/// A metric of one run over (weighted) examples (`accuracy` by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde_with::DeserializeFromStr)]
pub enum Metric {
    /// Fraction of examples with `prediction == label`.
    #[default]
    Accuracy,
    /// Binary precision of class 1.
    Precision,
    /// Binary recall of class 1.
    Recall,
    /// Binary F1 of class 1.
    F1,
    /// Unweighted mean of per-class F1 over the classes present in labels or predictions.
    MacroF1,
    /// Matthews correlation coefficient (binary).
    Mcc,
    /// Pearson correlation of `prediction` and `label`.
    Pearson,
    /// Spearman rank correlation of `prediction` and `label` (ties get average ranks).
    Spearman,
    /// Area under the ROC curve of `score` for binary `label` (ties count one half).
    Auc,
    /// Mean of `score`.
    Mean,
}

/// A column of the results table a metric reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The `label` column.
    Label,
    /// The `prediction` column.
    Prediction,
    /// The `score` column.
    Score,
}

impl Field {
    /// The column name.
    pub fn name(self) -> &'static str {
        match self {
            Field::Label => "label",
            Field::Prediction => "prediction",
            Field::Score => "score",
        }
    }

    fn of(self, run: &Outcomes) -> Option<&[f64]> {
        match self {
            Field::Label => run.label.as_deref(),
            Field::Prediction => run.prediction.as_deref(),
            Field::Score => run.score.as_deref(),
        }
    }
}

/// How the engine evaluates a metric on a replicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// A weighted mean of one per-example value: runs can be averaged within a seed first.
    Linear,
    /// A nonlinear function of several weighted sums, evaluated per run.
    Sums,
    /// Needs the weighted order of the values, evaluated per run.
    Rank,
}

impl Metric {
    /// Every metric, in the order the documentation lists them.
    pub const ALL: [Metric; 10] = [
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::F1,
        Metric::MacroF1,
        Metric::Mcc,
        Metric::Pearson,
        Metric::Spearman,
        Metric::Auc,
        Metric::Mean,
    ];

    /// The spelling used on the command line and in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
            Metric::MacroF1 => "macro-f1",
            Metric::Mcc => "mcc",
            Metric::Pearson => "pearson",
            Metric::Spearman => "spearman",
            Metric::Auc => "auc",
            Metric::Mean => "mean",
        }
    }

    /// Whether the metric is a proportion on [0, 1], shown as a percentage.
    pub fn is_proportion(self) -> bool {
        matches!(
            self,
            Metric::Accuracy | Metric::Precision | Metric::Recall | Metric::F1 | Metric::MacroF1 | Metric::Auc
        )
    }

    /// The values the metric can take: [0, 1] for proportions, [−1, 1] for correlations and
    /// MCC, unbounded (`None`) for `mean`. Intervals are cut to it ([`crate::summary::Interval::within`]).
    pub fn range(self) -> Option<(f64, f64)> {
        match self {
            Metric::Mean => None,
            Metric::Mcc | Metric::Pearson | Metric::Spearman => Some((-1.0, 1.0)),
            _ => Some((0.0, 1.0)),
        }
    }

    /// The values a difference of the metric between two procedures can take.
    pub fn delta_range(self) -> Option<(f64, f64)> {
        self.range().map(|(low, high)| (low - high, high - low))
    }

    /// The columns the metric reads.
    pub fn fields(self) -> &'static [Field] {
        match self {
            Metric::Auc => &[Field::Label, Field::Score],
            Metric::Mean => &[Field::Score],
            _ => &[Field::Label, Field::Prediction],
        }
    }

    /// The evaluation path of the engine.
    pub fn path(self) -> Path {
        match self {
            Metric::Accuracy | Metric::Mean => Path::Linear,
            Metric::Spearman | Metric::Auc => Path::Rank,
            _ => Path::Sums,
        }
    }

    fn is_binary(self) -> bool {
        matches!(
            self,
            Metric::Precision | Metric::Recall | Metric::F1 | Metric::Mcc | Metric::Auc
        )
    }

    /// Checks one run's values: present, finite, and 0/1 labels (and predictions) for binary
    /// metrics. The message names the column and what was expected.
    pub fn check(self, run: &Outcomes) -> Result<(), String> {
        for &field in self.fields() {
            let values = field.of(run).ok_or_else(|| {
                format!(
                    "metric {} needs column {}, which the results do not have",
                    self.name(),
                    field.name()
                )
            })?;
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                return Err(format!(
                    "column {} has a null or non-finite value ({v}); metric {} needs numbers",
                    field.name(),
                    self.name()
                ));
            }
            let binary_field = self.is_binary() && field != Field::Score;
            if let Some(v) = values.iter().find(|&&v| binary_field && v != 0.0 && v != 1.0) {
                return Err(format!(
                    "column {} has value {v} but metric {} is binary (classes 0 and 1, positive class 1); use macro-f1 or accuracy for several classes",
                    field.name(),
                    self.name()
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Metric::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
            format!("unknown metric '{s}': expected one of {}", names.join(", "))
        })
    }
}

/// The per-example sufficient statistics of a [`Path::Linear`] or [`Path::Sums`] metric, whose
/// weighted sums determine the metric. Statistics that depend on the labels only (the number of
/// positives, the label moments) are kept apart: runs with identical labels (the usual case) share
/// them, which cuts the columns of the engine's matrix product by up to a third.
#[derive(Clone, Debug)]
pub struct StatLayout {
    metric: Metric,
    /// Class values for macro-F1 (sorted, over all runs of the design).
    classes: Vec<f64>,
}

impl StatLayout {
    /// The layout of `metric` for a design whose runs are `runs`.
    pub fn new<'a>(metric: Metric, runs: impl Iterator<Item = &'a Outcomes>) -> Self {
        let mut classes = Vec::new();
        if metric == Metric::MacroF1 {
            for run in runs {
                classes.extend(run.label.iter().chain(run.prediction.iter()).flatten().copied());
                classes.sort_by(f64::total_cmp);
                classes.dedup();
            }
        }
        Self { metric, classes }
    }

    /// Number of statistic columns per run.
    pub fn run_width(&self) -> usize {
        match self.metric {
            Metric::Accuracy | Metric::Mean => 1,
            Metric::Precision | Metric::Recall | Metric::F1 | Metric::Mcc => 2,
            Metric::MacroF1 => 2 * self.classes.len(),
            Metric::Pearson => 3,
            Metric::Spearman | Metric::Auc => 0,
        }
    }

    /// Number of statistic columns per distinct label vector.
    pub fn label_width(&self) -> usize {
        match self.metric {
            Metric::Precision | Metric::Recall | Metric::F1 | Metric::Mcc => 1,
            Metric::MacroF1 => self.classes.len(),
            Metric::Pearson => 2,
            _ => 0,
        }
    }

    /// The run's statistic columns (each of length n_examples): correctness or score for linear
    /// metrics; [y·p, p] for binary ones; [y=c ∧ p=c, p=c] per class for macro-F1; [x, x², x·y]
    /// for Pearson, with x and y centred on the run's full-data means (which leaves the
    /// correlation unchanged and avoids cancellation).
    pub fn run_columns(&self, run: &Outcomes) -> Vec<Vec<f64>> {
        let label = run.label.as_deref().unwrap_or(&[]);
        let pred = run.prediction.as_deref().unwrap_or(&[]);
        let zip = || label.iter().zip(pred);
        let indicator = |b: bool| if b { 1.0 } else { 0.0 };
        match self.metric {
            Metric::Accuracy => vec![zip().map(|(y, p)| indicator(y == p)).collect()],
            Metric::Mean => vec![run.score.clone().unwrap_or_default()],
            Metric::Precision | Metric::Recall | Metric::F1 | Metric::Mcc => {
                vec![zip().map(|(y, p)| y * p).collect(), pred.to_vec()]
            }
            Metric::MacroF1 => self
                .classes
                .iter()
                .flat_map(|&c| {
                    [
                        zip().map(|(&y, &p)| indicator(y == c && p == c)).collect(),
                        pred.iter().map(|&p| indicator(p == c)).collect(),
                    ]
                })
                .collect(),
            Metric::Pearson => {
                let (x, y) = (centred(pred), centred(label));
                vec![
                    x.iter().map(|a| a * a).collect(),
                    x.iter().zip(&y).map(|(a, b)| a * b).collect(),
                    x,
                ]
            }
            Metric::Spearman | Metric::Auc => Vec::new(),
        }
    }

    /// The statistic columns that depend on the labels only: `y` for binary metrics, `y = c` per
    /// class for macro-F1, `y` and `y²` (centred) for Pearson.
    pub fn label_columns(&self, label: &[f64]) -> Vec<Vec<f64>> {
        match self.metric {
            Metric::Precision | Metric::Recall | Metric::F1 | Metric::Mcc => vec![label.to_vec()],
            Metric::MacroF1 => self
                .classes
                .iter()
                .map(|&c| label.iter().map(|&y| if y == c { 1.0 } else { 0.0 }).collect())
                .collect(),
            Metric::Pearson => {
                let y = centred(label);
                vec![y.iter().map(|b| b * b).collect(), y]
            }
            _ => Vec::new(),
        }
    }

    /// The metric from the weighted sums of a run's columns, of its labels' columns, and the
    /// total example weight.
    pub fn finish(&self, run: &[f64], labels: &[f64], total: f64) -> f64 {
        match self.metric {
            Metric::Accuracy | Metric::Mean => run[0] / total,
            Metric::Precision | Metric::Recall | Metric::F1 | Metric::Mcc => {
                let (tp, predicted, actual) = (run[0], run[1], labels[0]);
                match self.metric {
                    Metric::Precision => ratio(tp, predicted),
                    Metric::Recall => ratio(tp, actual),
                    Metric::F1 => ratio(2.0 * tp, predicted + actual),
                    _ => {
                        let (fp, fnn) = (predicted - tp, actual - tp);
                        let tn = total - predicted - actual + tp;
                        let denom = predicted * actual * (tn + fp) * (tn + fnn);
                        if denom > 0.0 {
                            (tp * tn - fp * fnn) / denom.sqrt()
                        } else {
                            0.0
                        }
                    }
                }
            }
            Metric::MacroF1 => {
                let (mut sum, mut present) = (0.0, 0usize);
                for (c, &actual) in run.chunks_exact(2).zip(labels) {
                    if c[1] + actual > 0.0 {
                        sum += ratio(2.0 * c[0], c[1] + actual);
                        present += 1;
                    }
                }
                ratio(sum, present as f64)
            }
            Metric::Pearson => {
                let [xx, xy, x] = [run[0], run[1], run[2]];
                let [yy, y] = [labels[0], labels[1]];
                correlation(xy - x * y / total, xx - x * x / total, xx, yy - y * y / total, yy)
            }
            Metric::Spearman | Metric::Auc => unreachable!("rank metrics have no sums"),
        }
    }
}

fn centred(v: &[f64]) -> Vec<f64> {
    let m = mean(v);
    v.iter().map(|x| x - m).collect()
}

/// `num / den`, or 0 when `den` is 0 (scikit-learn's `zero_division=0`).
fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// A side counts as constant when its variance is below this fraction of its second moment.
pub const CONSTANT_TOLERANCE: f64 = 1e-12;

/// Pearson correlation from the covariance and the variances (with second moments about the
/// centering point, to detect constant sides); 0 when a side is constant. Clamped to [-1, 1].
pub fn correlation(cov: f64, var_x: f64, m2_x: f64, var_y: f64, m2_y: f64) -> f64 {
    let constant = |var: f64, m2: f64| var <= CONSTANT_TOLERANCE * m2 || m2 == 0.0;
    if constant(var_x, m2_x) || constant(var_y, m2_y) {
        return 0.0;
    }
    (cov / (var_x * var_y).sqrt()).clamp(-1.0, 1.0)
}

/// The examples of one run in ascending order of a value, split into groups of equal values.
/// Built once per run; a replicate then ranks in O(n) with its weights.
#[derive(Clone, Debug)]
pub struct TieGroups {
    order: Vec<u32>,
    ends: Vec<u32>,
}

impl TieGroups {
    /// Sorts `values` (finite) and groups ties. Time: O(n log n).
    pub fn new(values: &[f64]) -> Self {
        let mut order: Vec<u32> = (0..values.len() as u32).collect();
        order.sort_by(|&a, &b| values[a as usize].total_cmp(&values[b as usize]));
        let mut ends = Vec::new();
        for i in 1..=order.len() {
            if i == order.len() || values[order[i] as usize] != values[order[i - 1] as usize] {
                ends.push(i as u32);
            }
        }
        Self { order, ends }
    }

    fn groups(&self) -> impl Iterator<Item = &[u32]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(s, &e)| &self.order[s as usize..e as usize])
    }

    /// Average ranks (1-based) of the weighted data, for a block of `b` replicates at once, as
    /// if every example were repeated `weight` times: a tie group of total weight g after
    /// cumulative weight c gets c + (g + 1) / 2. `weights` and `ranks` are example-major
    /// (n × b), so the inner loops run over contiguous replicates. Time: O(n · b).
    pub fn midranks(&self, weights: &[f64], b: usize, ranks: &mut [f64]) {
        let (mut below, mut g) = (vec![0.0; b], vec![0.0; b]);
        for group in self.groups() {
            g.fill(0.0);
            for &i in group {
                let w = &weights[i as usize * b..][..b];
                g.iter_mut().zip(w).for_each(|(g, w)| *g += w);
            }
            for &i in group {
                let r = &mut ranks[i as usize * b..][..b];
                r.iter_mut()
                    .zip(below.iter().zip(&g))
                    .for_each(|(r, (c, g))| *r = c + (g + 1.0) / 2.0);
            }
            below.iter_mut().zip(&g).for_each(|(c, g)| *c += g);
        }
    }

    /// Weighted AUC of these (score) groups against 0/1 `labels` for a block of `b` replicates
    /// (example-major weights): the probability that a positive outranks a negative, ties
    /// counting one half; 0.5 with one class only. Time: O(n · b).
    pub fn auc(&self, labels: &[f64], weights: &[f64], b: usize, out: &mut [f64]) {
        let zeros = || vec![0.0; b];
        let (mut negatives_below, mut wins, mut positives, mut pos, mut neg) =
            (zeros(), zeros(), zeros(), zeros(), zeros());
        for group in self.groups() {
            pos.fill(0.0);
            neg.fill(0.0);
            for &i in group {
                let w = &weights[i as usize * b..][..b];
                let side = if labels[i as usize] == 1.0 { &mut pos } else { &mut neg };
                side.iter_mut().zip(w).for_each(|(s, w)| *s += w);
            }
            for j in 0..b {
                wins[j] += pos[j] * (negatives_below[j] + 0.5 * neg[j]);
                negatives_below[j] += neg[j];
                positives[j] += pos[j];
            }
        }
        for j in 0..b {
            let pairs = positives[j] * negatives_below[j];
            out[j] = if pairs > 0.0 { wins[j] / pairs } else { 0.5 };
        }
    }
}

/// Weighted Pearson correlation in two passes (means first) for a block of `b` replicates;
/// `x`, `y` and `weights` are example-major (n × b). Time: O(n · b).
pub fn weighted_pearson(x: &[f64], y: &[f64], weights: &[f64], b: usize, out: &mut [f64]) {
    let zeros = || vec![0.0; b];
    let rows = || x.chunks_exact(b).zip(y.chunks_exact(b)).zip(weights.chunks_exact(b));
    let (mut total, mut mx, mut my) = (zeros(), zeros(), zeros());
    for ((x, y), w) in rows() {
        for j in 0..b {
            total[j] += w[j];
            mx[j] += w[j] * x[j];
            my[j] += w[j] * y[j];
        }
    }
    for j in 0..b {
        mx[j] /= total[j];
        my[j] /= total[j];
    }
    let (mut sxy, mut sxx, mut syy, mut m2x, mut m2y) = (zeros(), zeros(), zeros(), zeros(), zeros());
    for ((x, y), w) in rows() {
        for j in 0..b {
            let (dx, dy) = (x[j] - mx[j], y[j] - my[j]);
            sxy[j] += w[j] * dx * dy;
            sxx[j] += w[j] * dx * dx;
            syy[j] += w[j] * dy * dy;
            m2x[j] += w[j] * x[j] * x[j];
            m2y[j] += w[j] * y[j] * y[j];
        }
    }
    for j in 0..b {
        out[j] = correlation(sxy[j], sxx[j], m2x[j], syy[j], m2y[j]);
    }
}
