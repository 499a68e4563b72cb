//! The report's sections, one method each, in notebook order: the summary, per task, per seed,
//! seed tests, variance components, power and the learning curve; each writes its files and adds
//! its notebook cells.

use std::path::{Path, PathBuf};

use super::notebook::{Notebook, Output, html_table};
use super::plots::{distribution_figures, learning_curve, metric_label, point, seed_figures};
use super::tables::{seed_table, seed_tables};
use super::{Command, ReportOptions, distinct_tasks, extension, figures, slug};
use crate::analysis::{self, Options, PowerOptions, Quantity, Report, SeedsOptions};
use crate::export::{self, Format, markdown::pipe_table};
use crate::results::ResultsTable;
use crate::results::filter::Key;
use figures::Series;
use mb_stats_core::metric::Metric;
use mb_stats_files::error::{Error, Result};
use mb_stats_files::output::atomic_write;

/// Power against seeds for the report's comparison: table, figure and notebook cells.
pub(super) fn power_section(
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
            nboot: analysis.nboot.at_most(200),
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

/// The report being written: its notebook and the files made so far.
pub(super) struct Sections<'a> {
    pub(super) table: &'a ResultsTable,
    pub(super) options: &'a ReportOptions,
    pub(super) dir: &'a Path,
    pub(super) figures_dir: PathBuf,
    pub(super) nb: Notebook,
    pub(super) written: Vec<PathBuf>,
}

impl Sections<'_> {
    /// Every section of one metric (`analysis.metric`), in notebook order.
    pub(super) fn metric(&mut self, analysis: &Options) -> Result<()> {
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

/// The explanation above a summary table.
pub(super) fn summary_text(report: &Report) -> String {
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
pub(super) fn summary_outputs(report: &Report) -> Vec<Output> {
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
pub(super) fn figure_cell(
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
