//! From a results table to Multi-Bootstrap summaries. `options` holds the settings, `design`
//! splits the table into cells (`--by`) and builds one validated design per analysis (a group,
//! or a base/treatment comparison), and `bootstrap` runs the engine and summarises; `seeds`,
//! `variance`, `power` and `curve` build on the same designs; `values` checks single settings for
//! every front end (clap, Python). This is the only place that knows both the table and the
//! statistics; the statistics themselves see plain arrays.

mod bootstrap;
mod curve;
mod design;
mod options;
mod power;
mod seeds;
pub mod values;
mod variance;

pub use bootstrap::{CellReplicates, Quantity, Report, Row, SeedRow, bootstrap, per_seed};
pub use curve::{CurveOptions, CurvePoint, CurveReport, CurveSeries, StepDelta, curve};
pub use options::{Method, Options};
pub use power::{PowerOptions, PowerReport, PowerRow, count_units, power};
pub use seeds::{Agreement, Conclusion, Heterogeneity, SeedResult, SeedsOptions, SeedsReport, seeds};
pub use values::{MAX_NBOOT, ReplicateCount, replicate_memory};
pub use variance::{VarianceReport, VarianceRow, variance};

/// Stops an analysis whose replicates were cut short by [`mb_stats_core::interrupt`] before it
/// summarises them (the caller that asked for the stop discards the error).
fn interrupted() -> std::result::Result<(), String> {
    match mb_stats_core::interrupt::requested() {
        true => Err("interrupted".to_string()),
        false => Ok(()),
    }
}
