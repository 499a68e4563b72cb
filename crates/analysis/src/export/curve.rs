//! Outputs of `mb-stats curve`: one row per (series, step) with the pointwise interval, the
//! simultaneous band and the paired deltas; per series the band's critical value, the
//! convergence step and the dropped seeds.

use serde_json::json;

use super::latex::{booktabs, escape};
use super::markdown::pipe_table;
use super::{Format, format_interval, format_p, format_value, method_line};
use crate::analysis::CurveReport;

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

/// The report in `format`.
pub fn serialize(report: &CurveReport, format: Format) -> Vec<u8> {
    match format {
        Format::Csv => csv(report),
        Format::Json => json(report),
        Format::Markdown => markdown(report).into_bytes(),
        Format::Latex => latex(report).into_bytes(),
    }
}

fn csv(report: &CurveReport) -> Vec<u8> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS).expect("writing to memory");
    for s in &report.series {
        for p in &s.points {
            let i = &p.interval;
            let (dp, dl) = (p.delta_previous, p.delta_last);
            let opt = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
            let record = vec![
                s.group.clone(),
                s.cell.clone(),
                p.step.to_string(),
                i.estimate.to_string(),
                i.low.to_string(),
                i.high.to_string(),
                p.band.0.to_string(),
                p.band.1.to_string(),
                opt(dp.map(|d| d.interval.estimate)),
                opt(dp.map(|d| d.interval.low)),
                opt(dp.map(|d| d.interval.high)),
                opt(dp.map(|d| d.p_value)),
                dl.interval.estimate.to_string(),
                dl.interval.low.to_string(),
                dl.interval.high.to_string(),
                dl.p_value.to_string(),
                s.n_seeds.to_string(),
                s.n_examples.to_string(),
                s.critical.to_string(),
                s.converged.0.to_string(),
                s.converged.1.to_string(),
                s.converged.2.to_string(),
            ];
            w.write_record(record).expect("writing to memory");
        }
    }
    w.into_inner().expect("writing to memory")
}

fn json(report: &CurveReport) -> Vec<u8> {
    let series: Vec<_> = report
        .series
        .iter()
        .map(|s| {
            let points: Vec<_> = s
                .points
                .iter()
                .map(|p| json!({"step": p.step, "estimate": p.interval.estimate, "low": p.interval.low,
                    "high": p.interval.high, "band_low": p.band.0, "band_high": p.band.1,
                    "delta_previous": p.delta_previous.map(|d| json!({"estimate": d.interval.estimate, "low": d.interval.low, "high": d.interval.high, "p_value": d.p_value})),
                    "delta_last": {"estimate": p.delta_last.interval.estimate, "low": p.delta_last.interval.low, "high": p.delta_last.interval.high, "p_value": p.delta_last.p_value}}))
                .collect();
            json!({"group": s.group, "cell": s.cell, "n_seeds": s.n_seeds, "n_examples": s.n_examples,
                "critical": s.critical, "converged": {"step": s.converged.0, "low": s.converged.1, "high": s.converged.2},
                "dropped": s.dropped.iter().map(|(seed, missing)| json!({"seed": seed, "missing_steps": missing})).collect::<Vec<_>>(),
                "points": points})
        })
        .collect();
    let document = json!({"method": {"description": method_line(&report.method), "tolerance": report.tolerance}, "series": series});
    let mut bytes = serde_json::to_vec_pretty(&document).expect("JSON of plain values");
    bytes.push(b'\n');
    bytes
}

/// One series as printed: a title, the table (header and rows) and the summary lines.
struct SeriesTable {
    title: String,
    header: Vec<String>,
    body: Vec<Vec<String>>,
    notes: Vec<String>,
}

/// Per series: a title, the table and the summary lines.
fn tables(report: &CurveReport) -> Vec<SeriesTable> {
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
    report
        .series
        .iter()
        .map(|s| {
            let f = |x: f64| format_value(metric, x);
            let body = s
                .points
                .iter()
                .map(|p| {
                    vec![
                        p.step.to_string(),
                        format_interval(metric, &p.interval),
                        format!("[{}, {}]", f(p.band.0), f(p.band.1)),
                        p.delta_previous.map_or(String::new(), |d| format_interval(metric, &d.interval)),
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
                        1..=3 => format!("{seed} (missing {})", missing.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")),
                        n => format!("{seed} (missing {n} steps)"),
                    })
                    .collect();
                notes.push(format!("dropped seeds without every step: {}", seeds.join("; ")));
            }
            SeriesTable { title: format!("{} ({})", s.group, s.cell), header: header.clone(), body, notes }
        })
        .collect()
}

/// Markdown (also the terminal output).
pub fn markdown(report: &CurveReport) -> String {
    let mut out = String::new();
    for SeriesTable {
        title,
        header,
        body,
        notes,
    } in tables(report)
    {
        out += &format!("### {title}\n\n{}\n", pipe_table(&header, &body));
        notes.iter().for_each(|n| out += &format!("- {n}\n"));
        out.push('\n');
    }
    out + &format!(
        "{} Steps paired: the same seeds and examples are drawn at every step.\n",
        method_line(&report.method)
    )
}

fn latex(report: &CurveReport) -> String {
    let mut out = String::from("% requires \\usepackage{booktabs}\n");
    for SeriesTable {
        title,
        header,
        body,
        notes,
    } in tables(report)
    {
        out += &format!("\\paragraph{{{}}}\n{}", escape(&title), booktabs(&header, &body));
        notes
            .iter()
            .for_each(|n| out += &format!("\\par\\footnotesize {}\n", escape(n)));
    }
    out + &format!("\\par\\footnotesize {}\n", escape(&method_line(&report.method)))
}
