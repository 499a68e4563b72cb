//! `mb-stats report`: everything a paper needs from a results table, in one folder: summary
//! tables (CSV, Markdown, LaTeX; one table per cell of `--by`), per-seed tables, figures (SVG
//! and PNG) and a Jupyter notebook with every output embedded. Deterministic: the same input
//! and options give byte-identical tables.

pub mod figures;
pub mod notebook;

use std::path::{Path, PathBuf};

use crate::analysis::{
    self, CurveOptions, CurveReport, Options, PowerOptions, Quantity, Report, SeedRow, SeedsOptions,
};
use crate::export::{self, Format, latex::booktabs, markdown::pipe_table, table::Grid};
use crate::results::ResultsTable;
use crate::results::filter::Key;
use figures::{Curve, Distributions, Point, Seeds, Series};
use mb_stats_core::metric::Metric;
use mb_stats_files::error::{Error, Result};
use mb_stats_files::output::atomic_write;
use notebook::{Notebook, Output, html_table};

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

/// The axis label of a metric's values in figures.
fn metric_label(metric: Metric) -> String {
    if metric.is_proportion() {
        format!("{metric} (%)")
    } else {
        metric.to_string()
    }
}

/// The value as plotted (percent metrics ×100, as in the tables).
fn plotted(metric: Metric, value: f64) -> f64 {
    if metric.is_proportion() { 100.0 * value } else { value }
}

/// An interval as plotted, at position `at`.
fn point<X>(at: X, interval: &mb_stats_core::summary::Interval, metric: Metric) -> Point<X> {
    let p = |x| plotted(metric, x);
    Point {
        at,
        estimate: p(interval.estimate),
        low: p(interval.low),
        high: p(interval.high),
    }
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

/// Power against seeds for the report's comparison: table, figure and notebook cells.
fn power_section(
    nb: &mut Notebook,
    table: &ResultsTable,
    analysis: &Options,
    effect: f64,
    dir: &Path,
    figures_dir: &Path,
) -> Result<Vec<PathBuf>> {
    let m = analysis.metric.name();
    let most = analysis::per_seed(table, analysis)?
        .iter()
        .map(|s| s.seed)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut seeds: Vec<usize> = [2, 5, 10, most].into_iter().filter(|&s| s <= most.max(2)).collect();
    seeds.dedup();
    let options = PowerOptions {
        analysis: Options {
            nboot: analysis.nboot.min(200),
            ..analysis.clone()
        },
        effect,
        alpha: 0.05,
        seeds,
        examples: vec![analysis::count_units(table, analysis.ignore_clusters)?],
        simulations: 200,
    };
    let report = analysis::power(table, &options)?;
    let path = dir.join(format!("power-{m}.csv"));
    atomic_write(&path, &export::serialize(&report, Format::Csv))?;
    let mut lines: Vec<(usize, Vec<(f64, f64)>)> = Vec::new();
    for r in report.rows.iter().filter(|r| r.cell == report.rows[0].cell) {
        match lines.iter_mut().find(|l| l.0 == r.examples) {
            Some(l) => l.1.push((r.seeds as f64, r.power)),
            None => lines.push((r.examples, vec![(r.seeds as f64, r.power)])),
        }
    }
    let figure = figures::PowerPlot {
        title: format!("power to detect {effect} ({m}, alpha 0.05)"),
        lines,
    };
    nb.markdown(&format!(
        "### Power ({m})

{}",
        export::terminal(&report)
    ));
    let mut written = vec![path];
    written.extend(figure_cell(
        nb,
        &figure,
        &figures_dir.join(format!("power-{m}")),
        dir,
        &format!("Power to detect δ = {effect} against the number of seeds per procedure (table in `power-{m}.csv`)."),
    )?);
    Ok(written)
}

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

/// The report being written: its notebook and the files made so far.
struct Sections<'a> {
    table: &'a ResultsTable,
    options: &'a ReportOptions,
    dir: &'a Path,
    figures_dir: PathBuf,
    nb: Notebook,
    written: Vec<PathBuf>,
}

