//! `mb-stats import`: the published MultiBERTs prediction releases (and any pipeline that
//! writes the same shapes) and lm-evaluation-harness per-sample output (every other seed suite)
//! as results tables of schema v1. One module per format; this module holds the text-file
//! readers they share. Every malformed input is one error naming the file,
//! the line and what was expected.

pub mod coref;
pub mod glue;
pub mod lm_eval;
pub mod squad;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mb_stats_core::step::Step;
use mb_stats_files::error::{Error, Result, input};

/// A tab-separated file with a header line: column names and rows of cells (line numbers kept
/// for messages).
pub struct Tsv {
    path: PathBuf,
    header: Vec<String>,
    rows: Vec<(usize, Vec<String>)>,
}

impl Tsv {
    /// Reads `path`; every row must have as many cells as the header (a leading unnamed index
    /// column, as pandas writes it, is allowed).
    pub fn read(path: &Path) -> Result<Self> {
        let text = read_text(path)?;
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines
            .next()
            .ok_or_else(|| input(format!("{}: empty file, expected a header line", path.display())))?;
        let header: Vec<String> = header.split('\t').map(|c| c.trim().to_string()).collect();
        let mut rows = Vec::new();
        for (i, line) in lines {
            let cells: Vec<String> = line.split('\t').map(|c| c.trim().to_string()).collect();
            if cells.len() != header.len() {
                return Err(input(format!(
                    "{}: line {}: {} cells, expected {} as in the header",
                    path.display(),
                    i + 1,
                    cells.len(),
                    header.len()
                )));
            }
            rows.push((i + 1, cells));
        }
        Ok(Self {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    /// The index of column `name`; the error names the file and the columns it has.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            input(format!(
                "{}: no column '{name}' (columns: {})",
                self.path.display(),
                self.header.join(", ")
            ))
        })
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the file has no data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Cell `column` of row `row` as text.
    pub fn text(&self, row: usize, column: usize) -> &str {
        &self.rows[row].1[column]
    }

    /// Cell `column` of row `row` parsed as `T`; the error names file, line and column.
    pub fn parse<T: std::str::FromStr>(&self, row: usize, column: usize, expected: &str) -> Result<T> {
        self.parse_where(row, column, expected, |_| true)
    }

    /// Like [`Self::parse`], also refusing a value outside what `allowed` accepts (an answer of
    /// 2 where the labels are 0 or 1).
    pub fn parse_where<T: std::str::FromStr>(
        &self,
        row: usize,
        column: usize,
        expected: &str,
        allowed: impl Fn(&T) -> bool,
    ) -> Result<T> {
        let (line, cells) = &self.rows[row];
        cells[column].parse().ok().filter(|v| allowed(v)).ok_or_else(|| {
            input(format!(
                "{}: line {line}: column {} is '{}', expected {expected}",
                self.path.display(),
                self.header[column],
                cells[column]
            ))
        })
    }
}

/// Reads a whole text file; the error names it.
pub fn read_text(path: &Path) -> Result<String> {
    mb_stats_files::text::read_to_string(path).map_err(|e| input(format!("{}: cannot read: {e}", path.display())))
}

/// A matrix of numbers separated by whitespace, one row per line, as `numpy.loadtxt` reads it
/// (a first line of non-numeric column names is skipped). Rows must have equal lengths.
pub fn read_matrix(path: &Path) -> Result<Vec<Vec<f64>>> {
    let text = read_text(path)?;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        let parsed: std::result::Result<Vec<f64>, _> = cells.iter().map(|c| c.parse::<f64>()).collect();
        let row = match parsed {
            Ok(row) => row,
            Err(_) if rows.is_empty() && i == 0 && cells.iter().all(|c| c.parse::<f64>().is_err()) => continue,
            Err(_) => {
                let bad = cells.iter().find(|c| c.parse::<f64>().is_err()).unwrap_or(&"");
                return Err(input(format!(
                    "{}: line {}: '{bad}' is not a number",
                    path.display(),
                    i + 1
                )));
            }
        };
        if let Some(first) = rows.first().filter(|first| first.len() != row.len()) {
            return Err(input(format!(
                "{}: line {}: {} values, expected {} as on the first row",
                path.display(),
                i + 1,
                row.len(),
                first.len()
            )));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(input(format!("{}: no rows of numbers", path.display())));
    }
    Ok(rows)
}

/// An integer class from a number cell (e.g. `1.000e+00`); the error names file and position.
pub fn class(value: f64, path: &Path, position: &str) -> Result<i64> {
    if value.fract() == 0.0 && value.is_finite() {
        Ok(value as i64)
    } else {
        Err(input(format!(
            "{}: {position}: {value} is not a class index",
            path.display()
        )))
    }
}

