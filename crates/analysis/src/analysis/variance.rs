//! `mb-stats variance`: variance components (seed, run within seed, example, seed × example,
//! residual) of a per-example metric, with intervals that stay valid at and near zero (the
//! modified large-sample method on the ANOVA's mean squares, [`Combination::interval`]), the
//! test of "no seed effect" that `mb-stats seeds` runs, and what the components imply for the
//! standard error of a study with more seeds, runs or examples.
//!
//! Reported estimates are the method-of-moments estimates truncated at 0 (a variance is not
//! negative; a negative moment estimate says the component is too small to see), so every
//! interval contains its estimate.

use super::design::{Cell, Parts, Prepared};
use super::seeds::{Heterogeneity, SeedsOptions, arm_test};
use super::{Method, Options};
use crate::results::ResultsTable;
use mb_stats_core::design::Side;
use mb_stats_core::metric::Metric;
use mb_stats_core::variance::{Components, component_intervals, components};
use mb_stats_files::error::{Error, Result, input};

/// The components of one group in one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct VarianceRow {
    /// Cell of `--by`.
    pub cell: String,
    /// Group.
    pub group: String,
    /// Estimates, truncated at 0 (NaN where not identified).
    pub components: Components,
    /// Modified large-sample intervals, in the order of [`Components::named`].
    pub intervals: [(f64, f64); 5],
    /// The test of "no seed effect" of `mb-stats seeds` on the same rows (`None` with one seed).
    pub seed_test: Option<Heterogeneity>,
    /// Why the seed test and the seed component's interval disagree, when they do.
    pub note: Option<String>,
    /// Seeds.
    pub n_seeds: usize,
    /// Runs per seed.
    pub n_runs: usize,
    /// Examples.
    pub n_examples: usize,
}

impl VarianceRow {
    /// Implied standard errors of the procedure estimate: (seeds, runs, examples, se) for the
    /// observed design and for twice the seeds, runs or examples.
    pub fn implied(&self) -> Vec<(usize, usize, usize, f64)> {
        let (s, r, n) = (self.n_seeds, self.n_runs, self.n_examples);
        [(s, r, n), (2 * s, r, n), (s, 2 * r, n), (s, r, 2 * n)]
            .into_iter()
            .map(|(s, r, n)| (s, r, n, self.components.standard_error(s as f64, r as f64, n as f64)))
            .collect()
    }
}

/// Everything `mb-stats variance` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct VarianceReport {
    /// Settings of the analysis.
    pub method: Method,
    /// One row per group and cell.
    pub rows: Vec<VarianceRow>,
}

/// Runs `mb-stats variance` on every group and cell.
pub fn variance(table: &ResultsTable, analysis: &Options) -> Result<VarianceReport> {
    if !matches!(analysis.metric, Metric::Accuracy | Metric::Mean) {
        return Err(Error::named(format!(
            "{{metric}} {}: variance components need a per-example metric (accuracy or mean)",
            analysis.metric
        )));
    }
    if analysis.comparison.is_some() {
        return Err(Error::named(
            "variance: {base}/{treatment} do not apply; every group gets its components",
        ));
    }
    let prepared = Prepared::new(table, analysis)?;
    let mut rows = Vec::new();
    for (cell, cell_rows) in prepared.cells() {
        for group_rows in prepared.by_group(cell_rows) {
            rows.push(group_components(&prepared, table, cell, &group_rows, analysis)?);
        }
    }
    Ok(VarianceReport {
        method: prepared.method(),
        rows,
    })
}

