//! `kind = "fine-tune"`: the MultiBERTs paper's GLUE protocol. Per checkpoint, the whole network
//! with a classification or regression head is trained on the training set
//! ([`mb_stats_bert::finetune`]) once per (learning rate, run) and predicts the evaluation set.
//! Run r fixes the head's initialisation, dropout, data order and training subset, the same for
//! every checkpoint and rate. Each (rate, run) is its own run file; which rates the results keep
//! (`select_lr`) is decided when the run files are merged, by this kind's merge step
//! ([`select_learning_rates`], registered in [`super::KINDS`]).

use std::path::Path;

use std::collections::BTreeMap;

use candle_core::DType;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::labelled_data::{LabelledData, LabelledDataSpec, ValuedData, train_subset};
use super::{LearningRate, Saved, Task, TaskSource, Unit, UnitRows, check_runs};
use crate::digest::Digest;
use crate::progress::Board;
use mb_stats_analysis::results::{ExampleIds, Numbers, ResultsTable, footer};
use mb_stats_bert::Bert;
use mb_stats_bert::finetune::{Objective, Settings, Targets, fine_tune};
use mb_stats_bert::tokenizer::TextInput;
use mb_stats_core::metric::Metric;
use mb_stats_files::error::{Result, input};

/// `[task]` of fine-tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FineTuneSpec {
    /// `kind` and `name`, read by the experiment file.
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(rename = "name", default)]
    _name: Option<IgnoredAny>,
    /// Runs per learning rate, each with its own head initialisation, dropout, order and subset.
    #[serde(default = "default_runs")]
    pub runs: usize,
    /// The learning rates swept.
    #[serde(default = "default_lrs")]
    pub lrs: Vec<f64>,
    /// Passes over the training data.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Training inputs per optimiser step.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Fraction of the steps that warm the learning rate up.
    #[serde(default = "default_warmup")]
    pub warmup: f64,
    /// Keep the best learning rate per group and task, or every one.
    #[serde(default)]
    pub select_lr: SelectLr,
    /// Save every fine-tuned model as safetensors beside its run file.
    #[serde(default)]
    pub save_models: bool,
    /// A `classification` head over the label values or a `regression` head.
    #[serde(default)]
    pub head: Head,
}

fn default_runs() -> usize {
    1
}
/// The MultiBERTs paper's GLUE sweep.
fn default_lrs() -> Vec<f64> {
    vec![2e-5, 3e-5, 4e-5, 5e-5]
}
fn default_epochs() -> usize {
    3
}
fn default_batch_size() -> usize {
    32
}
fn default_warmup() -> f64 {
    0.1
}

/// Which fine-tuning learning rates the results keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectLr {
    /// Per group and task, the rate with the best mean evaluation score (the paper's choice,
    /// which uses the evaluation set; the results' footer says so).
    #[default]
    BestMean,
    /// Every (rate, run).
    All,
}

/// The fine-tuning head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Head {
    /// Softmax over the training labels' values.
    #[default]
    Classification,
    /// One number, mean squared error (labels must be numbers).
    Regression,
}

impl FineTuneSpec {
    /// The fine-tuning `[task]` and `[data]` of `source`, read and checked: positive finite rates
    /// (distinct), at least one run, epoch and input per batch, a warmup fraction in [0, 1).
    pub fn read(source: &TaskSource) -> Result<(FineTuneSpec, LabelledDataSpec)> {
        let (t, data): (FineTuneSpec, LabelledDataSpec) = source.sections()?;
        data.check(source)?;
        check_runs(source, t.runs)?;
        if t.lrs.is_empty() {
            return Err(source.bad("task.lrs", "expected at least one learning rate, e.g. [2e-5, 3e-5]"));
        }
        if let Some(bad) = t.lrs.iter().find(|lr| !(lr.is_finite() && **lr > 0.0)) {
            return Err(source.bad("task.lrs", format!("expected positive learning rates, got {bad}")));
        }
        if let Some(twice) = t.lrs.iter().enumerate().find(|(i, lr)| t.lrs[..*i].contains(lr)) {
            return Err(source.bad("task.lrs", format!("{} is listed twice", twice.1)));
        }
        if t.epochs == 0 {
            return Err(source.bad("task.epochs", "expected at least 1"));
        }
        if t.batch_size == 0 {
            return Err(source.bad("task.batch_size", "expected at least 1 input per step"));
        }
        if !(0.0..1.0).contains(&t.warmup) {
            return Err(source.bad(
                "task.warmup",
                format!("expected a fraction of the steps in [0, 1), got {}", t.warmup),
            ));
        }
        Ok((t, data))
    }
}

