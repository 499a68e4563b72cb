//! Where lm-evaluation-harness put its per-sample files, and which model, step and aggregate
//! each belongs to. Three layouts are in use:
//!
//! - v0.4.3+: `<output>/<model_name_sanitized>/results_<date_id>.json` beside
//!   `samples_<task>_<date_id>.jsonl` (one JSON object per line); a samples file belongs to the
//!   results file with the same `date_id`.
//! - v0.4.0–0.4.2: `<output>/results.json` (or any `.json` the user named) beside
//!   `<model_args>_<task>.jsonl`, where `<model_args>` is the `--model_args` string with `/` and
//!   `=` replaced by `__`; the file holds one indented JSON array.
//! - lm-checkpoints: `<output>/<org>/<model>/step_<step>/results_<tasks>.json` beside
//!   `samples_<task>.jsonl` (a JSON array despite the extension).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::super::read_text;
use mb_stats_files::error::{Result, input};

/// A per-sample file and what it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplesFile {
    /// The file.
    pub path: PathBuf,
    /// The task, from the file name.
    pub task: String,
    /// The harness's aggregate results for the same run, when found.
    pub results: Option<PathBuf>,
    /// The model's name (`EleutherAI/pythia-160m-seed7`).
    pub model: String,
    /// The checkpoint's step: `revision=stepK` in the model arguments, else a `step_K` or
    /// `stepK` folder; `None` when neither says.
    pub step: Option<i64>,
}

/// A date id as the harness writes it (`2024-05-29T12-41-55.123456`).
static DATED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^samples_(.+)_(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?)\.jsonl$").expect("valid regex")
});
/// A revision or folder naming a training step (`step3000`, `step_3000`, DataDecide's
/// `step3000-seed-default`).
static STEP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^step_?(\d+)(?:$|[-_.])").expect("valid regex"));

/// Every samples file under `paths`: files as given, folders searched recursively, globs
/// expanded. Sorted, each file once.
pub fn find(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for path in paths {
        let text = path.to_string_lossy();
        if path.is_dir() {
            for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
                let entry = entry.map_err(|e| input(format!("{}: cannot list: {e}", path.display())))?;
                if entry.file_type().is_file() && is_samples_name(entry.path()) {
                    found.push(entry.into_path());
                }
            }
        } else if path.is_file() {
            found.push(path.clone());
        } else if text.contains(['*', '?', '[']) {
            let matches = glob::glob(&text).map_err(|e| input(format!("{text}: not a valid glob: {e}")))?;
            let before = found.len();
            for m in matches {
                let m = m.map_err(|e| input(format!("{text}: cannot list: {e}")))?;
                if m.is_file() && is_samples_name(&m) {
                    found.push(m);
                } else if m.is_dir() {
                    found.extend(find(&[m])?);
                }
            }
            if found.len() == before {
                return Err(input(format!("{text}: the glob matches no samples file")));
            }
        } else {
            return Err(input(format!("{}: no such file or folder", path.display())));
        }
    }
    // A file reached twice (a folder and a glob inside it, `a/../a`) is read once.
    let mut seen = std::collections::HashSet::new();
    found.retain(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    found.sort();
    Ok(found)
}