impl Sections<'_> {
    /// Every section of one metric (`analysis.metric`), in notebook order.
    fn metric(&mut self, analysis: &Options) -> Result<()> {
        let report = self.summary(analysis)?;
        if analysis.by.is_empty() && distinct_tasks(self.table) > 1 {
            self.subtasks(analysis)?;
        }
        self.per_seed(analysis, &report)?;
        self.seed_tests(analysis)?;
        if matches!(analysis.metric, Metric::Accuracy | Metric::Mean) {
            self.variance(analysis)?;
        }
        if let (Some(effect), Some(_)) = (self.options.effect, &analysis.comparison) {
            let files = power_section(&mut self.nb, self.table, analysis, effect, self.dir, &self.figures_dir)?;
            self.written.extend(files);
        }
        self.curve(analysis)
    }

    /// The Multi-Bootstrap summary: its files, its notebook cells and its distribution figures.
    fn summary(&mut self, analysis: &Options) -> Result<Report> {
        let (options, dir) = (self.options, self.dir);
        let m = analysis.metric.name();
        let report = analysis::bootstrap(self.table, analysis)?;
        let formats = [
            (Format::Csv, true),
            (Format::Markdown, options.markdown),
            (Format::Latex, options.latex),
        ];
        for format in formats.into_iter().filter(|f| f.1).map(|f| f.0) {
            let path = dir.join(format!("summary-{m}.{}", extension(format)));
            atomic_write(&path, &export::serialize(&report, format))?;
            self.written.push(path);
        }
        self.nb.markdown(&summary_text(&report));
        self.nb.command(
            &(options.command_line)(
                Command::Bootstrap,
                analysis,
                &options.results,
                &format!("summary-{m}.csv"),
            ),
            summary_outputs(&report),
        );
        for (cell, figure) in distribution_figures(&report) {
            let stem = self.figures_dir.join(format!("distributions-{m}-{}", slug(&cell)));
            self.written.extend(figure_cell(&mut self.nb, &figure, &stem, dir, &format!(
                "Bootstrap distributions of {m} ({cell}): each curve is the density of the replicate estimates of one \
                 procedure{}.",
                if report.method.pairing.is_some() { "; the right panel shows δ, its interval shaded and 0 marked" } else { "" }
            ))?);
        }
        Ok(report)
    }

    /// Per task (BLiMP's paradigms): a table sorted by estimate (by delta when comparing, with
    /// Holm and Benjamini–Hochberg adjusted p-values) and a forest plot per field (the results'
    /// `mb_stats.fields` footer; one plot of all tasks without it).
    fn subtasks(&mut self, analysis: &Options) -> Result<()> {
        let m = analysis.metric.name();
        let by_task = Options {
            by: vec![Key::Task],
            ..analysis.clone()
        };
        let mut report = analysis::bootstrap(self.table, &by_task)?;
        // Replicates stay unread here; rows are reordered cell by cell, best first.
        report.replicates.clear();
        let key = |cell: &str| -> f64 {
            let rows = report.rows.iter().filter(|r| r.cell == cell);
            let mut rows = rows.clone().filter(|r| r.quantity == Quantity::Delta).chain(rows);
            rows.next().map_or(f64::NAN, |r| r.interval.estimate)
        };
        let mut cells: Vec<String> = report.rows.iter().map(|r| r.cell.clone()).collect();
        cells.dedup();
        let mut order: Vec<(f64, String)> = cells.iter().map(|c| (key(c), c.clone())).collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let rank = |cell: &str| order.iter().position(|(_, c)| c == cell).unwrap_or(usize::MAX);
        report.rows.sort_by_key(|r| rank(&r.cell));
        for format in [
            (Format::Csv, true),
            (Format::Markdown, self.options.markdown),
            (Format::Latex, self.options.latex),
        ]
        .into_iter()
        .filter(|f| f.1)
        .map(|f| f.0)
        {
            let path = self.dir.join(format!("tasks-{m}.{}", extension(format)));
            atomic_write(&path, &export::serialize(&report, format))?;
            self.written.push(path);
        }
        let comparing = report.method.pairing.is_some();
        self.nb.markdown(&format!(
            "### Per task ({m})

Every task (for minimal pairs, every BLiMP paradigm) on its own, sorted by {}{}.",
            if comparing { "δ" } else { "estimate" },
            if comparing {
                ", with p-values adjusted across tasks (Holm, Benjamini–Hochberg)"
            } else {
                ""
            }
        ));
        let command = (self.options.command_line)(
            Command::Bootstrap,
            &by_task,
            &self.options.results,
            &format!("tasks-{m}.csv"),
        );
        self.nb.command(&command, vec![Output::Text(export::terminal(&report))]);
        let fields: std::collections::BTreeMap<String, String> = self
            .table
            .metadata
            .iter()
            .find(|(k, _)| k == crate::results::footer::FIELDS)
            .and_then(|(_, v)| serde_json::from_str(v).ok())
            .unwrap_or_default();
        let mut by_field: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (_, cell) in &order {
            let task = report
                .rows
                .iter()
                .find(|r| &r.cell == cell)
                .and_then(|r| r.task.clone())
                .unwrap_or_default();
            let field = fields.get(&task).cloned().unwrap_or_else(|| "all".to_string());
            by_field.entry(field).or_default().push(task);
        }
        for (field, names) in by_field {
            let mut groups: Vec<Series<usize>> = Vec::new();
            for r in report.rows.iter().filter(|r| r.quantity != Quantity::Delta) {
                let Some(at) = names.iter().position(|n| r.task.as_deref() == Some(n.as_str())) else {
                    continue;
                };
                if !groups.iter().any(|g| g.name == r.group) {
                    groups.push(Series {
                        name: r.group.clone(),
                        procedure: None,
                        points: Vec::new(),
                    });
                }
                let series = groups.iter_mut().find(|g| g.name == r.group).expect("pushed");
                let mut p = point(at, &r.interval, analysis.metric);
                if analysis.metric.is_proportion() {
                    // Few examples per task can give calibrated intervals beyond [0, 100] %.
                    (p.low, p.high) = (p.low.max(0.0), p.high.min(100.0));
                }
                series.points.push(p);
            }
            let figure = figures::Subtasks {
                title: format!("{m} per task: {field}"),
                metric_label: metric_label(analysis.metric),
                names,
                groups,
            };
            let stem = self.figures_dir.join(format!("tasks-{m}-{}", slug(&field)));
            self.written.extend(figure_cell(
                &mut self.nb,
                &figure,
                &stem,
                self.dir,
                &format!("{m} per task, {field}: each procedure's estimate with its interval (proportions drawn within [0, 100] %), best first."),
            )?);
        }
        Ok(())
    }

    /// Every seed's own estimate: its tables, a notebook table and figures against `report`.
    fn per_seed(&mut self, analysis: &Options, report: &Report) -> Result<()> {
        let m = analysis.metric.name();
        let seeds = analysis::per_seed(self.table, analysis)?;
        self.written
            .extend(seed_tables(&seeds, report, self.options, self.dir, m)?);
        self.nb.markdown(&format!(
            "### Per-seed estimates ({m})\n\nEach pretraining seed alone, with an interval that resamples examples only: the \
             conclusion a study of that one checkpoint would have drawn, against the procedure-level interval (band)."
        ));
        let grid = seed_table(&seeds, analysis.metric);
        self.nb.code(
            &format!("import pandas as pd\npd.read_csv(\"seeds-{m}.csv\")"),
            vec![Output::Table {
                html: html_table(&grid.header, &grid.body),
                markdown: pipe_table(&grid),
            }],
        );
        for (cell, figure) in seed_figures(&seeds, report) {
            let stem = self.figures_dir.join(format!("seeds-{m}-{}", slug(&cell)));
            self.written.extend(figure_cell(
                &mut self.nb,
                &figure,
                &stem,
                self.dir,
                &format!("Per-seed {m} ({cell}) against the procedure interval."),
            )?);
        }
        Ok(())
    }

    /// `mb-stats seeds` at α = 0.05: artifact or procedure?
    fn seed_tests(&mut self, analysis: &Options) -> Result<()> {
        let m = analysis.metric.name();
        let seeds_options = SeedsOptions {
            analysis: analysis.clone(),
            alpha: 0.05,
            permutations: 1000,
        };
        let conclusions = analysis::seeds(self.table, &seeds_options)?;
        let path = self.dir.join(format!("seeds-{m}-tests.csv"));
        atomic_write(&path, &export::serialize(&conclusions, Format::Csv))?;
        self.written.push(path);
        self.nb.markdown(&format!(
            "### Artifact or procedure? ({m})\n\nEach seed's own test beside the procedure's, how many seeds reach the \
             procedure's conclusion at α = 0.05, and per arm a test of \"no seed effect\" (runs permuted across \
             seeds when seeds have several runs; otherwise the seeds' spread against example resampling)."
        ));
        let results = &self.options.results;
        let command = (self.options.command_line)(Command::Seeds, analysis, results, &format!("seeds-{m}-tests.csv"));
        self.nb
            .command(&command, vec![Output::Text(export::terminal(&conclusions))]);
        Ok(())
    }

    /// The variance components of every group (a per-example metric).
    fn variance(&mut self, analysis: &Options) -> Result<()> {
        let m = analysis.metric.name();
        let groups = Options {
            comparison: None,
            ..analysis.clone()
        };
        let components = analysis::variance(self.table, &groups)?;
        let path = self.dir.join(format!("variance-{m}.csv"));
        atomic_write(&path, &export::serialize(&components, Format::Csv))?;
        self.written.push(path);
        self.nb.markdown(&format!(
            "### Variance components ({m})\n\nHow much of the uncertainty comes from pretraining seeds, runs and \
             examples, and the standard error a study with more seeds, runs or examples would have."
        ));
        let output = format!("variance-{m}.csv");
        let command = (self.options.command_line)(Command::Variance, &groups, &self.options.results, &output);
        self.nb
            .command(&command, vec![Output::Text(export::terminal(&components))]);
        Ok(())
    }

    /// The learning curve, when the table has several steps.
    fn curve(&mut self, analysis: &Options) -> Result<()> {
        let m = analysis.metric.name();
        let Some((curve_report, figure)) = learning_curve(self.table, analysis, self.options.log_steps)? else {
            return Ok(());
        };
        let path = self.dir.join(format!("curve-{m}.csv"));
        atomic_write(&path, &export::serialize(&curve_report, Format::Csv))?;
        self.written.push(path);
        let stem = self.figures_dir.join(format!("curve-{m}"));
        self.written.extend(figure_cell(
            &mut self.nb,
            &figure,
            &stem,
            self.dir,
            &format!(
                "Learning curve of {m}: per pretraining step, the Multi-Bootstrap estimate with its pointwise interval \
             (dark band) and the simultaneous band over all steps (light band); seeds and examples are drawn \
             identically at every step. Table (paired deltas, convergence step) in `curve-{m}.csv`."
            ),
        )?);
        Ok(())
    }
}

