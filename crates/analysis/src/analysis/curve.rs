//! `mb-stats curve`: learning dynamics over intermediate checkpoints. Per step, the
//! Multi-Bootstrap estimate and interval; because the same seeds and examples are drawn at
//! every step, differences between steps are paired: δ to the previous and to the last step, a
//! simultaneous band over all steps (max-|t|), and the earliest step from which the metric stays
//! within a tolerance of its final value, with a percentile interval.

use std::collections::{BTreeMap, BTreeSet};

use super::{CellReplicates, Method, Options, Quantity, Report, Row, bootstrap};
use crate::results::ResultsTable;
use crate::results::filter::Key;
use mb_stats_core::curve::{earliest_within, simultaneous_band};
use mb_stats_core::engine::Residual;
use mb_stats_core::interval::{SeedLevel, Summarizer};
use mb_stats_core::resample::Sampling;
use mb_stats_core::summary::{Alternative, Interval};
use mb_stats_files::error::{Error, Result, input};

/// The settings of `mb-stats curve`.
#[derive(Clone, Debug)]
pub struct CurveOptions {
    /// The analysis; `by` (task, layer) splits series, steps are added by the curve.
    pub analysis: Options,
    /// Tolerance of "stays within the final value", in metric units.
    pub tolerance: f64,
}

/// A paired difference between steps: interval and two-sided p-value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepDelta {
    /// Estimate and interval.
    pub interval: Interval,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// One step of a curve.
#[derive(Clone, Debug, PartialEq)]
pub struct CurvePoint {
    /// Pretraining step.
    pub step: i64,
    /// Pointwise estimate and interval.
    pub interval: Interval,
    /// Simultaneous band over all steps.
    pub band: (f64, f64),
    /// δ to the previous step.
    pub delta_previous: Option<StepDelta>,
    /// δ to the last step.
    pub delta_last: StepDelta,
}

/// The curve of one group (and task/layer cell).
#[derive(Clone, Debug, PartialEq)]
pub struct CurveSeries {
    /// Group.
    pub group: String,
    /// The task/layer cell (`all` without `--by`).
    pub cell: String,
    /// Seeds used (present at every step).
    pub n_seeds: usize,
    /// Examples.
    pub n_examples: usize,
    /// Steps in order.
    pub points: Vec<CurvePoint>,
    /// Critical value of the simultaneous band.
    pub critical: f64,
    /// Earliest step within tolerance of the final value: (estimate, low, high).
    pub converged: (i64, i64, i64),
    /// Seeds dropped because they miss steps, with the steps they miss.
    pub dropped: Vec<(i64, Vec<i64>)>,
}

/// Everything `mb-stats curve` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct CurveReport {
    /// Settings of the per-step analyses.
    pub method: Method,
    /// Tolerance of the convergence step.
    pub tolerance: f64,
    /// One curve per group and cell.
    pub series: Vec<CurveSeries>,
    /// Series left out because they have one step only (a second arm evaluated at the final
    /// checkpoint beside a suite's curve), as "group (cell) at step K".
    pub single_step: Vec<String>,
}

/// A curve's identity: its group and the values of the `--by` columns.
type SeriesKey = (String, Vec<Option<String>>);

/// Runs `mb-stats curve`.
pub fn curve(table: &ResultsTable, options: &CurveOptions) -> Result<CurveReport> {
    let analysis = &options.analysis;
    check_options(options)?;
    let selected = stepped_rows(table)?;
    let table = selected.as_ref().unwrap_or(table);
    let (rows, mut dropped, single_step) = complete_seeds(table, &analysis.by)?;
    // A copy only when rows are left out (a suite of tens of millions of rows keeps them all).
    let selected = (rows.len() < table.len()).then(|| table.select(&rows));
    drop(rows);
    let filtered = selected.as_ref().unwrap_or(table);
    let mut by = analysis.by.clone();
    by.push(Key::Step);
    let per_step = Options {
        by,
        threshold_abs: None,
        threshold_rel: None,
        ..analysis.clone()
    };
    let report = bootstrap(filtered, &per_step)?;
    let (mut series, replicates) = assemble_series(&report, &analysis.by, &mut dropped)?;
    for (s, reps) in series.iter_mut().zip(&replicates) {
        finish(s, reps, analysis, options.tolerance);
    }
    Ok(CurveReport {
        method: report.method,
        tolerance: options.tolerance,
        series,
        single_step,
    })
}

