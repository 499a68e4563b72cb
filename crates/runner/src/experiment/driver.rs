//! Evaluating the plan: one checkpoint at a time (one model in memory), handed to the
//! experiment's [`Task`], one Parquet file per finished (checkpoint, unit) written atomically,
//! finished work skipped on restart.
//!
//! Finished work is keyed ([`super::key`]): `done.json` and every run file record the key they
//! were made under. Before any checkpoint is evaluated, finished work in `--out` that was made
//! under another key (the experiment changed) is refused, naming what changed; `--force` redoes
//! it and removes the checkpoint's run files that the experiment no longer asks for.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use serde_json::Value;

use super::config::ExperimentFile;
use super::key;
use super::plan::{PlannedCheckpoint, Shard};
use crate::progress::{Board, Style};
use crate::task::{LearningRate, Saved, Task, Unit, UnitRows};
use mb_stats_analysis::results::{ResultsTable, Texts, footer};
use mb_stats_bert::fetch::{CheckpointSource, fetch};
use mb_stats_bert::hub::HubCache;
use mb_stats_bert::{Bert, DeviceSpec};
use mb_stats_files::error::{Error, Result, input};

/// How to run an experiment.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Output folder (`runs/` and `results.parquet` inside).
    pub out: PathBuf,
    /// Device overriding `[runtime] device` (an error opening it is an [`Error::Named`] of
    /// `{device}`).
    pub device: Option<DeviceSpec>,
    /// Run only this part of the grid.
    pub shard: Option<Shard>,
    /// Use only the Hugging Face cache.
    pub offline: bool,
    /// Redo finished work.
    pub force: bool,
    /// Remove from the Hugging Face cache what this run downloaded for a checkpoint once the
    /// checkpoint is finished.
    pub evict: bool,
    /// How progress is shown.
    pub progress: Style,
}

/// The name of a finished checkpoint's marker file in its run folder.
const DONE_FILE: &str = "done.json";

/// In `--out`: every checkpoint the experiment plans (all shards) with its key, so that `merge`
/// knows the whole experiment, what is missing and which folders are no longer asked for.
pub const PLAN_FILE: &str = "plan.json";

/// Evaluate every checkpoint of the plan that belongs to the shard; returns the run files of
/// those checkpoints (reused or new), the only files a merge of this experiment may join.
pub fn run(file: &ExperimentFile, plan: &[PlannedCheckpoint], options: &RunOptions) -> Result<Vec<PathBuf>> {
    let runtime = &file.experiment.runtime;
    let device = match options.device {
        Some(flag) => flag
            .open()
            .map_err(|e| Error::named(format!("{{device}} {flag}: {e}")))?,
        None => runtime.device.open().map_err(|e| {
            input(format!(
                "{}: runtime.device = \"{}\": {e}",
                file.path.display(),
                runtime.device
            ))
        })?,
    };
    let task = (file.kind().build)(&file.task_source(options.offline))?;
    let metric = file.metric();
    if !task.metrics().contains(&metric) {
        let defined: Vec<&str> = task.metrics().iter().map(|m| m.name()).collect();
        return Err(input(format!(
            "{}: analysis.metric = \"{metric}\" is not defined on the rows of kind = \"{}\"; expected {}",
            file.path.display(),
            task.kind(),
            defined.join(", ")
        )));
    }
    let digest = task.data_digest();
    // Every planned checkpoint's key, once: the plan file records them all, this shard uses its own.
    let all_keys: Vec<Value> = plan
        .iter()
        .map(|c| key::checkpoint_key(file, task.as_ref(), c, &digest))
        .collect();
    let (mine, keys): (Vec<&PlannedCheckpoint>, Vec<Value>) = plan
        .iter()
        .zip(&all_keys)
        .enumerate()
        .filter(|(k, _)| options.shard.is_none_or(|s| s.contains(*k)))
        .map(|(_, (c, key))| (c, key.clone()))
        .unzip();
    // Every checkpoint's finished work is checked against the experiment before any model loads.
    let mut finished = Vec::with_capacity(mine.len());
    for (checkpoint, key) in mine.iter().zip(&keys) {
        let folder = options.out.join("runs").join(checkpoint.folder());
        finished.push(match options.force {
            true => None,
            false => check_finished(&folder, key, &options.out)?,
        });
    }
    let bars = Board::new(options.progress);
    check_space(&mine, &finished, options, &bars)?;
    // Only once nothing was refused: a refused run leaves --out as it was.
    write_plan(plan, &all_keys, &options.out)?;
    let overall = bars.counter(mine.len(), "checkpoints");
    let mut files = Vec::new();
    for (done, ((checkpoint, key), finished)) in mine.iter().zip(&keys).zip(finished).enumerate() {
        let at = format!("[{}/{}] {}", done + 1, mine.len(), describe(checkpoint));
        if let Some(units) = finished {
            bars.log(&format!("{at}: already finished, skipped"));
            files.extend(units);
            overall.tick();
            continue;
        }
        bars.log(&format!(
            "{at}: starting, from {}",
            origin(&checkpoint.source, options.offline)
        ));
        let started = Instant::now();
        let (summary, units) = evaluate(file, task.as_ref(), checkpoint, key, &device, options, &bars)?;
        files.extend(units);
        bars.println(&format!("{at}: {summary} in {:.1} s", started.elapsed().as_secs_f64()));
        overall.tick();
    }
    overall.finish();
    Ok(files)
}

