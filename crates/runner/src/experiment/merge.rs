//! Joining finished run files into one results table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mb_stats_analysis::results::{ResultsTable, footer, parquet};
use mb_stats_files::error::{Result, input};

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

/// The run files of `dirs` (experiment outputs or shard outputs), each file once however many
/// times it is reached (`merge A A`, or A and a link to A); the error names a folder that is
/// not one or that has none.
pub fn dir_files(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for dir in dirs {
        if !dir.is_dir() {
            return Err(input(format!("{}: not a directory of run files", dir.display())));
        }
        for file in run_files(dir) {
            if seen.insert(std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone())) {
                files.push(file);
            }
        }
    }
    if files.is_empty() {
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(input(format!(
            "{}: no finished run files (runs/**/*.parquet)",
            shown.join(", ")
        )));
    }
    Ok(files)
}

/// The run files of the experiment that `dirs` (outputs of `run`, one per shard or one for all)
/// were made for, by its [`super::driver::PLAN_FILE`]: every planned checkpoint's finished files,
/// wherever they are among `dirs`, and nothing else (folders the experiment no longer asks for
/// are left out). `missing` names the planned checkpoints with no finished work. `None` when no
/// folder has a plan (folders of run files from elsewhere): then [`dir_files`] applies.
pub fn planned_files(dirs: &[PathBuf]) -> Result<Option<Planned>> {
    let mut plan: Option<(serde_json::Value, &PathBuf)> = None;
    for dir in dirs {
        let path = dir.join(super::driver::PLAN_FILE);
        if !path.is_file() {
            continue;
        }
        let text = mb_stats_files::text::read_to_string(&path)?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| input(format!("{}: not a plan written by mb-stats run: {e}", path.display())))?;
        match &plan {
            Some((first, first_dir)) if *first != value => {
                return Err(input(format!(
                    "{}: planned by a different experiment than {}; merge the outputs of one experiment only",
                    path.display(),
                    first_dir.display()
                )));
            }
            Some(_) => {}
            None => plan = Some((value, dir)),
        }
    }
    let Some((plan, _)) = plan else {
        return Ok(None);
    };
    let checkpoints = plan["checkpoints"].as_array().cloned().unwrap_or_default();
    let (mut files, mut missing) = (Vec::new(), Vec::new());
    let mut seen = std::collections::BTreeSet::new();
    for checkpoint in &checkpoints {
        let folder = checkpoint["folder"].as_str().unwrap_or_default();
        let found = dirs
            .iter()
            .find_map(|dir| super::driver::finished_files(&dir.join("runs").join(folder), &checkpoint["key"]));
        match found {
            Some(units) => files.extend(
                units
                    .into_iter()
                    .filter(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()))),
            ),
            None => missing.push(folder.to_string()),
        }
    }
    Ok(Some(Planned {
        files,
        missing,
        planned: checkpoints.len(),
    }))
}

/// What [`planned_files`] found of an experiment's plan.
pub struct Planned {
    /// The finished run files of the planned checkpoints.
    pub files: Vec<PathBuf>,
    /// The planned checkpoints (their folders under `runs/`) with no finished work.
    pub missing: Vec<String>,
    /// Checkpoints in the plan.
    pub planned: usize,
}

/// Merge the run files of `dirs` into one table whose footer carries the experiment text and
/// every checkpoint's commit. Run files of two different experiments (different experiment
/// texts in their footers) and merged tables among the run files are refused.
pub fn merge(dirs: &[PathBuf]) -> Result<ResultsTable> {
    merge_files(&dir_files(dirs)?, None)
}

/// Merge `files` (run files); `experiment`, when given, is the text of the experiment they all
/// belong to (`run` knows its files were made under matching keys even when the text was edited
/// since); otherwise every file must carry the same experiment text.
pub fn merge_files(files: &[PathBuf], experiment: Option<&str>) -> Result<ResultsTable> {
    let mut tables = Vec::new();
    let mut first_text: Option<(String, &PathBuf)> = None;
    for file in files {
        let table = parquet::read(file)?;
        let get = |key: &str| table.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        if get(footer::REVISIONS).is_some() {
            return Err(input(format!(
                "{}: a merged results table, not a run file; move it out of the run folders",
                file.display()
            )));
        }
        if experiment.is_none() {
            let text = get(footer::EXPERIMENT).unwrap_or_default();
            if let Some((first, first_file)) = &first_text
                && *first != text
            {
                return Err(input(format!(
                    "{}: made by a different experiment than {}; merge the outputs of one experiment only",
                    file.display(),
                    first_file.display()
                )));
            }
            if first_text.is_none() {
                first_text = Some((text, file));
            }
        }
        tables.push(table);
    }
    if tables.is_empty() {
        return Err(input("no run files to merge"));
    }
    // What a task kind decides once every run file is in (fine-tuning: which rate to keep).
    let selection = crate::task::KINDS
        .iter()
        .find_map(|kind| kind.merge.and_then(|merge| merge(&mut tables)));
    let experiment = experiment
        .map(str::to_string)
        .or_else(|| first_text.map(|(t, _)| t).filter(|t| !t.is_empty()));
    let mut revisions = BTreeMap::new();
    for table in &tables {
        let get = |key: &str| table.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        if let (Some(checkpoint), Some(revision)) = (get(footer::CHECKPOINT), get(footer::REVISION)) {
            revisions.insert(checkpoint, revision);
        }
    }
    let mut merged = ResultsTable::concat(&tables);
    if let Some((key, value)) = selection {
        merged.metadata.push((key.to_string(), value));
    }
    for key in footer::TASK_KEYS {
        let value = |t: &ResultsTable| t.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        if let Some(first) = value(&tables[0])
            && tables.iter().all(|t| value(t).as_ref() == Some(&first))
        {
            merged.metadata.push((key.to_string(), first));
        }
    }
    if let Some(text) = experiment {
        merged.metadata.push((footer::EXPERIMENT.into(), text));
    }
    merged.metadata.push((
        footer::REVISIONS.into(),
        serde_json::to_string(&revisions).expect("strings serialise"),
    ));
    Ok(merged)
}
