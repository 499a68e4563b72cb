//! LaTeX: a booktabs `tabular` with the method line as a table note.

use super::{Exporter, cells, footnotes, human_table, method_line};
use crate::analysis::Report;

/// The LaTeX exporter.
pub struct Latex;

/// Escapes LaTeX's special characters in text.
pub(crate) fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\\' => r"\textbackslash{}".to_string(),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => format!("\\{c}"),
            '~' => r"\textasciitilde{}".to_string(),
            '^' => r"\textasciicircum{}".to_string(),
            _ => c.to_string(),
        })
        .collect()
}

/// A booktabs tabular of a header and rows.
pub fn booktabs(header: &[String], body: &[Vec<String>]) -> String {
    let row = |cells: &[String]| {
        format!(
            "{} \\\\\n",
            cells.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" & ")
        )
    };
    let mut out = format!("\\begin{{tabular}}{{l{}}}\n\\toprule\n", "r".repeat(header.len() - 1));
    out += &row(header);
    out += "\\midrule\n";
    body.iter().for_each(|r| out += &row(r));
    out + "\\bottomrule\n\\end{tabular}\n"
}

impl Exporter for Latex {
    fn serialize(&self, report: &Report) -> Vec<u8> {
        let cells = cells(report);
        let mut out = String::from("% requires \\usepackage{booktabs}\n");
        for (cell, rows) in &cells {
            if cells.len() > 1 {
                out += &format!("\\paragraph{{{}}}\n", escape(cell));
            }
            let (header, body) = human_table(rows, &report.method);
            out += &booktabs(&header, &body);
        }
        out += &format!("\\par\\footnotesize {}\n", escape(&method_line(&report.method)));
        for note in footnotes(report) {
            out += &format!("\\par\\footnotesize {}\n", escape(&note));
        }
        out.into_bytes()
    }
}
