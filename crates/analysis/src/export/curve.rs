//! `mb-stats curve`: one long row per (series, step) with the pointwise interval, the
//! simultaneous band and the paired deltas; per series a text table, the band's critical value,
//! the convergence step and the dropped seeds.

use super::table::{Block, Grid, Section, Shown, Table, Tabular, Value};
use super::{format_interval, format_p, format_value, method_line};
use crate::analysis::{CurvePoint, CurveReport, CurveSeries, StepDelta};

/// The CSV columns.
pub const COLUMNS: [&str; 22] = [
    "group",
    "cell",
    "step",
    "estimate",
    "low",
    "high",
    "band_low",
    "band_high",
    "delta_previous",
    "delta_previous_low",
    "delta_previous_high",
    "p_previous",
    "delta_last",
    "delta_last_low",
    "delta_last_high",
    "p_last",
    "n_seeds",
    "n_examples",
    "critical",
    "converged_step",
    "converged_low",
    "converged_high",
];

impl Tabular for CurveReport {
    fn table(&self) -> Table {
        let method = method_line(&self.method);
        let paired = format!("{method} Steps paired: the same seeds and examples are drawn at every step.");
        Table {
            columns: COLUMNS.to_vec(),
            rows: self
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(move |p| row(s, p)))
                .collect(),
            document: vec![
                (
                    "method",
                    Value::Record(vec![
                        ("description", Value::Text(method.clone())),
                        ("tolerance", Value::Number(self.tolerance)),
                    ]),
                ),
                ("series", Value::List(self.series.iter().map(record).collect())),
                (
                    "single_step",
                    Value::List(self.single_step.iter().map(|s| Value::Text(s.clone())).collect()),
                ),
            ],
            sections: self.series.iter().map(|s| section(self, s)).collect(),
            footer: [
                Block::paragraph(paired).only(Shown::Markdown),
                Block::paragraph(method).only(Shown::Latex),
            ]
            .into_iter()
            .chain((!self.single_step.is_empty()).then(|| {
                Block::paragraph(format!(
                    "No curve for series with one step: {}.",
                    self.single_step.join("; ")
                ))
            }))
            .collect(),
        }
    }
}

/// One long row.
fn row(s: &CurveSeries, p: &CurvePoint) -> Vec<Value> {
    let i = &p.interval;
    let delta = |d: Option<&StepDelta>| {
        let v = |f: fn(&StepDelta) -> f64| Value::number(d.map(f));
        [
            v(|d| d.interval.estimate),
            v(|d| d.interval.low),
            v(|d| d.interval.high),
            v(|d| d.p_value),
        ]
    };
    let head = [
        Value::text(&s.group),
        Value::text(&s.cell),
        Value::Integer(p.step),
        Value::Number(i.estimate),
        Value::Number(i.low),
        Value::Number(i.high),
        Value::Number(p.band.0),
        Value::Number(p.band.1),
    ];
    let tail = [
        Value::count(s.n_seeds),
        Value::count(s.n_examples),
        Value::Number(s.critical),
        Value::Integer(s.converged.0),
        Value::Integer(s.converged.1),
        Value::Integer(s.converged.2),
    ];
    [
        &head[..],
        &delta(p.delta_previous.as_ref()),
        &delta(Some(&p.delta_last)),
        &tail,
    ]
    .concat()
}

/// A paired delta as a JSON record.
fn delta(d: &StepDelta) -> Value {
    Value::Record(vec![
        ("estimate", Value::Number(d.interval.estimate)),
        ("low", Value::Number(d.interval.low)),
        ("high", Value::Number(d.interval.high)),
        ("p_value", Value::Number(d.p_value)),
    ])
}

/// One step as a JSON record.
fn point(p: &CurvePoint) -> Value {
    Value::Record(vec![
        ("step", Value::Integer(p.step)),
        ("estimate", Value::Number(p.interval.estimate)),
        ("low", Value::Number(p.interval.low)),
        ("high", Value::Number(p.interval.high)),
        ("band_low", Value::Number(p.band.0)),
        ("band_high", Value::Number(p.band.1)),
        ("delta_previous", p.delta_previous.as_ref().map_or(Value::Empty, delta)),
        ("delta_last", delta(&p.delta_last)),
    ])
}

/// One series as a JSON record, with its points.
fn record(s: &CurveSeries) -> Value {
    let dropped = s.dropped.iter().map(|(seed, missing)| {
        Value::Record(vec![
            ("seed", Value::Integer(*seed)),
            (
                "missing_steps",
                Value::List(missing.iter().map(|&m| Value::Integer(m)).collect()),
            ),
        ])
    });
    Value::Record(vec![
        ("group", Value::text(&s.group)),
        ("cell", Value::text(&s.cell)),
        ("n_seeds", Value::count(s.n_seeds)),
        ("n_examples", Value::count(s.n_examples)),
        ("critical", Value::Number(s.critical)),
        (
            "converged",
            Value::Record(vec![
                ("step", Value::Integer(s.converged.0)),
                ("low", Value::Integer(s.converged.1)),
                ("high", Value::Integer(s.converged.2)),
            ]),
        ),
        ("dropped", Value::List(dropped.collect())),
        ("points", Value::List(s.points.iter().map(point).collect())),
    ])
}

/// One series as printed: a title, the table and the summary lines.
fn section(report: &CurveReport, s: &CurveSeries) -> Section {
    let metric = report.method.metric;
    let level = report.method.confidence * 100.0;
    let header = vec![
        "step".to_string(),
        format!("estimate [{level}% CI]"),
        format!("simultaneous {level}% band"),
        "δ previous".to_string(),
        "p".to_string(),
        "δ last".to_string(),
        "p".to_string(),
    ];
    let f = |x: f64| format_value(metric, x);
    let body = s
        .points
        .iter()
        .map(|p| {
            vec![
                p.step.to_string(),
                format_interval(metric, &p.interval),
                format!("[{}, {}]", f(p.band.0), f(p.band.1)),
                p.delta_previous
                    .map_or(String::new(), |d| format_interval(metric, &d.interval)),
                p.delta_previous.map_or(String::new(), |d| format_p(d.p_value)),
                format_interval(metric, &p.delta_last.interval),
                format_p(p.delta_last.p_value),
            ]
        })
        .collect();
    let mut notes = vec![
        format!(
            "{} seeds × {} examples at every step; simultaneous band: critical value {:.3} (max-|t|)",
            s.n_seeds, s.n_examples, s.critical
        ),
        format!(
            "within {} (metric units) of the final value from step {} on; {level}% percentile interval of that step [{}, {}]",
            report.tolerance, s.converged.0, s.converged.1, s.converged.2
        ),
    ];
    if !s.dropped.is_empty() {
        let seeds: Vec<String> = s
            .dropped
            .iter()
            .map(|(seed, missing)| match missing.len() {
                1..=3 => format!(
                    "{seed} (missing {})",
                    missing.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                ),
                n => format!("{seed} (missing {n} steps)"),
            })
            .collect();
        notes.push(format!("dropped seeds without every step: {}", seeds.join("; ")));
    }
    Section {
        title: Some((format!("{} ({})", s.group, s.cell), Shown::Everywhere)),
        grids: vec![Grid { header, body }],
        notes,
    }
}
