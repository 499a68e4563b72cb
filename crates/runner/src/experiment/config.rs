//! The experiment file (TOML): which models, which data, which task, how to run and how to
//! summarise. Unknown keys are refused; every error names the file, the line and the key.
//! Relative paths are relative to the experiment file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use mb_stats_analysis::results::filter::Filter;
use mb_stats_bert::mlm::PllScoring;
use mb_stats_bert::{DeviceSpec, Layers, Pooling, Precision};
use mb_stats_core::interval::IntervalMethod;
use mb_stats_core::metric::Metric;

use mb_stats_files::error::{Result, input};

/// A whole experiment file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// The checkpoints: a seed suite and extra arms.
    pub models: Models,
    /// Training and evaluation data.
    pub data: Data,
    /// What is measured on each checkpoint.
    pub task: Task,
    /// Device, precision, lengths and batching.
    #[serde(default)]
    pub runtime: Runtime,
    /// The closing Multi-Bootstrap summary.
    #[serde(default)]
    pub analysis: Analysis,
}

/// `[models]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Models {
    /// `multiberts` (the Hub catalog) or `local` (directories named by `path`).
    pub suite: Suite,
    /// Seeds: `"0-24"`, `"0,3,7"` or a list of integers.
    #[serde(default)]
    pub seeds: Option<SeedList>,
    /// `"final"`, `"all"` or a list of steps (`[20000, "200k"]`); for a local suite, a list of
    /// steps substituted for `{step}` in `path`.
    #[serde(default)]
    pub steps: Option<StepList>,
    /// The group (arm) name of the suite's rows.
    #[serde(default = "default_group")]
    pub group: String,
    /// Hub revision (branch, tag or commit) of every suite checkpoint.
    #[serde(default)]
    pub revision: Option<String>,
    /// Local suite: directory pattern with `{seed}` and optionally `{step}`.
    #[serde(default)]
    pub path: Option<String>,
    /// Extra arms, e.g. the original BERT as a one-seed baseline.
    #[serde(default)]
    pub extra: Vec<ExtraArm>,
}

fn default_group() -> String {
    "multiberts".into()
}

/// Which suite `[models]` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    /// `google/multiberts-seed_N[-step_Kk]` on the Hub.
    Multiberts,
    /// Directories on disk.
    Local,
}

/// Seeds as a range string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "expected seeds like \"0-24\" or \"0,3,7\", or a list of seed numbers"
)]
pub enum SeedList {
    /// `"0-24"`, `"0,3,7"`.
    Text(String),
    /// `[0, 3, 7]`.
    List(Vec<u32>),
}

/// Steps as a keyword or a list of steps.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "expected \"final\", \"all\" or a list of steps like [20000, \"200k\"]"
)]
pub enum StepList {
    /// `"final"` or `"all"` (or `"20k,40k"`).
    Text(String),
    /// `[20000, "200k"]`.
    List(Vec<StepValue>),
}

/// One step: a number or text like `"200k"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected a step: a number like 20000 or text like \"200k\"")]
pub enum StepValue {
    /// Steps.
    Number(u64),
    /// `"200k"`.
    Text(String),
}

/// `[[models.extra]]`: one more arm, from the Hub (`repo`) or disk (`path`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraArm {
    /// The group (arm) name.
    pub group: String,
    /// Hub repo id.
    #[serde(default)]
    pub repo: Option<String>,
    /// Hub revision.
    #[serde(default)]
    pub revision: Option<String>,
    /// Local directory.
    #[serde(default)]
    pub path: Option<String>,
    /// Seed recorded for the arm.
    #[serde(default)]
    pub seed: u32,
    /// Step recorded for the arm.
    #[serde(default)]
    pub step: Option<u64>,
}

