//! Evaluating the plan: one checkpoint at a time (one model in memory), features extracted once
//! per checkpoint and shared by every layer's probe runs, one Parquet file per finished
//! (checkpoint, layer, run) written atomically, finished work skipped on restart.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use indicatif::MultiProgress;
use ndarray::{Array2, Axis};

use super::config::{ExperimentFile, LayerList};
use super::data::LabelledData;
use super::merge::{CHECKPOINT_KEY, EXPERIMENT_KEY, REVISION_KEY};
use super::plan::{PlannedCheckpoint, Shard};
use crate::bert::model::{parse_device, parse_dtype};
use crate::bert::{Bert, Features, Pooling};
use crate::embed::progress_bar;
use crate::error::{Result, input};
use crate::fetch::fetch;
use crate::results::{Numbers, ResultsTable};
use crate::task::linear_probe;
use crate::task::probe::ProbeConfig;

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

/// Evaluate every checkpoint of the plan that belongs to the shard.
pub fn run(file: &ExperimentFile, plan: &[PlannedCheckpoint], options: &RunOptions) -> Result<()> {
    let experiment = &file.experiment;
    let runtime = &experiment.runtime;
    let device = parse_device(options.device.as_deref().unwrap_or(&runtime.device))?;
    let dtype = parse_dtype(&runtime.dtype)?;
    let pooling: Pooling = experiment
        .task
        .pooling
        .parse()
        .map_err(|e| input(format!("task.pooling: {e}")))?;
    let data = LabelledData::load(file, options.offline)?;
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
    let bars = MultiProgress::new();
    let overall = bars.add(progress_bar(mine.len() as u64, "checkpoints"));
    for (done, checkpoint) in mine.iter().enumerate() {
        let folder = options.out.join("runs").join(checkpoint.folder());
        if !options.force && folder.join(DONE_FILE).is_file() {
            overall.inc(1);
            continue;
        }
        let started = Instant::now();
        let summary = evaluate(
            file, checkpoint, &data, &folder, &device, dtype, pooling, &probe, options, &bars,
        )?;
        overall.inc(1);
        let _ = bars.println(format!(
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
    overall.finish_and_clear();
    Ok(())
}

/// Evaluate one checkpoint: the (layer, run) files it lacks, then its done marker. Returns a
/// one-line summary for the log.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    file: &ExperimentFile,
    checkpoint: &PlannedCheckpoint,
    data: &LabelledData,
    folder: &Path,
    device: &Device,
    dtype: candle_core::DType,
    pooling: Pooling,
    probe: &ProbeConfig,
    options: &RunOptions,
    bars: &MultiProgress,
) -> Result<String> {
    let experiment = &file.experiment;
    std::fs::create_dir_all(folder).map_err(|e| crate::error::Error::Output(format!("{}: {e}", folder.display())))?;
    let local = fetch(&checkpoint.source, options.offline)?;
    let bert = Bert::load(&local.dir, device, dtype, experiment.runtime.max_length)?;
    let layers = resolve_layers(experiment.task.layers.as_ref(), bert.n_hidden_states())
        .map_err(|e| input(format!("{}: task.layers: {e}", file.path.display())))?;
    let runs = experiment.task.runs;
    let unit_path = |layer: usize, run: usize| folder.join(format!("layer_{layer}-run_{run}.parquet"));
    let pending: Vec<(usize, usize)> = layers
        .iter()
        .flat_map(|&l| (0..runs).map(move |r| (l, r)))
        .filter(|&(l, r)| options.force || !unit_path(l, r).is_file())
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
        let bar = bars.add(progress_bar(inputs.len() as u64, "sentences"));
        let features = bert.features(&inputs, &needed, pooling, experiment.runtime.batch_tokens, &bar)?;
        bar.finish_and_clear();
        bars.remove(&bar);
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
            let outcome = linear_probe(train.view(), &classes, eval, data.classes.len(), probe)?;
            let correct = outcome
                .predictions
                .iter()
                .zip(&data.eval.classes)
                .filter(|(p, g)| p == g)
                .count();
            accuracies.push(correct as f64 / data.eval.classes.len() as f64);
            let table = unit_table(file, checkpoint, &local.commit, data, layer, run, &outcome);
            crate::results::parquet::write(&table, &unit_path(layer, run))?;
        }
    }
    let marker =
        serde_json::json!({"checkpoint": checkpoint.name(), "revision": local.commit, "layers": layers, "runs": runs});
    crate::output::atomic_write(&folder.join(DONE_FILE), marker.to_string().as_bytes())?;
    Ok(match accuracies.len() {
        0 => "already finished".to_string(),
        n => format!(
            "{n} probes, mean eval accuracy {:.4}",
            accuracies.iter().sum::<f64>() / n as f64
        ),
    })
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
