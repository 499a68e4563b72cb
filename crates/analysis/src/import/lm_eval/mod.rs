//! `mb-stats import lm-eval`: the per-sample output of EleutherAI's lm-evaluation-harness
//! (`--log_samples`) as a results table, so every seed suite the harness evaluates (PolyPythias,
//! DataDecide, MultiBERTs, …) gets the Multi-Bootstrap.
//!
//! One row per (model, step, task, filter, document): `group` is the model's name without its
//! seed, `seed` comes from the name, `step` from `revision=stepK` or a `step_K` folder, `task` is
//! the task (with `/filter` when the filter is not `none`), `example` the `doc_id`; `label` and
//! `prediction` are the gold choice and the choice of highest log-likelihood (or the pair a
//! corpus-level metric such as f1 or mcc logs), `score` the chosen per-sample metric, and every
//! other numeric per-sample metric a column of its own.
//!
//! Files are streamed: each is read line by line, its rows written to the output as one batch
//! and dropped, so memory depends on the size of one file (per thread), not on how many there
//! are. Before the output is put in place, the import checks that the files agree with the
//! harness and with each other (see [`Checks`]).

pub mod files;
pub mod record;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use regex::Regex;

use crate::results::{ExampleIds, Numbers, ResultsTable, Texts, footer, parquet};
use files::{Folders, SamplesFile};
use mb_stats_files::error::{Error, Result, input, spell_names};
use record::{MetricValue, Record};

/// How an import names and checks what it reads.
#[derive(Clone, Debug)]
pub struct Options {
    /// The per-sample metric written to `score` (default: each task's first numeric metric).
    pub metric: Option<String>,
    /// The group of every row (default: the model's name without its seed).
    pub group: Option<String>,
    /// Finds the seed in a model's name: its first capture group.
    pub seed_pattern: Regex,
    /// Seeds of models whose names have none (`EleutherAI/pythia-160m` = 0).
    pub seeds: Vec<(String, i64)>,
    /// Write the table even when a check fails (each failure is then a warning).
    pub force: bool,
}

/// The default seed pattern.
pub const SEED_PATTERN: &str = r"seed(\d+)";

/// What an import wrote and what it checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Rows written.
    pub rows: usize,
    /// Samples files read.
    pub files: usize,
    /// The distinct groups, seeds, steps and tasks.
    pub groups: usize,
    /// Number of distinct seeds.
    pub seeds: usize,
    /// Number of distinct steps (a missing step counts as one).
    pub steps: usize,
    /// Number of distinct tasks (filters included).
    pub tasks: usize,
    /// Per task, the comparison of the imported means with the harness's own aggregates.
    pub comparisons: Vec<Comparison>,
    /// Failed checks that `force` let through, and aggregates that could not be compared; settings
    /// named as `{name}` (see [`Error::Named`]).
    pub warnings: Vec<String>,
}

impl Summary {
    /// What was checked and written, as lines for the terminal (`output` names the table,
    /// `spell` spells the settings the warnings name).
    pub fn describe(&self, output: &str, spell: impl Fn(&str) -> String) -> String {
        let mut lines =
            vec!["the mean of each imported metric against the harness's own aggregate (results_*.json):".to_string()];
        for c in &self.comparisons {
            lines.push(match (c.metric.as_str(), c.compared) {
                ("", _) => format!("  {}: no numeric per-sample metric (pairs in label/prediction)", c.task),
                (m, 0) => format!("  {}: {m}: no aggregate to compare with", c.task),
                (m, n) => format!(
                    "  {}: {m}: equal in {n} of {} (model, step) cells, largest |difference| {:.1e}",
                    c.task,
                    n + c.missing,
                    c.largest_difference
                ),
            });
        }
        lines.extend(
            self.warnings
                .iter()
                .map(|w| format!("warning: {}", spell_names(w, &spell))),
        );
        lines.push(format!(
            "wrote {} rows ({} group(s), {} seed(s), {} step(s), {} task(s), from {} samples files) to {output}",
            self.rows, self.groups, self.seeds, self.steps, self.tasks, self.files
        ));
        lines.join("\n")
    }
}

