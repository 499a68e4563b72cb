//! `mb-stats run` and `mb-stats merge`: an experiment file in, a results table out.
//!
//! [`config`] reads the TOML, [`plan`] lists the checkpoints (and the shard of them to run),
//! [`driver`] hands one checkpoint at a time to the task and
//! writes one Parquet file per (checkpoint, unit) under `OUT/runs/`, keyed by [`key`], [`merge`]
//! joins them into `OUT/results.parquet` (schema v1; the footer holds the experiment file and the
//! revisions), and [`summary`] turns `[analysis]` into the closing summary's options.

pub mod config;
pub mod driver;
pub mod key;
pub mod merge;
pub mod plan;
pub mod summary;
