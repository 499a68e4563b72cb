//! The keys of the Parquet footer's key/value metadata that mb-stats writes and reads, in one
//! place: results tables, run files, replicate files and embeddings all use these spellings.

/// The schema version of a results table (`1`).
pub const SCHEMA: &str = "mb_stats.schema";
/// The mb-stats version that wrote the file.
pub const VERSION: &str = "mb_stats.version";
/// The experiment file's text (run files and merged results).
pub const EXPERIMENT: &str = "mb_stats.experiment";
/// The checkpoint a run file comes from.
pub const CHECKPOINT: &str = "mb_stats.checkpoint";
/// The Hub commit of that checkpoint.
pub const REVISION: &str = "mb_stats.revision";
/// Every checkpoint's commit, in a merged table (JSON object).
pub const REVISIONS: &str = "mb_stats.revisions";
/// The key of the work a run file holds (finished work is reused only under the same key).
pub const UNIT: &str = "mb_stats.unit_key";
/// The class names of a probe, comma-separated.
pub const CLASSES: &str = "mb_stats.classes";
/// How a minimal-pairs run scored its sentences (`pll` or `pll-word-l2r`).
pub const SCORING: &str = "mb_stats.scoring";
/// The field (syntax, morphology, …) of each paradigm of minimal-pairs results (JSON object).
pub const FIELDS: &str = "mb_stats.fields";
/// What a cloze run's scores are normalised over (`vocabulary` or `candidates`).
pub const CLOZE_OVER: &str = "mb_stats.cloze_over";
/// A fine-tuning run's score on the evaluation set (accuracy, or Pearson's r for regression),
/// read to select the learning rate.
pub const DEV_SCORE: &str = "mb_stats.dev_score";
/// Which learning rates a fine-tuning experiment keeps (`best-mean` or `all`); in a merged table,
/// what was selected and that the evaluation set chose it.
pub const LR_SELECTION: &str = "mb_stats.lr_selection";
/// The footer keys of a task's run files that describe the whole experiment; a merge keeps each
/// one that every run file agrees on.
pub const TASK_KEYS: [&str; 4] = [CLASSES, SCORING, FIELDS, CLOZE_OVER];
/// Which per-sample metric an imported table's `score` holds, per task (JSON object).
pub const SCORES: &str = "mb_stats.scores";
/// Which release an imported table comes from.
pub const IMPORT: &str = "mb_stats.import";
/// The method line of a file of bootstrap replicates.
pub const SAMPLES: &str = "mb_stats.samples";
/// The model of an embeddings file.
pub const MODEL: &str = "mb_stats.model";
/// The pooling of an embeddings file.
pub const POOLING: &str = "mb_stats.pooling";
/// The truncation length of an embeddings file.
pub const MAX_LENGTH: &str = "mb_stats.max_length";
/// The activation dtype of an embeddings file.
pub const DTYPE: &str = "mb_stats.dtype";

/// The planned checkpoints a merge did not find finished (`merge --allow-partial`).
pub const PARTIAL: &str = "mb_stats.partial";
