//! mb-stats-analysis: the results table (schema v1) and everything that reads it.
//!
//! [`results`] reads and writes the table (Parquet, through polars), [`analysis`] turns it into
//! designs per cell and runs the statistics of `mb_stats_core`, [`export`] writes the summaries
//! (CSV, JSON, Markdown, LaTeX), [`report`] writes tables, figures and a notebook for a paper,
//! [`import`] turns the published MultiBERTs prediction releases into results tables,
//! [`synthetic`] makes tables with known effects and [`simulation`] measures coverage on them.
//! It must not import candle, tokenizers or hf-hub (models are the runner's business) nor clap
//! (flags are the binary's): a user who only analyses results compiles none of them.

#![warn(missing_docs)]

pub mod analysis;
pub mod export;
pub mod import;
pub mod report;
pub mod results;
pub mod simulation;
pub mod synthetic;
