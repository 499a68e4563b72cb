//! Joining finished run files into one results table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Result, input};
use crate::results::{ResultsTable, parquet};

/// Footer key of the experiment file's text.
pub const EXPERIMENT_KEY: &str = "mb_stats.experiment";
/// Footer key of the checkpoint a run file comes from.
pub const CHECKPOINT_KEY: &str = "mb_stats.checkpoint";
/// Footer key of the commit of that checkpoint (Hub checkpoints).
pub const REVISION_KEY: &str = "mb_stats.revision";
/// Footer key of the merged table's checkpoint → commit map (JSON).
pub const REVISIONS_KEY: &str = "mb_stats.revisions";

/// The run files under `dir` (`dir/runs/**.parquet` when `dir` has a `runs` folder), sorted.
pub fn run_files(dir: &Path) -> Vec<PathBuf> {
    let root = if dir.join("runs").is_dir() {
        dir.join("runs")
    } else {
        dir.to_path_buf()
    };
    let mut files = Vec::new();
    let mut pending = vec![root];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Merge the run files of `dirs` (experiment outputs or shard outputs) into one table whose footer
/// carries the experiment text and every checkpoint's commit.
pub fn merge(dirs: &[PathBuf]) -> Result<ResultsTable> {
    let mut tables = Vec::new();
    for dir in dirs {
        if !dir.is_dir() {
            return Err(input(format!("{}: not a directory of run files", dir.display())));
        }
        for file in run_files(dir) {
            tables.push(parquet::read(&file)?);
        }
    }
    if tables.is_empty() {
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(input(format!(
            "{}: no finished run files (runs/**/*.parquet)",
            shown.join(", ")
        )));
    }
    let mut revisions = BTreeMap::new();
    let mut experiment = None;
    for table in &tables {
        let get = |key: &str| table.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        if let (Some(checkpoint), Some(revision)) = (get(CHECKPOINT_KEY), get(REVISION_KEY)) {
            revisions.insert(checkpoint, revision);
        }
        if experiment.is_none() {
            experiment = get(EXPERIMENT_KEY);
        }
    }
    let mut merged = ResultsTable::concat(&tables);
    if let Some(text) = experiment {
        merged.metadata.push((EXPERIMENT_KEY.into(), text));
    }
    merged.metadata.push((
        REVISIONS_KEY.into(),
        serde_json::to_string(&revisions).expect("strings serialise"),
    ));
    Ok(merged)
}
