//! Tasks: what is measured on one checkpoint. The driver loads each checkpoint and hands it to
//! the experiment's [`Task`], which returns per-example rows for each of its units. Each kind owns
//! its `[task]` and `[data]` tables (its own types, unknown keys refused), reads them from the
//! [`TaskSource`] the experiment file hands it, and reads its own data; a new kind is a new file
//! here plus one line in [`KINDS`], with no change to the experiment's code. Nothing here
//! imports `experiment/`.
//!
//! [`linear_probe`] trains an L2 logistic regression ([`probe`]) on frozen pooled features and
//! predicts the evaluation examples. [`minimal_pairs`] asks which sentence of each pair the
//! masked LM prefers by pseudo-log-likelihood; [`cloze`] reads its prediction at a prompt's one
//! `[MASK]`; [`crows_pairs`] scores CrowS-Pairs' stereotyping pairs by the pseudo-log-likelihood
//! of their shared tokens; the three read their data with [`mlm_data`]. [`winogender`] reads the
//! masked pronoun's female, male and neutral forms in the Winogender schemas. [`fine_tune`] trains the whole network
//! with a head, once per (learning rate, run). The probe and fine-tuning read [`labelled_data`].
//! [`pretrain`] continues masked-LM pretraining and saves each checkpoint's result as a
//! checkpoint, with [`cda`] as an intervention on its corpus.

pub mod cda;
pub mod cloze;
pub mod crows_pairs;
pub mod fine_tune;
pub mod labelled_data;
pub mod linear_probe;
pub mod minimal_pairs;
pub mod mlm_data;
pub mod pretrain;
pub mod probe;
pub mod source;
pub mod winogender;

use std::path::Path;

use candle_core::{DType, Tensor};
use mb_stats_analysis::results::{ExampleIds, Numbers, ResultsTable};
use mb_stats_bert::Bert;
use mb_stats_core::metric::Metric;
use mb_stats_files::error::Result;
use serde::{Deserialize, Deserializer};

use crate::progress::Board;
pub use source::TaskSource;

/// One unit of work on a checkpoint, stored as one run file: a layer and a run (repeat), and
/// for fine-tuning a learning rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unit {
    /// The hidden state used (0 = embeddings output).
    pub layer: usize,
    /// The repeat (its own training subset and seed).
    pub run: usize,
    /// The fine-tuning learning rate.
    pub lr: Option<LearningRate>,
}

/// A learning rate (positive, finite), compared and ordered by value so that it can name a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LearningRate(u64);

impl LearningRate {
    /// The rate `value`; `None` unless positive and finite.
    pub fn new(value: f64) -> Option<Self> {
        // Positive finite floats order as their bit patterns.
        (value.is_finite() && value > 0.0).then(|| LearningRate(value.to_bits()))
    }

    /// The rate.
    pub fn value(self) -> f64 {
        f64::from_bits(self.0)
    }
}

impl std::fmt::Display for LearningRate {
    /// Scientific notation, the shortest that reads back exactly (`2e-5`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:e}", self.value())
    }
}

/// The rows one unit produced: one per evaluation example (schema v1 columns that depend on the
/// task; the driver adds group, seed, step, run and layer).
#[derive(Debug, Clone)]
pub struct UnitRows {
    /// Example ids.
    pub example: ExampleIds,
    /// Gold labels.
    pub label: Numbers,
    /// Predictions.
    pub prediction: Numbers,
    /// Per-example scores, when the task has them.
    pub score: Option<Vec<Option<f64>>>,
    /// The `task` column of each row, when the task has subtasks (BLiMP's paradigms); else every
    /// row gets the task name.
    pub subtask: Option<Vec<String>>,
    /// The `cluster` column of each row (examples resampled together, such as Winogender's
    /// occupations), when the task has clusters.
    pub cluster: Option<Vec<String>>,
    /// More per-example numeric columns (cloze's `rank`).
    pub extra: Vec<(String, Vec<Option<f64>>)>,
    /// Footer metadata the task adds (e.g. the class names).
    pub metadata: Vec<(String, String)>,
    /// The unit's headline number for the log (e.g. its accuracy).
    pub headline: f64,
    /// What to save beside the run file; usually nothing.
    pub saved: Saved,
}