/// The labelled data of a head: classes, or numeric targets.
enum Labelled {
    Classes(LabelledData),
    Values(ValuedData),
}

impl Labelled {
    fn train_inputs(&self) -> &[TextInput] {
        match self {
            Labelled::Classes(d) => &d.train.inputs,
            Labelled::Values(d) => &d.train,
        }
    }

    fn eval_inputs(&self) -> &[TextInput] {
        match self {
            Labelled::Classes(d) => &d.eval.inputs,
            Labelled::Values(d) => &d.eval,
        }
    }

    fn eval_ids(&self) -> &ExampleIds {
        match self {
            Labelled::Classes(d) => &d.eval_ids,
            Labelled::Values(d) => &d.eval_ids,
        }
    }

    fn objective(&self) -> Objective {
        match self {
            Labelled::Classes(d) => Objective::Classification(d.classes.len()),
            Labelled::Values(_) => Objective::Regression,
        }
    }

    /// The targets of training rows `rows`.
    fn targets(&self, rows: &[usize]) -> Targets {
        match self {
            Labelled::Classes(d) => Targets::Classes(rows.iter().map(|&i| d.train.classes[i] as u32).collect()),
            Labelled::Values(d) => Targets::Values(rows.iter().map(|&i| d.train_values[i] as f32).collect()),
        }
    }
}

/// The fine-tuning task of an experiment, with its data.
pub struct FineTune {
    data: Labelled,
    lrs: Vec<LearningRate>,
    runs: usize,
    train_size: Option<usize>,
    epochs: usize,
    batch_size: usize,
    warmup: f64,
    select_lr: SelectLr,
    save_models: bool,
    compute: DType,
    batch_tokens: usize,
    settings: Vec<(&'static str, Value)>,
}

/// The most training examples (epochs × training inputs) one run may take: 100 million, about
/// 85 times GLUE's largest protocol (MNLI: 393k inputs × 3 epochs) and an 800 MB schedule;
/// beyond it a typo in `task.epochs` ran until the memory of its schedule ran out.
const MAX_TRAINING_EXAMPLES: usize = 100_000_000;

/// The most training examples of one checkpoint (runs × learning rates × a run's examples):
/// ten of the largest runs, already days of compute on one GPU at BERT-base size.
const MAX_TRAINING_EXAMPLES_PER_CHECKPOINT: usize = 10 * MAX_TRAINING_EXAMPLES;

impl FineTune {
    /// The fine-tuning of `source`, its data read and checked (before any model loads).
    pub fn new(source: &TaskSource) -> Result<Self> {
        let (t, spec) = FineTuneSpec::read(source)?;
        let data = match t.head {
            Head::Classification => Labelled::Classes(LabelledData::load(source, &spec)?),
            Head::Regression => Labelled::Values(ValuedData::load(source, &spec)?),
        };
        let n = spec
            .train_size
            .map_or(data.train_inputs().len(), |k| k.min(data.train_inputs().len()));
        let examples = t.epochs.saturating_mul(n);
        if examples > MAX_TRAINING_EXAMPLES {
            return Err(input(format!(
                "{}: task.epochs = {} over {n} training inputs is {examples} training examples ({} optimiser steps) per run; \
                 at most {MAX_TRAINING_EXAMPLES} (the schedule alone would hold {} GB)",
                source.path.display(),
                t.epochs,
                examples.div_ceil(t.batch_size),
                examples.saturating_mul(8) / 1_000_000_000
            )));
        }
        if t.batch_size > n {
            return Err(input(format!(
                "{}: task.batch_size = {} is more than the {n} training inputs; at most {n} (one step per epoch)",
                source.path.display(),
                t.batch_size
            )));
        }
        let per_checkpoint = examples.saturating_mul(t.runs).saturating_mul(t.lrs.len());
        if per_checkpoint > MAX_TRAINING_EXAMPLES_PER_CHECKPOINT {
            return Err(input(format!(
                "{}: task.runs = {} × {} learning rates × {examples} training examples is {per_checkpoint} per checkpoint; \
                 at most {MAX_TRAINING_EXAMPLES_PER_CHECKPOINT}",
                source.path.display(),
                t.runs,
                t.lrs.len()
            )));
        }
        let lrs = t
            .lrs
            .iter()
            .map(|&lr| LearningRate::new(lr).expect("checked when the file was read"))
            .collect();
        Ok(FineTune {
            data,
            lrs,
            runs: t.runs,
            train_size: spec.train_size,
            epochs: t.epochs,
            batch_size: t.batch_size,
            warmup: t.warmup,
            select_lr: t.select_lr,
            save_models: t.save_models,
            compute: source.compute,
            batch_tokens: source.batch_tokens,
            settings: vec![
                ("data.train_size", json!(spec.train_size)),
                ("task.head", json!(format!("{:?}", t.head).to_lowercase())),
                ("task.lrs", json!(t.lrs)),
                ("task.runs", json!(t.runs)),
                ("task.epochs", json!(t.epochs)),
                ("task.batch_size", json!(t.batch_size)),
                ("task.warmup", json!(t.warmup)),
            ],
        })
    }

