//! The settings of an analysis ([`Options`]), their checks against a table, and the [`Method`]
//! every output records.

use super::values::ReplicateCount;
use crate::results::ResultsTable;
use crate::results::filter::{Filter, Key};
use mb_stats_core::design::Pairing;
use mb_stats_core::interval::IntervalMethod;
use mb_stats_core::metric::Metric;
use mb_stats_core::resample::Sampling;
use mb_stats_core::summary::Alternative;
use mb_stats_files::error::{Error, Result};

/// What `mb-stats bootstrap` computes.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The metric of each run.
    pub metric: Metric,
    /// Base and treatment filters of a comparison; `None` gives one estimate per group.
    pub comparison: Option<(Filter, Filter)>,
    /// Paired or unpaired seed draws for a comparison.
    pub pairing: Pairing,
    /// What the replicates resample.
    pub sampling: Sampling,
    /// Number of bootstrap replicates.
    pub nboot: ReplicateCount,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// How replicates become intervals and p-values.
    pub interval: IntervalMethod,
    /// Alternative hypothesis of the p-value.
    pub alternative: Alternative,
    /// Columns (task, layer, step) whose values split the table into cells.
    pub by: Vec<Key>,
    /// Resample examples even when the table has a `cluster` column.
    pub ignore_clusters: bool,
    /// Seed of the random draws.
    pub rng_seed: u64,
    /// Report P(δ ≥ x) for this x.
    pub threshold_abs: Option<f64>,
    /// Report P(δ / L ≥ x) for this x.
    pub threshold_rel: Option<f64>,
}

/// The command line's defaults: accuracy of each group, 1,000 replicates of seeds and examples,
/// 95% calibrated intervals, H1: δ > 0, random seed 0.
impl Default for Options {
    fn default() -> Self {
        Options {
            metric: Metric::default(),
            comparison: None,
            pairing: Pairing::Unpaired,
            sampling: Sampling::default(),
            nboot: ReplicateCount::DEFAULT,
            confidence: 0.95,
            interval: IntervalMethod::default(),
            alternative: Alternative::default(),
            by: Vec::new(),
            ignore_clusters: false,
            rng_seed: 0,
            threshold_abs: None,
            threshold_rel: None,
        }
    }
}

/// The settings every row shares, printed with every result.
#[derive(Clone, Debug, PartialEq)]
pub struct Method {
    /// Metric.
    pub metric: Metric,
    /// Replicates.
    pub nboot: usize,
    /// Confidence level.
    pub confidence: f64,
    /// Interval method.
    pub interval: IntervalMethod,
    /// What was resampled.
    pub sampling: Sampling,
    /// Pairing of a comparison (`None` without comparison).
    pub pairing: Option<Pairing>,
    /// Alternative of the p-values (`None` without comparison).
    pub alternative: Option<Alternative>,
    /// Seed of the random draws.
    pub rng_seed: u64,
    /// Whether examples were resampled by cluster.
    pub clustered: bool,
    /// Threshold of `prob_abs`.
    pub threshold_abs: Option<f64>,
    /// Threshold of `prob_rel`.
    pub threshold_rel: Option<f64>,
}

impl Method {
    /// The settings `options` record; `clustered` when examples are resampled by cluster.
    pub fn new(options: &Options, clustered: bool) -> Self {
        Method {
            metric: options.metric,
            nboot: options.nboot.get(),
            confidence: options.confidence,
            interval: options.interval,
            sampling: options.sampling,
            pairing: options.comparison.as_ref().map(|_| options.pairing),
            alternative: options.comparison.as_ref().map(|_| options.alternative),
            rng_seed: options.rng_seed,
            clustered,
            threshold_abs: options.threshold_abs,
            threshold_rel: options.threshold_rel,
        }
    }

    /// The unit of example resampling: `clusters` or `examples`.
    pub fn unit(&self) -> &'static str {
        if self.clustered { "clusters" } else { "examples" }
    }
}

impl Options {
    /// Checks the settings and that the table has the columns they need.
    pub fn check(&self, table: &ResultsTable) -> Result<()> {
        let options = self;
        if !(options.confidence > 0.0 && options.confidence < 1.0) {
            return Err(Error::named(format!(
                "{{confidence}} must be strictly between 0 and 1, got {}",
                options.confidence
            )));
        }
        for key in &options.by {
            let present = match key {
                Key::Task => table.task.is_some(),
                Key::Layer => table.layer.is_some(),
                Key::Step => table.step.is_some(),
                _ => {
                    return Err(Error::named(format!(
                        "{{by}} {}: expected task, layer or step",
                        key.name()
                    )));
                }
            };
            if !present {
                return Err(Error::named(format!(
                    "{{by}} {}: the results have no {} column",
                    key.name(),
                    key.name()
                )));
            }
        }
        if options.comparison.is_none() && (options.threshold_abs.is_some() || options.threshold_rel.is_some()) {
            return Err(Error::named(
                "{threshold_abs}/{threshold_rel} need a comparison ({base} and {treatment})",
            ));
        }
        for field in options.metric.fields() {
            let present = match field.name() {
                "label" => table.label.is_some(),
                "prediction" => table.prediction.is_some(),
                _ => table.score.is_some(),
            };
            if !present {
                return Err(Error::named(format!(
                    "{{metric}} {} needs column {}, which the results do not have",
                    options.metric,
                    field.name()
                )));
            }
        }
        Ok(())
    }
}
