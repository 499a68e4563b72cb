//! `mb-stats report`: everything a paper needs from a results table, in one folder: summary
//! tables (CSV, Markdown, LaTeX; one table per cell of `--by`), per-seed tables, figures (SVG
//! and PNG) and a Jupyter notebook with every output embedded. Deterministic: the same input
//! and options give byte-identical tables.
//!
//! Rooms of one job each: this module writes the folder atomically and orders the report;
//! [`sections`] holds one method per section, [`tables`] the per-seed tables, [`plots`] what each
//! figure shows, [`figures`] draws them and [`notebook`] writes the Jupyter notebook.

pub mod figures;
pub mod notebook;
mod plots;
mod sections;
mod tables;

use std::path::{Path, PathBuf};

use crate::analysis::Options;
use crate::export::Format;
use crate::results::ResultsTable;
use crate::results::filter::Key;
use mb_stats_core::metric::Metric;
use mb_stats_files::error::{Error, Result};
use mb_stats_files::output::atomic_write;
use notebook::{Notebook, Output};
use sections::Sections;

/// What `mb-stats report` analyses.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// The analysis settings (the metric is replaced by each of `metrics`).
    pub analysis: Options,
    /// Metrics to report, each with its own tables and figures.
    pub metrics: Vec<Metric>,
    /// Log-scaled step axis for learning curves.
    pub log_steps: bool,
    /// Write Markdown tables.
    pub markdown: bool,
    /// Write LaTeX tables.
    pub latex: bool,
    /// Effect size for a power section (comparisons only).
    pub effect: Option<f64>,
    /// The results file, as given on the command line (for the commands in the notebook).
    pub results: String,
    /// The exact `mb-stats report` command line.
    pub command: String,
    /// How the equivalent analysis commands are spelled.
    pub command_line: CommandLine,
}

/// A file-name-safe form of a cell label (`task=x,layer=3` → `task-x_layer-3`).
fn slug(label: &str) -> String {
    label
        .chars()
        .map(|c| match c {
            '=' => '-',
            ',' => '_',
            c if c.is_ascii_alphanumeric() || c == '-' || c == '.' => c,
            _ => '_',
        })
        .collect()
}

/// The analysis commands whose equivalent command lines the notebook shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `mb-stats bootstrap`.
    Bootstrap,
    /// `mb-stats seeds`.
    Seeds,
    /// `mb-stats variance`.
    Variance,
}

impl Command {
    /// The subcommand's name.
    pub fn name(self) -> &'static str {
        match self {
            Command::Bootstrap => "bootstrap",
            Command::Seeds => "seeds",
            Command::Variance => "variance",
        }
    }
}

/// Spells the command line that runs `command` with `analysis` on the results file `results`,
/// writing `output`. The command line's owner (the binary, which knows the flags) provides it.
pub type CommandLine = fn(command: Command, analysis: &Options, results: &str, output: &str) -> String;

