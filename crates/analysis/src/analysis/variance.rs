//! `mb-stats variance`: variance components (seed, run within seed, example, seed × example,
//! residual) of a per-example metric, with Multi-Bootstrap intervals, and what they imply for the
//! standard error of a study with more seeds, runs or examples.

use rayon::prelude::*;

use super::design::{Cell, Parts, Prepared};
use super::{Method, Options};
use crate::results::ResultsTable;
use mb_stats_core::design::{Design, Side};
use mb_stats_core::interval::IntervalMethod;
use mb_stats_core::metric::Metric;
use mb_stats_core::resample::Resampler;
use mb_stats_core::summary::quantile;
use mb_stats_core::variance::{Components, components, resampled_components, seed_level_intervals};
use mb_stats_files::error::{Error, Result, input};

/// The components of one group in one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct VarianceRow {
    /// Cell of `--by`.
    pub cell: String,
    /// Group.
    pub group: String,
    /// Estimates.
    pub components: Components,
    /// Intervals, in the order of [`Components::named`]: bootstrap percentile, except seed and
    /// run under a non-percentile method (Satterthwaite, when the estimate is positive).
    pub intervals: [(f64, f64); 5],
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
    let group = table.group[group_rows[0]].clone();
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
    let estimate = components(&y);
    let design = Design::single(base.clone(), clusters).map_err(|e| input(format!("{}: {e}", where_(""))))?;
    let replicates = replicate_components(&y, &design, n, analysis);
    super::interrupted().map_err(input)?;
    Ok(VarianceRow {
        cell: cell.label().to_string(),
        group,
        components: estimate,
        intervals: intervals(&y, &replicates, analysis),
        n_seeds: base.seeds.len(),
        n_runs: runs,
        n_examples: n,
    })
}

/// The components of every bootstrap replicate of `design` (values `y` of its `n` examples),
/// in the order of [`Components::named`].
fn replicate_components(y: &[Vec<Vec<f64>>], design: &Design, n: usize, analysis: &Options) -> Vec<[f64; 5]> {
    let resampler = Resampler::new(design, analysis.sampling, analysis.rng_seed);
    let unit = design.unit_of_example();
    // Replicates in parallel; each reads its own random stream, so the order is fixed.
    (0..analysis.nboot as u64)
        .into_par_iter()
        .map(|b| {
            if mb_stats_core::interrupt::requested() {
                return [f64::NAN; 5];
            }
            let draw = resampler.draw(b);
            let expand = |counts: &[u32]| -> Vec<usize> {
                counts
                    .iter()
                    .enumerate()
                    .flat_map(|(i, &c)| std::iter::repeat_n(i, c as usize))
                    .collect()
            };
            let seeds = expand(&draw.base_seeds);
            let examples: Vec<usize> = (0..n)
                .flat_map(|e| std::iter::repeat_n(e, draw.units[unit[e] as usize] as usize))
                .collect();
            resampled_components(y, &seeds, &examples).named().map(|(_, v)| v)
        })
        .collect()
}

/// The intervals of the components: bootstrap percentile, except seed and run under a
/// non-percentile method.
fn intervals(y: &[Vec<Vec<f64>>], replicates: &[[f64; 5]], analysis: &Options) -> [(f64, f64); 5] {
    let tail = (1.0 - analysis.confidence) / 2.0;
    let mut intervals = std::array::from_fn(|k| {
        let mut v: Vec<f64> = replicates.iter().map(|r| r[k]).filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (quantile(&v, tail), quantile(&v, 1.0 - tail))
        }
    });
    // Few seeds: the seed and run components get Satterthwaite's χ² interval (the
    // bootstrap of S seeds cannot see past their spread); the example-level components
    // keep the bootstrap, which knows the clusters.
    if analysis.interval != IntervalMethod::Percentile {
        for (k, interval) in seed_level_intervals(y, analysis.confidence).into_iter().enumerate() {
            if let Some(i) = interval {
                intervals[k] = i;
            }
        }
    }
    intervals
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