/// `[data]`. Which keys a task kind reads is checked against the file ([`KIND_KEYS`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    /// Training file (linear probe): a path, or `hf://datasets/OWNER/NAME/FILE` (a `*` in FILE allowed).
    #[serde(default)]
    pub train: Option<String>,
    /// Evaluation file, same forms; for minimal pairs also a folder of files or a Hub glob
    /// matching many (`hf://datasets/nyu-mll/blimp/*/train-*.parquet`).
    pub eval: String,
    /// Column with the text.
    #[serde(default = "default_text")]
    pub text: String,
    /// Column with the second text of pairs.
    #[serde(default)]
    pub text_pair: Option<String>,
    /// Column with the label.
    #[serde(default = "default_label")]
    pub label: String,
    /// Column with example ids in the evaluation file (default: the row number).
    #[serde(default)]
    pub id: Option<String>,
    /// Train each run on this many training examples, a different random subset per run.
    #[serde(default)]
    pub train_size: Option<usize>,
    /// Evaluate on the first this-many evaluation examples.
    #[serde(default)]
    pub eval_size: Option<usize>,
    /// Minimal pairs: the column with the acceptable sentence.
    #[serde(default = "default_good")]
    pub good: String,
    /// Minimal pairs: the column with the unacceptable sentence.
    #[serde(default = "default_bad")]
    pub bad: String,
    /// Minimal pairs and cloze: the column written to the results' `task` column (default: BLiMP's
    /// `UID` when the file has it, else the task name).
    #[serde(default)]
    pub subtask: Option<String>,
    /// Cloze: the column with the gold token.
    #[serde(default = "default_target")]
    pub target: String,
    /// Cloze: a column of `|`-separated candidate tokens the choice is restricted to.
    #[serde(default)]
    pub candidates: Option<String>,
}

fn default_good() -> String {
    "sentence_good".into()
}
fn default_bad() -> String {
    "sentence_bad".into()
}
fn default_target() -> String {
    "target".into()
}

fn default_text() -> String {
    "sentence".into()
}
fn default_label() -> String {
    "label".into()
}

/// `[task]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// The kind of task.
    pub kind: TaskKind,
    /// Name written to the `task` column (default: the experiment file's stem).
    #[serde(default)]
    pub name: Option<String>,
    /// Layers: `"last"` (default), `"all"`, or a list (0 = embeddings output).
    #[serde(default = "default_layers")]
    pub layers: Layers,
    /// `cls` or `mean` (a probe needs one vector per text).
    #[serde(default = "default_pooling")]
    pub pooling: Pooling,
    /// Probe runs per checkpoint and layer, each on its own train subset and seed.
    #[serde(default = "default_runs")]
    pub runs: usize,
    /// L2 penalty of the logistic regression (scikit-learn's `1 / C`).
    #[serde(default = "default_l2")]
    pub l2: f64,
    /// Iteration limit of the probe's optimiser.
    #[serde(default = "default_max_iter")]
    pub max_iter: usize,
    /// Minimal pairs: how a sentence is scored, `pll` or `pll-word-l2r`.
    #[serde(default)]
    pub scoring: PllScoring,
    /// Fine-tuning: the learning rates swept.
    #[serde(default = "default_lrs")]
    pub lrs: Vec<f64>,
    /// Fine-tuning: passes over the training data.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Fine-tuning: training inputs per optimiser step.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Fine-tuning: fraction of the steps that warm the learning rate up.
    #[serde(default = "default_warmup")]
    pub warmup: f64,
    /// Fine-tuning: keep the best learning rate per group and task, or every one.
    #[serde(default)]
    pub select_lr: SelectLr,
    /// Fine-tuning: save every fine-tuned model as safetensors beside its run file.
    #[serde(default)]
    pub save_models: bool,
    /// Fine-tuning: a `classification` head over the label values or a `regression` head.
    #[serde(default)]
    pub head: Head,
}

/// Which fine-tuning learning rates the results keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectLr {
    /// Per group and task, the rate with the best mean evaluation score (the paper's choice,
    /// which uses the evaluation set; the results' footer says so).
    #[default]
    BestMean,
    /// Every (rate, run).
    All,
}