/// Checks the settings of `mb-stats curve`: no comparison, no `--by step`, a tolerance ≥ 0.
fn check_options(options: &CurveOptions) -> Result<()> {
    let analysis = &options.analysis;
    if analysis.comparison.is_some() {
        return Err(Error::named(
            "curve: {base}/{treatment} do not apply; every group gets its curve",
        ));
    }
    if analysis.by.contains(&Key::Step) {
        return Err(Error::named(
            "{by} step: curve always runs over step; {by} takes task or layer",
        ));
    }
    if options.tolerance.is_nan() || options.tolerance < 0.0 {
        return Err(Error::named(format!(
            "{{tolerance}} must be at least 0, got {}",
            options.tolerance
        )));
    }
    Ok(())
}

/// The rows with a step, as a table of their own when some rows have none (`None`: all have).
/// A null step is "final or unknown": a group with no step at all (a one-seed baseline beside
/// a suite's intermediate checkpoints) has no curve and is left out; within a group that has
/// steps, a null step could be any of them and is refused.
fn stepped_rows(table: &ResultsTable) -> Result<Option<ResultsTable>> {
    let steps = table
        .step
        .as_ref()
        .ok_or_else(|| input("curve: the results have no step column"))?;
    let stepped: BTreeSet<&str> = (0..table.len())
        .filter(|&r| steps[r].is_some())
        .map(|r| &table.group[r])
        .collect();
    if let Some(row) = (0..table.len()).find(|&r| steps[r].is_none() && stepped.contains(&table.group[r])) {
        return Err(input(format!(
            "curve: column step has a null in row {row} of group {}, whose other rows have steps; every row of a curve needs its step",
            &table.group[row]
        )));
    }
    let with_steps: Vec<usize> = (0..table.len()).filter(|&r| steps[r].is_some()).collect();
    if with_steps.is_empty() {
        return Err(input("curve: no row has a step"));
    }
    Ok((with_steps.len() < table.len()).then(|| table.select(&with_steps)))
}

/// The series (group and `--by` values) of row `r`.
fn series_key(table: &ResultsTable, by: &[Key], r: usize) -> SeriesKey {
    let outer: Vec<Option<String>> = by.iter().map(|k| k.value(table, r)).collect();
    (table.group[r].to_string(), outer)
}

/// Per series, the seeds dropped with the steps they miss.
type Dropped = BTreeMap<SeriesKey, Vec<(i64, Vec<i64>)>>;

