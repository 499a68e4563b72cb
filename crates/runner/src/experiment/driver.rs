//! Evaluating the plan: one checkpoint at a time (one model in memory), features extracted once
//! per checkpoint and shared by every layer's probe runs, one Parquet file per finished
//! (checkpoint, layer, run) written atomically, finished work skipped on restart.
//!
//! Finished work is keyed ([`super::key`]): `done.json` and every run file record the key they
//! were made under. Before any checkpoint is evaluated, finished work in `--out` that was made
//! under another key (the experiment changed) is refused, naming what changed; `--force` redoes
//! it and removes the checkpoint's run files that the experiment no longer asks for.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use ndarray::{Array2, Axis};

use serde_json::Value;

use super::config::{ExperimentFile, LayerList};
use super::data::LabelledData;
use super::key;
use super::merge::{CHECKPOINT_KEY, EXPERIMENT_KEY, REVISION_KEY, UNIT_KEY};
use super::plan::{PlannedCheckpoint, Shard};
use crate::progress::Board;
use crate::task::linear_probe;
use crate::task::probe::ProbeConfig;
use mb_stats_analysis::results::{Numbers, ResultsTable};
use mb_stats_bert::fetch::fetch;
use mb_stats_bert::model::{parse_device, parse_dtype};
use mb_stats_bert::{Bert, Features, Pooling};
use mb_stats_files::error::{Result, input};

/// How to run an experiment.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Output folder (`runs/` and `results.parquet` inside).
    pub out: PathBuf,
    /// Device overriding `[runtime] device`.
    pub device: Option<String>,
    /// Run only this part of the grid.
    pub shard: Option<Shard>,
    /// Use only the Hugging Face cache.
    pub offline: bool,
    /// Redo finished work.
    pub force: bool,
}

/// The name of a finished checkpoint's marker file in its run folder.
const DONE_FILE: &str = "done.json";

/// Evaluate every checkpoint of the plan that belongs to the shard; returns the run files of
/// those checkpoints (reused or new), the only files a merge of this experiment may join.
pub fn run(file: &ExperimentFile, plan: &[PlannedCheckpoint], options: &RunOptions) -> Result<Vec<PathBuf>> {
    let experiment = &file.experiment;
    let runtime = &experiment.runtime;
    let device = match &options.device {
        Some(flag) => parse_device(flag)?,
        None => parse_device(&runtime.device).map_err(|e| {
            let message = e.to_string();
            let detail = message.split_once(": ").map_or(message.as_str(), |(_, d)| d);
            input(format!(
                "{}: runtime.device = {:?}: {detail}",
                file.path.display(),
                runtime.device
            ))
        })?,
    };
    let dtype = parse_dtype(&runtime.dtype)?;
    let pooling: Pooling = experiment
        .task
        .pooling
        .parse()
        .map_err(|e| input(format!("task.pooling: {e}")))?;
    let data = LabelledData::load(file, options.offline)?;
    let digest = key::data_digest(&data);
    let probe = ProbeConfig {
        l2: experiment.task.l2,
        max_iter: experiment.task.max_iter,
        ..ProbeConfig::default()
    };
    let mine: Vec<&PlannedCheckpoint> = plan
        .iter()
        .enumerate()
        .filter(|(k, _)| options.shard.is_none_or(|s| s.contains(*k)))
        .map(|(_, c)| c)
        .collect();
    let keys: Vec<Value> = mine.iter().map(|c| key::checkpoint_key(file, c, &digest)).collect();
    // Every checkpoint's finished work is checked against the experiment before any model loads.
    let mut finished = Vec::with_capacity(mine.len());
    for (checkpoint, key) in mine.iter().zip(&keys) {
        let folder = options.out.join("runs").join(checkpoint.folder());
        finished.push(match options.force {
            true => None,
            false => check_finished(&folder, key, &options.out)?,
        });
    }
    let bars = Board::new();
    let overall = bars.counter(mine.len(), "checkpoints");
    let mut files = Vec::new();
    for (done, ((checkpoint, key), finished)) in mine.iter().zip(&keys).zip(finished).enumerate() {
        if let Some(units) = finished {
            files.extend(units);
            overall.tick();
            continue;
        }
        let folder = options.out.join("runs").join(checkpoint.folder());
        let started = Instant::now();
        let (summary, units) = evaluate(
            file, checkpoint, key, &data, &folder, &device, dtype, pooling, &probe, options, &bars,
        )?;
        files.extend(units);
        overall.tick();
        bars.println(&format!(
            "[{}/{}] {} (group {}, seed {}{}): {summary} in {:.1} s",
            done + 1,
            mine.len(),
            checkpoint.name(),
            checkpoint.group,
            checkpoint.seed,
            checkpoint.step.map(|s| format!(", step {s}")).unwrap_or_default(),
            started.elapsed().as_secs_f64()
        ));
    }
    overall.finish();
    Ok(files)
}

