//! LaTeX: per section a `\paragraph` and booktabs `tabular`s, then the notes and the prose as
//! footnote-size paragraphs.

use super::Exporter;
use super::table::{Grid, Table};

/// The LaTeX exporter.
pub struct Latex;

/// Escapes LaTeX's special characters in text.
fn escape(s: &str) -> String {
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

/// A booktabs tabular of a text table.
pub(crate) fn booktabs(grid: &Grid) -> String {
    let row = |cells: &[String]| {
        format!(
            "{} \\\\\n",
            cells.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" & ")
        )
    };
    let mut out = format!(
        "\\begin{{tabular}}{{l{}}}\n\\toprule\n",
        "r".repeat(grid.header.len() - 1)
    );
    out += &row(&grid.header);
    out += "\\midrule\n";
    grid.body.iter().for_each(|r| out += &row(r));
    out + "\\bottomrule\n\\end{tabular}\n"
}

/// A footnote-size paragraph.
fn note(line: &str) -> String {
    format!("\\par\\footnotesize {}\n", escape(line))
}

impl Exporter for Latex {
    fn serialize(&self, table: &Table) -> Vec<u8> {
        let mut out = String::from("% requires \\usepackage{booktabs}\n");
        for section in &table.sections {
            if let Some((title, shown)) = &section.title
                && shown.in_latex()
            {
                out += &format!("\\paragraph{{{}}}\n", escape(title));
            }
            section.grids.iter().for_each(|g| out += &booktabs(g));
            section.notes.iter().for_each(|n| out += &note(n));
        }
        for block in table.footer.iter().filter(|b| b.shown.in_latex()) {
            block.lines.iter().for_each(|l| out += &note(l));
        }
        out.into_bytes()
    }
}
