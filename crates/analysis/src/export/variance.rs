//! Outputs of `mb-stats variance`: each component with its interval, and the implied standard
//! errors for more seeds, runs or examples.

use serde_json::json;

use super::latex::{booktabs, escape};
use super::markdown::pipe_table;
use super::{Format, TextTable, method_line_raw as method_line};
use crate::analysis::VarianceReport;

/// The CSV columns: `kind` is `component` or `standard_error` (then `name` is the design).
pub const COLUMNS: [&str; 10] = [
    "kind", "cell", "group", "name", "estimate", "low", "high", "seeds", "runs", "examples",
];

/// The report in `format`.
pub fn serialize(report: &VarianceReport, format: Format) -> Vec<u8> {
    match format {
        Format::Csv => csv(report),
        Format::Json => json(report),
        Format::Markdown => markdown(report).into_bytes(),
        Format::Latex => latex(report).into_bytes(),
    }
}

fn csv(report: &VarianceReport) -> Vec<u8> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS).expect("writing to memory");
    let text = |x: f64| if x.is_nan() { String::new() } else { x.to_string() };
    for r in &report.rows {
        let sizes = [r.n_seeds.to_string(), r.n_runs.to_string(), r.n_examples.to_string()];
        for ((name, value), (low, high)) in r.components.named().into_iter().zip(r.intervals) {
            let mut record = vec![
                "component".into(),
                r.cell.clone(),
                r.group.clone(),
                name.into(),
                text(value),
                text(low),
                text(high),
            ];
            record.extend(sizes.iter().cloned());
            w.write_record(record).expect("writing to memory");
        }
        for (s, runs, n, se) in r.implied() {
            let record = vec![
                "standard_error".into(),
                r.cell.clone(),
                r.group.clone(),
                format!("S={s},R={runs},N={n}"),
                se.to_string(),
                String::new(),
                String::new(),
                s.to_string(),
                runs.to_string(),
                n.to_string(),
            ];
            w.write_record(record).expect("writing to memory");
        }
    }
    w.into_inner().expect("writing to memory")
}

fn json(report: &VarianceReport) -> Vec<u8> {
    let nan = |x: f64| if x.is_nan() { None } else { Some(x) };
    let rows: Vec<_> = report
        .rows
        .iter()
        .map(|r| {
            let components: Vec<_> = r
                .components
                .named()
                .into_iter()
                .zip(r.intervals)
                .map(|((name, v), (lo, hi))| json!({"name": name, "estimate": nan(v), "low": nan(lo), "high": nan(hi)}))
                .collect();
            let implied: Vec<_> =
                r.implied().into_iter().map(|(s, runs, n, se)| json!({"seeds": s, "runs": runs, "examples": n, "se": se})).collect();
            json!({"cell": r.cell, "group": r.group, "n_seeds": r.n_seeds, "n_runs": r.n_runs, "n_examples": r.n_examples,
                "components": components, "implied_standard_errors": implied})
        })
        .collect();
    let mut bytes =
        serde_json::to_vec_pretty(&json!({"method": method_line(&report.method), "rows": rows})).expect("JSON");
    bytes.push(b'\n');
    bytes
}

/// Per group and cell: a title, the components table and the standard-error table.
fn tables(report: &VarianceReport) -> Vec<(String, [TextTable; 2])> {
    let level = report.method.confidence * 100.0;
    let num = |x: f64| {
        if x.is_nan() {
            "n/a".to_string()
        } else {
            format!("{x:.4e}")
        }
    };
    report
        .rows
        .iter()
        .map(|r| {
            let components = r
                .components
                .named()
                .into_iter()
                .zip(r.intervals)
                .map(|((name, v), (lo, hi))| vec![name.to_string(), num(v), format!("[{}, {}]", num(lo), num(hi))])
                .collect();
            let implied = r
                .implied()
                .into_iter()
                .map(|(s, runs, n, se)| vec![s.to_string(), runs.to_string(), n.to_string(), format!("{se:.4e}")])
                .collect();
            (
                format!(
                    "{} ({}): {} seeds × {} runs × {} examples",
                    r.group, r.cell, r.n_seeds, r.n_runs, r.n_examples
                ),
                [
                    (
                        vec!["component".into(), "variance".into(), format!("{level}% CI")],
                        components,
                    ),
                    (
                        vec!["seeds".into(), "runs".into(), "examples".into(), "implied SE".into()],
                        implied,
                    ),
                ],
            )
        })
        .collect()
}

const NOTE: &str = "Method of moments for the crossed design (seeds × examples, runs nested in seeds); with one run per \
seed, run is folded into seed and the residual into seed × example (n/a). Implied SE: the standard error of the \
procedure estimate with the given seeds, runs and examples.";

/// Markdown (also the terminal output).
pub fn markdown(report: &VarianceReport) -> String {
    let mut out = String::new();
    for (title, [components, implied]) in tables(report) {
        out += &format!(
            "### {title}\n\n{}\n{}\n",
            pipe_table(&components.0, &components.1),
            pipe_table(&implied.0, &implied.1)
        );
    }
    out + &format!("{NOTE}\n\n{}\n", method_line(&report.method))
}

fn latex(report: &VarianceReport) -> String {
    let mut out = String::from("% requires \\usepackage{booktabs}\n");
    for (title, [components, implied]) in tables(report) {
        out += &format!(
            "\\paragraph{{{}}}\n{}{}",
            escape(&title),
            booktabs(&components.0, &components.1),
            booktabs(&implied.0, &implied.1)
        );
    }
    out + &format!(
        "\\par\\footnotesize {}\n\\par\\footnotesize {}\n",
        escape(NOTE),
        escape(&method_line(&report.method))
    )
}
