//! Fine-tuning: BERT with a classification or regression head on the pooled output, trained end
//! to end with candle's autograd as transformers' `BertForSequenceClassification` is under the
//! BERT/GLUE recipe: AdamW (no weight decay on biases and LayerNorm weights), linear warmup then
//! linear decay, gradient clipping by global norm, dropout at the checkpoint's rates. One seed
//! fixes every random number (the head's initialisation, dropout, data order), each drawn from
//! its own ChaCha stream, so a run is the same whatever the learning rate or checkpoint.

use candle_core::{DType, Device, Tensor, Var};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::Bert;
use crate::batch::{pad_batch, plan_batches};
use crate::candle_error::candle_message;
use crate::dropout::Dropout;
use crate::model::{BatchInput, BertModel, Pass};
use crate::tokenizer::{TextInput, Tokens};
use crate::train::{Optimisation, StepReport, Trainer};
use mb_stats_core::resample::uniform_below;
use mb_stats_files::error::{Result, input};

/// What the head predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// Softmax cross-entropy over this many classes.
    Classification(usize),
    /// One value, mean squared error (STS-B).
    Regression,
}

impl Objective {
    fn outputs(self) -> usize {
        match self {
            Objective::Classification(n) => n,
            Objective::Regression => 1,
        }
    }
}

/// Training targets, one per training input.
#[derive(Debug, Clone)]
pub enum Targets {
    /// Class indices below the number of classes.
    Classes(Vec<u32>),
    /// Regression targets.
    Values(Vec<f32>),
}

impl Targets {
    fn len(&self) -> usize {
        match self {
            Targets::Classes(c) => c.len(),
            Targets::Values(v) => v.len(),
        }
    }

    /// The targets of `rows` as a tensor (`u32` classes or `f32` values).
    fn select(&self, rows: &[usize], device: &Device) -> candle_core::Result<Tensor> {
        match self {
            Targets::Classes(c) => Tensor::from_vec(rows.iter().map(|&i| c[i]).collect(), rows.len(), device),
            Targets::Values(v) => Tensor::from_vec(rows.iter().map(|&i| v[i]).collect(), rows.len(), device),
        }
    }
}

/// The settings of one fine-tuning run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The head and its loss.
    pub objective: Objective,
    /// Peak learning rate.
    pub lr: f64,
    /// Passes over the training data.
    pub epochs: usize,
    /// Inputs per optimiser step.
    pub batch_size: usize,
    /// Fraction of the steps spent warming the learning rate up from 0.
    pub warmup: f64,
    /// AdamW's decoupled weight decay (not on biases and LayerNorm weights).
    pub weight_decay: f64,
    /// Gradients are scaled down to at most this global L2 norm.
    pub max_grad_norm: f64,
    /// The fine-tuning seed.
    pub seed: u64,
    /// Dropout at the checkpoint's rates (`false`: none, for parity checks).
    pub dropout: bool,
    /// Precision of the matrix products (f32, or bf16/f16 with f32 master weights).
    pub compute: DType,
}

impl Settings {
    /// How the optimiser updates.
    pub fn optimisation(&self) -> Optimisation {
        Optimisation {
            lr: self.lr,
            warmup: self.warmup,
            weight_decay: self.weight_decay,
            max_grad_norm: self.max_grad_norm,
        }
    }

    /// The BERT/GLUE defaults (3 epochs, batch 32, 10% warmup, weight decay 0.01, clipping at
    /// 1.0, dropout on, f32) for `objective` at learning rate `lr` and seed `seed`.
    pub fn glue(objective: Objective, lr: f64, seed: u64) -> Self {
        Settings {
            objective,
            lr,
            epochs: 3,
            batch_size: 32,
            warmup: 0.1,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            seed,
            dropout: true,
            compute: DType::F32,
        }
    }

    /// Optimiser steps for `n` training inputs: every batch of every epoch, the last one of an
    /// epoch possibly smaller.
    pub fn total_steps(&self, n: usize) -> usize {
        self.epochs * n.div_ceil(self.batch_size)
    }
}

/// Random stream of each use of the seed.
const HEAD_STREAM: u64 = 0;
const DROPOUT_STREAM: u64 = 1;
const ORDER_STREAM: u64 = 2;

fn stream(seed: u64, which: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(which);
    rng
}

