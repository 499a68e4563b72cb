//! mb-stats: robustness analysis of pretrained language models over seed suites.
//!
//! The analysis half: [`results`] reads and writes the results table (schema v1),
//! [`analysis`] turns it into designs per cell and runs the Multi-Bootstrap of [`stats`], and
//! [`export`] writes the summaries. [`import`] turns the published MultiBERTs prediction
//! releases into results tables; [`report`] writes tables, figures and a notebook for a paper. [`cli`] parses the command line and [`commands`] does the
//! work of each subcommand. See DESIGN.md for the whole picture.

pub mod analysis;
pub mod bench_bert;
pub mod bert;
pub mod cli;
pub mod commands;
pub mod dataset;
pub mod embed;
pub mod error;
pub mod experiment;
pub mod export;
pub mod fetch;
pub mod import;
pub mod output;
pub mod report;
pub mod results;
pub mod simulation;
pub mod stats;
pub mod synthetic;
pub mod task;
pub mod text;
