//! Summaries of bootstrap replicates: percentile intervals, p-values, threshold probabilities.
//! Definitions follow the original MultiBERTs library (`report_ci`): numpy's default (linear)
//! quantiles, p-values as the share of replicates on the null side floored at 1 / nboot.

use std::fmt;

/// The alternative hypothesis of a comparison: `greater` (the default), `less` or `two-sided`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde_with::DeserializeFromStr)]
pub enum Alternative {
    /// H1: δ > 0 (H0: δ ≤ 0); p = P*(δ ≤ 0).
    #[default]
    Greater,
    /// H1: δ < 0 (H0: δ ≥ 0); p = P*(δ ≥ 0).
    Less,
    /// H1: δ ≠ 0; p = min(1, 2 · min(P*(δ ≤ 0), P*(δ ≥ 0))).
    TwoSided,
}

impl std::str::FromStr for Alternative {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Alternative::Greater, Alternative::Less, Alternative::TwoSided]
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| format!("expected greater, less or two-sided, got '{s}'"))
    }
}

impl Alternative {
    /// The spelling used on the command line and in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Alternative::Greater => "greater",
            Alternative::Less => "less",
            Alternative::TwoSided => "two-sided",
        }
    }
}

impl fmt::Display for Alternative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Point estimate, bootstrap mean and percentile interval of one quantity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    /// The full-data point estimate.
    pub estimate: f64,
    /// The mean of the replicates.
    pub boot_mean: f64,
    /// Lower end of the percentile interval.
    pub low: f64,
    /// Upper end of the percentile interval.
    pub high: f64,
}

impl Interval {
    /// Summarises `replicates` at `confidence` (e.g. 0.95 → 2.5% and 97.5% quantiles).
    /// Time: O(nboot log nboot).
    pub fn new(estimate: f64, replicates: &[f64], confidence: f64) -> Self {
        let mut sorted = replicates.to_vec();
        sorted.sort_by(f64::total_cmp);
        let tail = (1.0 - confidence) / 2.0;
        Self {
            estimate,
            boot_mean: replicates.iter().sum::<f64>() / replicates.len() as f64,
            low: quantile(&sorted, tail),
            high: quantile(&sorted, 1.0 - tail),
        }
    }
}

impl Interval {
    /// The interval cut to `range`, the values the quantity can take (a bounded metric, or a
    /// difference of one): the calibration stretches distances from the estimate, which with a
    /// handful of examples or seeds can reach past what the metric can be, and the truth is
    /// always inside the range, so cutting there never loses coverage. Unchanged for `None`.
    ///
    /// An interval of zero width at a bound of the range (every replicate 100%, or a delta of
    /// ±1) has no ends (NaN, reported as `n/a`): a handful of examples that all agree say
    /// nothing about how far the truth may be, and `[100, 100]` would claim it is exact.
    pub fn within(self, range: Option<(f64, f64)>) -> Self {
        let Some((low, high)) = range else {
            return self;
        };
        let at_bound = self.low == self.high && (self.low == low || self.low == high);
        match at_bound {
            true => Self {
                low: f64::NAN,
                high: f64::NAN,
                ..self
            },
            false => Self {
                low: self.low.clamp(low, high),
                high: self.high.clamp(low, high),
                ..self
            },
        }
    }
}

/// The q-quantile of sorted values with linear interpolation between order statistics
/// (numpy's default, R's type 7).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn share(values: impl Iterator<Item = bool>, n: usize) -> f64 {
    values.filter(|&b| b).count() as f64 / n as f64
}

/// The bootstrap p-value of `deltas` under `alternative`, floored at 1 / nboot (a bootstrap
/// cannot estimate a smaller one).
pub fn p_value(deltas: &[f64], alternative: Alternative) -> f64 {
    let n = deltas.len();
    let at_most_zero = || share(deltas.iter().map(|&d| d <= 0.0), n);
    let at_least_zero = || share(deltas.iter().map(|&d| d >= 0.0), n);
    let p = match alternative {
        Alternative::Greater => at_most_zero(),
        Alternative::Less => at_least_zero(),
        Alternative::TwoSided => (2.0 * at_most_zero().min(at_least_zero())).min(1.0),
    };
    p.max(1.0 / n as f64)
}

/// P*(δ ≥ x) for `greater` and two-sided, P*(δ ≤ −x) for `less` (the effect in the expected
/// direction is at least x), as the original library's `abs_threshold`.
pub fn prob_abs_effect(deltas: &[f64], threshold: f64, alternative: Alternative) -> f64 {
    let n = deltas.len();
    match alternative {
        Alternative::Less => share(deltas.iter().map(|&d| d <= -threshold), n),
        _ => share(deltas.iter().map(|&d| d >= threshold), n),
    }
}

/// P*(δ / L ≥ x) for `greater` and two-sided, P*(δ / L ≤ −x) for `less`, with L the baseline
/// replicate (the original library's `rel_threshold`; a fair approximation when L is far from 0).
pub fn prob_rel_effect(deltas: &[f64], base: &[f64], threshold: f64, alternative: Alternative) -> f64 {
    let rel = deltas.iter().zip(base).map(|(d, l)| d / l);
    match alternative {
        Alternative::Less => share(rel.map(|r| r <= -threshold), deltas.len()),
        _ => share(rel.map(|r| r >= threshold), deltas.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_linearly_like_numpy() {
        // np.quantile([1, 2, 3, 4], [0, 0.25, 0.5, 1]) = [1, 1.75, 2.5, 4]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!([0.0, 0.25, 0.5, 1.0].map(|q| quantile(&v, q)), [1.0, 1.75, 2.5, 4.0]);
        // np.quantile(range(10), 0.975) = 8.775
        let v: Vec<f64> = (0..10).map(f64::from).collect();
        assert!((quantile(&v, 0.975) - 8.775).abs() < 1e-12);
    }

    #[test]
    fn interval_uses_both_tails_and_the_replicate_mean() {
        let reps: Vec<f64> = (0..=100).map(f64::from).collect();
        let i = Interval::new(7.0, &reps, 0.9);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(
            i.estimate == 7.0 && close(i.boot_mean, 50.0) && close(i.low, 5.0) && close(i.high, 95.0),
            "{i:?}"
        );
    }

    #[test]
    fn p_values_count_the_null_side_and_are_floored() {
        let d = [-1.0, 0.0, 1.0, 2.0];
        assert_eq!(p_value(&d, Alternative::Greater), 0.5);
        assert_eq!(p_value(&d, Alternative::Less), 0.75);
        assert_eq!(p_value(&d, Alternative::TwoSided), 1.0);
        let positive = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(p_value(&positive, Alternative::Greater), 0.2);
        assert_eq!(p_value(&positive, Alternative::TwoSided), 0.2);
        assert_eq!(p_value(&positive, Alternative::Less), 1.0);
    }

    #[test]
    fn threshold_probabilities_follow_the_alternative() {
        let d = [-0.3, -0.1, 0.05, 0.2];
        assert_eq!(prob_abs_effect(&d, 0.05, Alternative::Greater), 0.5);
        assert_eq!(prob_abs_effect(&d, 0.1, Alternative::Less), 0.5);
        let base = [1.0, 1.0, 0.5, 2.0];
        assert_eq!(prob_rel_effect(&d, &base, 0.1, Alternative::Greater), 0.5);
    }
}