/// `n` draws from a normal distribution with standard deviation `sd` (Box–Muller).
fn normal(rng: &mut ChaCha8Rng, n: usize, sd: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u = 1.0 - (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let v = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let radius = (-2.0 * u.ln()).sqrt() * sd;
        let angle = std::f64::consts::TAU * v;
        out.push((radius * angle.cos()) as f32);
        out.push((radius * angle.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// A BERT being fine-tuned: a trainable copy of a checkpoint's weights, a new head, AdamW.
pub struct FineTuner {
    model: BertModel,
    head_weight: Var,
    head_bias: Var,
    /// Every trainable tensor with its Hugging Face name (`bert.…`, `classifier.…`), and AdamW.
    trainer: Trainer,
    dropout: Dropout,
    classifier_dropout: f32,
    settings: Settings,
}

impl FineTuner {
    /// A copy of `bert`'s weights (f32 master weights) with a head initialised from the seed, as
    /// transformers does (normal with the config's `initializer_range`, zero bias; a checkpoint
    /// without a pooler gets one the same way), set to train for `total_steps` steps.
    pub fn new(bert: &Bert, settings: &Settings, total_steps: usize) -> candle_core::Result<Self> {
        let config = bert.model().config().clone();
        let device = bert.device().clone();
        let hidden = config.hidden_size;
        let mut rng = stream(settings.seed, HEAD_STREAM);
        let mut init = |rows: usize| -> candle_core::Result<(Tensor, Tensor)> {
            let weight = normal(&mut rng, rows * hidden, config.initializer_range);
            Ok((
                Tensor::from_vec(weight, (rows, hidden), &device)?,
                Tensor::zeros(rows, DType::F32, &device)?,
            ))
        };
        let (head_weight, head_bias) = init(settings.objective.outputs())?;
        let mut model = bert.model().for_fine_tuning(|| init(hidden))?;
        let mut variables = Vec::new();
        for (name, tensor) in model.parameters_mut() {
            let var = Var::from_tensor(&tensor.to_dtype(DType::F32)?)?;
            *tensor = var.as_tensor().clone();
            variables.push((format!("bert.{name}"), var));
        }
        let head_weight = Var::from_tensor(&head_weight)?;
        let head_bias = Var::from_tensor(&head_bias)?;
        variables.push(("classifier.weight".to_string(), head_weight.clone()));
        variables.push(("classifier.bias".to_string(), head_bias.clone()));
        let rate = |p: f64| if settings.dropout { p as f32 } else { 0.0 };
        Ok(FineTuner {
            model,
            head_weight,
            head_bias,
            trainer: Trainer::new(variables, &settings.optimisation(), total_steps)?,
            dropout: Dropout::new(
                rate(config.hidden_dropout_prob),
                rate(config.attention_probs_dropout_prob),
                stream(settings.seed, DROPOUT_STREAM),
            ),
            classifier_dropout: rate(config.classifier_dropout.unwrap_or(config.hidden_dropout_prob)),
            settings: Settings {
                compute: crate::cpu::runnable_dtype(settings.compute, &device),
                ..settings.clone()
            },
        })
    }

    /// Replace the head's initial weights (`[outputs, hidden]` and `[outputs]`), e.g. by another
    /// implementation's for a parity check.
    pub fn set_head(&mut self, weight: &Tensor, bias: &Tensor) -> candle_core::Result<()> {
        self.head_weight.set(&weight.to_dtype(DType::F32)?)?;
        self.head_bias.set(&bias.to_dtype(DType::F32)?)
    }

    /// The head's outputs `[batch, outputs]` (f32) for a pass.
    fn outputs(&self, batch: &BatchInput, pass: Pass) -> candle_core::Result<Tensor> {
        let pooled = self
            .model
            .pooled(batch, pass)?
            .expect("a fine-tuned model has a pooler");
        let pooled = match pass {
            Pass::Training { .. } => self.dropout.apply(&pooled, self.classifier_dropout)?,
            Pass::Inference => pooled,
        };
        pooled
            .matmul(&self.head_weight.as_tensor().t()?)?
            .broadcast_add(self.head_bias.as_tensor())
    }

    /// One optimiser step on `batch` with `targets` (`u32` classes or `f32` values): loss,
    /// gradients, clipping to the global norm, AdamW at the schedule's rate.
    pub fn step(&mut self, batch: &BatchInput, targets: &Tensor) -> candle_core::Result<StepReport> {
        let pass = Pass::Training {
            dropout: &self.dropout,
            compute: self.settings.compute,
        };
        let outputs = self.outputs(batch, pass)?;
        let loss = match self.settings.objective {
            Objective::Classification(_) => candle_nn::loss::cross_entropy(&outputs, targets)?,
            Objective::Regression => candle_nn::loss::mse(&outputs.squeeze(1)?, targets)?,
        };
        self.trainer.step(&loss)
    }

    /// The head's outputs `[batch, outputs]` (f32) without dropout.
    pub fn predict(&self, batch: &BatchInput) -> candle_core::Result<Tensor> {
        self.outputs(batch, Pass::Inference)
    }

    /// Every trainable tensor under its `BertForSequenceClassification` name (query, key and
    /// value split again), for saving.
    pub fn named_tensors(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        crate::train::split_qkv(self.trainer.variables())
    }

    /// The current values of every trainable tensor, by name (for checking that training moved
    /// them).
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        self.trainer
            .variables()
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().detach().copy().expect("a copy")))
            .collect()
    }
}

/// The result of [`fine_tune`].
pub struct FineTuned {
    /// The head's outputs for each evaluation input, in input order.
    pub outputs: Vec<Vec<f32>>,
    /// The loss of every optimiser step.
    pub losses: Vec<f64>,
    /// The fine-tuned model, for saving.
    pub model: FineTuner,
}

/// The training order of each epoch: a permutation of `0..n` drawn from the seed's order stream
/// (Fisher–Yates), cut into batches of `batch_size` (the last one of an epoch possibly smaller).
pub fn batches(n: usize, settings: &Settings) -> Vec<Vec<usize>> {
    let mut rng = stream(settings.seed, ORDER_STREAM);
    let mut all = Vec::new();
    for _ in 0..settings.epochs {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, uniform_below(&mut rng, i as u64 + 1) as usize);
        }
        all.extend(order.chunks(settings.batch_size).map(<[usize]>::to_vec));
    }
    all
}