/// A seed pattern from its text; the error names `{seed_pattern}`.
pub fn seed_pattern(text: &str) -> Result<Regex> {
    Regex::new(text).map_err(|e| {
        let reason = e.to_string();
        let reason = reason
            .lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string();
        mb_stats_files::error::Error::named(format!("{{seed_pattern}} {text}: not a regular expression ({reason})"))
    })
}

/// The imported metric's mean against the harness's aggregate, over one task's cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Task (with filter).
    pub task: String,
    /// The metric in `score`.
    pub metric: String,
    /// (model, step) cells with an aggregate to compare.
    pub compared: usize,
    /// Cells without one.
    pub missing: usize,
    /// The largest |mean of the samples − aggregate|.
    pub largest_difference: f64,
}

/// Two numbers equal up to the rounding of a sum in another order.
const AGGREGATE_TOLERANCE: f64 = 1e-9;

/// A samples file with its place in the suite.
struct Source {
    file: SamplesFile,
    group: String,
    seed: i64,
}

/// The rows of one samples file and what the checks need from it.
struct Parsed {
    table: ResultsTable,
    /// Per filter: the documents' (id, hash digest), and the sum of the imported metric.
    cells: BTreeMap<String, Cell>,
    duplicates: Vec<String>,
}

#[derive(Default)]
struct Cell {
    docs: Vec<(i64, Option<u64>)>,
    sum: f64,
    count: usize,
}

/// Imports every samples file under `paths` into the results table `output` (written
/// atomically, and only when every check passes or `force` is set).
pub fn import(paths: &[PathBuf], options: &Options, output: &Path) -> Result<Summary> {
    let found = files::find(paths)?;
    if found.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(input(format!(
            "{}: no lm-evaluation-harness samples files (run the harness with --log_samples)",
            shown.join(" ")
        )));
    }
    let mut folders = Folders::default();
    let mut sources = Vec::with_capacity(found.len());
    for path in &found {
        let file = folders.describe(path)?;
        let (group, seed) = identity(&file, options)?;
        sources.push(Source { file, group, seed });
    }
    sources.sort_by(|a, b| {
        (&a.group, a.seed, a.file.step, &a.file.task, &a.file.path).cmp(&(
            &b.group,
            b.seed,
            b.file.step,
            &b.file.task,
            &b.file.path,
        ))
    });
    for pair in sources.windows(2) {
        let (a, b) = (&pair[0].file, &pair[1].file);
        if (&a.model, a.step, &a.task) == (&b.model, b.step, &b.task) {
            return Err(input(format!(
                "{} and {}: two samples files for model {}{} on task {}; import one of them",
                a.path.display(),
                b.path.display(),
                a.model,
                step_words(a.step),
                a.task
            )));
        }
    }
    let columns = Columns::plan(&sources, options, &folders)?;
    let mut summary = Summary {
        files: sources.len(),
        warnings: columns.notes.clone(),
        ..Summary::default()
    };
    let metadata = vec![
        (footer::IMPORT.to_string(), "lm-evaluation-harness".to_string()),
        (
            footer::SCORES.to_string(),
            serde_json::to_string(&columns.score).unwrap_or_default(),
        ),
    ];
    let template = columns.table(Vec::new());
    parquet::write_batches(output, &template, metadata, |write| {
        let mut checks = Checks::default();
        let batch = rayon::current_num_threads().max(1) * 2;
        for (start, chunk) in sources.chunks(batch).enumerate().map(|(i, c)| (i * batch, c)) {
            let parsed: Vec<Result<Parsed>> = chunk.par_iter().map(|s| columns.parse(s)).collect();
            for (offset, parsed) in parsed.into_iter().enumerate() {
                let parsed = parsed?;
                summary.rows += parsed.table.len();
                write(&parsed.table)?;
                checks.add(start + offset, &sources, parsed);
            }
        }
        checks.finish(&sources, &columns, &folders, &mut summary)?;
        let failures = std::mem::take(&mut checks.failures);
        match failures.first() {
            Some(first) if !options.force => Err(Error::named(match failures.len() {
                1 => format!("{first} ({{force}} writes the table anyway)"),
                n => format!(
                    "{first} (and {} more failed checks; {{force}} writes the table anyway)",
                    n - 1
                ),
            })),
            _ => {
                summary.warnings.extend(failures);
                Ok(())
            }
        }
    })?;
    let distinct = |f: &dyn Fn(&Source) -> String| sources.iter().map(f).collect::<BTreeSet<_>>().len();
    summary.groups = distinct(&|s| s.group.clone());
    summary.seeds = distinct(&|s| s.seed.to_string());
    summary.steps = distinct(&|s| format!("{:?}", s.file.step));
    summary.tasks = summary.comparisons.len();
    Ok(summary)
}