/// States what the run will download into the Hugging Face cache, and refuses (before any work)
/// when the cache's file system lacks the space: every download kept, or with `--evict` one
/// checkpoint at a time.
fn check_space(
    mine: &[&PlannedCheckpoint],
    finished: &[Option<Vec<PathBuf>>],
    options: &RunOptions,
    bars: &Board,
) -> Result<()> {
    if options.offline || mb_stats_bert::hub::offline_from_env() {
        return Ok(());
    }
    let cache = HubCache::from_env();
    let downloads = mine
        .iter()
        .zip(finished)
        .filter(|(c, done)| {
            done.is_none()
                && matches!(&c.source, CheckpointSource::Hub { repo, revision } if !cache.is_cached(repo, revision.as_deref()))
        })
        .count() as u64;
    if downloads == 0 {
        return Ok(());
    }
    let per = mb_stats_bert::hub::BERT_BASE_DOWNLOAD_BYTES;
    let needed = per * if options.evict { 1 } else { downloads };
    let gb = |bytes: u64| bytes as f64 / 1e9;
    let free = mb_stats_bert::hub::free_bytes(cache.root());
    bars.println(&format!(
        "{downloads} checkpoints to download (≈ {:.1} GB at BERT-base size) into {} ({}); {}",
        gb(per * downloads),
        cache.root().display(),
        free.map_or("free space unknown".to_string(), |f| format!("{:.1} GB free", gb(f))),
        match options.evict {
            true => "each removed once its work is finished",
            false => "kept there",
        }
    ));
    match free {
        Some(free) if free < needed => Err(Error::named(format!(
            "{}: {downloads} checkpoints to download need ≈ {:.1} GB{}, but only {:.1} GB is free; free space, point HF_HUB_CACHE to a larger file system{}",
            cache.root().display(),
            gb(needed),
            if options.evict { " (one at a time)" } else { "" },
            gb(free),
            if options.evict {
                ""
            } else {
                ", or use {evict} to keep one checkpoint at a time"
            }
        ))),
        _ => Ok(()),
    }
}

/// `NAME (group G, seed S, step T)`.
fn describe(checkpoint: &PlannedCheckpoint) -> String {
    format!(
        "{} (group {}, seed {}{})",
        checkpoint.name(),
        checkpoint.group,
        checkpoint.seed,
        checkpoint.step.map(|s| format!(", step {s}")).unwrap_or_default()
    )
}