/// Fine-tune `bert` on `train` with `targets` and predict `eval` (in token-budget batches).
/// `progress` is told how many training inputs each step used.
pub fn fine_tune(
    bert: &Bert,
    train: &[TextInput],
    targets: &Targets,
    eval: &[TextInput],
    settings: &Settings,
    token_budget: usize,
    progress: &dyn Fn(usize),
) -> Result<FineTuned> {
    if train.is_empty() || train.len() != targets.len() {
        return Err(input(format!(
            "fine-tuning: {} training inputs and {} targets; expected the same, at least one",
            train.len(),
            targets.len()
        )));
    }
    let run = |e: candle_core::Error| input(format!("fine-tuning: {}", candle_message(&e)));
    let tokens = bert.tokenizer().encode_all(train)?;
    let plan = batches(train.len(), settings);
    let mut tuner = FineTuner::new(bert, settings, plan.len()).map_err(run)?;
    let pad = bert.tokenizer().pad_id();
    let mut losses = Vec::with_capacity(plan.len());
    for rows in &plan {
        let members: Vec<&Tokens> = rows.iter().map(|&i| &tokens[i]).collect();
        let batch = pad_batch(&members, pad, bert.device()).map_err(run)?;
        let report = tuner
            .step(&batch, &targets.select(rows, bert.device()).map_err(run)?)
            .map_err(run)?;
        if !report.loss.is_finite() {
            return Err(input(format!(
                "fine-tuning: the loss became {} at step {} (learning rate {}); try a smaller one",
                report.loss,
                losses.len() + 1,
                settings.lr
            )));
        }
        losses.push(report.loss);
        progress(rows.len());
    }
    let eval_tokens = bert.tokenizer().encode_all(eval)?;
    let lengths: Vec<usize> = eval_tokens.iter().map(|t| t.ids.len()).collect();
    let mut outputs = vec![Vec::new(); eval.len()];
    for rows in plan_batches(&lengths, token_budget) {
        let members: Vec<&Tokens> = rows.iter().map(|&i| &eval_tokens[i]).collect();
        let batch = pad_batch(&members, pad, bert.device()).map_err(run)?;
        let predicted = tuner.predict(&batch).and_then(|t| t.to_vec2::<f32>()).map_err(run)?;
        for (&i, row) in rows.iter().zip(predicted) {
            outputs[i] = row;
        }
    }
    Ok(FineTuned {
        outputs,
        losses,
        model: tuner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_is_a_permutation_in_batches() {
        let settings = Settings {
            batch_size: 4,
            ..Settings::glue(Objective::Regression, 1e-5, 7)
        };
        let plan = batches(10, &settings);
        assert_eq!(plan.len(), settings.total_steps(10));
        for epoch in plan.chunks(3) {
            let mut seen: Vec<usize> = epoch.iter().flatten().copied().collect();
            assert_eq!(epoch.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
            seen.sort();
            assert_eq!(seen, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(plan[0], plan[3], "each epoch has its own order");
        assert_eq!(plan, batches(10, &settings), "the same seed gives the same order");
    }

    #[test]
    fn dropout_keeps_the_mean_and_drops_about_p() {
        let dropout = Dropout::new(0.1, 0.0, stream(3, DROPOUT_STREAM));
        let x = Tensor::ones(100_000, DType::F32, &Device::Cpu).unwrap();
        let y: Vec<f32> = dropout.hidden(&x).unwrap().to_vec1().unwrap();
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
        // Binomial(100000, 0.1): sd of the fraction ≈ 0.00095.
        assert!((dropped - 0.1).abs() < 0.005, "dropped {dropped}");
        let mean = y.iter().map(|&v| v as f64).sum::<f64>() / y.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
        assert_eq!(
            dropout.attention(&x).unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0; 100_000]
        );
    }

    #[test]
    fn normal_draws_have_the_asked_spread() {
        let mut rng = stream(1, HEAD_STREAM);
        let draws = normal(&mut rng, 100_001, 0.02);
        assert_eq!(draws.len(), 100_001);
        let mean = draws.iter().map(|&v| v as f64).sum::<f64>() / draws.len() as f64;
        let sd = (draws.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / draws.len() as f64).sqrt();
        assert!(
            mean.abs() < 0.0005 && (sd - 0.02).abs() < 0.0005,
            "mean {mean}, sd {sd}"
        );
    }
}