/// Whether a file name is one the harness writes per-sample output under.
fn is_samples_name(path: &Path) -> bool {
    let name = file_name(path);
    (name.starts_with("samples_") && (name.ends_with(".jsonl") || name.ends_with(".json"))) || name.ends_with(".jsonl")
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// An aggregate results file, read once.
#[derive(Clone, Debug)]
pub struct ResultsFile {
    /// The file.
    pub path: PathBuf,
    /// `results`: per task, `"metric,filter"` → value.
    pub results: BTreeMap<String, serde_json::Map<String, Value>>,
    /// Per task, how the harness aggregates each metric (`mean`, `perplexity`, `f1`, …), from
    /// the task's `metric_list` in `configs`.
    pub aggregations: BTreeMap<String, BTreeMap<String, String>>,
    /// The model's name (`model_name`, else `pretrained=` of the model arguments).
    pub model: Option<String>,
    /// The step named by `revision=stepK` in the model arguments.
    pub step: Option<i64>,
    /// `--model_args` as the legacy layout sanitises it into file names.
    pub sanitized_args: Option<String>,
}

impl ResultsFile {
    /// Reads a harness results file; `None` when the JSON is not one (no `results` object).
    pub fn read(path: &Path) -> Result<Option<ResultsFile>> {
        let text = read_text(path)?;
        let parsed = super::record::from_python_json::<Value>(&text);
        let Ok(Value::Object(root)) = parsed else {
            return Ok(None);
        };
        let Some(Value::Object(results)) = root.get("results") else {
            return Ok(None);
        };
        let results = results
            .iter()
            .filter_map(|(task, v)| Some((task.clone(), v.as_object()?.clone())))
            .collect();
        let aggregations = match root.get("configs") {
            Some(Value::Object(configs)) => configs
                .iter()
                .map(|(task, config)| {
                    let metrics = config
                        .get("metric_list")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten();
                    let pairs = metrics.filter_map(|m| {
                        Some((
                            m.get("metric")?.as_str()?.to_string(),
                            m.get("aggregation")?.as_str()?.to_string(),
                        ))
                    });
                    (task.clone(), pairs.collect())
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        let args = root.get("config").and_then(|c| c.get("model_args"));
        let arg = |key: &str| -> Option<String> {
            match args? {
                Value::String(s) => s.split(',').find_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    (k.trim() == key).then(|| v.trim().to_string())
                }),
                Value::Object(m) => m.get(key)?.as_str().map(str::to_string),
                _ => None,
            }
        };
        let model = root
            .get("model_name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| arg("pretrained"))
            .or_else(|| arg("model"));
        let step = arg("revision").and_then(|r| step_of(&r));
        let sanitized_args = match args {
            Some(Value::String(s)) => Some(s.replace(['/', '='], "__")),
            _ => None,
        };
        Ok(Some(ResultsFile {
            path: path.to_path_buf(),
            results,
            aggregations,
            model,
            step,
            sanitized_args,
        }))
    }
}

/// What a samples file takes from its results file: where it is and the model it names.
struct Owner {
    path: PathBuf,
    model: Option<String>,
    step: Option<i64>,
}

impl ResultsFile {
    fn owner(&self) -> Owner {
        Owner {
            path: self.path.clone(),
            model: self.model.clone(),
            step: self.step,
        }
    }
}

/// The step of `step3000` / `step_3000`.
fn step_of(name: &str) -> Option<i64> {
    STEP.captures(name)?.get(1)?.as_str().parse().ok()
}

/// The results files of each folder, read once.
#[derive(Default)]
pub struct Folders(BTreeMap<PathBuf, Vec<ResultsFile>>);

impl Folders {
    fn results_in(&mut self, folder: &Path) -> Result<&[ResultsFile]> {
        if !self.0.contains_key(folder) {
            let mut files = Vec::new();
            let entries =
                std::fs::read_dir(folder).map_err(|e| input(format!("{}: cannot list: {e}", folder.display())))?;
            let mut names: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
            names.sort();
            for path in names {
                if path.extension().is_some_and(|e| e == "json")
                    && !file_name(&path).starts_with("samples_")
                    && let Some(results) = ResultsFile::read(&path)?
                {
                    files.push(results);
                }
            }
            self.0.insert(folder.to_path_buf(), files);
        }
        Ok(&self.0[folder])
    }

    /// Which task, model, step and results file `path` belongs to.
    pub fn describe(&mut self, path: &Path) -> Result<SamplesFile> {
        let folder = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let name = file_name(path);
        let folder_step = path.ancestors().skip(1).find_map(|a| step_of(&file_name(a)));
        // (task, results file, the model the folders name, whether the folders are preferred)
        let (task, results, folder_model, folders_first) = if let Some(c) = DATED.captures(&name) {
            // v0.4.3+: the results file of the same date id (`results_<date>.json`, or
            // `<name>_<date>.json` for `--output_path <name>.json`); the folder is the model.
            let suffix = format!("_{}.json", &c[2]);
            let results = self
                .results_in(&folder)?
                .iter()
                .find(|r| file_name(&r.path).ends_with(&suffix))
                .map(ResultsFile::owner);
            (
                c[1].to_string(),
                results,
                Some(file_name(&folder).replace("__", "/")),
                false,
            )
        } else if let Some(task) = name
            .strip_prefix("samples_")
            .and_then(|n| n.strip_suffix(".jsonl").or_else(|| n.strip_suffix(".json")))
        {
            // lm-checkpoints: the results file of the folder that holds this task; the model is
            // the two folders above `step_K` (`org/name`).
            let results = self
                .results_in(&folder)?
                .iter()
                .find(|r| r.results.contains_key(task))
                .map(ResultsFile::owner);
            let above: Vec<String> = path.ancestors().skip(2).take(2).map(file_name).collect();
            let model = match above.as_slice() {
                [name, org] if !org.is_empty() => format!("{org}/{name}"),
                [name, ..] => name.clone(),
                [] => String::new(),
            };
            // The model was handed to the harness as an object: its results name no model.
            (task.to_string(), results, Some(model), true)
        } else {
            // v0.4.0–0.4.2: `<sanitised model_args>_<task>.jsonl` beside its results file.
            let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
            let owner = self.results_in(&folder)?.iter().find_map(|r| {
                let task = stem.strip_prefix(r.sanitized_args.as_deref()?)?.strip_prefix('_')?;
                Some((task.to_string(), r.owner()))
            });
            let Some((task, results)) = owner else {
                return Err(input(format!(
                    "{}: not a samples file of a known layout (samples_<task>_<date>.jsonl of v0.4.3+, \
                     samples_<task>.json of lm-checkpoints, or <model_args>_<task>.jsonl beside the results \
                     .json of v0.4.0–0.4.2 with the same model_args)",
                    path.display()
                )));
            };
            (task, Some(results), None, false)
        };
        let named = results.as_ref().and_then(|r| r.model.clone());
        let model = match folders_first {
            true => folder_model.filter(|m| !m.is_empty()).or(named),
            false => named.or(folder_model),
        };
        let model = model.filter(|m| !m.is_empty()).ok_or_else(|| {
            input(format!(
                "{}: cannot tell which model it is (no results file names one)",
                path.display()
            ))
        })?;
        let step = results.as_ref().and_then(|r| r.step).or(folder_step);
        Ok(SamplesFile {
            path: path.to_path_buf(),
            task,
            results: results.map(|r| r.path),
            model,
            step,
        })
    }

    /// The results file at `path`, read earlier by [`Self::describe`].
    pub fn results(&self, path: &Path) -> Option<&ResultsFile> {
        self.0.get(path.parent()?)?.iter().find(|r| r.path == path)
    }

    /// How the harness aggregates `metric` of `task` for `file`, when its results file says.
    pub fn aggregation(&self, file: &SamplesFile, metric: &str) -> Option<&str> {
        let results = self.results(file.results.as_deref()?)?;
        results.aggregations.get(&file.task)?.get(metric).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_from_revisions_and_folders() {
        assert_eq!(step_of("step3000"), Some(3000));
        assert_eq!(step_of("step_0"), Some(0));
        assert_eq!(step_of("main"), None);
        assert_eq!(step_of("step3000-seed-default"), Some(3000));
        assert_eq!(step_of("step3000x"), None);
        assert_eq!(step_of("laststep3000"), None);
    }

    #[test]
    fn the_dated_layout_is_recognised() {
        let c = DATED
            .captures("samples_arc_easy_2024-05-29T12-41-55.123456.jsonl")
            .unwrap();
        assert_eq!(&c[1], "arc_easy");
        assert_eq!(&c[2], "2024-05-29T12-41-55.123456");
        assert!(DATED.captures("samples_arc_easy.jsonl").is_none());
    }
}
