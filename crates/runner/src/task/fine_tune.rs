//! `kind = "fine-tune"`: the MultiBERTs paper's GLUE protocol. Per checkpoint, the whole network
//! with a classification or regression head is trained on the training set
//! ([`mb_stats_bert::finetune`]) once per (learning rate, run) and predicts the evaluation set.
//! Run r fixes the head's initialisation, dropout, data order and training subset, the same for
//! every checkpoint and rate. Each (rate, run) is its own run file; which rates the results keep
//! (`select_lr`) is decided when the run files are merged.

use candle_core::DType;
use serde_json::{Value, json};

use super::{LearningRate, Task, Unit, UnitRows};
use crate::experiment::config::{ExperimentFile, Head, SelectLr};
use crate::experiment::data::{LabelledData, ValuedData, train_subset};
use crate::experiment::key::{self, Digest};
use crate::progress::Board;
use mb_stats_analysis::results::{ExampleIds, Numbers, footer};
use mb_stats_bert::Bert;
use mb_stats_bert::finetune::{Objective, Settings, Targets, fine_tune};
use mb_stats_bert::tokenizer::TextInput;
use mb_stats_core::metric::Metric;
use mb_stats_files::error::{Result, input};

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
    /// The fine-tuning of `file`, its data read and checked (before any model loads).
    pub fn new(file: &ExperimentFile, offline: bool) -> Result<Self> {
        let e = &file.experiment;
        let t = &e.task;
        let data = match t.head {
            Head::Classification => Labelled::Classes(LabelledData::load(file, offline)?),
            Head::Regression => Labelled::Values(ValuedData::load(file, offline)?),
        };
        let n = e
            .data
            .train_size
            .map_or(data.train_inputs().len(), |k| k.min(data.train_inputs().len()));
        let examples = t.epochs.saturating_mul(n);
        if examples > MAX_TRAINING_EXAMPLES {
            return Err(input(format!(
                "{}: task.epochs = {} over {n} training inputs is {examples} training examples ({} optimiser steps) per run; \
                 at most {MAX_TRAINING_EXAMPLES} (the schedule alone would hold {} GB)",
                file.path.display(),
                t.epochs,
                examples.div_ceil(t.batch_size),
                examples.saturating_mul(8) / 1_000_000_000
            )));
        }
        if t.batch_size > n {
            return Err(input(format!(
                "{}: task.batch_size = {} is more than the {n} training inputs; at most {n} (one step per epoch)",
                file.path.display(),
                t.batch_size
            )));
        }
        let per_checkpoint = examples.saturating_mul(t.runs).saturating_mul(t.lrs.len());
        if per_checkpoint > MAX_TRAINING_EXAMPLES_PER_CHECKPOINT {
            return Err(input(format!(
                "{}: task.runs = {} × {} learning rates × {examples} training examples is {per_checkpoint} per checkpoint; \
                 at most {MAX_TRAINING_EXAMPLES_PER_CHECKPOINT}",
                file.path.display(),
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
            train_size: e.data.train_size,
            epochs: t.epochs,
            batch_size: t.batch_size,
            warmup: t.warmup,
            select_lr: t.select_lr,
            save_models: t.save_models,
            compute: e.runtime.dtype.dtype(),
            batch_tokens: e.runtime.batch_tokens,
            settings: vec![
                ("data.train_size", json!(e.data.train_size)),
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
            extra: vec![("lr".to_string(), vec![Some(lr.value()); n])],
            metadata,
            headline,
            weights: Vec::new(),
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
            Labelled::Classes(d) => key::data_digest(d),
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
                result.weights = tuned
                    .model
                    .named_tensors()
                    .map_err(|e| input(format!("{name}: saving the model: {e}")))?;
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