/// The rows of seeds present at every step of their series, per series the seeds dropped with
/// the steps they miss, and the series left out for having one step. Errors when no series has
/// two steps, or on a series with no complete seed.
fn complete_seeds(table: &ResultsTable, by: &[Key]) -> Result<(Vec<usize>, Dropped, Vec<String>)> {
    let steps = table.step.as_ref().expect("checked above");
    let mut seen: BTreeMap<SeriesKey, BTreeMap<i64, BTreeSet<i64>>> = BTreeMap::new();
    for (r, step) in steps.iter().enumerate() {
        seen.entry(series_key(table, by, r))
            .or_default()
            .entry(table.seed[r])
            .or_default()
            .insert(step.unwrap_or(0));
    }
    let mut dropped: BTreeMap<SeriesKey, Vec<(i64, Vec<i64>)>> = BTreeMap::new();
    let mut keep: BTreeMap<SeriesKey, BTreeSet<i64>> = BTreeMap::new();
    let mut single_step = Vec::new();
    for (key, seeds) in &seen {
        let all: BTreeSet<i64> = seeds.values().flatten().copied().collect();
        if all.len() < 2 {
            let cell: Vec<&str> = key.1.iter().flatten().map(String::as_str).collect();
            let cell = if cell.is_empty() {
                String::new()
            } else {
                format!(" ({})", cell.join(", "))
            };
            single_step.push(format!("{}{cell} at step {}", key.0, all.first().copied().unwrap_or(0)));
            continue;
        }
        for (&seed, present) in seeds {
            if present.len() == all.len() {
                keep.entry(key.clone()).or_default().insert(seed);
            } else {
                dropped
                    .entry(key.clone())
                    .or_default()
                    .push((seed, all.difference(present).copied().collect()));
            }
        }
        if !keep.contains_key(key) {
            return Err(input(format!("curve: no seed of group {} has every step", key.0)));
        }
    }
    if keep.is_empty() {
        return Err(input(format!(
            "curve: no group has two steps or more ({})",
            single_step.join("; ")
        )));
    }
    let rows: Vec<usize> = (0..table.len())
        .filter(|&r| {
            keep.get(&series_key(table, by, r))
                .is_some_and(|seeds| seeds.contains(&table.seed[r]))
        })
        .collect();
    Ok((rows, dropped, single_step))
}

/// The per-step estimate rows of `report` gathered into series (the points of each in step
/// order), with each step's replicates; `dropped` gives each series its dropped seeds.
fn assemble_series(
    report: &Report,
    by: &[Key],
    dropped: &mut BTreeMap<SeriesKey, Vec<(i64, Vec<i64>)>>,
) -> Result<(Vec<CurveSeries>, Vec<Vec<StepReplicates>>)> {
    let mut series: Vec<CurveSeries> = Vec::new();
    // Per series and step: the replicates, every seed's estimate and the resampled units.
    let mut replicates: Vec<Vec<StepReplicates>> = Vec::new();
    for (row, reps) in report
        .rows
        .iter()
        .filter(|r| r.quantity == Quantity::Estimate)
        .zip(&report.replicates)
    {
        let cell = series_cell(row, by);
        let step: i64 = row.step.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
        let point = CurvePoint {
            step,
            interval: row.interval,
            band: (0.0, 0.0),
            delta_previous: None,
            delta_last: StepDelta {
                interval: row.interval,
                p_value: 1.0,
            },
        };
        match series.last_mut() {
            Some(s) if s.group == row.group && s.cell == cell => {
                if (s.n_seeds, s.n_examples) != (row.n_seeds, row.n_examples) {
                    return Err(input(format!(
                        "curve: group {} covers {} examples at step {step} but {} at step {}; every step needs the same examples",
                        row.group, row.n_examples, s.n_examples, s.points[0].step
                    )));
                }
                s.points.push(point);
                replicates
                    .last_mut()
                    .expect("series has replicates")
                    .push(StepReplicates::of(reps));
            }
            _ => {
                let key = (
                    row.group.clone(),
                    by.iter()
                        .map(|k| match k {
                            Key::Task => row.task.clone(),
                            _ => row.layer.clone(),
                        })
                        .collect::<Vec<_>>(),
                );
                series.push(CurveSeries {
                    group: row.group.clone(),
                    cell,
                    n_seeds: row.n_seeds,
                    n_examples: row.n_examples,
                    points: vec![point],
                    critical: 0.0,
                    converged: (0, 0, 0),
                    dropped: dropped.remove(&key).unwrap_or_default(),
                });
                replicates.push(vec![StepReplicates::of(reps)]);
            }
        }
    }
    Ok((series, replicates))
}

