//! Markdown: one aligned pipe table per cell, the method line and footnotes (also the terminal
//! output).

use super::{Exporter, cells, footnotes, human_table, method_line};
use crate::analysis::Report;

/// The Markdown exporter.
pub struct Markdown;

/// An aligned pipe table.
pub fn pipe_table(header: &[String], body: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|j| {
            body.iter()
                .map(|r| r[j].chars().count())
                .chain([header[j].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, &w)| format!("{c:<w$}")).collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(header);
    out += &format!(
        "|{}|\n",
        widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|")
    );
    body.iter().for_each(|r| out += &line(r));
    out
}

impl Exporter for Markdown {
    fn serialize(&self, report: &Report) -> Vec<u8> {
        let cells = cells(report);
        let mut out = String::new();
        for (cell, rows) in &cells {
            if cells.len() > 1 {
                out += &format!("### {cell}\n\n");
            }
            let (header, body) = human_table(rows, &report.method);
            out += &pipe_table(&header, &body);
            out.push('\n');
        }
        out += &format!("{}\n", method_line(&report.method));
        let notes = footnotes(report);
        for note in &notes {
            out += &format!("\n- {note}");
        }
        if !notes.is_empty() {
            out.push('\n');
        }
        out.into_bytes()
    }
}