/// The components of one group in one cell, with their intervals.
fn group_components(
    prepared: &Prepared,
    table: &ResultsTable,
    cell: &Cell,
    group_rows: &[usize],
    analysis: &Options,
) -> Result<VarianceRow> {
    let group = table.group[group_rows[0]].to_string();
    let where_ = |_: &str| format!("group {group} (cell {})", cell.label());
    let Parts { base, clusters, n, .. } = prepared.parts(group_rows, None, &where_)?;
    let runs = base.seeds[0].runs.len();
    if let Some(seed) = base.seeds.iter().find(|s| s.runs.len() != runs) {
        return Err(input(format!(
            "{}: seed {} has {} runs but seed {} has {runs}; variance components need the same runs for every seed",
            where_(""),
            seed.id,
            seed.runs.len(),
            base.seeds[0].id
        )));
    }
    let y = per_example_values(&base, analysis.metric).map_err(|e| input(format!("{}: {e}", where_(""))))?;
    let units = clusters
        .as_ref()
        .map(|c| c.iter().map(|&u| u as usize + 1).max().unwrap_or(0));
    let intervals = component_intervals(&y, units, analysis.confidence);
    let seed_test = match base.seeds.len() {
        0 | 1 => None,
        _ => {
            let options = SeedsOptions {
                analysis: analysis.clone(),
                alpha: 1.0 - analysis.confidence,
                permutations: SEED_TEST_PERMUTATIONS,
            };
            let test = arm_test(cell.label(), group.clone(), &base, clusters.as_ref(), &options);
            Some(test.map_err(|e| input(format!("{}: {e}", where_(""))))?)
        }
    };
    super::interrupted().map_err(input)?;
    let estimate = components(&y);
    let note = seed_test
        .as_ref()
        .and_then(|t| disagreement(t, intervals[0], &estimate, n, analysis.confidence));
    let truncate = |v: f64| if v.is_nan() { v } else { v.max(0.0) };
    Ok(VarianceRow {
        cell: cell.label().to_string(),
        group,
        components: Components {
            seed: truncate(estimate.seed),
            run: truncate(estimate.run),
            example: truncate(estimate.example),
            seed_example: truncate(estimate.seed_example),
            residual: truncate(estimate.residual),
        },
        intervals,
        seed_test,
        note,
        n_seeds: base.seeds.len(),
        n_runs: runs,
        n_examples: n,
    })
}

/// Permutations of the seed test (as `mb-stats seeds` defaults to).
const SEED_TEST_PERMUTATIONS: usize = 1000;

/// Why the seed test (significant at 1 − `confidence`) and the seed component's interval (its
/// lower end above 0) disagree, or `None` when they tell the same story.
fn disagreement(
    test: &Heterogeneity,
    seed_interval: (f64, f64),
    estimate: &Components,
    n_examples: usize,
    confidence: f64,
) -> Option<String> {
    let alpha = 1.0 - confidence;
    let significant = test.result.p_value <= alpha;
    let above_zero = seed_interval.0 > 0.0;
    if significant == above_zero || seed_interval.0.is_nan() {
        return None;
    }
    let carried = estimate.seed_example.max(0.0) / n_examples as f64;
    let why = format!(
        "the test compares whole seeds (their means also carry the seed × example interaction averaged \
         over the examples, {carried:.3e}, and the runs), while the component is the seed main effect \
         alone, and the interval's lower end is a one-sided {}% bound",
        100.0 * (1.0 - alpha / 2.0)
    );
    Some(match significant {
        true => format!(
            "the {} seed test finds a seed effect (p = {:.3}) but the seed component's interval reaches 0: {why}",
            test.test, test.result.p_value
        ),
        false => format!(
            "the seed component's interval excludes 0 but the {} seed test does not reject (p = {:.3}): {why}",
            test.test, test.result.p_value
        ),
    })
}

/// `y[s][r][e]`: correctness (accuracy) or score (mean) of every run on every example.
fn per_example_values(side: &Side, metric: Metric) -> std::result::Result<Vec<Vec<Vec<f64>>>, String> {
    side.seeds
        .iter()
        .map(|seed| {
            seed.runs
                .iter()
                .map(|run| {
                    metric.check(run)?;
                    Ok(match metric {
                        Metric::Accuracy => {
                            let (label, prediction) = (
                                run.label.as_deref().unwrap_or(&[]),
                                run.prediction.as_deref().unwrap_or(&[]),
                            );
                            label.iter().zip(prediction).map(|(y, p)| f64::from(y == p)).collect()
                        }
                        _ => run.score.clone().unwrap_or_default(),
                    })
                })
                .collect()
        })
        .collect()
}