/// One row of a release's `index.tsv` (GLUE and SQuAD): which file holds which run.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexRow {
    /// Prediction file, relative to the index's folder.
    pub file: PathBuf,
    /// Task name (`MNLI`, `STS-B`, `SQuAD`, ...).
    pub task: String,
    /// Pretraining seed.
    pub pretrain_id: i64,
    /// Pretraining steps (`2M` → 2000000).
    pub step: i64,
    /// Fine-tuning learning rate.
    pub lr: f64,
    /// Fine-tuning seed.
    pub ft_seed: i64,
    /// Release (the group): `multiberts`, `bert-base-uncased`, ...
    pub release: String,
}

/// Reads `index.tsv` and keeps the rows of `task` (all rows when the index has one task). (Long:
/// one check per column of the index, each naming its line, then the duplicate check.)
pub fn read_index(path: &Path, task: Option<&str>) -> Result<Vec<IndexRow>> {
    let tsv = Tsv::read(path)?;
    let [file, task_col, pretrain_id, n_steps, lr, ft_seed, release] =
        ["file", "task", "pretrain_id", "n_steps", "lr", "ft_seed", "release"].map(|c| tsv.column(c));
    let (file, task_col, pretrain_id, n_steps, lr, ft_seed, release) =
        (file?, task_col?, pretrain_id?, n_steps?, lr?, ft_seed?, release?);
    let tasks: BTreeMap<&str, usize> = (0..tsv.len()).fold(BTreeMap::new(), |mut m, r| {
        *m.entry(tsv.text(r, task_col)).or_default() += 1;
        m
    });
    let listed = || tasks.keys().copied().collect::<Vec<_>>().join(", ");
    let task = match task {
        Some(t) if tasks.contains_key(t) => t.to_string(),
        Some(t) => {
            return Err(Error::named(format!(
                "{{task}} {t}: {} has no such task (tasks: {})",
                path.display(),
                listed()
            )));
        }
        None if tasks.len() == 1 => tasks.keys().next().map(|t| t.to_string()).unwrap_or_default(),
        None => {
            return Err(Error::named(format!(
                "{} has several tasks ({}): choose one with {{task}}",
                path.display(),
                listed()
            )));
        }
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    let rows: Vec<(usize, IndexRow)> = (0..tsv.len())
        .filter(|&r| tsv.text(r, task_col) == task)
        .map(|r| {
            let steps = tsv.text(r, n_steps);
            let row = IndexRow {
                file: folder.join(tsv.text(r, file)),
                task: task.clone(),
                pretrain_id: tsv.parse(r, pretrain_id, "an integer seed")?,
                step: steps.parse::<Step>().ok().map(|s| s.0 as i64).ok_or_else(|| {
                    input(format!(
                        "{}: line {}: n_steps is '{steps}', expected a step count like 2M, 200k or 2000000",
                        path.display(),
                        tsv.rows[r].0
                    ))
                })?,
                lr: tsv.parse(r, lr, "a learning rate")?,
                ft_seed: tsv.parse(r, ft_seed, "an integer seed")?,
                release: tsv.text(r, release).to_string(),
            };
            if !(row.lr.is_finite() && row.lr > 0.0) {
                return Err(input(format!(
                    "{}: line {}: lr is '{}', expected a positive finite learning rate",
                    path.display(),
                    tsv.rows[r].0,
                    tsv.text(r, lr)
                )));
            }
            Ok((tsv.rows[r].0, row))
        })
        .collect::<Result<_>>()?;
    // Two rows for one run would be two copies of it in the table (or one file read twice).
    for (i, (line, row)) in rows.iter().enumerate() {
        let same_run = |(_, other): &(usize, IndexRow)| {
            (
                &other.release,
                other.pretrain_id,
                other.step,
                other.lr.to_bits(),
                other.ft_seed,
            ) == (&row.release, row.pretrain_id, row.step, row.lr.to_bits(), row.ft_seed)
        };
        if let Some((first, _)) = rows[..i].iter().find(|r| same_run(r) || r.1.file == row.file) {
            return Err(input(format!(
                "{}: line {line}: the same run or file as line {first} (release {}, seed {}, step {}, lr {}, ft_seed {})",
                path.display(),
                row.release,
                row.pretrain_id,
                row.step,
                row.lr,
                row.ft_seed
            )));
        }
    }
    Ok(rows.into_iter().map(|(_, row)| row).collect())
}
