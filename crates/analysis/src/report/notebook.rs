//! A Jupyter notebook (nbformat 4.5) with every output embedded, so it renders on GitHub and in
//! Jupyter without running a kernel: markdown cells explain, code cells hold the exact
//! `mb-stats` commands (as `!` shell lines) with their outputs (tables, PNG figures).

use base64::Engine as _;
use serde_json::{Value, json};

/// A notebook being assembled.
#[derive(Default)]
pub struct Notebook {
    cells: Vec<Value>,
}

/// Splits text into nbformat's list of lines (each but the last keeps its newline).
fn lines(text: &str) -> Vec<String> {
    text.split_inclusive('\n').map(str::to_string).collect()
}

impl Notebook {
    fn id(&self) -> String {
        format!("cell-{:03}", self.cells.len())
    }

    /// Adds a markdown cell.
    pub fn markdown(&mut self, text: &str) {
        let id = self.id();
        self.cells
            .push(json!({"cell_type": "markdown", "id": id, "metadata": {}, "source": lines(text)}));
    }

    /// Adds a code cell running `command` in a shell, with the outputs it produced.
    pub fn command(&mut self, command: &str, outputs: Vec<Output>) {
        self.code(&format!("!{command}"), outputs);
    }

    /// Adds a Python code cell with the outputs it produces.
    pub fn code(&mut self, source: &str, outputs: Vec<Output>) {
        let id = self.id();
        let outputs: Vec<Value> = outputs.into_iter().map(Output::into_json).collect();
        self.cells.push(json!({
            "cell_type": "code",
            "execution_count": null,
            "id": id,
            "metadata": {},
            "outputs": outputs,
            "source": lines(source),
        }));
    }

    /// The notebook as pretty JSON (deterministic: keys in a fixed order).
    pub fn to_bytes(&self) -> Vec<u8> {
        let document = json!({
            "cells": self.cells,
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "language_info": {"name": "python"},
                "mb_stats": {"version": env!("CARGO_PKG_VERSION")},
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        });
        let mut bytes = serde_json::to_vec_pretty(&document).expect("JSON of plain values");
        bytes.push(b'\n');
        bytes
    }
}

/// An output of a code cell.
pub enum Output {
    /// Terminal text.
    Text(String),
    /// A table as HTML (rendered) and Markdown (plain fallback).
    Table {
        /// The table as HTML (rendered by Jupyter).
        html: String,
        /// The same table as Markdown (plain-text viewers).
        markdown: String,
    },
    /// A PNG figure with a plain-text description.
    Png {
        /// The encoded PNG.
        bytes: Vec<u8>,
        /// Alternative text.
        alt: String,
    },
}

impl Output {
    fn into_json(self) -> Value {
        match self {
            Output::Text(text) => json!({"name": "stdout", "output_type": "stream", "text": lines(&text)}),
            Output::Table { html, markdown } => json!({
                "data": {"text/html": lines(&html), "text/markdown": lines(&markdown), "text/plain": lines(&markdown)},
                "metadata": {},
                "output_type": "display_data",
            }),
            Output::Png { bytes, alt } => json!({
                "data": {
                    "image/png": base64::engine::general_purpose::STANDARD.encode(bytes),
                    "text/plain": [alt],
                },
                "metadata": {},
                "output_type": "display_data",
            }),
        }
    }
}

/// An HTML table of a header and rows (cells escaped).
pub fn html_table(header: &[String], body: &[Vec<String>]) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let row = |cells: &[String], tag: &str| {
        let cells: String = cells.iter().map(|c| format!("<{tag}>{}</{tag}>", escape(c))).collect();
        format!("<tr>{cells}</tr>\n")
    };
    let mut out = String::from("<table>\n<thead>\n");
    out += &row(header, "th");
    out += "</thead>\n<tbody>\n";
    body.iter().for_each(|r| out += &row(r, "td"));
    out + "</tbody>\n</table>\n"
}
