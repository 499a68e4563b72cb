//! `mb-stats power`: power per study size, with its Monte-Carlo standard error, and the note
//! saying how the studies were resampled.

use super::method_line_raw;
use super::table::{Block, Grid, Section, Table, Tabular, Value};
use crate::analysis::PowerReport;
use mb_stats_core::interval::{FEW_SEEDS, IntervalMethod};

/// The CSV columns.
pub const COLUMNS: [&str; 9] = [
    "cell",
    "seeds",
    "examples",
    "power",
    "mc_se",
    "effect",
    "alpha",
    "simulations",
    "nboot",
];

impl Tabular for PowerReport {
    fn table(&self) -> Table {
        let rows = self.rows.iter().map(|r| {
            vec![
                Value::text(&r.cell),
                Value::count(r.seeds),
                Value::count(r.examples),
                Value::Number(r.power),
                Value::Number(r.standard_error),
                Value::Number(self.effect),
                Value::Number(self.alpha),
                Value::count(self.simulations),
                Value::count(self.method.nboot),
            ]
        });
        let mut table = Table {
            columns: COLUMNS.to_vec(),
            rows: rows.collect(),
            document: Vec::new(),
            sections: vec![Section::new(None, grid(self))],
            footer: vec![Block::paragraph(note(self))],
        };
        let observed = self
            .observed
            .iter()
            .map(|(cell, delta)| Value::Record(vec![("cell", Value::text(cell)), ("delta", Value::Number(*delta))]));
        table.document = vec![
            ("method", Value::Text(method_line_raw(&self.method))),
            ("effect", Value::Number(self.effect)),
            ("alpha", Value::Number(self.alpha)),
            ("simulations", Value::count(self.simulations)),
            ("observed", Value::List(observed.collect())),
            ("rows", table.records(&COLUMNS[..5])),
        ];
        table
    }
}

/// The power table as printed.
fn grid(report: &PowerReport) -> Grid {
    let header = ["cell", "seeds", "examples", "power", "± MC se"]
        .map(String::from)
        .to_vec();
    let body = report
        .rows
        .iter()
        .map(|r| {
            vec![
                r.cell.clone(),
                r.seeds.to_string(),
                r.examples.to_string(),
                format!("{:.3}", r.power),
                format!("{:.3}", r.standard_error),
            ]
        })
        .collect();
    Grid { header, body }
}

/// How the studies were resampled, with a warning below the few-seeds threshold.
fn note(report: &PowerReport) -> String {
    let observed: Vec<String> = report.observed.iter().map(|(c, d)| format!("{c}: {d:.4}")).collect();
    let few = report.rows.iter().any(|r| r.seeds > 1 && r.seeds < FEW_SEEDS);
    let guard = match (few, report.method.interval) {
        (false, _) => String::new(),
        (true, IntervalMethod::Percentile) => format!(
            " Below {FEW_SEEDS} seeds the percentile test rejects too often: its power there overstates what an \
             honest test detects (the calibrated interval, the default, holds alpha there)."
        ),
        (true, m) => format!(
            " Below {FEW_SEEDS} seeds power is that of the {m} test, which holds alpha there (Student t on the seed \
             level): a smaller number than the percentile test would suggest, and the honest one."
        ),
    };
    format!(
        "Power to detect an effect of {} at alpha {}: {} resampled studies per size (seeds and examples drawn with \
         replacement from the observed design, replicates recentred from the observed effect [{}] to {}).{guard} {}",
        report.effect,
        report.alpha,
        report.simulations,
        observed.join("; "),
        report.effect,
        method_line_raw(&report.method)
    )
}