/// The path of the run file of (`layer`, `run`) in a checkpoint's folder.
fn unit_path(folder: &Path, layer: usize, run: usize) -> PathBuf {
    folder.join(format!("layer_{layer}-run_{run}.parquet"))
}

/// The (layer, run) of a run file's name `layer_L-run_R.parquet`.
fn unit_of(path: &Path) -> Option<(usize, usize)> {
    let name = path.file_name()?.to_str()?.strip_suffix(".parquet")?;
    let (layer, run) = name.strip_prefix("layer_")?.split_once("-run_")?;
    Some((layer.parse().ok()?, run.parse().ok()?))
}

/// The run files already in a checkpoint's folder.
fn existing_units(folder: &Path) -> Vec<(PathBuf, (usize, usize))> {
    let mut units: Vec<_> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| unit_of(&e.path()).map(|u| (e.path(), u)))
        .collect();
    units.sort();
    units
}

/// Checks a checkpoint's finished work in `folder` against `key`: `Some(run files)` when it is
/// complete and was made under `key`; `None` when there is work to do (nothing yet, or an
/// interrupted run whose files all match `key`); an error naming what changed when anything there
/// was made under another key.
fn check_finished(folder: &Path, key: &Value, out: &Path) -> Result<Option<Vec<PathBuf>>> {
    let stale = |what: &Path, changed: Vec<String>| {
        input(format!(
            "{}: made by a different experiment ({} changed); rerun with --force to redo it, or choose another --out than {}",
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
        let units: Vec<PathBuf> = numbers("layers")
            .into_iter()
            .flat_map(|l| numbers("runs").into_iter().map(move |r| (l, r)))
            .map(|(l, r)| unit_path(folder, l, r))
            .collect();
        if !units.is_empty() && units.iter().all(|u| u.is_file()) {
            return Ok(Some(units));
        }
    }
    for (path, (layer, run)) in existing_units(folder) {
        let table = mb_stats_analysis::results::parquet::read(&path)?;
        let recorded = table
            .metadata
            .iter()
            .find(|(k, _)| k == UNIT_KEY)
            .map(|(_, v)| v.as_str());
        if recorded != Some(key::unit_key(key, layer, run).as_str()) {
            return Err(stale(&path, Vec::new()));
        }
    }
    Ok(None)
}

/// Evaluate one checkpoint: the (layer, run) files it lacks, then its done marker. Returns a
/// one-line summary for the log and the checkpoint's run files.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    file: &ExperimentFile,
    checkpoint: &PlannedCheckpoint,
    key: &Value,
    data: &LabelledData,
    folder: &Path,
    device: &Device,
    dtype: candle_core::DType,
    pooling: Pooling,
    probe: &ProbeConfig,
    options: &RunOptions,
    bars: &Board,
) -> Result<(String, Vec<PathBuf>)> {
    let experiment = &file.experiment;
    std::fs::create_dir_all(folder)
        .map_err(|e| mb_stats_files::error::Error::Output(format!("{}: {e}", folder.display())))?;
    let local = fetch(&checkpoint.source, options.offline)?;
    let bert = Bert::load(&local.dir, device, dtype, experiment.runtime.max_length)?;
    let layers = resolve_layers(experiment.task.layers.as_ref(), bert.n_hidden_states())
        .map_err(|e| input(format!("{}: task.layers: {e}", file.path.display())))?;
    let runs = experiment.task.runs;
    let units: Vec<(usize, usize)> = layers.iter().flat_map(|&l| (0..runs).map(move |r| (l, r))).collect();
    if options.force {
        // The folder keeps only what this experiment asks for.
        for (path, unit) in existing_units(folder) {
            if !units.contains(&unit) {
                std::fs::remove_file(&path).map_err(|e| {
                    mb_stats_files::error::Error::Output(format!("{}: cannot remove: {e}", path.display()))
                })?;
            }
        }
    }
    let pending: Vec<(usize, usize)> = units
        .iter()
        .copied()
        .filter(|&(l, r)| options.force || !unit_path(folder, l, r).is_file())
        .collect();
    let mut accuracies = Vec::new();
    if !pending.is_empty() {
        // Features once for the union of the pending runs' training rows and the evaluation set.
        let subsets: Vec<Vec<usize>> = (0..runs)
            .map(|r| data.train_subset(r, experiment.data.train_size))
            .collect();
        let mut train_rows: Vec<usize> = pending.iter().flat_map(|&(_, r)| subsets[r].iter().copied()).collect();
        train_rows.sort_unstable();
        train_rows.dedup();
        let mut inputs: Vec<_> = train_rows.iter().map(|&i| data.train.inputs[i].clone()).collect();
        inputs.extend(data.eval.inputs.iter().cloned());
        let mut needed: Vec<usize> = pending.iter().map(|&(l, _)| l).collect();
        needed.dedup();
        let bar = bars.counter(inputs.len(), "sentences");
        let features = bert.features(
            &inputs,
            &needed,
            pooling,
            experiment.runtime.batch_tokens,
            &bar.advance(),
        )?;
        bars.remove(bar);
        let Features::Pooled(per_layer) = features else {
            unreachable!("cls or mean pooling")
        };
        let n_train = train_rows.len();
        for &(layer, run) in &pending {
            let matrix = &per_layer[needed.iter().position(|&l| l == layer).expect("needed layer")];
            let positions: Vec<usize> = subsets[run]
                .iter()
                .map(|row| train_rows.binary_search(row).expect("in the union"))
                .collect();
            let train: Array2<f32> = matrix.select(Axis(0), &positions);
            let classes: Vec<usize> = subsets[run].iter().map(|&i| data.train.classes[i]).collect();
            let eval = matrix.slice(ndarray::s![n_train.., ..]);
            let outcome = linear_probe(train.view(), &classes, eval, data.classes.len(), probe)
                .map_err(|e| input(format!("{}: layer {layer}, run {run}: {e}", checkpoint.name())))?;
            let correct = outcome
                .predictions
                .iter()
                .zip(&data.eval.classes)
                .filter(|(p, g)| p == g)
                .count();
            accuracies.push(correct as f64 / data.eval.classes.len() as f64);
            let mut table = unit_table(file, checkpoint, &local.commit, data, layer, run, &outcome);
            table
                .metadata
                .push((UNIT_KEY.to_string(), key::unit_key(key, layer, run)));
            mb_stats_analysis::results::parquet::write(&table, &unit_path(folder, layer, run))?;
        }
    }
    let marker = serde_json::json!({
        "checkpoint": checkpoint.name(),
        "revision": local.commit,
        "layers": layers,
        "runs": runs,
        "key": key,
    });
    mb_stats_files::output::atomic_write(&folder.join(DONE_FILE), marker.to_string().as_bytes())?;
    let summary = match accuracies.len() {
        0 => "already finished".to_string(),
        n => format!(
            "{n} probes, mean eval accuracy {:.4}",
            accuracies.iter().sum::<f64>() / n as f64
        ),
    };
    Ok((summary, units.iter().map(|&(l, r)| unit_path(folder, l, r)).collect()))
}

/// `last` (default), `all`, or a list, checked against the model's depth.
fn resolve_layers(spec: Option<&LayerList>, n_hidden_states: usize) -> std::result::Result<Vec<usize>, String> {
    match spec {
        None => Ok(vec![n_hidden_states - 1]),
        Some(LayerList::Text(t)) if t == "last" => Ok(vec![n_hidden_states - 1]),
        Some(LayerList::Text(t)) if t == "all" => Ok((0..n_hidden_states).collect()),
        Some(LayerList::Text(t)) => Err(format!("expected \"last\", \"all\" or a list of layers, got {t:?}")),
        Some(LayerList::List(list)) => match list.iter().find(|&&l| l >= n_hidden_states) {
            Some(bad) => Err(format!("layer {bad}: the model has layers 0-{}", n_hidden_states - 1)),
            None => Ok(list.clone()),
        },
    }
}

/// The rows of one (checkpoint, layer, run): one per evaluation example.
fn unit_table(
    file: &ExperimentFile,
    checkpoint: &PlannedCheckpoint,
    commit: &Option<String>,
    data: &LabelledData,
    layer: usize,
    run: usize,
    outcome: &crate::task::ProbeOutcome,
) -> ResultsTable {
    let n = data.eval.classes.len();
    let value = |class: usize| match &data.class_values {
        Some(values) => values[class],
        None => class as i64,
    };
    let score = (data.classes.len() == 2).then(|| outcome.probabilities.column(1).iter().map(|&p| Some(p)).collect());
    let mut metadata = vec![
        (EXPERIMENT_KEY.to_string(), file.text.clone()),
        (CHECKPOINT_KEY.to_string(), checkpoint.name()),
        ("mb_stats.classes".to_string(), data.classes.join(",")),
    ];
    if let Some(commit) = commit {
        metadata.push((REVISION_KEY.to_string(), commit.clone()));
    }
    ResultsTable {
        group: vec![checkpoint.group.clone(); n],
        seed: vec![checkpoint.seed as i64; n],
        step: Some(vec![checkpoint.step.map(|s| s as i64); n]),
        run: Some(vec![Some(run as i64); n]),
        task: Some(vec![Some(file.task_name()); n]),
        layer: Some(vec![Some(layer as i64); n]),
        example: data.eval_ids.clone(),
        label: Some(Numbers::Int(
            data.eval.classes.iter().map(|&c| Some(value(c))).collect(),
        )),
        prediction: Some(Numbers::Int(
            outcome.predictions.iter().map(|&c| Some(value(c))).collect(),
        )),
        score,
        cluster: None,
        extra: Vec::new(),
        metadata,
    }
}
