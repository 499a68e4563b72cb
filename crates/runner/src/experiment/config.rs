//! The experiment file (TOML): which models, which task, how to run and how to summarise. This
//! module reads `[models]`, `[runtime]`, `[analysis]` and `[task] kind` and `name`; the kind
//! reads its own `[task]` and `[data]` keys ([`crate::task::KINDS`]). Unknown keys are refused;
//! every error names the file, the line and the key. Relative paths are relative to the
//! experiment file.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;

use mb_stats_analysis::analysis::ReplicateCount;
use mb_stats_analysis::results::filter::Filter;
use mb_stats_bert::Runtime;
use mb_stats_core::interval::IntervalMethod;
use mb_stats_core::metric::Metric;

use crate::task::{self, TaskSource};
use mb_stats_files::error::{Result, input};

/// A whole experiment file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// The checkpoints: a seed suite and extra arms.
    pub models: Models,
    /// `[data]`: the task kind's own.
    #[serde(rename = "data")]
    _data: IgnoredAny,
    /// What is measured on each checkpoint: the kind and name here, the rest the kind's own.
    pub task: TaskHead,
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

/// `[task] kind` and `name`; the kind reads its other keys.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskHead {
    /// The kind of task (one of [`task::KINDS`]).
    pub kind: &'static task::Kind,
    /// Name written to the `task` column (default: the experiment file's stem).
    #[serde(default)]
    pub name: Option<String>,
}

/// `[analysis]`: the summary printed at the end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    /// Metric of each run (default: the task kind's, [`task::Kind::metric`]).
    #[serde(default)]
    pub metric: Option<Metric>,
    /// Bootstrap replicates.
    #[serde(default)]
    pub nboot: ReplicateCount,
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
            metric: None,
            nboot: ReplicateCount::DEFAULT,
            rng_seed: 0,
            base: None,
            treatment: None,
            paired: false,
            interval: IntervalMethod::default(),
        }
    }
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
    /// Read, parse and validate `path`, the task kind's tables included.
    pub fn read(path: &Path) -> Result<Self> {
        let text = mb_stats_files::text::read_to_string(path).map_err(|e| input(format!("{}: {e}", path.display())))?;
        let experiment: Experiment = task::source::parse_toml(path, &text)?;
        let file = ExperimentFile {
            path: path.to_path_buf(),
            text,
            experiment,
        };
        file.validate()?;
        Ok(file)
    }

    /// The metric of the closing summary: `[analysis] metric`, or the task kind's.
    pub fn metric(&self) -> Metric {
        self.experiment.analysis.metric.unwrap_or(self.kind().metric)
    }

    /// The task kind of `[task] kind`.
    pub fn kind(&self) -> &'static task::Kind {
        self.experiment.task.kind
    }

    /// What the task kind is handed: the file, the task name and the runtime values it uses.
    pub fn task_source(&self, offline: bool) -> TaskSource {
        TaskSource {
            path: self.path.clone(),
            kind: self.kind().name.to_string(),
            text: self.text.clone(),
            name: self.task_name(),
            batch_tokens: self.experiment.runtime.batch_tokens.get(),
            compute: self.experiment.runtime.dtype.dtype(),
            offline,
        }
    }

    /// A path from the file, relative to the file's directory.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        task::source::relative_to(&self.path, relative)
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

    fn validate(&self) -> Result<()> {
        let e = &self.experiment;
        (self.kind().check)(&self.task_source(false))?;
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
        if e.analysis.base.is_some() != e.analysis.treatment.is_some() {
            return Err(self.bad("analysis", "base and treatment go together"));
        }
        Ok(())
    }
}