/// The fine-tuning head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Head {
    /// Softmax over the training labels' values.
    #[default]
    Classification,
    /// One number, mean squared error (labels must be numbers).
    Regression,
}

/// Task kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TaskKind {
    /// L2 logistic regression on frozen pooled features.
    #[serde(rename = "linear-probe")]
    LinearProbe,
    /// Which sentence of each minimal pair the masked LM prefers, by pseudo-log-likelihood.
    #[serde(rename = "minimal-pairs")]
    MinimalPairs,
    /// The masked LM's prediction at the one `[MASK]` of each prompt.
    #[serde(rename = "cloze")]
    Cloze,
    /// A classification or regression head trained end to end (learning rates × runs).
    #[serde(rename = "fine-tune")]
    FineTune,
}

impl TaskKind {
    /// The spelling in `[task] kind`.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::LinearProbe => "linear-probe",
            TaskKind::MinimalPairs => "minimal-pairs",
            TaskKind::Cloze => "cloze",
            TaskKind::FineTune => "fine-tune",
        }
    }
}

/// The `[data]` keys of the kinds that train on labelled data (probe, fine-tuning).
const LABELLED_DATA_KEYS: &[&str] = &[
    "train",
    "eval",
    "text",
    "text_pair",
    "label",
    "id",
    "train_size",
    "eval_size",
];

/// The `[data]` and `[task]` keys each task kind reads; any other of those keys in a file is
/// refused rather than silently ignored.
pub const KIND_KEYS: [(TaskKind, &[&str], &[&str]); 4] = [
    (
        TaskKind::LinearProbe,
        LABELLED_DATA_KEYS,
        &["kind", "name", "layers", "pooling", "runs", "l2", "max_iter"],
    ),
    (
        TaskKind::MinimalPairs,
        &["eval", "good", "bad", "subtask", "id", "eval_size"],
        &["kind", "name", "scoring"],
    ),
    (
        TaskKind::Cloze,
        &["eval", "text", "target", "candidates", "subtask", "id", "eval_size"],
        &["kind", "name"],
    ),
    (
        TaskKind::FineTune,
        LABELLED_DATA_KEYS,
        &[
            "kind",
            "name",
            "runs",
            "lrs",
            "epochs",
            "batch_size",
            "warmup",
            "select_lr",
            "save_models",
            "head",
        ],
    ),
];

fn default_pooling() -> Pooling {
    Pooling::Cls
}
fn default_layers() -> Layers {
    Layers::Last
}
fn default_runs() -> usize {
    1
}
fn default_l2() -> f64 {
    1.0
}
fn default_max_iter() -> usize {
    1000
}
/// The MultiBERTs paper's GLUE sweep.
fn default_lrs() -> Vec<f64> {
    vec![2e-5, 3e-5, 4e-5, 5e-5]
}
fn default_epochs() -> usize {
    3
}
fn default_batch_size() -> usize {
    32
}
fn default_warmup() -> f64 {
    0.1
}

/// `[runtime]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    /// `auto`, `cpu` or `cuda:N` (the command line may override it).
    #[serde(default)]
    pub device: DeviceSpec,
    /// `f32`, `f16` or `bf16`.
    #[serde(default)]
    pub dtype: Precision,
    /// Truncation length in tokens.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Padded tokens per batch.
    #[serde(default = "default_batch_tokens")]
    pub batch_tokens: usize,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            device: DeviceSpec::default(),
            dtype: Precision::default(),
            max_length: default_max_length(),
            batch_tokens: default_batch_tokens(),
        }
    }
}

fn default_max_length() -> usize {
    128
}
fn default_batch_tokens() -> usize {
    8192
}

