//! Exporters of a bootstrap report, one per format behind a one-method trait (as hyperfine's
//! `export/`), plus the replicate dump.

mod csv;
pub mod curve;
mod json;
pub(crate) mod latex;
pub(crate) mod markdown;
pub mod power;
pub mod samples;
pub mod seeds;
pub mod variance;

use std::path::Path;

use crate::analysis::{Method, Report, Row};
use mb_stats_core::metric::Metric;
use mb_stats_core::summary::Interval;
use mb_stats_files::error::{Result, input};

/// Turns a report into the bytes of one file format.
pub trait Exporter {
    /// The report in this format.
    fn serialize(&self, report: &Report) -> Vec<u8>;
}

/// A human-readable table: header and rows of cells.
pub(crate) type TextTable = (Vec<String>, Vec<Vec<String>>);

/// The output formats of `-o`, chosen by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.csv`: one row per (cell, quantity), full precision.
    Csv,
    /// `.json`: the method and the rows.
    Json,
    /// `.md`: a Markdown table with the method line.
    Markdown,
    /// `.tex`: a booktabs table with the method line.
    Latex,
}

impl Format {
    /// The format of `path` by its extension; the error names the flag.
    pub fn from_path(flag: &str, path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Ok(Format::Csv),
            Some("json") => Ok(Format::Json),
            Some("md") => Ok(Format::Markdown),
            Some("tex") => Ok(Format::Latex),
            _ => Err(input(format!(
                "{flag} {}: expected a file ending in .csv, .json, .md or .tex",
                path.display()
            ))),
        }
    }

    /// The exporter of this format.
    pub fn exporter(self) -> Box<dyn Exporter> {
        match self {
            Format::Csv => Box::new(csv::Csv),
            Format::Json => Box::new(json::Json),
            Format::Markdown => Box::new(markdown::Markdown),
            Format::Latex => Box::new(latex::Latex),
        }
    }
}

/// The terminal table: the Markdown table, which is aligned and readable as text.
pub fn terminal(report: &Report) -> String {
    String::from_utf8(markdown::Markdown.serialize(report)).expect("markdown is UTF-8")
}

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

/// A typed cell of the long table.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Text(String),
    Number(f64),
    Count(u64),
    Empty,
}

impl Value {
    fn text(v: Option<&String>) -> Self {
        v.map_or(Value::Empty, |s| Value::Text(s.clone()))
    }

    fn number(v: Option<f64>) -> Self {
        v.map_or(Value::Empty, Value::Number)
    }

    /// Full-precision text (shortest representation that reads back the same f64).
    fn plain(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            Value::Number(x) => x.to_string(),
            Value::Count(n) => n.to_string(),
            Value::Empty => String::new(),
        }
    }
}

/// One row's values in [`COLUMNS`] order.
fn values(row: &Row, method: &Method) -> Vec<Value> {
    let t = |s: &str| Value::Text(s.to_string());
    let delta = row.p_value.is_some();
    vec![
        t(&row.group),
        Value::text(row.task.as_ref()),
        Value::text(row.layer.as_ref()),
        Value::text(row.step.as_ref()),
        t(method.metric.name()),
        t(row.quantity.name()),
        Value::Number(row.interval.estimate),
        Value::Number(row.interval.boot_mean),
        Value::Number(row.interval.low),
        Value::Number(row.interval.high),
        Value::number(row.p_value),
        Value::number(row.p_holm),
        Value::number(row.p_bh),
        Value::Count(row.n_seeds as u64),
        Value::Count(row.n_runs as u64),
        Value::Count(row.n_examples as u64),
        Value::Count(method.nboot as u64),
        Value::Number(method.confidence),
        t(method.sampling.name()),
        method.pairing.map_or(Value::Empty, |p| t(&p.to_string())),
        method.alternative.map_or(Value::Empty, |a| t(a.name())),
        Value::Count(method.rng_seed),
        t(method.unit()),
        row.n_clusters.map_or(Value::Empty, |n| Value::Count(n as u64)),
        Value::number(method.threshold_abs.filter(|_| delta)),
        Value::number(row.prob_abs),
        Value::number(method.threshold_rel.filter(|_| delta)),
        Value::number(row.prob_rel),
        if row.note.is_empty() {
            Value::Empty
        } else {
            t(&row.note)
        },
        t(method.interval.name()),
    ]
}

/// The method line without the unit note (for outputs whose values are not the metric's).
pub(crate) fn method_line_raw(method: &Method) -> String {
    let mut parts = vec![
        format!("metric {}", method.metric),
        format!("nboot {}", method.nboot),
        format!("{}% {} intervals", method.confidence * 100.0, method.interval),
        format!("sampling {} ({} resampled)", method.sampling.name(), method.unit()),
    ];
    if let (Some(p), Some(a)) = (method.pairing, method.alternative) {
        parts.push(format!("{p} seeds"));
        parts.push(format!("alternative {a}"));
    }
    parts.push(format!("rng seed {}", method.rng_seed));
    format!("Multi-Bootstrap: {}", parts.join(", "))
}

/// The method line printed under every table, with the unit of the printed values.
pub(crate) fn method_line(method: &Method) -> String {
    method_line_raw(method) + unit_note(method.metric)
}

/// How the human-readable tables print a metric's values: metrics on [0, 1] as percentages
/// with one decimal (`74.7 [74.1, 75.4]`), correlations with three decimals, means with four.
pub fn format_value(metric: Metric, value: f64) -> String {
    match metric {
        Metric::Accuracy | Metric::Precision | Metric::Recall | Metric::F1 | Metric::MacroF1 | Metric::Auc => {
            format!("{:.1}", 100.0 * value)
        }
        Metric::Mcc | Metric::Pearson | Metric::Spearman => format!("{value:.3}"),
        Metric::Mean => format!("{value:.4}"),
    }
}

/// `estimate [low, high]` in the metric's format.
pub fn format_interval(metric: Metric, i: &Interval) -> String {
    let f = |x| format_value(metric, x);
    format!("{} [{}, {}]", f(i.estimate), f(i.low), f(i.high))
}

/// The unit note of a metric's printed values.
fn unit_note(metric: Metric) -> &'static str {
    match format_value(metric, 0.5).as_str() {
        "50.0" => " (values in %)",
        _ => "",
    }
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

/// The human-readable table of one cell shared by the Markdown and LaTeX exporters: header
/// and rows, numbers with their interval.
pub(crate) fn human_table(rows: &[&Row], method: &Method) -> (Vec<String>, Vec<Vec<String>>) {
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
    (header, body)
}

/// p-values with three significant digits.
pub(crate) fn format_p(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.2e}")
    }
}

/// Extra lines under a table: thresholds and notes.
fn footnotes(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    for r in report.rows.iter().filter(|r| r.p_value.is_some()) {
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

/// Writes the report to `path` in the format of its extension, atomically.
pub fn write(report: &Report, path: &Path) -> Result<()> {
    let format = Format::from_path("-o", path)?;
    mb_stats_files::output::atomic_write(path, &format.exporter().serialize(report))
}