fn extension(format: Format) -> &'static str {
    match format {
        Format::Csv => "csv",
        Format::Json => "json",
        Format::Markdown => "md",
        Format::Latex => "tex",
    }
}

/// The explanation above a summary table.
fn summary_text(report: &Report) -> String {
    let m = report.method.metric;
    let mut text = format!(
        "## {m}\n\nEach row gives the full-data estimate with its {}% {} interval. ",
        report.method.confidence * 100.0,
        report.method.interval
    );
    if report.method.pairing.is_some() {
        text += "`base` and `treatment` are the two procedures; `delta` is treatment − base, with the bootstrap p-value \
                 of its hypothesis";
        if report.rows.iter().filter(|r| r.quantity == Quantity::Delta).count() > 1 {
            text += " and Holm / Benjamini–Hochberg adjustments across cells";
        }
        text += ". ";
    } else {
        text += "One row per procedure (group). ";
    }
    text + &format!("\n\n{}", export::method_line(&report.method))
}

/// The summary tables (one per cell) as notebook outputs.
fn summary_outputs(report: &Report) -> Vec<Output> {
    export::bootstrap::cells(report)
        .into_iter()
        .map(|(cell, rows)| {
            let grid = export::bootstrap::grid(&rows, &report.method);
            let title = format!("{cell}\n");
            Output::Table {
                html: format!("<p><b>{cell}</b></p>\n{}", html_table(&grid.header, &grid.body)),
                markdown: title + &pipe_table(&grid),
            }
        })
        .collect()
}