/// The task/layer cell of a per-step row (`all` without `--by`).
fn series_cell(row: &Row, by: &[Key]) -> String {
    let cell: Vec<String> = [(Key::Task, &row.task), (Key::Layer, &row.layer)]
        .iter()
        .filter(|(k, _)| by.contains(k))
        .map(|(k, v)| format!("{}={}", k.name(), v.as_deref().unwrap_or("")))
        .collect();
    if cell.is_empty() {
        "all".to_string()
    } else {
        cell.join(",")
    }
}

/// One step's replicates with what calibrates them.
struct StepReplicates {
    values: Vec<f64>,
    seed_estimates: Vec<f64>,
    residual: Option<Residual>,
    n_units: usize,
}

impl StepReplicates {
    fn of(cell: &CellReplicates) -> Self {
        Self {
            values: cell.replicates.base.clone(),
            seed_estimates: cell.seed_estimates.base.clone(),
            residual: cell.seed_estimates.interaction.and_then(|i| i.base),
            n_units: cell.n_units,
        }
    }
}

/// Paired deltas, the simultaneous band and the convergence step of one series.
fn finish(series: &mut CurveSeries, steps: &[StepReplicates], analysis: &Options, tolerance: f64) {
    let sampling: Sampling = analysis.sampling;
    let summarizer = Summarizer {
        method: analysis.interval,
        confidence: analysis.confidence,
    };
    let replicates: Vec<Vec<f64>> = steps.iter().map(|s| s.values.clone()).collect();
    let levels: Vec<SeedLevel> = steps
        .iter()
        .map(|s| SeedLevel::side(sampling, &s.seed_estimates, s.residual, s.n_units))
        .collect();
    let estimates: Vec<f64> = series.points.iter().map(|p| p.interval.estimate).collect();
    let (critical, band) = simultaneous_band(&estimates, &replicates, analysis.confidence, analysis.interval, &levels);
    series.critical = critical;
    let last = estimates.len() - 1;
    let delta = |a: usize, b: usize| {
        let deltas: Vec<f64> = replicates[a].iter().zip(&replicates[b]).map(|(x, y)| x - y).collect();
        // The same seeds at every step, in the same order: per-seed deltas are paired. (The
        // interaction of the step difference is not known here: left in, which is conservative.)
        let seed_deltas: Vec<f64> = steps[a]
            .seed_estimates
            .iter()
            .zip(&steps[b].seed_estimates)
            .map(|(x, y)| x - y)
            .collect();
        let level = SeedLevel::drawn(sampling, &[&seed_deltas], steps[a].n_units);
        let estimate = estimates[a] - estimates[b];
        let interval = summarizer
            .interval(estimate, &deltas, &level)
            .within(analysis.metric.delta_range());
        StepDelta {
            interval,
            p_value: match interval.low.is_nan() {
                true => f64::NAN,
                false => summarizer.p_value(estimate, &deltas, &level, Alternative::TwoSided),
            },
        }
    };
    for (k, (point, band)) in series.points.iter_mut().zip(band).enumerate() {
        point.band = match analysis.metric.range() {
            Some((low, high)) => (band.0.clamp(low, high), band.1.clamp(low, high)),
            None => band,
        };
        point.delta_previous = (k > 0).then(|| delta(k, k - 1));
        point.delta_last = delta(k, last);
    }
    let steps: Vec<i64> = series.points.iter().map(|p| p.step).collect();
    let nboot = replicates[0].len();
    let mut converged: Vec<f64> = (0..nboot)
        .map(|b| {
            let values: Vec<f64> = replicates.iter().map(|r| r[b]).collect();
            steps[earliest_within(&values, tolerance)] as f64
        })
        .collect();
    converged.sort_by(f64::total_cmp);
    let tail = (1.0 - analysis.confidence) / 2.0;
    // Steps are discrete: the interval ends are order statistics (no interpolation).
    let order = |q: f64| converged[((converged.len() - 1) as f64 * q).round() as usize] as i64;
    series.converged = (
        steps[earliest_within(&estimates, tolerance)],
        order(tail),
        order(1.0 - tail),
    );
}