/// What a unit saves beside its run file.
#[derive(Debug, Clone)]
pub enum Saved {
    /// Nothing.
    Nothing,
    /// Tensors by name, as `UNIT.safetensors` (a fine-tuned model).
    Tensors(Vec<(String, Tensor)>),
    /// A checkpoint in the Hugging Face layout, as the folder `checkpoint/`: the evaluated
    /// checkpoint's config and tokenizer files, these tensors and its next-sentence head; a later
    /// experiment reads it as a local suite. A kind that saves checkpoints has one unit.
    Checkpoint(Vec<(String, Tensor)>),
}

/// What is measured on each checkpoint.
pub trait Task {
    /// The `[task] kind` spelling, recorded in every run key.
    fn kind(&self) -> &'static str;

    /// A digest of the task's data, part of every run key: finished work is reused only for the
    /// same data.
    fn data_digest(&self) -> String;

    /// The task's settings that change its numbers, each under the name the experiment file gives
    /// it (`task.l2`); part of every run key. Default: none.
    fn settings(&self) -> Vec<(&'static str, serde_json::Value)> {
        Vec::new()
    }

    /// The units to run on a model with `n_hidden_states` hidden states (embeddings output
    /// included); the error says which setting the model cannot satisfy. Default: one unit, the
    /// last layer once (what the masked-LM head reads).
    fn units(&self, n_hidden_states: usize) -> Result<Vec<Unit>> {
        Ok(vec![Unit {
            layer: n_hidden_states - 1,
            run: 0,
            lr: None,
        }])
    }

    /// Evaluate `pending` (a subset of [`Task::units`]) on `bert`, handing each unit's rows to
    /// `finished` as soon as they exist (so an interruption loses only unfinished units); `name`
    /// is the checkpoint's, for messages; progress goes on `board`. `state` is a folder of the
    /// checkpoint's own that survives an interruption, where a long unit may keep its progress
    /// and resume from it.
    fn evaluate(
        &self,
        bert: &Bert,
        pending: &[Unit],
        name: &str,
        state: &Path,
        board: &Board,
        finished: &mut dyn FnMut(Unit, UnitRows) -> Result<()>,
    ) -> Result<()>;

    /// The dtype to load the checkpoint's weights in, given `[runtime] dtype`'s.
    fn weights_dtype(&self, runtime: DType) -> DType {
        runtime
    }

    /// The log line's summary of the units just evaluated (`headlines` in evaluation order).
    fn summary(&self, headlines: &[f64]) -> String;

    /// The metrics defined on the rows this task writes: `[analysis] metric` must be one of them
    /// (checked before any model loads; AUC of pairs whose label is always 1, or accuracy of a
    /// regression, would print a number that means nothing).
    fn metrics(&self) -> &'static [Metric];
}

/// The metrics of rows with class labels and predicted classes (and a positive-class score).
pub const CLASSIFICATION_METRICS: &[Metric] = &[
    Metric::Accuracy,
    Metric::Precision,
    Metric::Recall,
    Metric::F1,
    Metric::MacroF1,
    Metric::Mcc,
    Metric::Auc,
];

/// A task kind: its `[task] kind` spelling, a check of its tables alone (when the experiment
/// file is read) and its constructor, which also reads and checks its data (before any model
/// loads).
#[derive(Debug)]
pub struct Kind {
    /// The `[task] kind` spelling.
    pub name: &'static str,
    /// The metric of the closing summary when `[analysis] metric` is not set.
    pub metric: Metric,
    /// Reads and checks the kind's `[task]` and `[data]` tables without reading data.
    pub check: fn(&TaskSource) -> Result<()>,
    /// The task, its data read and checked.
    pub build: fn(&TaskSource) -> Result<Box<dyn Task>>,
    /// The run-key settings that list the kind's units (`task.layers`, `task.runs`): a unit's own
    /// key leaves them out, so that adding a layer or a run keeps every finished unit.
    pub unit_lists: &'static [&'static str],
    /// What the kind decides once all run files are in, before they are joined.
    pub merge: Option<MergeStep>,
}