/// Where a checkpoint's files come from: a directory, the Hugging Face cache, or a download.
fn origin(source: &CheckpointSource, offline: bool) -> String {
    match source {
        CheckpointSource::Local(dir) => format!("the directory {}", dir.display()),
        CheckpointSource::Hub { repo, revision } => {
            let cache = HubCache::from_env();
            match cache.is_cached(repo, revision.as_deref()) || offline {
                true => format!("the Hugging Face cache {}", cache.root().display()),
                false => format!("the Hub (downloading into {})", cache.root().display()),
            }
        }
    }
}

/// The path of a unit's run file in a checkpoint's folder: `layer_L-run_R.parquet`, or
/// `lr_X-run_R.parquet` for a fine-tuning unit.
fn unit_path(folder: &Path, unit: Unit) -> PathBuf {
    folder.join(format!("{}.parquet", unit_stem(unit)))
}

/// A unit's file name without extension.
fn unit_stem(unit: Unit) -> String {
    match unit.lr {
        None => format!("layer_{}-run_{}", unit.layer, unit.run),
        Some(lr) => format!("lr_{lr}-run_{}", unit.run),
    }
}

/// The unit of a run file's name (see [`unit_path`]); a fine-tuning unit's layer is not in its
/// name and is read as `last_layer`.
fn unit_of(path: &Path, last_layer: usize) -> Option<Unit> {
    let name = path.file_name()?.to_str()?.strip_suffix(".parquet")?;
    if let Some(rest) = name.strip_prefix("lr_") {
        let (lr, run) = rest.rsplit_once("-run_")?;
        return Some(Unit {
            layer: last_layer,
            run: run.parse().ok()?,
            lr: Some(LearningRate::new(lr.parse().ok()?)?),
        });
    }
    let (layer, run) = name.strip_prefix("layer_")?.split_once("-run_")?;
    Some(Unit {
        layer: layer.parse().ok()?,
        run: run.parse().ok()?,
        lr: None,
    })
}

/// The run files already in a checkpoint's folder (fine-tuning units at `last_layer`).
fn existing_units(folder: &Path, last_layer: usize) -> Vec<(PathBuf, Unit)> {
    let mut units: Vec<_> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| unit_of(&e.path(), last_layer).map(|u| (e.path(), u)))
        .collect();
    units.sort();
    units
}

/// Removes the temporary files and folders (`.mb-stats-*`) a killed run left in a checkpoint's folder:
/// the checkpoint is this task's alone (shards never share one), so none is being written.
fn remove_leftovers(folder: &Path) {
    for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".mb-stats-") {
            let _ = match entry.path().is_dir() {
                true => std::fs::remove_dir_all(entry.path()),
                false => std::fs::remove_file(entry.path()),
            };
        }
    }
}

/// Writes [`PLAN_FILE`] (atomically; every shard writes the same plan).
fn write_plan(plan: &[PlannedCheckpoint], keys: &[Value], out: &Path) -> Result<()> {
    let checkpoints: Vec<Value> = plan
        .iter()
        .zip(keys)
        .map(|(c, key)| serde_json::json!({ "folder": c.folder().to_string_lossy(), "key": key }))
        .collect();
    std::fs::create_dir_all(out).map_err(|e| Error::Output(format!("{}: {e}", out.display())))?;
    let text = serde_json::json!({ "checkpoints": checkpoints }).to_string();
    mb_stats_files::output::atomic_write(&out.join(PLAN_FILE), text.as_bytes())
}

/// The run files of a planned checkpoint's `folder` when its work is complete under `key`
/// (`None` when it is missing, unfinished or made under another key).
pub(super) fn finished_files(folder: &Path, key: &Value) -> Option<Vec<PathBuf>> {
    check_finished(folder, key, folder).ok().flatten()
}