/// Saves a figure and adds a cell that shows its PNG, with a markdown line linking the SVG.
fn figure_cell(
    nb: &mut Notebook,
    figure: &impl figures::Figure,
    stem: &Path,
    dir: &Path,
    caption: &str,
) -> Result<Vec<PathBuf>> {
    let (svg, png) = figures::save(figure, stem)?;
    let relative = |p: &Path| p.strip_prefix(dir).unwrap_or(p).display().to_string();
    nb.markdown(&format!(
        "{caption} Vector version: [{}]({}).",
        relative(&svg),
        relative(&svg)
    ));
    let bytes = std::fs::read(&png).map_err(|e| Error::Output(format!("{}: {e}", png.display())))?;
    nb.code(
        &format!("from IPython.display import Image\nImage(\"{}\")", relative(&png)),
        vec![Output::Png {
            bytes,
            alt: format!("<figure {}>", relative(&png)),
        }],
    );
    Ok(vec![svg, png])
}

/// One distribution figure per cell.
fn distribution_figures(report: &Report) -> Vec<(String, Distributions)> {
    let metric = report.method.metric;
    let scale = |v: &[f64]| v.iter().map(|&x| plotted(metric, x)).collect::<Vec<f64>>();
    let mut out: Vec<(String, Distributions)> = Vec::new();
    for reps in &report.replicates {
        let delta_row = report
            .rows
            .iter()
            .find(|r| r.cell == reps.cell && r.quantity == Quantity::Delta);
        match (&reps.replicates.treatment, delta_row) {
            (Some(t), Some(row)) => {
                let names: Vec<&str> = reps.group.splitn(2, " - ").collect();
                let deltas: Vec<f64> = t
                    .iter()
                    .zip(&reps.replicates.base)
                    .map(|(t, b)| plotted(metric, t - b))
                    .collect();
                let interval = (plotted(metric, row.interval.low), plotted(metric, row.interval.high));
                out.push((
                    reps.cell.clone(),
                    Distributions {
                        title: format!("{metric}: {} ({})", reps.group, reps.cell),
                        metric_label: metric_label(metric),
                        sides: vec![
                            (
                                names.get(1).unwrap_or(&"base").to_string(),
                                scale(&reps.replicates.base),
                            ),
                            (names.first().unwrap_or(&"treatment").to_string(), scale(t)),
                        ],
                        delta: Some((deltas, interval)),
                    },
                ));
            }
            _ => match out.last_mut() {
                Some((cell, figure)) if *cell == reps.cell => {
                    figure.sides.push((reps.group.clone(), scale(&reps.replicates.base)))
                }
                _ => out.push((
                    reps.cell.clone(),
                    Distributions {
                        title: format!("{metric} by procedure ({})", reps.cell),
                        metric_label: metric_label(metric),
                        sides: vec![(reps.group.clone(), scale(&reps.replicates.base))],
                        delta: None,
                    },
                )),
            },
        }
    }
    out
}