/// `[analysis]`: the summary printed at the end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    /// Metric of each run.
    #[serde(default)]
    pub metric: Metric,
    /// Bootstrap replicates.
    #[serde(default = "default_nboot")]
    pub nboot: usize,
    /// Seed of the bootstrap draws.
    #[serde(default)]
    pub rng_seed: u64,
    /// Baseline filter of a comparison (`group=bert-base-uncased`).
    #[serde(default)]
    pub base: Option<Filter>,
    /// Treatment filter of a comparison.
    #[serde(default)]
    pub treatment: Option<Filter>,
    /// Paired seed draws in the comparison.
    #[serde(default)]
    pub paired: bool,
    /// Interval method: calibrated (default), percentile, expanded or student.
    #[serde(default)]
    pub interval: IntervalMethod,
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            metric: Metric::default(),
            nboot: default_nboot(),
            rng_seed: 0,
            base: None,
            treatment: None,
            paired: false,
            interval: IntervalMethod::default(),
        }
    }
}

fn default_nboot() -> usize {
    1000
}

/// An experiment file read and checked, with the directory its relative paths start from.
#[derive(Debug, Clone)]
pub struct ExperimentFile {
    /// The file.
    pub path: PathBuf,
    /// Its text, recorded in the results' footer.
    pub text: String,
    /// The parsed experiment.
    pub experiment: Experiment,
}