/// Checks a checkpoint's finished work in `folder` against `key`: `Some(run files)` when it is
/// complete and was made under `key`; `None` when there is work to do (nothing yet, or an
/// interrupted run whose files all match `key`); an error naming what changed when anything there
/// was made under another key.
fn check_finished(folder: &Path, key: &Value, out: &Path) -> Result<Option<Vec<PathBuf>>> {
    let stale = |what: &Path, changed: Vec<String>| {
        Error::named(format!(
            "{}: made by a different experiment ({} changed); rerun with {{force}} to redo it, or choose another {{out}} than {}",
            what.display(),
            match changed.is_empty() {
                true => "its key".to_string(),
                false => changed.join(", "),
            },
            out.display()
        ))
    };
    let done = folder.join(DONE_FILE);
    if done.is_file() {
        let marker: Value = mb_stats_files::text::read_to_string(&done)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let recorded = marker.get("key").unwrap_or(&Value::Null);
        if recorded != key {
            return Err(stale(&done, key::differences(recorded, key)));
        }
        let numbers = |field: &str| -> Vec<usize> {
            match &marker[field] {
                Value::Array(a) => a.iter().filter_map(|v| v.as_u64()).map(|v| v as usize).collect(),
                v => v.as_u64().map(|n| (0..n as usize).collect()).unwrap_or_default(),
            }
        };
        let lrs: Vec<Option<LearningRate>> = match &marker["lrs"] {
            Value::Array(a) => a.iter().map(|v| v.as_f64().and_then(LearningRate::new)).collect(),
            _ => vec![None],
        };
        let units: Vec<Unit> = numbers("layers")
            .into_iter()
            .flat_map(|layer| numbers("runs").into_iter().map(move |run| (layer, run)))
            .flat_map(|(layer, run)| lrs.iter().map(move |&lr| Unit { layer, run, lr }))
            .collect();
        let paths: Vec<PathBuf> = units.iter().map(|&unit| unit_path(folder, unit)).collect();
        if !paths.is_empty() && paths.iter().all(|u| u.is_file()) {
            // Each run file's own footer must carry its unit's key: a file swapped in from
            // another configuration (done.json kept) is never reused.
            for (path, &unit) in paths.iter().zip(&units) {
                if unit_key_of(path)?.as_deref() != Some(key::unit_key(key, unit).as_str()) {
                    return Err(stale(path, Vec::new()));
                }
            }
            return Ok(Some(paths));
        }
    }
    // A fine-tuning unit's layer is in neither its file name nor its key: any value serves.
    for (path, unit) in existing_units(folder, 0) {
        if unit_key_of(&path)?.as_deref() != Some(key::unit_key(key, unit).as_str()) {
            return Err(stale(&path, Vec::new()));
        }
    }
    Ok(None)
}

/// The unit key a run file's footer records.
fn unit_key_of(path: &Path) -> Result<Option<String>> {
    let table = mb_stats_analysis::results::parquet::read(path)?;
    Ok(table
        .metadata
        .into_iter()
        .find(|(k, _)| k == footer::UNIT)
        .map(|(_, v)| v))
}