/// " at step K", or nothing for a final checkpoint.
fn step_words(step: Option<i64>) -> String {
    step.map(|s| format!(" at step {s}")).unwrap_or_default()
}

/// The group and seed of a samples file's model.
fn identity(file: &SamplesFile, options: &Options) -> Result<(String, i64)> {
    let given = options.seeds.iter().find(|(name, _)| *name == file.model);
    let (rest, seed) = match given {
        Some((_, seed)) => (file.model.clone(), *seed),
        None => {
            let captures = options.seed_pattern.captures(&file.model).ok_or_else(|| {
                Error::named(format!(
                    "{}: model {} has no seed in its name ({{seed_pattern}} {}); give it one with {{seed}} {}=SEED",
                    file.path.display(),
                    file.model,
                    options.seed_pattern.as_str(),
                    file.model
                ))
            })?;
            let digits = captures.get(1).unwrap_or_else(|| captures.get(0).expect("a match"));
            let seed = digits.as_str().parse::<i64>().map_err(|_| {
                Error::named(format!(
                    "{{seed_pattern}} {}: in model {} it captures '{}', expected an integer seed",
                    options.seed_pattern.as_str(),
                    file.model,
                    digits.as_str()
                ))
            })?;
            let whole = captures.get(0).expect("a match");
            let rest = format!("{}{}", &file.model[..whole.start()], &file.model[whole.end()..]);
            (rest, seed)
        }
    };
    let group = options.group.clone().unwrap_or_else(|| tidy_name(&rest));
    Ok((group, seed))
}

/// A model name with its seed cut out, without the separators left dangling
/// (`EleutherAI/pythia-160m-` → `EleutherAI/pythia-160m`).
fn tidy_name(name: &str) -> String {
    let separators = ['-', '_', '.'];
    let parts: Vec<String> = name
        .split('/')
        .map(|part| {
            let mut out = String::with_capacity(part.len());
            for c in part.trim_matches(separators).chars() {
                if !(separators.contains(&c) && out.ends_with(separators)) {
                    out.push(c);
                }
            }
            out
        })
        .collect();
    parts.join("/")
}

/// The output's columns: which metric is each task's score, and the other metrics' columns.
struct Columns {
    /// Task (without filter) → the metric in `score` (`None`: only pairs, no numeric metric).
    score: BTreeMap<String, Option<String>>,
    /// The other numeric metrics, each a column, in order of first appearance.
    extra: Vec<String>,
    /// What the user should know about the choice (tasks without the metric asked for).
    notes: Vec<String>,
}

