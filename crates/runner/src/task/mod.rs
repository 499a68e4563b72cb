//! Tasks: what is measured on one checkpoint. The driver loads each checkpoint and hands it to
//! the experiment's [`Task`], which returns per-example rows for each of its units; a new kind is
//! a new file here plus its `[task] kind` in the experiment file, with no change to the driver.
//!
//! [`linear_probe`] trains an L2 logistic regression ([`probe`]) on frozen pooled features and
//! predicts the evaluation examples. [`minimal_pairs`] asks which sentence of each pair the
//! masked LM prefers by pseudo-log-likelihood; [`cloze`] reads its prediction at a prompt's one
//! `[MASK]`; both read their data with [`mlm_data`].

pub mod cloze;
pub mod linear_probe;
pub mod minimal_pairs;
pub mod mlm_data;
pub mod probe;

use mb_stats_analysis::results::{ExampleIds, Numbers};
use mb_stats_bert::Bert;
use mb_stats_files::error::Result;

use crate::experiment::config::{ExperimentFile, TaskKind};
use crate::progress::Board;

/// One unit of work on a checkpoint, stored as one run file: a layer and a run (repeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unit {
    /// The hidden state used (0 = embeddings output).
    pub layer: usize,
    /// The repeat (its own training subset and seed).
    pub run: usize,
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
    /// More per-example numeric columns (cloze's `rank`).
    pub extra: Vec<(String, Vec<Option<f64>>)>,
    /// Footer metadata the task adds (e.g. the class names).
    pub metadata: Vec<(String, String)>,
    /// The unit's headline number for the log (e.g. its accuracy).
    pub headline: f64,
}

/// What is measured on each checkpoint.
pub trait Task {
    /// The `[task] kind` spelling, recorded in every run key.
    fn kind(&self) -> &'static str;

    /// A digest of the task's data, part of every run key: finished work is reused only for the
    /// same data.
    fn data_digest(&self) -> String;

    /// The task's settings that change its numbers, each under the name the experiment file gives
    /// it (`task.l2`); part of every run key.
    fn settings(&self) -> Vec<(&'static str, serde_json::Value)>;

    /// The units to run on a model with `n_hidden_states` hidden states (embeddings output
    /// included); the error says which setting the model cannot satisfy.
    fn units(&self, n_hidden_states: usize) -> Result<Vec<Unit>>;

    /// Evaluate `pending` (a subset of [`Task::units`]) on `bert`, in that order; `name` is the
    /// checkpoint's, for messages; progress goes on `board`.
    fn evaluate(&self, bert: &Bert, pending: &[Unit], name: &str, board: &Board) -> Result<Vec<UnitRows>>;

    /// The log line's summary of the units just evaluated (`headlines` in evaluation order).
    fn summary(&self, headlines: &[f64]) -> String;
}

/// The task of an experiment file, its data read and checked (before any model loads).
pub fn build(file: &ExperimentFile, offline: bool) -> Result<Box<dyn Task>> {
    Ok(match file.experiment.task.kind {
        TaskKind::LinearProbe => Box::new(linear_probe::LinearProbe::new(file, offline)?),
        TaskKind::MinimalPairs => Box::new(minimal_pairs::MinimalPairs::new(file, offline)?),
        TaskKind::Cloze => Box::new(cloze::Cloze::new(file, offline)?),
    })
}
