//! Outputs of `mb-stats seeds`: per-seed conclusions, the procedure beside them, agreement and
//! heterogeneity, in CSV (long, full precision), JSON, Markdown and LaTeX.

use serde_json::json;

use super::latex::booktabs;
use super::markdown::pipe_table;
use super::{Format, format_interval, format_p, method_line};
use crate::analysis::SeedsReport;

/// The CSV columns: one row per seed (`kind` = seed), per procedure quantity (procedure) and per
/// heterogeneity test (heterogeneity).
pub const COLUMNS: [&str; 16] = [
    "kind",
    "cell",
    "group",
    "seed",
    "estimate",
    "low",
    "high",
    "p_value",
    "conclusion",
    "test",
    "statistic",
    "n_seeds",
    "n_runs",
    "alpha",
    "nboot",
    "rng_seed",
];

/// The report in `format`.
pub fn serialize(report: &SeedsReport, format: Format) -> Vec<u8> {
    match format {
        Format::Csv => csv(report),
        Format::Json => json(report),
        Format::Markdown => markdown(report).into_bytes(),
        Format::Latex => latex(report).into_bytes(),
    }
}

fn csv(report: &SeedsReport) -> Vec<u8> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let mut row = |cells: Vec<String>| w.write_record(cells).expect("writing to memory");
    row(COLUMNS.iter().map(|c| c.to_string()).collect());
    let (alpha, nboot, seed) = (
        report.alpha.to_string(),
        report.method.nboot.to_string(),
        report.method.rng_seed.to_string(),
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for s in &report.seeds {
        let i = &s.interval;
        row(vec![
            "seed".into(),
            s.cell.clone(),
            s.group.clone(),
            s.seed.to_string(),
            i.estimate.to_string(),
            i.low.to_string(),
            i.high.to_string(),
            opt(s.p_value),
            s.conclusion.map_or(String::new(), |c| c.name().into()),
            String::new(),
            String::new(),
            "1".into(),
            s.n_runs.to_string(),
            alpha.clone(),
            nboot.clone(),
            seed.clone(),
        ]);
    }
    for r in &report.procedure {
        let i = &r.interval;
        let conclusion = report
            .agreement
            .iter()
            .find(|a| a.cell == r.cell && r.p_value.is_some())
            .map(|a| a.procedure.name());
        row(vec![
            "procedure".into(),
            r.cell.clone(),
            r.group.clone(),
            String::new(),
            i.estimate.to_string(),
            i.low.to_string(),
            i.high.to_string(),
            opt(r.p_value),
            conclusion.unwrap_or_default().into(),
            r.quantity.name().into(),
            String::new(),
            r.n_seeds.to_string(),
            r.n_runs.to_string(),
            alpha.clone(),
            nboot.clone(),
            seed.clone(),
        ]);
    }
    for h in &report.heterogeneity {
        row(vec![
            "heterogeneity".into(),
            h.cell.clone(),
            h.group.clone(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            h.result.p_value.to_string(),
            String::new(),
            h.test.into(),
            h.result.statistic.to_string(),
            h.n_seeds.to_string(),
            h.n_runs.to_string(),
            alpha.clone(),
            nboot.clone(),
            seed.clone(),
        ]);
    }
    w.into_inner().expect("writing to memory")
}

fn json(report: &SeedsReport) -> Vec<u8> {
    let seeds: Vec<_> = report
        .seeds
        .iter()
        .map(|s| json!({"cell": s.cell, "group": s.group, "seed": s.seed, "n_runs": s.n_runs, "estimate": s.interval.estimate,
            "low": s.interval.low, "high": s.interval.high, "p_value": s.p_value, "conclusion": s.conclusion.map(|c| c.name())}))
        .collect();
    let agreement: Vec<_> = report
        .agreement
        .iter()
        .map(|a| {
            json!({"cell": a.cell, "procedure": a.procedure.name(), "agree": a.agree, "opposite": a.opposite,
            "missed": a.missed, "spurious": a.spurious})
        })
        .collect();
    let heterogeneity: Vec<_> = report
        .heterogeneity
        .iter()
        .map(|h| {
            json!({"cell": h.cell, "group": h.group, "test": h.test, "statistic": h.result.statistic,
            "p_value": h.result.p_value, "n_seeds": h.n_seeds, "n_runs": h.n_runs})
        })
        .collect();
    let procedure: Vec<_> = report
        .procedure
        .iter()
        .map(|r| {
            json!({"cell": r.cell, "group": r.group, "quantity": r.quantity.name(), "estimate": r.interval.estimate,
            "low": r.interval.low, "high": r.interval.high, "p_value": r.p_value})
        })
        .collect();
    let document = json!({
        "method": {"description": method_line(&report.method), "alpha": report.alpha, "permutations": report.permutations,
            "nboot": report.method.nboot, "rng_seed": report.method.rng_seed},
        "seeds": seeds, "procedure": procedure, "agreement": agreement, "heterogeneity": heterogeneity,
    });
    let mut bytes = serde_json::to_vec_pretty(&document).expect("JSON of plain values");
    bytes.push(b'\n');
    bytes
}

/// Per cell: the seeds' rows and the procedure's rows.
fn tables(report: &SeedsReport) -> Vec<(String, Vec<String>, Vec<Vec<String>>)> {
    let metric = report.method.metric;
    let header = ["group", "seed", "runs", "estimate [CI]", "p", "conclusion"]
        .map(String::from)
        .to_vec();
    let mut cells: Vec<String> = report.procedure.iter().map(|r| r.cell.clone()).collect();
    cells.dedup();
    cells
        .into_iter()
        .map(|cell| {
            let mut body: Vec<Vec<String>> = report
                .seeds
                .iter()
                .filter(|s| s.cell == cell)
                .map(|s| {
                    vec![
                        s.group.clone(),
                        s.seed.to_string(),
                        s.n_runs.to_string(),
                        format_interval(metric, &s.interval),
                        s.p_value.map_or(String::new(), format_p),
                        s.conclusion.map_or(String::new(), |c| c.name().into()),
                    ]
                })
                .collect();
            let conclusion = report
                .agreement
                .iter()
                .find(|a| a.cell == cell)
                .map(|a| a.procedure.name());
            for r in report.procedure.iter().filter(|r| r.cell == cell) {
                body.push(vec![
                    format!("procedure: {} ({})", r.group, r.quantity.name()),
                    format!("{} seeds", r.n_seeds),
                    r.n_runs.to_string(),
                    format_interval(metric, &r.interval),
                    r.p_value.map_or(String::new(), format_p),
                    if r.p_value.is_some() {
                        conclusion.unwrap_or_default().into()
                    } else {
                        String::new()
                    },
                ]);
            }
            (cell, header.clone(), body)
        })
        .collect()
}

/// The agreement and heterogeneity lines.
fn findings(report: &SeedsReport) -> Vec<String> {
    let list = |v: &[i64]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")
        }
    };
    let mut lines = Vec::new();
    for a in &report.agreement {
        let total = a.agree.len() + a.opposite.len() + a.missed.len() + a.spurious.len();
        lines.push(format!(
            "[{}] procedure: {} at alpha {}; {} of {total} seeds agree; significant opposite: {}; missed the effect: {}; significant where the procedure is not: {}",
            a.cell, a.procedure.name(), report.alpha, a.agree.len(), list(&a.opposite), list(&a.missed), list(&a.spurious)
        ));
    }
    for h in &report.heterogeneity {
        let test = match h.test {
            "permutation" => format!("runs permuted across seeds ({} permutations)", report.permutations),
            _ => "seed spread vs example sampling".to_string(),
        };
        lines.push(format!(
            "[{}] no-seed-effect test for {}: {test}, statistic {:.4e}, p = {} ({} seeds, {} runs)",
            h.cell,
            h.group,
            h.result.statistic,
            format_p(h.result.p_value),
            h.n_seeds,
            h.n_runs
        ));
    }
    lines
}

/// Markdown (also the terminal output).
pub fn markdown(report: &SeedsReport) -> String {
    let tables = tables(report);
    let mut out = String::new();
    for (cell, header, body) in &tables {
        if tables.len() > 1 {
            out += &format!("### {cell}\n\n");
        }
        out += &pipe_table(header, body);
        out.push('\n');
    }
    for line in findings(report) {
        out += &format!("- {line}\n");
    }
    out + &format!("\n{} Seeds: examples-only intervals.\n", method_line(&report.method))
}

fn latex(report: &SeedsReport) -> String {
    let mut out = String::from("% requires \\usepackage{booktabs}\n");
    for (_, header, body) in tables(report) {
        out += &booktabs(&header, &body);
    }
    for line in findings(report) {
        out += &format!("\\par\\footnotesize {}\n", super::latex::escape(&line));
    }
    out
}
