//! mb-stats: does a finding hold for the training procedure, or only for one checkpoint?
//!
//! The command line over the workspace's crates: [`cli`] declares every flag (clap) and is the
//! only place that knows their names; [`commands`] turns parsed flags into the plain values of
//! the library crates and calls them: `mb_stats_core` (statistics on plain arrays),
//! `mb_stats_analysis` (the results table, analyses, exporters, reports, importers),
//! `mb_stats_bert` (the BERT runtime) and `mb_stats_runner` (experiments and tasks). See
//! DESIGN.md for the whole picture.

#![warn(missing_docs)]

pub mod cli;
pub mod commands;
