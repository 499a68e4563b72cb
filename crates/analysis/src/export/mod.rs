//! Exporters: every analysis converts its report into one [`Table`] (one file per analysis), and
//! every format writes any table (one file per format, behind a one-method trait as hyperfine's
//! `export/`); plus the replicate dump.

pub mod bootstrap;
mod csv;
pub mod curve;
mod json;
pub(crate) mod latex;
pub mod markdown;
pub mod power;
pub mod samples;
pub mod seeds;
pub mod table;
pub mod variance;

use std::path::Path;

use crate::analysis::Method;
use mb_stats_core::metric::Metric;
use mb_stats_core::summary::Interval;
use mb_stats_files::error::{Result, input};
pub use table::{Table, Tabular};

/// Turns a table into the bytes of one file format.
pub trait Exporter {
    /// The table in this format.
    fn serialize(&self, table: &Table) -> Vec<u8>;
}

/// The output formats of `-o`, chosen by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.csv`: the long table, full precision.
    Csv,
    /// `.json`: the document, numbers as numbers.
    Json,
    /// `.md`: Markdown tables with the method line.
    Markdown,
    /// `.tex`: booktabs tables with the method line.
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

/// A report in `format`.
pub fn serialize<R: Tabular>(report: &R, format: Format) -> Vec<u8> {
    format.exporter().serialize(&report.table())
}

/// The terminal output of a report: its Markdown, which is aligned and readable as text.
pub fn terminal<R: Tabular>(report: &R) -> String {
    String::from_utf8(serialize(report, Format::Markdown)).expect("markdown is UTF-8")
}

/// Writes a report to `path` in the format of its extension, atomically.
pub fn write<R: Tabular>(report: &R, path: &Path) -> Result<()> {
    let format = Format::from_path("-o", path)?;
    mb_stats_files::output::atomic_write(path, &serialize(report, format))
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
    let unit = if method.metric.is_proportion() {
        " (values in %)"
    } else {
        ""
    };
    method_line_raw(method) + unit
}

/// How the human-readable tables print a metric's values: proportions as percentages with one
/// decimal (`74.7 [74.1, 75.4]`), correlations with three decimals, means with four; NaN (no
/// interval) as `n/a`.
pub fn format_value(metric: Metric, value: f64) -> String {
    match metric {
        _ if value.is_nan() => "n/a".to_string(),
        m if m.is_proportion() => format!("{:.1}", 100.0 * value),
        Metric::Mean => format!("{value:.4}"),
        _ => format!("{value:.3}"),
    }
}

/// `estimate [low, high]` in the metric's format.
pub fn format_interval(metric: Metric, i: &Interval) -> String {
    let f = |x| format_value(metric, x);
    match i.low.is_nan() || i.high.is_nan() {
        true => format!("{} [n/a]", f(i.estimate)),
        false => format!("{} [{}, {}]", f(i.estimate), f(i.low), f(i.high)),
    }
}

/// p-values with three significant digits.
pub(crate) fn format_p(p: f64) -> String {
    if p.is_nan() {
        "n/a".to_string()
    } else if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::table::{Block, Grid, Section, Shown, Value};
    use super::*;

    /// A small table with a Markdown-only and a LaTeX-only paragraph.
    fn table() -> Table {
        Table {
            columns: vec!["name", "x"],
            rows: vec![
                vec![Value::text("a_b"), Value::Number(0.25)],
                vec![Value::text("c"), Value::Empty],
            ],
            document: vec![("rows", Value::List(vec![Value::Record(vec![("x", Value::Count(3))])]))],
            sections: vec![Section::new(
                Some("t".into()),
                Grid {
                    header: vec!["name".into(), "x".into()],
                    body: vec![vec!["a_b".into(), "25%".into()]],
                },
            )],
            footer: vec![
                Block::list(vec!["note".into()]),
                Block::paragraph("md".into()).only(Shown::Markdown),
                Block::paragraph("tex".into()).only(Shown::Latex),
            ],
        }
    }

    #[test]
    fn every_format_writes_the_one_table() {
        let text = |f: Format| String::from_utf8(f.exporter().serialize(&table())).unwrap();
        assert_eq!(text(Format::Csv), "name,x\na_b,0.25\nc,\n");
        assert_eq!(
            text(Format::Json),
            "{\n  \"rows\": [\n    {\n      \"x\": 3\n    }\n  ]\n}\n"
        );
        assert_eq!(
            text(Format::Markdown),
            "### t\n\n| name | x   |\n|------|-----|\n| a_b  | 25% |\n\n- note\n\nmd\n"
        );
        assert!(text(Format::Latex).ends_with(
            "a\\_b & 25\\% \\\\\n\\bottomrule\n\\end{tabular}\n\\par\\footnotesize note\n\\par\\footnotesize tex\n"
        ));
    }

    #[test]
    fn proportions_print_as_percentages() {
        let proportions: Vec<Metric> = Metric::ALL.into_iter().filter(|m| m.is_proportion()).collect();
        assert_eq!(proportions.len(), 6);
        assert!(!proportions.contains(&Metric::Mcc) && !proportions.contains(&Metric::Mean));
        assert_eq!(format_value(Metric::Auc, 0.747), "74.7");
        assert_eq!(format_value(Metric::Spearman, 0.747), "0.747");
        assert_eq!(format_value(Metric::Mean, 0.747), "0.7470");
    }
}
