//! What each figure shows, from the analyses: the bootstrap distributions, per-seed estimates and
//! the learning curve as the plain values [`super::figures`] draws (percent metrics ×100).

use super::distinct_steps;
use super::figures::{Curve, Distributions, Point, Seeds, Series};
use crate::analysis::{self, CurveOptions, CurveReport, Options, Quantity, Report, SeedRow};
use crate::results::ResultsTable;
use crate::results::filter::Key;
use mb_stats_core::metric::Metric;
use mb_stats_files::error::Result;

/// The axis label of a metric's values in figures.
pub(super) fn metric_label(metric: Metric) -> String {
    if metric.is_proportion() {
        format!("{metric} (%)")
    } else {
        metric.to_string()
    }
}

/// The value as plotted (percent metrics ×100, as in the tables).
pub(super) fn plotted(metric: Metric, value: f64) -> f64 {
    if metric.is_proportion() { 100.0 * value } else { value }
}

/// An interval as plotted, at position `at`.
pub(super) fn point<X>(at: X, interval: &mb_stats_core::summary::Interval, metric: Metric) -> Point<X> {
    let p = |x| plotted(metric, x);
    Point {
        at,
        estimate: p(interval.estimate),
        low: p(interval.low),
        high: p(interval.high),
    }
}

/// One distribution figure per cell.
pub(super) fn distribution_figures(report: &Report) -> Vec<(String, Distributions)> {
    let metric = report.method.metric;
    let scale = |v: &[f64]| v.iter().map(|&x| plotted(metric, x)).collect::<Vec<f64>>();
    let mut out: Vec<(String, Distributions)> = Vec::new();
    for reps in &report.replicates {
        let delta_row = report
            .rows
            .iter()
            .find(|r| r.cell == reps.cell && r.quantity == Quantity::Delta);
        match (&reps.replicates.treatment, delta_row) {
            (Some(t), Some(row)) => {
                let names: Vec<&str> = reps.group.splitn(2, " - ").collect();
                let deltas: Vec<f64> = t
                    .iter()
                    .zip(&reps.replicates.base)
                    .map(|(t, b)| plotted(metric, t - b))
                    .collect();
                let interval = (plotted(metric, row.interval.low), plotted(metric, row.interval.high));
                out.push((
                    reps.cell.clone(),
                    Distributions {
                        title: format!("{metric}: {} ({})", reps.group, reps.cell),
                        metric_label: metric_label(metric),
                        sides: vec![
                            (
                                names.get(1).unwrap_or(&"base").to_string(),
                                scale(&reps.replicates.base),
                            ),
                            (names.first().unwrap_or(&"treatment").to_string(), scale(t)),
                        ],
                        delta: Some((deltas, interval)),
                    },
                ));
            }
            _ => match out.last_mut() {
                Some((cell, figure)) if *cell == reps.cell => {
                    figure.sides.push((reps.group.clone(), scale(&reps.replicates.base)))
                }
                _ => out.push((
                    reps.cell.clone(),
                    Distributions {
                        title: format!("{metric} by procedure ({})", reps.cell),
                        metric_label: metric_label(metric),
                        sides: vec![(reps.group.clone(), scale(&reps.replicates.base))],
                        delta: None,
                    },
                )),
            },
        }
    }
    out
}

/// One per-seed figure per cell, each group against its procedure interval.
pub(super) fn seed_figures(seeds: &[SeedRow], report: &Report) -> Vec<(String, Seeds)> {
    let metric = report.method.metric;
    let mut out: Vec<(String, Seeds)> = Vec::new();
    for s in seeds {
        if out.last().is_none_or(|(cell, _)| *cell != s.cell) {
            let title = format!("{metric} per pretraining seed ({})", s.cell);
            out.push((
                s.cell.clone(),
                Seeds {
                    title,
                    metric_label: metric_label(metric),
                    groups: Vec::new(),
                },
            ));
        }
        let figure = &mut out.last_mut().expect("pushed").1;
        if figure.groups.last().is_none_or(|g| g.name != s.group) {
            let procedure = report
                .rows
                .iter()
                .find(|r| r.cell == s.cell && r.group == s.group && r.quantity != Quantity::Delta)
                .map(|r| point((), &r.interval, metric));
            figure.groups.push(Series {
                name: s.group.clone(),
                procedure,
                points: Vec::new(),
            });
        }
        figure
            .groups
            .last_mut()
            .expect("pushed")
            .points
            .push(point(s.seed, &s.interval, metric));
    }
    out
}

/// The learning curve (`mb-stats curve`) when the table has several steps and the cells are
/// the steps: per group, pointwise intervals and the simultaneous band.
pub(super) fn learning_curve(
    table: &ResultsTable,
    analysis: &Options,
    log_steps: bool,
) -> Result<Option<(CurveReport, Curve)>> {
    if distinct_steps(table) < 2 || analysis.by != [Key::Step] {
        return Ok(None);
    }
    let options = CurveOptions {
        analysis: Options {
            by: Vec::new(),
            comparison: None,
            ..analysis.clone()
        },
        tolerance: 0.01,
    };
    let report = analysis::curve(table, &options)?;
    let metric = analysis.metric;
    let p = |x: f64| plotted(metric, x);
    let groups = report
        .series
        .iter()
        .map(|s| Series {
            name: s.group.clone(),
            procedure: None,
            points: s
                .points
                .iter()
                .map(|q| point(q.step as f64, &q.interval, metric))
                .collect(),
        })
        .collect();
    let simultaneous = report
        .series
        .iter()
        .map(|s| s.points.iter().map(|q| (p(q.band.0), p(q.band.1))).collect())
        .collect();
    let title = format!("{metric} over pretraining");
    Ok(Some((
        report,
        Curve {
            title,
            metric_label: metric_label(metric),
            log_steps,
            groups,
            simultaneous,
        },
    )))
}