impl Columns {
    /// Reads the first record of each task's files to choose the score metric and the columns.
    fn plan(sources: &[Source], options: &Options, folders: &Folders) -> Result<Columns> {
        let mut score: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut extra: Vec<String> = Vec::new();
        let mut seen_tasks = HashSet::new();
        // Tasks without the metric named by --metric (they keep their default).
        let mut without: Vec<String> = Vec::new();
        for source in sources {
            if !seen_tasks.insert(source.file.task.clone()) {
                continue;
            }
            let mut first = None;
            for_each_record(&source.file.path, &mut |_, record| {
                first = Some(record);
                Ok(false)
            })?;
            let Some(first) = first else {
                return Err(input(format!("{}: no samples in the file", source.file.path.display())));
            };
            let numbers: Vec<&str> = first
                .metrics
                .iter()
                .filter(|(_, v)| matches!(v, MetricValue::Number(_)))
                .map(|(n, _)| n.as_str())
                .collect();
            // The first metric the harness averages (lambada's first is perplexity, which it
            // aggregates as exp(-mean)), or the first when its results file does not say.
            let default = numbers
                .iter()
                .find(|m| folders.aggregation(&source.file, m).is_none_or(|a| a == "mean"))
                .or(numbers.first())
                .map(|n| n.to_string());
            let chosen = match &options.metric {
                Some(metric) => match first.metrics.iter().find(|(n, _)| n == metric) {
                    Some((_, MetricValue::Number(_))) => Some(metric.clone()),
                    Some((_, MetricValue::Pair(..))) => {
                        return Err(Error::named(format!(
                            "{{metric}} {metric}: task {} logs it as (gold, prediction) pairs the harness aggregates over \
                             the corpus; they are imported as label and prediction (analyse with {{metric}} {metric} there)",
                            source.file.task
                        )));
                    }
                    None => {
                        let names: Vec<&str> = first.metrics.iter().map(|(n, _)| n.as_str()).collect();
                        without.push(format!("{} (has {})", source.file.task, names.join(", ")));
                        default
                    }
                },
                None => default,
            };
            for name in numbers {
                if Some(name) != chosen.as_deref() && !extra.iter().any(|e| e == name) {
                    extra.push(name.to_string());
                }
            }
            score.insert(source.file.task.clone(), chosen);
        }
        let mut notes = Vec::new();
        if let Some(metric) = &options.metric {
            if without.len() == score.len() {
                return Err(Error::named(format!(
                    "{{metric}} {metric}: no task has such a per-sample metric ({})",
                    without.join("; ")
                )));
            }
            if !without.is_empty() {
                notes.push(format!(
                    "{{metric}} {metric}: not a per-sample metric of {}; their score is their first averaged metric",
                    without.join("; ")
                ));
            }
        }
        for name in &extra {
            if super::super::results::COLUMNS.contains(&name.as_str()) {
                return Err(Error::named(format!(
                    "a per-sample metric is named {name}, as a column of the results table; choose it with {{metric}}"
                )));
            }
        }
        Ok(Columns { score, extra, notes })
    }

    /// A table with every column of the output, empty where `rows` gives nothing.
    fn table(&self, rows: Vec<Row>) -> ResultsTable {
        let n = rows.len();
        let mut extra: Vec<(String, Vec<Option<f64>>)> = self
            .extra
            .iter()
            .map(|name| (name.clone(), Vec::with_capacity(n)))
            .collect();
        let mut table = ResultsTable {
            group: Texts::with_capacity(n),
            seed: Vec::with_capacity(n),
            step: Some(Vec::with_capacity(n)),
            run: None,
            task: Some(Texts::with_capacity(n)),
            layer: None,
            example: ExampleIds::Int(Vec::with_capacity(n)),
            label: Some(Numbers::Int(Vec::with_capacity(n))),
            prediction: Some(Numbers::Int(Vec::with_capacity(n))),
            score: Some(Vec::with_capacity(n)),
            cluster: None,
            extra: Vec::new(),
            metadata: Vec::new(),
        };
        for row in rows {
            table.group.push(Some(&row.group));
            table.seed.push(row.seed);
            push(&mut table.step, row.step);
            if let Some(tasks) = &mut table.task {
                tasks.push(Some(&row.task));
            }
            if let ExampleIds::Int(v) = &mut table.example {
                v.push(row.example);
            }
            for (column, value) in [(&mut table.label, row.label), (&mut table.prediction, row.prediction)] {
                if let Some(Numbers::Int(v)) = column {
                    v.push(value);
                }
            }
            push(&mut table.score, row.score);
            for ((_, column), value) in extra.iter_mut().zip(row.extra) {
                column.push(value);
            }
        }
        table.extra = extra;
        table
    }