    /// The rows of one fine-tuned run from the head's `outputs` per evaluation example.
    fn rows(&self, lr: LearningRate, outputs: &[Vec<f32>]) -> UnitRows {
        let n = outputs.len();
        let (label, prediction, score, headline, mut metadata) = match &self.data {
            Labelled::Classes(d) => {
                let value = |class: usize| match &d.class_values {
                    Some(values) => values[class],
                    None => class as i64,
                };
                let predicted: Vec<usize> = outputs.iter().map(|o| argmax(o)).collect();
                let correct = predicted.iter().zip(&d.eval.classes).filter(|(p, g)| p == g).count();
                let score = (d.classes.len() == 2).then(|| outputs.iter().map(|o| Some(softmax(o)[1])).collect());
                (
                    Numbers::Int(d.eval.classes.iter().map(|&c| Some(value(c))).collect()),
                    Numbers::Int(predicted.iter().map(|&c| Some(value(c))).collect()),
                    score,
                    correct as f64 / n as f64,
                    vec![(footer::CLASSES.to_string(), d.classes.join(","))],
                )
            }
            Labelled::Values(d) => {
                let predicted: Vec<f64> = outputs.iter().map(|o| f64::from(o[0])).collect();
                (
                    Numbers::Float(d.eval_values.iter().map(|&v| Some(v)).collect()),
                    Numbers::Float(predicted.iter().map(|&v| Some(v)).collect()),
                    None,
                    pearson(&predicted, &d.eval_values),
                    Vec::new(),
                )
            }
        };
        metadata.push((footer::DEV_SCORE.to_string(), headline.to_string()));
        let selection = match self.select_lr {
            SelectLr::BestMean => "best-mean",
            SelectLr::All => "all",
        };
        metadata.push((footer::LR_SELECTION.to_string(), selection.to_string()));
        UnitRows {
            example: self.data.eval_ids().clone(),
            label,
            prediction,
            score,
            subtask: None,
            cluster: None,
            extra: vec![("lr".to_string(), vec![Some(lr.value()); n])],
            metadata,
            headline,
            saved: Saved::Nothing,
        }
    }
}

/// The index of the largest value (the first of ties).
fn argmax(values: &[f32]) -> usize {
    (0..values.len()).fold(0, |best, i| if values[i] > values[best] { i } else { best })
}

/// Softmax probabilities of logits, in f64.
fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// Pearson's correlation of `x` and `y` (0 when either is constant).
fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    match sxx > 0.0 && syy > 0.0 {
        true => sxy / (sxx * syy).sqrt(),
        false => 0.0,
    }
}

