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

/// A metric of one run over (weighted) examples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Fraction of examples with `prediction == label`.
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
        matches!(self, Metric::Precision | Metric::Recall | Metric::F1 | Metric::Mcc | Metric::Auc)
    }

    /// Checks one run's values: present, finite, and 0/1 labels (and predictions) for binary
    /// metrics. The message names the column and what was expected.
    pub fn check(self, run: &Outcomes) -> Result<(), String> {
        for &field in self.fields() {
            let values = field
                .of(run)
                .ok_or_else(|| format!("metric {} needs column {}, which the results do not have", self.name(), field.name()))?;
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                return Err(format!("column {} has a null or non-finite value ({v}); metric {} needs numbers", field.name(), self.name()));
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

/// The per-example sufficient statistics of a [`Path::Linear`] or [`Path::Sums`] metric:
/// `width()` columns per run, whose weighted sums determine the metric.
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
    pub fn width(&self) -> usize {
        match self.metric {
            Metric::Accuracy | Metric::Mean => 1,
            Metric::Precision | Metric::Recall | Metric::F1 | Metric::Mcc => 3,
            Metric::MacroF1 => 3 * self.classes.len(),
            Metric::Pearson => 5,
            Metric::Spearman | Metric::Auc => 0,
        }
    }

    /// The statistic columns of one run (each of length n_examples). Pearson's moments are
    /// taken about the run's full-data means, which leaves the correlation unchanged and
    /// avoids cancellation.
    pub fn columns(&self, run: &Outcomes) -> Vec<Vec<f64>> {
        let label = run.label.as_deref().unwrap_or(&[]);
        let pred = run.prediction.as_deref().unwrap_or(&[]);
        let zip = || label.iter().zip(pred);
        let indicator = |b: bool| if b { 1.0 } else { 0.0 };
        match self.metric {
            Metric::Accuracy => vec![zip().map(|(y, p)| indicator(y == p)).collect()],
            Metric::Mean => vec![run.score.clone().unwrap_or_default()],
            Metric::Precision | Metric::Recall | Metric::F1 | Metric::Mcc => vec![
                zip().map(|(y, p)| y * p).collect(),
                pred.to_vec(),
                label.to_vec(),
            ],
            Metric::MacroF1 => self
                .classes
                .iter()
                .flat_map(|&c| {
                    [
                        zip().map(|(&y, &p)| indicator(y == c && p == c)).collect(),
                        pred.iter().map(|&p| indicator(p == c)).collect(),
                        label.iter().map(|&y| indicator(y == c)).collect(),
                    ]
                })
                .collect(),
            Metric::Pearson => {
                let (mx, my) = (mean(pred), mean(label));
                let x: Vec<f64> = pred.iter().map(|v| v - mx).collect();
                let y: Vec<f64> = label.iter().map(|v| v - my).collect();
                vec![
                    x.iter().map(|a| a * a).collect(),
                    y.iter().map(|b| b * b).collect(),
                    x.iter().zip(&y).map(|(a, b)| a * b).collect(),
                    x,
                    y,
                ]
            }
            Metric::Spearman | Metric::Auc => Vec::new(),
        }
    }

    /// The metric from the weighted column sums of one run and the total example weight.
    pub fn finish(&self, sums: &[f64], total: f64) -> f64 {
        match self.metric {
            Metric::Accuracy | Metric::Mean => sums[0] / total,
            Metric::Precision | Metric::Recall | Metric::F1 | Metric::Mcc => {
                let (tp, predicted, actual) = (sums[0], sums[1], sums[2]);
                match self.metric {
                    Metric::Precision => ratio(tp, predicted),
                    Metric::Recall => ratio(tp, actual),
                    Metric::F1 => ratio(2.0 * tp, predicted + actual),
                    _ => {
                        let (fp, fnn) = (predicted - tp, actual - tp);
                        let tn = total - predicted - actual + tp;
                        let denom = predicted * actual * (tn + fp) * (tn + fnn);
                        if denom > 0.0 { (tp * tn - fp * fnn) / denom.sqrt() } else { 0.0 }
                    }
                }
            }
            Metric::MacroF1 => {
                let (mut sum, mut present) = (0.0, 0usize);
                for c in sums.chunks_exact(3) {
                    if c[1] + c[2] > 0.0 {
                        sum += ratio(2.0 * c[0], c[1] + c[2]);
                        present += 1;
                    }
                }
                ratio(sum, present as f64)
            }
            Metric::Pearson => {
                let [xx, yy, xy, x, y] = [sums[0], sums[1], sums[2], sums[3], sums[4]];
                correlation(xy - x * y / total, xx - x * x / total, xx, yy - y * y / total, yy)
            }
            Metric::Spearman | Metric::Auc => unreachable!("rank metrics have no sums"),
        }
    }
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
        starts.zip(&self.ends).map(|(s, &e)| &self.order[s as usize..e as usize])
    }

    /// Average ranks (1-based) of the weighted data, as if every example were repeated
    /// `weight` times: a tie group of total weight g after cumulative weight c gets
    /// c + (g + 1) / 2. Time: O(n).
    pub fn midranks(&self, weights: &[f64], ranks: &mut [f64]) {
        let mut below = 0.0;
        for group in self.groups() {
            let g: f64 = group.iter().map(|&i| weights[i as usize]).sum();
            let rank = below + (g + 1.0) / 2.0;
            group.iter().for_each(|&i| ranks[i as usize] = rank);
            below += g;
        }
    }

    /// Weighted AUC of these (score) groups against 0/1 `labels`: the probability that a
    /// positive outranks a negative, ties counting one half. 0.5 with one class only.
    /// Time: O(n).
    pub fn auc(&self, labels: &[f64], weights: &[f64]) -> f64 {
        let (mut negatives_below, mut wins, mut positives) = (0.0, 0.0, 0.0);
        for group in self.groups() {
            let (mut pos, mut neg) = (0.0, 0.0);
            for &i in group {
                let w = weights[i as usize];
                if labels[i as usize] == 1.0 { pos += w } else { neg += w }
            }
            wins += pos * (negatives_below + 0.5 * neg);
            negatives_below += neg;
            positives += pos;
        }
        let pairs = positives * negatives_below;
        if pairs > 0.0 { wins / pairs } else { 0.5 }
    }
}

/// Weighted Pearson correlation in two passes (means first). Time: O(n).
pub fn weighted_pearson(x: &[f64], y: &[f64], weights: &[f64]) -> f64 {
    let total: f64 = weights.iter().sum();
    let mx = x.iter().zip(weights).map(|(a, w)| a * w).sum::<f64>() / total;
    let my = y.iter().zip(weights).map(|(b, w)| b * w).sum::<f64>() / total;
    let (mut sxy, mut sxx, mut syy, mut mxx, mut myy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for ((a, b), w) in x.iter().zip(y).zip(weights) {
        let (dx, dy) = (a - mx, b - my);
        sxy += w * dx * dy;
        sxx += w * dx * dx;
        syy += w * dy * dy;
        mxx += w * a * a;
        myy += w * b * b;
    }
    correlation(sxy, sxx, mxx, syy, myy)
}