impl ExperimentFile {
    /// Read, parse and validate `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = mb_stats_files::text::read_to_string(path).map_err(|e| input(format!("{}: {e}", path.display())))?;
        let experiment: Experiment = toml::from_str(&text).map_err(|mut e| {
            let at = e.span().map(|span| line_of(&text, span.start)).unwrap_or_default();
            let message = e.message().replace('\n', " ");
            // Without its input, the error's text ends with the key it concerns ("in `task.layers`").
            e.set_input(None);
            let rendered = e.to_string();
            let key = rendered
                .lines()
                .find_map(|l| l.strip_prefix("in `").and_then(|k| k.strip_suffix('`')))
                .map(|k| format!(" {k}:"))
                .unwrap_or_default();
            input(format!("{}{at}:{key} {message}", path.display()))
        })?;
        let file = ExperimentFile {
            path: path.to_path_buf(),
            text,
            experiment,
        };
        file.validate()?;
        Ok(file)
    }

    /// A path from the file, relative to the file's directory.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        let p = Path::new(relative);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// The task name: `[task] name`, or the file's stem.
    pub fn task_name(&self) -> String {
        self.experiment.task.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "task".into())
        })
    }

    fn bad(&self, key: &str, expected: impl std::fmt::Display) -> mb_stats_files::error::Error {
        input(format!("{}: {key}: {expected}", self.path.display()))
    }

    /// Refuse `[data]` and `[task]` keys the task kind does not read.
    fn check_kind_keys(&self) -> Result<()> {
        let kind = self.experiment.task.kind;
        let (_, data_keys, task_keys) = KIND_KEYS
            .iter()
            .find(|(k, _, _)| *k == kind)
            .expect("every kind listed");
        let table: toml::Table = toml::from_str(&self.text).unwrap_or_default();
        for (section, allowed) in [("data", data_keys), ("task", task_keys)] {
            let Some(toml::Value::Table(keys)) = table.get(section) else {
                continue;
            };
            if let Some(key) = keys.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(self.bad(
                    &format!("{section}.{key}"),
                    format!(
                        "not a setting of kind = \"{}\" (its [{section}] keys: {})",
                        kind.name(),
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        self.check_kind_keys()?;
        let e = &self.experiment;
        match e.task.kind {
            TaskKind::LinearProbe if e.data.train.is_none() => {
                return Err(self.bad("data.train", "a linear probe needs a training file"));
            }
            TaskKind::FineTune => self.validate_fine_tuning()?,
            _ => {}
        }
        match e.models.suite {
            Suite::Local if e.models.path.is_none() => {
                return Err(self.bad(
                    "models.path",
                    "a local suite needs a directory pattern like models/seed_{seed}",
                ));
            }
            Suite::Multiberts if e.models.path.is_some() => {
                return Err(self.bad("models.path", "only for suite = \"local\""));
            }
            _ => {}
        }
        for (i, arm) in e.models.extra.iter().enumerate() {
            if arm.repo.is_some() == arm.path.is_some() {
                return Err(self.bad(&format!("models.extra[{i}]"), "expected exactly one of repo or path"));
            }
        }
        if e.task.pooling == Pooling::None {
            return Err(self.bad("task.pooling", "expected \"cls\" or \"mean\", got \"none\""));
        }
        if e.task.runs == 0 || e.task.runs > MAX_RUNS {
            return Err(self.bad(
                "task.runs",
                format!(
                    "expected at least 1 and at most {MAX_RUNS} (each run keeps its training subset in memory), got {}",
                    e.task.runs
                ),
            ));
        }
        if !(e.task.l2.is_finite() && e.task.l2 > 0.0) {
            return Err(self.bad("task.l2", "expected a positive number"));
        }
        if e.task.max_iter == 0 {
            return Err(self.bad("task.max_iter", "expected at least 1 (0 leaves the probe untrained)"));
        }
        if e.data.train_size == Some(0) || e.data.eval_size == Some(0) {
            return Err(self.bad("data.train_size / data.eval_size", "expected a positive number"));
        }
        if e.runtime.max_length < 2 || e.runtime.batch_tokens == 0 {
            return Err(self.bad("runtime", "max_length must be at least 2 and batch_tokens positive"));
        }
        if !(2..=mb_stats_analysis::analysis::MAX_NBOOT).contains(&e.analysis.nboot) {
            return Err(self.bad(
                "analysis.nboot",
                format!(
                    "expected 2 to {} replicates, got {}",
                    mb_stats_analysis::analysis::MAX_NBOOT,
                    e.analysis.nboot
                ),
            ));
        }
        if e.analysis.base.is_some() != e.analysis.treatment.is_some() {
            return Err(self.bad("analysis", "base and treatment go together"));
        }
        Ok(())
    }
}

impl ExperimentFile {
    /// The fine-tuning keys: a training file, positive finite rates (distinct), at least one
    /// epoch and input per batch, a warmup fraction in [0, 1).
    fn validate_fine_tuning(&self) -> Result<()> {
        let t = &self.experiment.task;
        if self.experiment.data.train.is_none() {
            return Err(self.bad("data.train", "fine-tuning needs a training file"));
        }
        if t.lrs.is_empty() {
            return Err(self.bad("task.lrs", "expected at least one learning rate, e.g. [2e-5, 3e-5]"));
        }
        if let Some(bad) = t.lrs.iter().find(|lr| !(lr.is_finite() && **lr > 0.0)) {
            return Err(self.bad("task.lrs", format!("expected positive learning rates, got {bad}")));
        }
        if let Some(twice) = t.lrs.iter().enumerate().find(|(i, lr)| t.lrs[..*i].contains(lr)) {
            return Err(self.bad("task.lrs", format!("{} is listed twice", twice.1)));
        }
        if t.epochs == 0 {
            return Err(self.bad("task.epochs", "expected at least 1"));
        }
        if t.batch_size == 0 {
            return Err(self.bad("task.batch_size", "expected at least 1 input per step"));
        }
        if !(0.0..1.0).contains(&t.warmup) {
            return Err(self.bad(
                "task.warmup",
                format!("expected a fraction of the steps in [0, 1), got {}", t.warmup),
            ));
        }
        Ok(())
    }
}

/// The most probe runs per checkpoint and layer: each keeps its training subset in memory.
pub const MAX_RUNS: usize = 10_000;

/// ` line N (text of the line)` for a byte offset of `text`.
fn line_of(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let number = text[..offset].matches('\n').count() + 1;
    let line = text.lines().nth(number - 1).unwrap_or("").trim();
    format!(" line {number} ({line})")
}
