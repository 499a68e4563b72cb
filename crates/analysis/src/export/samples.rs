//! `--samples FILE.parquet`: every replicate of every analysis (cell, group, replicate, base,
//! treatment), for plots and checks outside mb-stats.

use std::path::Path;

use polars::prelude::*;

use crate::analysis::Report;
use mb_stats_files::error::{Error, Result};

/// Checks that `path` names a Parquet file (before any work is done).
pub fn check_path(path: &Path) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => Ok(()),
        _ => Err(Error::named(format!(
            "{{samples}} {}: expected a file ending in .parquet",
            path.display()
        ))),
    }
}

/// Writes the replicates of `report` to a Parquet file, atomically.
pub fn write(report: &Report, path: &Path) -> Result<()> {
    check_path(path)?;
    let (mut cell, mut group, mut replicate, mut base, mut treatment) = (vec![], vec![], vec![], vec![], vec![]);
    for r in &report.replicates {
        let reps = &r.replicates;
        for (i, &b) in reps.base.iter().enumerate() {
            cell.push(r.cell.clone());
            group.push(r.group.clone());
            replicate.push(i as i64);
            base.push(b);
            treatment.push(reps.treatment.as_ref().map(|t| t[i]));
        }
    }
    let n = base.len();
    let columns = vec![
        Column::new("cell".into(), cell),
        Column::new("group".into(), group),
        Column::new("replicate".into(), replicate),
        Column::new("base".into(), base),
        Column::new("treatment".into(), treatment),
    ];
    let mut df = DataFrame::new(n, columns).map_err(|e| Error::Output(e.to_string()))?;
    let metadata = vec![("mb_stats.samples".to_string(), super::method_line(&report.method))];
    crate::results::parquet::write_frame(&mut df, metadata, path)
}