impl Task for FineTune {
    fn kind(&self) -> &'static str {
        "fine-tune"
    }

    fn data_digest(&self) -> String {
        match &self.data {
            Labelled::Classes(d) => d.digest(),
            Labelled::Values(d) => {
                let mut h = Digest::default();
                for (inputs, values) in [(&d.train, &d.train_values), (&d.eval, &d.eval_values)] {
                    h.field(&inputs.len().to_string());
                    for (input, value) in inputs.iter().zip(values) {
                        h.field(&input.text);
                        h.field(input.pair.as_deref().unwrap_or("\u{1f}single"));
                        h.field(&value.to_string());
                    }
                }
                h.ids(&d.eval_ids);
                h.finish()
            }
        }
    }

    fn settings(&self) -> Vec<(&'static str, Value)> {
        self.settings.clone()
    }

    fn units(&self, n_hidden_states: usize) -> Result<Vec<Unit>> {
        Ok(self
            .lrs
            .iter()
            .flat_map(|&lr| {
                (0..self.runs).map(move |run| Unit {
                    layer: n_hidden_states - 1,
                    run,
                    lr: Some(lr),
                })
            })
            .collect())
    }

    fn weights_dtype(&self, _runtime: DType) -> DType {
        // Master weights stay f32; `[runtime] dtype` sets the matrix products' precision.
        DType::F32
    }

    fn evaluate(
        &self,
        bert: &Bert,
        pending: &[Unit],
        name: &str,
        _state: &Path,
        board: &Board,
        finished: &mut dyn FnMut(Unit, UnitRows) -> Result<()>,
    ) -> Result<()> {
        let n_train = self.data.train_inputs().len();
        for &unit in pending {
            let lr = unit.lr.expect("fine-tuning units have a rate");
            let rows = train_subset(n_train, unit.run, self.train_size);
            let inputs: Vec<TextInput> = rows.iter().map(|&i| self.data.train_inputs()[i].clone()).collect();
            let settings = Settings {
                epochs: self.epochs,
                batch_size: self.batch_size,
                warmup: self.warmup,
                compute: self.compute,
                ..Settings::glue(self.data.objective(), lr.value(), unit.run as u64)
            };
            let counter = board.counter(
                self.epochs * inputs.len(),
                &format!("sentences (lr {lr}, run {})", unit.run),
            );
            let tuned = fine_tune(
                bert,
                &inputs,
                &self.data.targets(&rows),
                self.data.eval_inputs(),
                &settings,
                self.batch_tokens,
                &counter.advance(),
            )
            .map_err(|e| input(format!("{name}: lr {lr}, run {}: {e}", unit.run)))?;
            board.remove(counter);
            let mut result = self.rows(lr, &tuned.outputs);
            if self.save_models {
                result.saved = Saved::Tensors(
                    tuned
                        .model
                        .named_tensors()
                        .map_err(|e| input(format!("{name}: saving the model: {e}")))?,
                );
            }
            board.log(&format!(
                "{name}: lr {lr}, run {}: eval {} {:.4}, final training loss {:.4}",
                unit.run,
                self.metric_name(),
                result.headline,
                tuned.losses.last().copied().unwrap_or(f64::NAN)
            ));
            finished(unit, result)?;
        }
        Ok(())
    }

    fn metrics(&self) -> &'static [Metric] {
        match self.data {
            Labelled::Classes(_) => super::CLASSIFICATION_METRICS,
            Labelled::Values(_) => &[Metric::Pearson, Metric::Spearman],
        }
    }

    fn summary(&self, headlines: &[f64]) -> String {
        match headlines.len() {
            0 => "already finished".to_string(),
            n => format!(
                "{n} fine-tuning runs, mean eval {} {:.4}",
                self.metric_name(),
                headlines.iter().sum::<f64>() / n as f64
            ),
        }
    }
}