    /// Reads one samples file into rows.
    fn parse(&self, source: &Source) -> Result<Parsed> {
        let path = &source.file.path;
        let metric = self.score.get(&source.file.task).cloned().flatten();
        let mut rows = Vec::new();
        let mut cells: BTreeMap<String, Cell> = BTreeMap::new();
        let mut seen: HashSet<(String, i64)> = HashSet::new();
        let mut duplicates = Vec::new();
        for_each_record(path, &mut |line, record| {
            let doc = record
                .doc_id
                .ok_or_else(|| input(format!("{}: sample {line}: no doc_id", path.display())))?;
            let filter = record.filter.clone().unwrap_or_else(|| "none".to_string());
            let task = match filter.as_str() {
                "none" => source.file.task.clone(),
                other => format!("{}/{other}", source.file.task),
            };
            if !seen.insert((filter.clone(), doc)) {
                duplicates.push(format!(
                    "{}: sample {line}: doc_id {doc} of task {task} appears twice",
                    path.display()
                ));
                return Ok(true);
            }
            let pair = record.metrics.iter().find_map(|(_, v)| match v {
                MetricValue::Pair(gold, prediction) => Some((*gold, *prediction)),
                MetricValue::Number(_) => None,
            });
            let choice = record.choice();
            let value = |name: &str| {
                record.metrics.iter().find_map(|(n, v)| match v {
                    MetricValue::Number(x) if n == name => Some(*x),
                    _ => None,
                })
            };
            let score = match &metric {
                Some(name) => Some(value(name).ok_or_else(|| {
                    input(format!(
                        "{}: sample {line}: no per-sample value of {name}",
                        path.display()
                    ))
                })?),
                None => None,
            };
            let cell = cells.entry(task.clone()).or_default();
            cell.docs.push((doc, record.doc_hash.as_deref().map(digest)));
            if let Some(x) = score {
                cell.sum += x;
                cell.count += 1;
            }
            rows.push(Row {
                group: source.group.clone(),
                seed: source.seed,
                step: source.file.step,
                task,
                example: doc,
                label: pair.map(|p| p.0).or_else(|| choice.and_then(|c| c.0)),
                prediction: pair.map(|p| p.1).or_else(|| choice.map(|c| c.1)),
                score,
                extra: self.extra.iter().map(|name| value(name)).collect(),
            });
            Ok(true)
        })?;
        if rows.is_empty() {
            return Err(input(format!("{}: no samples in the file", path.display())));
        }
        Ok(Parsed {
            table: self.table(rows),
            cells,
            duplicates,
        })
    }
}

fn push<T>(column: &mut Option<Vec<Option<T>>>, value: Option<T>) {
    if let Some(v) = column {
        v.push(value);
    }
}

/// One output row.
struct Row {
    group: String,
    seed: i64,
    step: Option<i64>,
    task: String,
    example: i64,
    label: Option<i64>,
    prediction: Option<i64>,
    score: Option<f64>,
    extra: Vec<Option<f64>>,
}

/// A short digest of a document hash (the checks compare digests, not 64-character strings).
fn digest(hash: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hash.hash(&mut hasher);
    hasher.finish()
}

