//! Exporters of a bootstrap report, one per format behind a one-method trait (as hyperfine's
//! `export/`), plus the replicate dump.

mod csv;
mod json;
mod latex;
mod markdown;
pub mod samples;

use std::path::Path;

use crate::analysis::{Method, Report, Row};
use crate::error::{Result, input};

/// Turns a report into the bytes of one file format.
pub trait Exporter {
    /// The report in this format.
    fn serialize(&self, report: &Report) -> Vec<u8>;
}

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
pub const COLUMNS: [&str; 29] = [
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
    ]
}

/// The method line printed under every table.
fn method_line(method: &Method) -> String {
    let mut parts = vec![
        format!("metric {}", method.metric),
        format!("nboot {}", method.nboot),
        format!("{}% percentile intervals", method.confidence * 100.0),
        format!("sampling {} ({} resampled)", method.sampling.name(), method.unit()),
    ];
    if let (Some(p), Some(a)) = (method.pairing, method.alternative) {
        parts.push(format!("{p} seeds"));
        parts.push(format!("alternative {a}"));
    }
    parts.push(format!("rng seed {}", method.rng_seed));
    format!("Multi-Bootstrap: {}", parts.join(", "))
}

/// The human-readable columns shared by the Markdown and LaTeX tables: header and rows.
fn human_table(report: &Report) -> (Vec<String>, Vec<Vec<String>>) {
    let rows = &report.rows;
    let any = |f: fn(&Row) -> bool| rows.iter().any(f);
    let tested = any(|r| r.p_value.is_some());
    let several = rows.iter().filter(|r| r.p_value.is_some()).count() > 1;
    let mut header: Vec<String> = vec!["group".into()];
    let (has_task, has_layer, has_step) = (
        any(|r| r.task.is_some()),
        any(|r| r.layer.is_some()),
        any(|r| r.step.is_some()),
    );
    for (present, name) in [(has_task, "task"), (has_layer, "layer"), (has_step, "step")] {
        if present {
            header.push(name.into());
        }
    }
    let level = format!("{}% CI", report.method.confidence * 100.0);
    header.extend(["quantity".into(), "estimate".into(), level, "boot mean".into()]);
    if tested {
        header.push("p".into());
    }
    if several {
        header.extend(["p (Holm)".into(), "p (BH)".into()]);
    }
    header.extend(["seeds".into(), "runs".into(), "examples".into()]);
    let p = |v: Option<f64>| v.map_or(String::new(), format_p);
    let body = rows
        .iter()
        .map(|r| {
            let mut cells = vec![r.group.clone()];
            for (present, v) in [(has_task, &r.task), (has_layer, &r.layer), (has_step, &r.step)] {
                if present {
                    cells.push(v.clone().unwrap_or_default());
                }
            }
            let i = &r.interval;
            cells.extend([
                r.quantity.name().to_string(),
                format!("{:.4}", i.estimate),
                format!("[{:.4}, {:.4}]", i.low, i.high),
                format!("{:.4}", i.boot_mean),
            ]);
            if tested {
                cells.push(p(r.p_value));
            }
            if several {
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
fn format_p(p: f64) -> String {
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
    crate::output::atomic_write(path, &format.exporter().serialize(report))
}
