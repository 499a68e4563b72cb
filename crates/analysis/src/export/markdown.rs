//! Markdown: per section a heading, aligned pipe tables and a list of notes, then the prose
//! (also the terminal output).

use super::Exporter;
use super::table::{Grid, Table};

/// The Markdown exporter.
pub struct Markdown;

/// An aligned pipe table.
pub fn pipe_table(grid: &Grid) -> String {
    let (header, body) = (&grid.header, &grid.body);
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

/// Lines as a Markdown list.
fn list(lines: &[String]) -> String {
    lines.iter().map(|l| format!("- {l}\n")).collect()
}

impl Exporter for Markdown {
    fn serialize(&self, table: &Table) -> Vec<u8> {
        let mut out = String::new();
        for section in &table.sections {
            if let Some((title, shown)) = &section.title
                && shown.in_markdown()
            {
                out += &format!("### {title}\n\n");
            }
            section
                .grids
                .iter()
                .for_each(|g| out += &format!("{}\n", pipe_table(g)));
            if !section.notes.is_empty() {
                out += &format!("{}\n", list(&section.notes));
            }
        }
        let blocks: Vec<String> = table
            .footer
            .iter()
            .filter(|b| b.shown.in_markdown() && !b.lines.is_empty())
            .map(|b| {
                if b.list {
                    list(&b.lines)
                } else {
                    b.lines.iter().map(|l| format!("{l}\n")).collect()
                }
            })
            .collect();
        out += &blocks.join("\n");
        out.into_bytes()
    }
}