/// Calls `each(sample number, record)` for every record of a samples file, JSON Lines or one
/// JSON array, until it returns `false`. Lines are read one at a time into one buffer.
fn for_each_record(path: &Path, each: &mut dyn FnMut(usize, Record) -> Result<bool>) -> Result<()> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| input(format!("{shown}: cannot open: {e}")))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let first = loop {
        let buffer = reader
            .fill_buf()
            .map_err(|e| input(format!("{shown}: cannot read: {e}")))?;
        match buffer
            .iter()
            .position(|b| !b.is_ascii_whitespace() && *b != 0xEF && *b != 0xBB && *b != 0xBF)
        {
            Some(i) => {
                let byte = buffer[i];
                reader.consume(i);
                break Some(byte);
            }
            None if buffer.is_empty() => break None,
            None => {
                let n = buffer.len();
                reader.consume(n);
            }
        }
    };
    match first {
        None => Ok(()),
        Some(b'[') => {
            // v0.4.0–0.4.2 and lm-checkpoints: one (indented) JSON array.
            let mut text = String::new();
            reader
                .read_to_string(&mut text)
                .map_err(|e| input(format!("{shown}: cannot read as UTF-8 text: {e}")))?;
            let records: Vec<Record> =
                record::from_python_json(&text).map_err(|e| input(format!("{shown}: not an array of samples: {e}")))?;
            drop(text);
            for (i, record) in records.into_iter().enumerate() {
                if !each(i + 1, record)? {
                    break;
                }
            }
            Ok(())
        }
        Some(_) => {
            let mut line = String::new();
            let mut number = 0;
            loop {
                line.clear();
                let read = reader
                    .read_line(&mut line)
                    .map_err(|e| input(format!("{shown}: line {}: cannot read as UTF-8 text: {e}", number + 1)))?;
                if read == 0 {
                    return Ok(());
                }
                number += 1;
                if line.trim().is_empty() {
                    continue;
                }
                let record = Record::parse(&line)
                    .map_err(|e| input(format!("{shown}: line {number}: not a sample of the harness: {e}")))?;
                if !each(number, record)? {
                    return Ok(());
                }
            }
        }
    }
}

/// The checks of an import, gathered file by file: each document's hash must agree across the
/// seeds and steps of its task, a file must not repeat a document, every (model, step) must have
/// every document of the task, and the mean of the imported metric must be the harness's
/// aggregate. Failures are collected, one line each.
#[derive(Default)]
struct Checks {
    /// Task → document → (hash digest, first source that had it).
    docs: BTreeMap<String, HashMap<i64, (Option<u64>, usize)>>,
    /// (source, task) → number of documents.
    counts: Vec<(usize, String, usize)>,
    /// (source, task, mean of the imported metric) where there is one.
    means: Vec<(usize, String, f64)>,
    failures: Vec<String>,
}

impl Checks {
    fn add(&mut self, index: usize, sources: &[Source], parsed: Parsed) {
        self.failures.extend(parsed.duplicates);
        for (task, cell) in parsed.cells {
            let known = self.docs.entry(task.clone()).or_default();
            for (doc, hash) in &cell.docs {
                match known.get(doc) {
                    None => {
                        known.insert(*doc, (*hash, index));
                    }
                    Some((first_hash, _)) if first_hash.is_none() || hash.is_none() || first_hash == hash => {}
                    Some((_, first)) => self.failures.push(format!(
                        "task {task}, doc_id {doc}: a different document (doc_hash) in {} than in {}: \
                         the seeds and steps were not evaluated on the same data",
                        sources[index].file.path.display(),
                        sources[*first].file.path.display()
                    )),
                }
            }
            self.counts.push((index, task.clone(), cell.docs.len()));
            if cell.count > 0 {
                self.means.push((index, task, cell.sum / cell.count as f64));
            }
        }
    }