/// Quotes a shell word when it needs it.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Writes the report of `table` into `dir` (created if needed). Returns the files written.
///
/// Nothing appears in `dir` unless the whole report succeeded: the files are made in a temporary
/// folder beside `dir` (`.mb-stats-report-*`, removed on every error), then a new `dir` is that
/// folder renamed into place, and an existing `dir` receives each finished file by a rename
/// (other files there are left alone). Only a `kill -9` can leave the temporary folder behind,
/// and never a partial file in `dir`.
pub fn write(table: &ResultsTable, options: &ReportOptions, dir: &Path) -> Result<Vec<PathBuf>> {
    if options.effect.is_some() && options.analysis.comparison.is_none() {
        return Err(Error::named(
            "{effect}: the power section needs a comparison ({base} and {treatment}); without one it would be left out",
        ));
    }
    let fail = |path: &Path, e: std::io::Error| {
        Error::Output(format!(
            "{}: cannot write: {}",
            path.display(),
            mb_stats_files::output::io_message(&e)
        ))
    };
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".mb-stats-report-");
    #[cfg(unix)]
    {
        // The folder may become `dir` itself: the umask decides its mode, as for `mkdir`.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o777));
    }
    let temp = builder.tempdir_in(parent).map_err(|e| fail(dir, e))?;
    let made = write_files(table, options, temp.path(), dir)?;
    let placed: Vec<PathBuf> = made
        .iter()
        .map(|p| dir.join(p.strip_prefix(temp.path()).unwrap_or(p)))
        .collect();
    if !dir.exists() {
        let kept = temp.keep();
        if let Err(e) = std::fs::rename(&kept, dir) {
            let _ = std::fs::remove_dir_all(&kept);
            return Err(fail(dir, e));
        }
        return Ok(placed);
    }
    let mut pending = vec![temp.path().to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).map_err(|e| fail(&folder, e))? {
            let from = entry.map_err(|e| fail(&folder, e))?.path();
            let to = dir.join(from.strip_prefix(temp.path()).unwrap_or(&from));
            if from.is_dir() {
                std::fs::create_dir_all(&to).map_err(|e| fail(&to, e))?;
                pending.push(from);
            } else {
                std::fs::rename(&from, &to).map_err(|e| fail(&to, e))?;
            }
        }
    }
    Ok(placed)
}

/// Writes every file of the report into `dir`; `shown` is the folder the user named.
fn write_files(table: &ResultsTable, options: &ReportOptions, dir: &Path, shown: &Path) -> Result<Vec<PathBuf>> {
    let figures_dir = dir.join("figures");
    std::fs::create_dir_all(&figures_dir)
        .map_err(|e| Error::Output(format!("{}: cannot create: {e}", figures_dir.display())))?;
    let mut sections = Sections {
        table,
        options,
        dir,
        figures_dir,
        nb: Notebook::default(),
        written: Vec::new(),
    };
    sections.nb.markdown(&format!(
        "# mb-stats report: `{}`\n\nThe Multi-Bootstrap (Sellam et al., ICLR 2022) estimates each procedure's expected \
         metric over pretraining seeds *and* examples, and resamples both to give intervals and tests that hold for \
         the training procedure, not only for one checkpoint. Every table and figure below was made by the command \
         in the next cell; the outputs are embedded, so nothing needs to run.",
        options.results
    ));
    sections.nb.command(
        &options.command,
        vec![Output::Text(format!("report written to {}\n", shown.display()))],
    );
    // A table with several pretraining steps is summarised per step unless --by says otherwise.
    let by = match (options.analysis.by.is_empty(), distinct_steps(table) > 1) {
        (true, true) => vec![Key::Step],
        _ => options.analysis.by.clone(),
    };
    for &metric in &options.metrics {
        let analysis = Options {
            metric,
            by: by.clone(),
            ..options.analysis.clone()
        };
        sections.metric(&analysis)?;
    }
    let Sections { nb, mut written, .. } = sections;
    let path = dir.join("report.ipynb");
    atomic_write(&path, &nb.to_bytes())?;
    written.push(path);
    Ok(written)
}

fn extension(format: Format) -> &'static str {
    match format {
        Format::Csv => "csv",
        Format::Json => "json",
        Format::Markdown => "md",
        Format::Latex => "tex",
    }
}

/// Number of distinct non-null tasks in the table.
fn distinct_tasks(table: &ResultsTable) -> usize {
    let mut tasks: Vec<&str> = table.task.iter().flat_map(|t| t.iter().flatten()).collect();
    tasks.sort_unstable();
    tasks.dedup();
    tasks.len()
}

/// Number of distinct non-null steps in the table.
fn distinct_steps(table: &ResultsTable) -> usize {
    let mut steps: Vec<i64> = table.step.iter().flatten().flatten().copied().collect();
    steps.sort_unstable();
    steps.dedup();
    steps.len()
}