/// Evaluate one checkpoint: the run files of the task's units it lacks, then its done marker.
/// Returns a one-line summary for the log and the checkpoint's run files.
fn evaluate(
    file: &ExperimentFile,
    task: &dyn Task,
    checkpoint: &PlannedCheckpoint,
    key: &Value,
    device: &Device,
    options: &RunOptions,
    bars: &Board,
) -> Result<(String, Vec<PathBuf>)> {
    let runtime = &file.experiment.runtime;
    let folder = &options.out.join("runs").join(checkpoint.folder());
    std::fs::create_dir_all(folder).map_err(|e| Error::Output(format!("{}: {e}", folder.display())))?;
    remove_leftovers(folder);
    let local = fetch(&checkpoint.source, options.offline)?;
    let started = Instant::now();
    let dtype = task.weights_dtype(runtime.dtype.dtype());
    let bert = Bert::load(&local.dir, device, dtype, runtime.max_length.get())?;
    let load_seconds = started.elapsed().as_secs_f64();
    let units = task.units(bert.n_hidden_states())?;
    if options.force {
        // The folder keeps only what this experiment asks for.
        for (path, unit) in existing_units(folder, bert.n_hidden_states() - 1) {
            if !units.contains(&unit) {
                std::fs::remove_file(&path)
                    .map_err(|e| Error::Output(format!("{}: cannot remove: {e}", path.display())))?;
            }
        }
    }
    let pending: Vec<Unit> = units
        .iter()
        .copied()
        .filter(|&u| options.force || !unit_path(folder, u).is_file())
        .collect();
    // Each unit's run file is written as soon as the task hands over its rows.
    let mut headlines = Vec::with_capacity(pending.len());
    if !pending.is_empty() {
        task.evaluate(&bert, &pending, &checkpoint.name(), folder, bars, &mut |unit, rows| {
            match &rows.saved {
                Saved::Nothing => {}
                Saved::Tensors(tensors) => {
                    save_weights(tensors, &folder.join(format!("{}.safetensors", unit_stem(unit))))?
                }
                Saved::Checkpoint(tensors) => save_checkpoint(&local.dir, tensors, &folder.join(CHECKPOINT_FOLDER))?,
            }
            let mut table = unit_table(file, checkpoint, &local.commit, unit, &rows);
            table
                .metadata
                .push((footer::UNIT.to_string(), key::unit_key(key, unit)));
            mb_stats_analysis::results::parquet::write(&table, &unit_path(folder, unit))?;
            headlines.push(rows.headline);
            Ok(())
        })?;
    }
    let mut layers: Vec<usize> = units.iter().map(|u| u.layer).collect();
    layers.dedup();
    let mut lrs: Vec<LearningRate> = units.iter().filter_map(|u| u.lr).collect();
    lrs.sort();
    lrs.dedup();
    let mut marker = serde_json::json!({
        "checkpoint": checkpoint.name(),
        "revision": local.commit,
        "layers": layers,
        "runs": units.iter().map(|u| u.run + 1).max().unwrap_or(0),
        "key": key,
    });
    if !lrs.is_empty() {
        marker["lrs"] = lrs.iter().map(|lr| lr.value()).collect();
    }
    mb_stats_files::output::atomic_write(&folder.join(DONE_FILE), marker.to_string().as_bytes())?;
    if options.evict && !local.downloaded.is_empty() {
        let freed = mb_stats_bert::hub::evict(&local.dir, &local.downloaded)?;
        bars.log(&format!(
            "{}: removed its {} downloaded files ({:.0} MB) from the Hugging Face cache",
            checkpoint.name(),
            local.downloaded.len(),
            freed as f64 / 1e6
        ));
    }
    let files = units.iter().map(|&u| unit_path(folder, u)).collect();
    Ok((
        format!("{} (loaded in {load_seconds:.1} s)", task.summary(&headlines)),
        files,
    ))
}

/// The folder of a run folder that holds a checkpoint a task saved ([`Saved::Checkpoint`]).
pub const CHECKPOINT_FOLDER: &str = "checkpoint";