    /// The checks that need every file: documents missing from a (model, step), aggregates.
    fn finish(
        &mut self,
        sources: &[Source],
        columns: &Columns,
        folders: &Folders,
        summary: &mut Summary,
    ) -> Result<()> {
        for (index, task, count) in &self.counts {
            let all = self.docs.get(task).map_or(0, HashMap::len);
            if *count < all {
                let source = &sources[*index];
                let missing = missing_documents(source, task, &self.docs[task])?;
                let shown: Vec<String> = missing.iter().take(3).map(i64::to_string).collect();
                self.failures.push(format!(
                    "{}: seed {} ({}{}) lacks {} of the {all} documents of task {task} that other seeds or steps have \
                     (doc_id {}{})",
                    source.file.path.display(),
                    source.seed,
                    source.file.model,
                    step_words(source.file.step),
                    all - count,
                    shown.join(", "),
                    if missing.len() > 3 { ", …" } else { "" }
                ));
            }
        }
        let mut by_task: BTreeMap<String, Comparison> = BTreeMap::new();
        for task in self.docs.keys() {
            let base = task.split('/').next().unwrap_or(task);
            by_task.insert(
                task.clone(),
                Comparison {
                    task: task.clone(),
                    metric: columns.score.get(base).cloned().flatten().unwrap_or_default(),
                    compared: 0,
                    missing: 0,
                    largest_difference: 0.0,
                },
            );
        }
        let mut no_aggregate = Vec::new();
        for (index, task, mean) in &self.means {
            let source = &sources[*index];
            let comparison = by_task.get_mut(task).expect("every task has documents");
            let (base, filter) = task.split_once('/').unwrap_or((task.as_str(), "none"));
            let key = format!("{},{filter}", comparison.metric);
            let averaged = folders
                .aggregation(&source.file, &comparison.metric)
                .is_none_or(|a| a == "mean");
            let aggregate = source
                .file
                .results
                .as_deref()
                .and_then(|p| folders.results(p))
                .filter(|_| averaged)
                .and_then(|r| r.results.get(base)?.get(&key)?.as_f64());
            match aggregate {
                Some(aggregate) => {
                    let difference = (mean - aggregate).abs();
                    comparison.compared += 1;
                    comparison.largest_difference = comparison.largest_difference.max(difference);
                    if difference > AGGREGATE_TOLERANCE {
                        self.failures.push(format!(
                            "{}: the mean {} of task {task} over the samples is {mean:.6}, the harness's results \
                             file {} says {aggregate:.6}: the samples are not the ones the aggregate was computed on",
                            source.file.path.display(),
                            comparison.metric,
                            source
                                .file
                                .results
                                .as_deref()
                                .map(|p| p.display().to_string())
                                .unwrap_or_default()
                        ));
                    }
                }
                None => {
                    comparison.missing += 1;
                    no_aggregate.push(source.file.path.display().to_string());
                }
            }
        }
        if let Some(first) = no_aggregate.first() {
            summary.warnings.push(format!(
                "{} samples file(s) have no mean of their metric to compare with (no results file beside them, it lacks \
                 the metric, or the harness aggregates it otherwise than by a mean), e.g. {first}",
                no_aggregate.len()
            ));
        }
        summary.comparisons = by_task.into_values().collect();
        Ok(())
    }
}

/// The documents of `task` that `source` lacks, re-read from its file (only when one does).
fn missing_documents(source: &Source, task: &str, all: &HashMap<i64, (Option<u64>, usize)>) -> Result<Vec<i64>> {
    let filter = task.split_once('/').map_or("none", |(_, f)| f);
    let mut have = HashSet::new();
    for_each_record(&source.file.path, &mut |_, record| {
        if record.filter.as_deref().unwrap_or("none") == filter
            && let Some(doc) = record.doc_id
        {
            have.insert(doc);
        }
        Ok(true)
    })?;
    let mut missing: Vec<i64> = all.keys().filter(|d| !have.contains(d)).copied().collect();
    missing.sort_unstable();
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_cut_out_of_model_names() {
        assert_eq!(tidy_name("EleutherAI/pythia-160m-"), "EleutherAI/pythia-160m");
        assert_eq!(
            tidy_name("EleutherAI/pythia-160m--deduped"),
            "EleutherAI/pythia-160m-deduped"
        );
        assert_eq!(
            tidy_name("allenai/DataDecide-dolma1_7-150M_"),
            "allenai/DataDecide-dolma1_7-150M"
        );
    }
}
