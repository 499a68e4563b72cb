//! Markdown: an aligned pipe table, the method line and footnotes (also the terminal output).

use super::{Exporter, footnotes, human_table, method_line};
use crate::analysis::Report;

/// The Markdown exporter.
pub struct Markdown;

impl Exporter for Markdown {
    fn serialize(&self, report: &Report) -> Vec<u8> {
        let (header, body) = human_table(report);
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
        let mut out = line(&header);
        out += &format!(
            "|{}|\n",
            widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|")
        );
        body.iter().for_each(|r| out += &line(r));
        out += &format!("\n{}\n", method_line(&report.method));
        for note in footnotes(report) {
            out += &format!("\n- {note}");
        }
        if !footnotes(report).is_empty() {
            out.push('\n');
        }
        out.into_bytes()
    }
}
