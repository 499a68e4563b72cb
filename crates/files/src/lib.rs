//! mb-stats-files: the file basics every mb-stats crate shares.
//!
//! It owns the error type (one line, naming the file, column or value and what was expected, with
//! its exit code), atomic output files that never overwrite an input, and BOM-free text reading.
//! It must stay a leaf: no other mb-stats crate, no polars, candle or clap.

#![warn(missing_docs)]

pub mod error;
pub mod output;
pub mod text;
