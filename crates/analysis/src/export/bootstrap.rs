//! The bootstrap report (`mb-stats bootstrap`, the report's summaries): one long row per (cell,
//! quantity) with every column of [`COLUMNS`]; per cell a text table with the intervals; the
//! method line and the thresholds and notes under them.

use super::table::{Block, Grid, Section, Table, Tabular, Value};
use super::{format_interval, format_p, method_line};
use crate::analysis::{Method, Report, Row};

/// The columns of the CSV (and the keys of the JSON rows), in this spelling and order.
pub const COLUMNS: [&str; 30] = [
    "group",
    "task",
    "layer",
    "step",
    "metric",
    "quantity",
    "estimate",
    "boot_mean",
    "low",
    "high",
    "p_value",
    "p_holm",
    "p_bh",
    "n_seeds",
    "n_runs",
    "n_examples",
    "nboot",
    "confidence",
    "sampling",
    "pairing",
    "alternative",
    "rng_seed",
    "resample_unit",
    "n_clusters",
    "threshold_abs",
    "p_threshold_abs",
    "threshold_rel",
    "p_threshold_rel",
    "note",
    "interval",
];

impl Tabular for Report {
    fn table(&self) -> Table {
        let mut table = Table {
            columns: COLUMNS.to_vec(),
            rows: self.rows.iter().map(|r| values(r, &self.method)).collect(),
            document: Vec::new(),
            sections: Vec::new(),
            footer: vec![
                Block::paragraph(method_line(&self.method)),
                Block::list(footnotes(self)),
            ],
        };
        let cells = cells(self);
        let titled = cells.len() > 1;
        table.sections = cells
            .into_iter()
            .map(|(cell, rows)| Section::new(titled.then(|| cell.to_string()), grid(&rows, &self.method)))
            .collect();
        table.document = vec![
            ("method", method_record(&self.method)),
            ("rows", table.records(&COLUMNS)),
        ];
        table
    }
}

/// One row's values in [`COLUMNS`] order.
fn values(row: &Row, method: &Method) -> Vec<Value> {
    let delta = row.p_value.is_some();
    vec![
        Value::text(&row.group),
        Value::text_or_empty(row.task.as_ref()),
        Value::text_or_empty(row.layer.as_ref()),
        Value::text_or_empty(row.step.as_ref()),
        Value::text(method.metric.name()),
        Value::text(row.quantity.name()),
        Value::Number(row.interval.estimate),
        Value::Number(row.interval.boot_mean),
        Value::defined(row.interval.low),
        Value::defined(row.interval.high),
        Value::number(row.p_value.filter(|p| !p.is_nan())),
        Value::number(row.p_holm),
        Value::number(row.p_bh),
        Value::count(row.n_seeds),
        Value::count(row.n_runs),
        Value::count(row.n_examples),
        Value::count(method.nboot),
        Value::Number(method.confidence),
        Value::text(method.sampling.name()),
        Value::text_or_empty(method.pairing),
        Value::text_or_empty(method.alternative.map(|a| a.name())),
        Value::Count(method.rng_seed),
        Value::text(method.unit()),
        row.n_clusters.map_or(Value::Empty, Value::count),
        Value::number(method.threshold_abs.filter(|_| delta)),
        Value::number(row.prob_abs),
        Value::number(method.threshold_rel.filter(|_| delta)),
        Value::number(row.prob_rel),
        Value::text_or_empty(Some(&row.note).filter(|n| !n.is_empty())),
        Value::text(method.interval.name()),
    ]
}

/// The method as a JSON record.
fn method_record(m: &Method) -> Value {
    Value::Record(vec![
        ("description", Value::Text(method_line(m))),
        ("metric", Value::text(m.metric.name())),
        ("nboot", Value::count(m.nboot)),
        ("confidence", Value::Number(m.confidence)),
        ("interval", Value::text(m.interval.name())),
        ("sampling", Value::text(m.sampling.name())),
        ("resample_unit", Value::text(m.unit())),
        ("pairing", Value::text_or_empty(m.pairing)),
        ("alternative", Value::text_or_empty(m.alternative.map(|a| a.name()))),
        ("rng_seed", Value::Count(m.rng_seed)),
        ("tool", Value::Text(format!("mb-stats {}", env!("CARGO_PKG_VERSION")))),
    ])
}

/// The rows of a report split by cell, in order (one table per cell of `--by`).
pub(crate) fn cells(report: &Report) -> Vec<(&str, Vec<&Row>)> {
    let mut out: Vec<(&str, Vec<&Row>)> = Vec::new();
    for row in &report.rows {
        match out.last_mut() {
            Some((cell, rows)) if *cell == row.cell => rows.push(row),
            _ => out.push((&row.cell, vec![row])),
        }
    }
    out
}

/// The text table of one cell: numbers with their interval, p-values where tested.
pub(crate) fn grid(rows: &[&Row], method: &Method) -> Grid {
    let tested = rows.iter().any(|r| r.p_value.is_some());
    let adjusted = rows.iter().any(|r| r.p_holm.is_some_and(|h| Some(h) != r.p_value));
    let level = format!("{}% CI", method.confidence * 100.0);
    let mut header: Vec<String> = vec!["group".into(), "quantity".into(), format!("estimate [{level}]")];
    if tested {
        header.push("p".into());
    }
    if adjusted {
        header.extend(["p (Holm)".into(), "p (BH)".into()]);
    }
    header.extend(["seeds".into(), "runs".into(), "examples".into()]);
    let p = |v: Option<f64>| v.map_or(String::new(), format_p);
    let body = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.group.clone(),
                r.quantity.name().to_string(),
                format_interval(method.metric, &r.interval),
            ];
            if tested {
                cells.push(p(r.p_value));
            }
            if adjusted {
                cells.extend([p(r.p_holm), p(r.p_bh)]);
            }
            let examples = match r.n_clusters {
                Some(c) => format!("{} ({c} clusters)", r.n_examples),
                None => r.n_examples.to_string(),
            };
            cells.extend([r.n_seeds.to_string(), r.n_runs.to_string(), examples]);
            cells
        })
        .collect();
    Grid { header, body }
}

/// Extra lines under the tables: thresholds and notes.
fn footnotes(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    for r in report
        .rows
        .iter()
        .filter(|r| r.p_value.is_some() || r.interval.low.is_nan())
    {
        let cell = [&r.task, &r.layer, &r.step]
            .iter()
            .filter_map(|v| v.as_deref())
            .collect::<Vec<_>>()
            .join(",");
        let at = if cell.is_empty() {
            String::new()
        } else {
            format!(" [{cell}]")
        };
        if let (Some(x), Some(p)) = (report.method.threshold_abs, r.prob_abs) {
            lines.push(format!("{}{at}: P(delta >= {x}) = {p:.3}", r.group));
        }
        if let (Some(x), Some(p)) = (report.method.threshold_rel, r.prob_rel) {
            lines.push(format!("{}{at}: P(delta / base >= {x}) = {p:.3}", r.group));
        }
        if !r.note.is_empty() {
            lines.push(format!("{}{at}: {}", r.group, r.note));
        }
    }
    lines
}