/// The per-seed text table.
fn seed_table(seeds: &[SeedRow], metric: Metric) -> Grid {
    let header = ["cell", "group", "seed", "runs", "estimate [CI, examples only]"]
        .map(String::from)
        .to_vec();
    let body = seeds
        .iter()
        .map(|s| {
            vec![
                s.cell.clone(),
                s.group.clone(),
                s.seed.to_string(),
                s.n_runs.to_string(),
                export::format_interval(metric, &s.interval),
            ]
        })
        .collect();
    Grid { header, body }
}

/// Writes `seeds-{m}.csv` (full precision) and, as asked, `.md` and `.tex`.
fn seed_tables(
    seeds: &[SeedRow],
    report: &Report,
    options: &ReportOptions,
    dir: &Path,
    m: &str,
) -> Result<Vec<PathBuf>> {
    let mut csv = ::csv::Writer::from_writer(Vec::new());
    let record = |w: &mut ::csv::Writer<Vec<u8>>, r: Vec<String>| w.write_record(r).expect("writing to memory");
    record(
        &mut csv,
        [
            "cell",
            "group",
            "seed",
            "n_runs",
            "estimate",
            "boot_mean",
            "low",
            "high",
            "nboot",
            "confidence",
            "sampling",
            "rng_seed",
        ]
        .map(String::from)
        .to_vec(),
    );
    let method = &report.method;
    for s in seeds {
        let i = &s.interval;
        record(
            &mut csv,
            vec![
                s.cell.clone(),
                s.group.clone(),
                s.seed.to_string(),
                s.n_runs.to_string(),
                i.estimate.to_string(),
                i.boot_mean.to_string(),
                i.low.to_string(),
                i.high.to_string(),
                method.nboot.to_string(),
                method.confidence.to_string(),
                "examples".into(),
                method.rng_seed.to_string(),
            ],
        );
    }
    let grid = seed_table(seeds, method.metric);
    let note = format!(
        "Per-seed estimates: runs averaged within the seed; {}% {} intervals resampling {} only, nboot {}, rng seed {}.",
        method.confidence * 100.0,
        method.interval,
        method.unit(),
        method.nboot,
        method.rng_seed
    );
    let mut files = vec![("csv", csv.into_inner().expect("writing to memory"))];
    if options.markdown {
        files.push(("md", format!("{}\n{note}\n", pipe_table(&grid)).into_bytes()));
    }
    if options.latex {
        files.push((
            "tex",
            format!(
                "% requires \\usepackage{{booktabs}}\n{}\\par\\footnotesize {note}\n",
                booktabs(&grid)
            )
            .into_bytes(),
        ));
    }
    files
        .into_iter()
        .map(|(ext, bytes)| {
            let path = dir.join(format!("seeds-{m}.{ext}"));
            atomic_write(&path, &bytes).map(|_| path)
        })
        .collect()
}

