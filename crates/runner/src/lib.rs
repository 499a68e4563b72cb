//! mb-stats-runner: models in, per-example results out.
//!
//! [`experiment`] reads an experiment file, plans its checkpoints ([`catalog`] knows the
//! MultiBERTs suite), evaluates each with a [`task`] on the BERT runtime of `mb_stats_bert` and
//! writes the results table of `mb_stats_analysis`. [`embed`] writes hidden states as Parquet,
//! [`dataset`] reads the text tables tasks use, [`digest`] identifies data and work, and [`bench_bert`] and [`bench_mlm`] time the runtime and its masked-LM scoring beside
//! PyTorch. It must not import clap: the binary turns flags into the plain values used here.

#![warn(missing_docs)]

pub mod bench_bert;
pub mod bench_mlm;
pub mod catalog;
pub mod dataset;
pub mod digest;
pub mod embed;
pub mod experiment;
pub mod progress;
pub mod task;
