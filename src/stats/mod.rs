//! The Multi-Bootstrap statistics on plain arrays (no polars, no candle, no clap).
//!
//! One concept per file, as in criterion's `stats/`:
//! - [`design`]: seeds × runs × examples for one analysis, validated once at construction;
//! - [`metric`]: the metrics and their count-weighted sufficient statistics;
//! - [`resample`]: the version-stable random draws of seeds and examples (or clusters);
//! - [`engine`]: the fast replicate evaluator (matrix products and weighted rank scans);
//! - [`summary`]: percentile intervals, p-values and threshold probabilities;
//! - [`interval`]: the interval methods, with the small-seed calibration (the default);
//! - [`adjust`]: Holm and Benjamini–Hochberg adjusted p-values across cells;
//! - [`heterogeneity`]: tests of "no pretraining-seed effect";
//! - [`curve`]: simultaneous bands and convergence steps of learning curves;
//! - [`variance`]: variance components by the method of moments.

pub mod adjust;
pub mod curve;
pub mod design;
pub mod engine;
pub mod heterogeneity;
pub mod interval;
pub mod metric;
pub mod resample;
pub mod summary;
pub mod variance;