/// One per-seed figure per cell, each group against its procedure interval.
fn seed_figures(seeds: &[SeedRow], report: &Report) -> Vec<(String, Seeds)> {
    let metric = report.method.metric;
    let mut out: Vec<(String, Seeds)> = Vec::new();
    for s in seeds {
        if out.last().is_none_or(|(cell, _)| *cell != s.cell) {
            let title = format!("{metric} per pretraining seed ({})", s.cell);
            out.push((
                s.cell.clone(),
                Seeds {
                    title,
                    metric_label: metric_label(metric),
                    groups: Vec::new(),
                },
            ));
        }
        let figure = &mut out.last_mut().expect("pushed").1;
        if figure.groups.last().is_none_or(|g| g.name != s.group) {
            let procedure = report
                .rows
                .iter()
                .find(|r| r.cell == s.cell && r.group == s.group && r.quantity != Quantity::Delta)
                .map(|r| point((), &r.interval, metric));
            figure.groups.push(Series {
                name: s.group.clone(),
                procedure,
                points: Vec::new(),
            });
        }
        figure
            .groups
            .last_mut()
            .expect("pushed")
            .points
            .push(point(s.seed, &s.interval, metric));
    }
    out
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

/// The learning curve (`mb-stats curve`) when the table has several steps and the cells are
/// the steps: per group, pointwise intervals and the simultaneous band.
fn learning_curve(table: &ResultsTable, analysis: &Options, log_steps: bool) -> Result<Option<(CurveReport, Curve)>> {
    if distinct_steps(table) < 2 || analysis.by != [Key::Step] {
        return Ok(None);
    }
    let options = CurveOptions {
        analysis: Options {
            by: Vec::new(),
            comparison: None,
            ..analysis.clone()
        },
        tolerance: 0.01,
    };
    let report = analysis::curve(table, &options)?;
    let metric = analysis.metric;
    let p = |x: f64| plotted(metric, x);
    let groups = report
        .series
        .iter()
        .map(|s| Series {
            name: s.group.clone(),
            procedure: None,
            points: s
                .points
                .iter()
                .map(|q| point(q.step as f64, &q.interval, metric))
                .collect(),
        })
        .collect();
    let simultaneous = report
        .series
        .iter()
        .map(|s| s.points.iter().map(|q| (p(q.band.0), p(q.band.1))).collect())
        .collect();
    let title = format!("{metric} over pretraining");
    Ok(Some((
        report,
        Curve {
            title,
            metric_label: metric_label(metric),
            log_steps,
            groups,
            simultaneous,
        },
    )))
}
