//! Outputs of `mb-stats power`: power per study size, with its Monte-Carlo standard error.

use serde_json::json;

use super::latex::{booktabs, escape};
use super::markdown::pipe_table;
use super::{Format, TextTable, method_line_raw};
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

/// The report in `format`.
pub fn serialize(report: &PowerReport, format: Format) -> Vec<u8> {
    match format {
        Format::Csv => {
            let mut w = ::csv::Writer::from_writer(Vec::new());
            w.write_record(COLUMNS).expect("writing to memory");
            for r in &report.rows {
                let record = [
                    r.cell.clone(),
                    r.seeds.to_string(),
                    r.examples.to_string(),
                    r.power.to_string(),
                    r.standard_error.to_string(),
                    report.effect.to_string(),
                    report.alpha.to_string(),
                    report.simulations.to_string(),
                    report.method.nboot.to_string(),
                ];
                w.write_record(record).expect("writing to memory");
            }
            w.into_inner().expect("writing to memory")
        }
        Format::Json => {
            let rows: Vec<_> = report
                .rows
                .iter()
                .map(|r| json!({"cell": r.cell, "seeds": r.seeds, "examples": r.examples, "power": r.power, "mc_se": r.standard_error}))
                .collect();
            let observed: Vec<_> = report
                .observed
                .iter()
                .map(|(c, d)| json!({"cell": c, "delta": d}))
                .collect();
            let doc = json!({"method": method_line_raw(&report.method), "effect": report.effect, "alpha": report.alpha,
                "simulations": report.simulations, "observed": observed, "rows": rows});
            let mut bytes = serde_json::to_vec_pretty(&doc).expect("JSON");
            bytes.push(b'\n');
            bytes
        }
        Format::Markdown => markdown(report).into_bytes(),
        Format::Latex => {
            let (header, body) = table(report);
            format!(
                "% requires \\usepackage{{booktabs}}\n{}\\par\\footnotesize {}\n",
                booktabs(&header, &body),
                escape(&note(report))
            )
            .into_bytes()
        }
    }
}

fn table(report: &PowerReport) -> TextTable {
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
    (header, body)
}

fn note(report: &PowerReport) -> String {
    let observed: Vec<String> = report.observed.iter().map(|(c, d)| format!("{c}: {d:.4}")).collect();
    let few = report.rows.iter().any(|r| r.seeds > 1 && r.seeds < FEW_SEEDS);
    let guard = match (few, report.method.interval) {
        (false, _) => String::new(),
        (true, IntervalMethod::Percentile) => format!(
            " Below {FEW_SEEDS} seeds the percentile test rejects too often: its power there overstates what an \
             honest test detects (use --interval calibrated)."
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

/// Markdown (also the terminal output).
pub fn markdown(report: &PowerReport) -> String {
    let (header, body) = table(report);
    format!("{}\n{}\n", pipe_table(&header, &body), note(report))
}
