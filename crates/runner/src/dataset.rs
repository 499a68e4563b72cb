//! Text data sets: one text per line (`.txt`), or a table (`.tsv`, `.csv`, `.jsonl`, `.parquet`)
//! whose columns are read as strings. The tasks pick the text, pair, label and id columns.

use std::path::{Path, PathBuf};

use mb_stats_bert::tokenizer::TextInput;
use polars::prelude::*;

use mb_stats_files::error::{Error, Result, input};

/// A data set as string columns.
#[derive(Debug, Clone)]
pub struct TextTable {
    source: PathBuf,
    names: Vec<String>,
    columns: Vec<Vec<String>>,
    /// Per column, its first cell that was not text in the file (a JSON number, a Parquet
    /// number column): row and value as written.
    not_text: Vec<Option<(usize, String)>>,
}

/// Names, string columns and their first non-text cells, as a reader returns them.
type Columns = (Vec<String>, Vec<Vec<String>>, Vec<Option<(usize, String)>>);

impl TextTable {
    /// The inputs of the table: its text column, and the pair column when named.
    pub fn inputs(&self, text_column: Option<&str>, pair_column: Option<&str>) -> Result<Vec<TextInput>> {
        let texts = self.text_column(text_column)?;
        let pairs = pair_column.map(|c| self.column(c)).transpose()?;
        Ok(texts
            .iter()
            .enumerate()
            .map(|(i, text)| TextInput {
                text: text.clone(),
                pair: pairs.map(|p| p[i].clone()),
            })
            .collect())
    }

    /// Read `path`, choosing the format by its extension; a `.txt` file is one column `text`.
    pub fn read(path: &Path) -> Result<Self> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let all_text = |(names, columns): (Vec<String>, Vec<Vec<String>>)| {
            let not_text = vec![None; names.len()];
            (names, columns, not_text)
        };
        let (names, columns, not_text) = match extension.as_str() {
            "txt" => all_text((vec!["text".to_string()], vec![read_lines(path)?])),
            "tsv" => all_text(read_delimited(path, b'\t')?),
            "csv" => all_text(read_delimited(path, b',')?),
            "jsonl" | "ndjson" => read_jsonl(path)?,
            "parquet" => read_parquet(path)?,
            _ => {
                return Err(input(format!(
                    "{}: unknown data format; expected .txt (one text per line), .tsv, .csv, .jsonl or .parquet",
                    path.display()
                )));
            }
        };
        Ok(TextTable {
            source: path.to_path_buf(),
            names,
            columns,
            not_text,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file the table came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The cells of column `name`; the error lists the columns there are.
    pub fn column(&self, name: &str) -> Result<&[String]> {
        match self.names.iter().position(|n| n == name) {
            Some(i) => Ok(&self.columns[i]),
            None => Err(input(format!(
                "{}: no column {name:?} (columns: {})",
                self.source.display(),
                self.names.join(", ")
            ))),
        }
    }

    /// The cells of column `name`, which must hold text: a sentence written as a JSON number
    /// (`123`) is refused naming file, row and value instead of being scored as the text "123".
    pub fn text_cells(&self, name: &str) -> Result<&[String]> {
        let cells = self.column(name)?;
        let i = self.names.iter().position(|n| n == name).expect("the column exists");
        match &self.not_text[i] {
            Some((row, value)) if *row < cells.len() => Err(input(format!(
                "{}: row {}: {name} is {value}, not text",
                self.source.display(),
                row + 1
            ))),
            _ => Ok(cells),
        }
    }

    /// The text column: `name` when given, else `text` or `sentence` when the table has one.
    pub fn text_column(&self, name: Option<&str>) -> Result<&[String]> {
        if let Some(name) = name {
            return self.column(name);
        }
        match ["text", "sentence"].iter().find(|c| self.names.iter().any(|n| n == *c)) {
            Some(found) => self.column(found),
            None => Err(Error::named(format!(
                "{}: no text or sentence column; name one with {{text_column}} (columns: {})",
                self.source.display(),
                self.names.join(", ")
            ))),
        }
    }

    /// Keep the first `n` rows.
    pub fn truncate(&mut self, n: usize) {
        self.columns.iter_mut().for_each(|c| c.truncate(n));
    }
}

fn read_text(path: &Path) -> Result<String> {
    mb_stats_files::text::read_to_string(path).map_err(|e| input(format!("{}: {e}", path.display())))
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    Ok(read_text(path)?.lines().map(str::to_string).collect())
}

/// TSV is read without quoting (GLUE's files contain bare quote characters); CSV with it.
fn read_delimited(path: &Path, delimiter: u8) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let text = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .quoting(delimiter != b'\t')
        .from_reader(text.as_bytes());
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| input(format!("{}: header: {e}", path.display())))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut columns = vec![Vec::new(); names.len()];
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| input(format!("{}: line {}: {e}", path.display(), i + 2)))?;
        for (column, cell) in columns.iter_mut().zip(record.iter()) {
            column.push(cell.to_string());
        }
    }
    Ok((names, columns))
}

fn read_jsonl(path: &Path) -> Result<Columns> {
    let mut names: Vec<String> = Vec::new();
    let mut rows: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
    for (i, line) in read_text(path)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| input(format!("{}: line {}: not JSON ({e})", path.display(), i + 1)))?;
        let serde_json::Value::Object(object) = value else {
            return Err(input(format!(
                "{}: line {}: expected a JSON object",
                path.display(),
                i + 1
            )));
        };
        for key in object.keys() {
            if !names.contains(key) {
                names.push(key.clone());
            }
        }
        rows.push(object);
    }
    let cell = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let columns = names
        .iter()
        .map(|n| rows.iter().map(|r| cell(r.get(n))).collect())
        .collect();
    let not_text = names
        .iter()
        .map(|n| {
            rows.iter().enumerate().find_map(|(i, r)| match r.get(n) {
                Some(serde_json::Value::String(_) | serde_json::Value::Null) | None => None,
                Some(other) => Some((i, other.to_string())),
            })
        })
        .collect();
    Ok((names, columns, not_text))
}

fn read_parquet(path: &Path) -> Result<Columns> {
    let bad = |e: PolarsError| {
        input(format!(
            "{}: {}",
            path.display(),
            e.to_string().lines().next().unwrap_or("")
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| input(format!("{}: {e}", path.display())))?;
    let frame = ParquetReader::new(file).finish().map_err(bad)?;
    let mut names = Vec::new();
    let mut columns = Vec::new();
    let mut not_text = Vec::new();
    for column in frame.columns() {
        let strings = column.cast(&DataType::String).map_err(bad)?;
        let strings = strings.str().map_err(bad)?;
        names.push(mb_stats_files::text::strip_bom(column.name()).to_string());
        let values: Vec<String> = strings.iter().map(|s| s.unwrap_or("").to_string()).collect();
        not_text.push(match column.dtype().is_string() || column.dtype().is_null() {
            true => None,
            false => values
                .first()
                .map(|v| (0, format!("{v} (a {} column)", column.dtype()))),
        });
        columns.push(values);
    }
    Ok((names, columns, not_text))
}