/// A kind's merge step (fine-tuning: which learning rate each group keeps): it may drop run
/// files, and returns the footer entry (key, value) that accounts for it, or `None` when it does
/// nothing for these files.
pub type MergeStep = fn(&mut Vec<ResultsTable>) -> Option<(&'static str, String)>;

/// Every task kind.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "linear-probe",
        metric: Metric::Accuracy,
        check: |s| linear_probe::ProbeSpec::read(s).map(drop),
        build: |s| Ok(Box::new(linear_probe::LinearProbe::new(s)?)),
        unit_lists: &["task.layers", "task.runs"],
        merge: None,
    },
    Kind {
        name: "minimal-pairs",
        metric: Metric::Accuracy,
        check: |s| minimal_pairs::MinimalPairsSpec::read(s).map(drop),
        build: |s| Ok(Box::new(minimal_pairs::MinimalPairs::new(s)?)),
        unit_lists: &[],
        merge: None,
    },
    Kind {
        name: "cloze",
        metric: Metric::Accuracy,
        check: |s| cloze::ClozeSpec::read(s).map(drop),
        build: |s| Ok(Box::new(cloze::Cloze::new(s)?)),
        unit_lists: &[],
        merge: None,
    },
    Kind {
        name: "crows-pairs",
        metric: Metric::Accuracy,
        check: |s| crows_pairs::read(s).map(drop),
        build: |s| Ok(Box::new(crows_pairs::CrowsPairs::new(s)?)),
        unit_lists: &[],
        merge: None,
    },
    Kind {
        name: "winogender",
        metric: Metric::Pearson,
        check: |s| winogender::read(s).map(drop),
        build: |s| Ok(Box::new(winogender::Winogender::new(s)?)),
        unit_lists: &[],
        merge: None,
    },
    Kind {
        name: "pretrain",
        metric: Metric::Mean,
        check: |s| pretrain::read(s).map(drop),
        build: |s| Ok(Box::new(pretrain::Pretrain::new(s)?)),
        unit_lists: &[],
        merge: None,
    },
    Kind {
        name: "fine-tune",
        metric: Metric::Accuracy,
        check: |s| fine_tune::FineTuneSpec::read(s).map(drop),
        build: |s| Ok(Box::new(fine_tune::FineTune::new(s)?)),
        unit_lists: &["task.runs", "task.lrs"],
        merge: Some(fine_tune::select_learning_rates),
    },
];

/// The kind spelled `name`; the error lists the kinds there are.
pub fn kind(name: &str) -> std::result::Result<&'static Kind, String> {
    KINDS.iter().find(|k| k.name == name).ok_or_else(|| {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        format!("unknown kind {name:?}, expected one of {}", names.join(", "))
    })
}

/// `[task] kind` read as its kind, so that an unknown one is refused with its line.
impl<'de> Deserialize<'de> for &'static Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        kind(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The most runs per checkpoint and layer (or learning rate): each probe run keeps its training
/// subset in memory.
pub const MAX_RUNS: usize = 10_000;

/// Refuses `task.runs` outside 1..=[`MAX_RUNS`].
fn check_runs(source: &TaskSource, runs: usize) -> Result<()> {
    if runs == 0 || runs > MAX_RUNS {
        return Err(source.bad(
            "task.runs",
            format!(
                "expected at least 1 and at most {MAX_RUNS} (each run keeps its training subset in memory), got {runs}"
            ),
        ));
    }
    Ok(())
}
