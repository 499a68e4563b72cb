//! mb-stats-core: the Multi-Bootstrap statistics on plain arrays.
//!
//! It owns the designs (seeds × runs × examples), the metrics, the version-stable resampling, the
//! replicate engine, intervals, tests and variance components. It works on slices and `ndarray`
//! arrays only and must not import polars, candle, clap, plotters or any file format: everything
//! above it (the results table, the runner, the command line, the Python package) feeds it
//! numbers. Its only dependencies are ndarray, rand_chacha, rayon and statrs.
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
//! - [`variance`]: variance components by the method of moments, with intervals valid at 0;
//! - [`step`]: pretraining steps in one grammar (`2M`, `200k`, `2000000`);
//! - [`interrupt`]: the cooperative stop of long computations (Ctrl-C in Python).

#![warn(missing_docs)]

pub mod adjust;
pub mod curve;
pub mod design;
pub mod engine;
pub mod heterogeneity;
pub mod interrupt;
pub mod interval;
pub mod metric;
pub mod resample;
pub mod step;
pub mod summary;
pub mod variance;