impl FineTune {
    /// What a run's headline measures.
    fn metric_name(&self) -> &'static str {
        match self.data {
            Labelled::Classes(_) => "accuracy",
            Labelled::Values(_) => "Pearson r",
        }
    }
}

/// Under `select_lr = "best-mean"` (every run file says so), keeps per (group, task) only the
/// run files of the learning rate with the best mean evaluation score over its seeds and runs
/// (ties: the smaller rate), and returns what was chosen as the footer's `mb_stats.lr_selection`;
/// `None` when nothing was selected.
pub fn select_learning_rates(tables: &mut Vec<ResultsTable>) -> Option<(&'static str, String)> {
    let get = |t: &ResultsTable, key: &str| t.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    if !tables
        .iter()
        .all(|t| get(t, footer::LR_SELECTION).as_deref() == Some("best-mean"))
    {
        return None;
    }
    let lr = |t: &ResultsTable| {
        t.extra
            .iter()
            .find(|(name, _)| name == "lr")
            .and_then(|(_, values)| values.first().copied().flatten())
    };
    let cell = |t: &ResultsTable| {
        let task = t
            .task
            .as_ref()
            .and_then(|v| (!v.is_empty()).then(|| v.get(0)).flatten())
            .unwrap_or_default()
            .to_string();
        let group = if t.group.is_empty() {
            String::new()
        } else {
            t.group[0].to_string()
        };
        (group, task)
    };
    // Per (group, task), each rate's scores.
    let mut scores: BTreeMap<(String, String), Vec<RateScores>> = BTreeMap::new();
    for table in tables.iter() {
        let (Some(lr), Some(score)) = (
            lr(table),
            get(table, footer::DEV_SCORE).and_then(|s| s.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let rates = scores.entry(cell(table)).or_default();
        match rates.iter_mut().find(|r| r.lr == lr) {
            Some(rate) => {
                rate.sum += score;
                rate.runs += 1;
            }
            None => rates.push(RateScores {
                lr,
                sum: score,
                runs: 1,
            }),
        }
    }
    let mut chosen = BTreeMap::new();
    let mut described = Vec::new();
    for (cell, mut rates) in scores {
        rates.sort_by(|a, b| a.lr.total_cmp(&b.lr));
        let best = rates
            .iter()
            .fold(&rates[0], |best, r| if r.mean() > best.mean() { r } else { best });
        described.push(format!(
            "{} / {}: lr {:e} (mean evaluation score {:.4} over {} runs; {})",
            cell.0,
            cell.1,
            best.lr,
            best.mean(),
            best.runs,
            rates
                .iter()
                .map(|r| format!("{:e}: {:.4}", r.lr, r.mean()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        chosen.insert(cell, best.lr);
    }
    tables.retain(|t| lr(t).is_none_or(|lr| chosen.get(&cell(t)) == Some(&lr)));
    Some((
        footer::LR_SELECTION,
        format!(
            "best-mean: the learning rate was chosen on the evaluation set itself (as Sellam et al. 2022 did), so these scores are optimistic; {}",
            described.join("; ")
        ),
    ))
}

/// The evaluation scores of one learning rate's runs.
struct RateScores {
    lr: f64,
    sum: f64,
    runs: usize,
}

impl RateScores {
    fn mean(&self) -> f64 {
        self.sum / self.runs as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_matches_the_definition_on_a_known_case() {
        // y = 2x + 1 exactly: r = 1; reversed: r = -1; a constant: 0 by convention.
        let x = [1.0, 2.0, 4.0, 7.0];
        assert!((pearson(&x, &x.map(|v| 2.0 * v + 1.0)) - 1.0).abs() < 1e-12);
        assert!((pearson(&x, &x.map(|v| -v)) + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&x, &[3.0; 4]), 0.0);
        // r of (1,2,3) and (1,3,2): cov 0.5·(…) → 0.5.
        assert!((pearson(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn softmax_and_argmax() {
        let p = softmax(&[0.0, (3.0f32).ln()]);
        assert!((p[1] - 0.75).abs() < 1e-6);
        assert_eq!(argmax(&[0.1, 0.7, 0.7]), 1);
    }
}