/// The files of a checkpoint folder besides its weights, copied from the checkpoint it started
/// from when there.
const CHECKPOINT_FILES: &[&str] = &[
    "config.json",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Write a checkpoint in the Hugging Face layout at `target`: the config and tokenizer files of
/// the checkpoint in `source`, and `tensors` with its next-sentence head as `model.safetensors`;
/// the whole folder appears at once (written beside it, then renamed).
fn save_checkpoint(source: &Path, tensors: &[(String, candle_core::Tensor)], target: &Path) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| Error::Output(format!("{}: {e}", target.display()));
    let folder = target.parent().unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".mb-stats-");
    #[cfg(unix)]
    {
        // 0777 less the umask, as a plain `create_dir` makes it: the rename keeps the mode.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o777));
    }
    let temporary = builder.tempdir_in(folder).map_err(|e| failed(&e))?;
    for name in CHECKPOINT_FILES {
        let from = source.join(name);
        if from.is_file() {
            std::fs::copy(&from, temporary.path().join(name)).map_err(|e| failed(&e))?;
        }
    }
    let hidden = tensors
        .iter()
        .find(|(name, _)| name == "bert.embeddings.word_embeddings.weight")
        .and_then(|(_, t)| t.dim(1).ok())
        .ok_or_else(|| failed(&"no word embeddings among the saved tensors"))?;
    let mut all: std::collections::HashMap<String, candle_core::Tensor> = tensors.iter().cloned().collect();
    all.extend(mb_stats_bert::pretrain::next_sentence_head(source, hidden)?);
    let weights = temporary.path().join("model.safetensors");
    candle_core::safetensors::save(&all, &weights).map_err(|e| failed(&e))?;
    mb_stats_files::output::give_plain_mode(&weights).map_err(|e| failed(&e))?;
    if target.exists() {
        std::fs::remove_dir_all(target).map_err(|e| failed(&e))?;
    }
    std::fs::rename(temporary.path(), target).map_err(|e| failed(&e))?;
    // Renamed: nothing is left for the guard to remove.
    let _ = temporary.keep();
    Ok(())
}

/// Write `weights` as safetensors at `path`, atomically (a temporary file renamed).
fn save_weights(weights: &[(String, candle_core::Tensor)], path: &Path) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| Error::Output(format!("{}: {e}", path.display()));
    let folder = path.parent().unwrap_or(Path::new("."));
    let temporary = mb_stats_files::output::temp_file_in(folder, ".safetensors").map_err(|e| failed(&e))?;
    let map: std::collections::HashMap<String, candle_core::Tensor> = weights.iter().cloned().collect();
    candle_core::safetensors::save(&map, temporary.path()).map_err(|e| failed(&e))?;
    mb_stats_files::output::give_plain_mode(temporary.path()).map_err(|e| failed(&e))?;
    temporary.persist(path).map_err(|e| failed(&e.error))?;
    Ok(())
}

/// The rows of one unit of a checkpoint as a results table: the task's per-example columns with
/// the checkpoint's group, seed and step and the unit's run and layer.
fn unit_table(
    file: &ExperimentFile,
    checkpoint: &PlannedCheckpoint,
    commit: &Option<String>,
    unit: Unit,
    rows: &UnitRows,
) -> ResultsTable {
    let n = rows.label.len();
    let mut metadata = vec![
        (footer::EXPERIMENT.to_string(), file.text.clone()),
        (footer::CHECKPOINT.to_string(), checkpoint.name()),
    ];
    metadata.extend(rows.metadata.iter().cloned());
    if let Some(commit) = commit {
        metadata.push((footer::REVISION.to_string(), commit.clone()));
    }
    ResultsTable {
        group: Texts::repeat(Some(&checkpoint.group), n),
        seed: vec![checkpoint.seed as i64; n],
        step: Some(vec![checkpoint.step.map(|s| s as i64); n]),
        run: Some(vec![Some(unit.run as i64); n]),
        task: Some(match &rows.subtask {
            Some(subtasks) => subtasks.iter().map(Some).collect(),
            None => Texts::repeat(Some(&file.task_name()), n),
        }),
        layer: Some(vec![Some(unit.layer as i64); n]),
        example: rows.example.clone(),
        label: Some(rows.label.clone()),
        prediction: Some(rows.prediction.clone()),
        score: rows.score.clone(),
        cluster: rows
            .cluster
            .as_ref()
            .map(|clusters| clusters.iter().map(Some).collect()),
        extra: rows.extra.clone(),
        metadata,
    }
}
