//! `kind = "pretrain"`: continued masked-LM pretraining from every checkpoint, the intervention
//! experiment of MultiBERTs (Sellam et al., 2022, Section 4). The corpus (`[data] corpus`, one
//! text per line or a table's text column, after the `transform`) is packed into blocks of the
//! maximum length and masked as BERT's recipe does ([`mb_stats_bert::pretrain`]); the last
//! `heldout` share of the blocks is never trained on and measures the masked-LM loss before and
//! after. Interventions are settings: `transform = "cda"` (two-sided counterfactual augmentation,
//! [`super::cda`], with the bundled pairs or `cda_pairs`), `dropout` and `attention_dropout`, and
//! the corpus itself ("more pretraining" is the control arm).
//!
//! Every `save_every` steps the training state (weights, AdamW's moments, the random streams'
//! positions, the epoch's order) is saved in the run folder; a killed run continues from the last
//! save and ends with the same weights as an uninterrupted one.
//!
//! Each checkpoint's result is a checkpoint in the Hugging Face layout, written to its run folder
//! as `checkpoint/` (config, tokenizer files, `model.safetensors` under `BertForPreTraining`
//! names, the next-sentence head as loaded), which a later experiment reads as a local suite:
//! `path = "OUT/runs/GROUP/seed_{seed}/checkpoint"`. Its rows, one per held-out block, have
//! `label` the loss before, `prediction` the loss after and `score` the change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::cda::Swaps;
use super::mlm_data::{read_tables, require_head};
use super::{Saved, Task, TaskSource, Unit, UnitRows};
use crate::digest::Digest;
use crate::progress::Board;
use mb_stats_analysis::results::{ExampleIds, Numbers};
use mb_stats_bert::Bert;
use mb_stats_bert::pretrain::{Masked, Masker, Masking, PretrainSettings, Pretrainer, pack};
use mb_stats_bert::train::Optimisation;
use mb_stats_core::metric::Metric;
use mb_stats_core::resample::uniform_below;
use mb_stats_files::error::{Error, Result, input};

/// `[task]` of continued pretraining.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainSpec {
    /// `kind` and `name`, read by the experiment file.
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(rename = "name", default)]
    _name: Option<IgnoredAny>,
    /// Optimiser steps.
    pub steps: usize,
    /// Blocks per step.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Peak learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Fraction of the steps that warm the learning rate up.
    #[serde(default = "default_warmup")]
    pub warmup: f64,
    /// AdamW's weight decay.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// The probability of choosing a token (or, with `whole_word`, a word).
    #[serde(default = "default_mask_probability")]
    pub mask_probability: f64,
    /// Whole-word masking.
    #[serde(default)]
    pub whole_word: bool,
    /// The intervention on the corpus: `none` or `cda`.
    #[serde(default)]
    pub transform: Transform,
    /// The word pairs of `transform = "cda"` (default: the bundled list).
    #[serde(default)]
    pub cda_pairs: Option<String>,
    /// Hidden-state dropout (default: the checkpoint's).
    #[serde(default)]
    pub dropout: Option<f64>,
    /// Attention dropout (default: the checkpoint's).
    #[serde(default)]
    pub attention_dropout: Option<f64>,
    /// Seed of the data order, the masks and dropout.
    #[serde(default)]
    pub seed: u64,
    /// Save the training state (weights, optimiser, random streams) every this many steps, so
    /// that a killed run continues from there (0: never).
    #[serde(default = "default_save_every")]
    pub save_every: usize,
}

fn default_save_every() -> usize {
    500
}

fn default_batch_size() -> usize {
    32
}
fn default_lr() -> f64 {
    1e-4
}
fn default_warmup() -> f64 {
    0.1
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_mask_probability() -> f64 {
    0.15
}

/// The intervention on the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    /// The corpus as it is.
    #[default]
    None,
    /// Two-sided counterfactual data augmentation.
    Cda,
}

/// `[data]` of continued pretraining.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusSpec {
    /// A text file (one text per line), a table, a folder of them or Hub dataset files.
    pub corpus: String,
    /// The table column with the texts (default: `text` or `sentence`).
    #[serde(default)]
    pub text: Option<String>,
    /// The share of blocks, from the end, held out to measure the loss (at least one block).
    #[serde(default = "default_heldout")]
    pub heldout: f64,
}

fn default_heldout() -> f64 {
    0.05
}

/// The task's tables of `source`, read and checked.
pub fn read(source: &TaskSource) -> Result<(PretrainSpec, CorpusSpec)> {
    let (task, data): (PretrainSpec, CorpusSpec) = source.sections()?;
    let require = |key: &str, ok: bool, what: &str| if ok { Ok(()) } else { Err(source.bad(key, what)) };
    require("task.steps", task.steps > 0, "expected at least 1 step")?;
    require(
        "task.batch_size",
        task.batch_size > 0,
        "expected at least 1 block per step",
    )?;
    require(
        "task.lr",
        task.lr.is_finite() && task.lr > 0.0,
        "expected a positive learning rate",
    )?;
    require(
        "task.warmup",
        (0.0..=1.0).contains(&task.warmup),
        "expected a share from 0 to 1",
    )?;
    require(
        "task.weight_decay",
        (0.0..1.0).contains(&task.weight_decay),
        "expected a number from 0 to below 1",
    )?;
    require(
        "task.mask_probability",
        task.mask_probability > 0.0 && task.mask_probability < 1.0,
        "expected a probability strictly between 0 and 1",
    )?;
    for (key, rate) in [
        ("task.dropout", task.dropout),
        ("task.attention_dropout", task.attention_dropout),
    ] {
        require(
            key,
            rate.is_none_or(|p| (0.0..1.0).contains(&p)),
            "expected a rate from 0 to below 1",
        )?;
    }
    require(
        "data.heldout",
        data.heldout > 0.0 && data.heldout < 1.0,
        "expected a share strictly between 0 and 1",
    )?;
    if task.cda_pairs.is_some() && task.transform != Transform::Cda {
        return Err(source.bad("task.cda_pairs", "only with transform = \"cda\""));
    }
    Ok((task, data))
}

/// The continued-pretraining task of an experiment, with its corpus.
pub struct Pretrain {
    task: PretrainSpec,
    heldout: f64,
    texts: Vec<String>,
    digest: String,
    compute: DType,
}

impl Pretrain {
    /// The task of `source`, its corpus read and transformed.
    pub fn new(source: &TaskSource) -> Result<Self> {
        let (task, data) = read(source)?;
        let mut texts = Vec::new();
        for table in read_tables(source, "data.corpus", &data.corpus)? {
            texts.extend(
                table
                    .text_column(data.text.as_deref())?
                    .iter()
                    .filter(|t| !t.trim().is_empty())
                    .cloned(),
            );
        }
        let mut digest = Digest::default();
        if task.transform == Transform::Cda {
            let swaps = match &task.cda_pairs {
                Some(file) => Swaps::read(&source.resolve(file))?,
                None => Swaps::bundled(),
            };
            texts = swaps.augment(texts);
        }
        digest.field("pretrain");
        texts.iter().for_each(|t| digest.field(t));
        Ok(Pretrain {
            heldout: data.heldout,
            digest: digest.finish(),
            texts,
            task,
            compute: source.compute,
        })
    }

    /// What a saved training state must match to be resumed: the data, every setting that
    /// changes the numbers (not `save_every`) and the checkpoint.
    fn fingerprint(&self, checkpoint: &str) -> String {
        let mut h = Digest::default();
        h.field(&self.digest);
        h.field(&json!(self.settings()).to_string());
        h.field(checkpoint);
        h.finish()
    }

    fn settings_of(&self) -> PretrainSettings {
        PretrainSettings {
            optimisation: Optimisation {
                lr: self.task.lr,
                warmup: self.task.warmup,
                weight_decay: self.task.weight_decay,
                max_grad_norm: 1.0,
            },
            dropout: self.task.dropout,
            attention_dropout: self.task.attention_dropout,
            seed: self.task.seed,
            compute: self.compute,
        }
    }
}

/// How far a checkpoint's pretraining got, saved with the trainer's state.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    /// The data digest, settings and checkpoint the state belongs to.
    fingerprint: String,
    /// Optimiser steps taken.
    step: usize,
    /// The masks' random stream position.
    masker: u128,
    /// The data order's random stream position.
    order_rng: u128,
    /// The blocks of the current epoch not yet trained on.
    order: Vec<usize>,
    /// The held-out losses before training.
    before: Vec<f64>,
    /// The loss of every step taken.
    losses: Vec<f64>,
}

/// Where a checkpoint's training state is kept: two files of its run folder.
struct SavedState {
    tensors: PathBuf,
    progress: PathBuf,
}

impl SavedState {
    fn at(folder: &Path) -> Self {
        SavedState {
            tensors: folder.join("pretrain-state.safetensors"),
            progress: folder.join("pretrain-state.json"),
        }
    }

    /// The saved progress when it belongs to `fingerprint`, with `trainer` restored to it; else
    /// `None` (a state of other work is never resumed).
    fn read(&self, fingerprint: &str, trainer: &mut Pretrainer) -> Result<Option<Progress>> {
        let Ok(text) = std::fs::read_to_string(&self.progress) else {
            return Ok(None);
        };
        let Ok(progress) = serde_json::from_str::<Progress>(&text) else {
            return Ok(None);
        };
        if progress.fingerprint != fingerprint || !self.tensors.is_file() {
            return Ok(None);
        }
        let tensors = candle_core::safetensors::load(&self.tensors, &candle_core::Device::Cpu)
            .map_err(|e| input(format!("{}: {e}", self.tensors.display())))?;
        let steps = tensors.get("step").and_then(|t| t.to_vec1::<u32>().ok());
        if steps.as_deref() != Some(&[progress.step as u32]) {
            return Ok(None);
        }
        trainer
            .restore(&tensors)
            .map_err(|e| input(format!("{}: {e}", self.tensors.display())))?;
        Ok(Some(progress))
    }

    /// Save `progress` and `trainer`'s state: the tensors first, then the progress that names
    /// their step, each written whole (a temporary file renamed).
    fn write(&self, progress: &Progress, trainer: &Pretrainer) -> Result<()> {
        let folder = self.tensors.parent().unwrap_or(Path::new("."));
        let failed = |e: &dyn std::fmt::Display| Error::Output(format!("{}: {e}", self.tensors.display()));
        let temporary = mb_stats_files::output::temp_file_in(folder, ".safetensors").map_err(|e| failed(&e))?;
        let tensors: HashMap<String, Tensor> = trainer.state().map_err(|e| failed(&e))?.into_iter().collect();
        candle_core::safetensors::save(&tensors, temporary.path()).map_err(|e| failed(&e))?;
        temporary.persist(&self.tensors).map_err(|e| failed(&e.error))?;
        let text = serde_json::to_string(progress).expect("plain values");
        mb_stats_files::output::atomic_write(&self.progress, text.as_bytes())
    }

    /// Forget the state (the checkpoint is finished).
    fn remove(&self) {
        let _ = std::fs::remove_file(&self.progress);
        let _ = std::fs::remove_file(&self.tensors);
    }
}

/// Masks `blocks` until at least one token is chosen (a step needs a loss).
fn masked_batch(masker: &mut Masker, blocks: &[&mb_stats_bert::pretrain::Block]) -> Vec<Masked> {
    loop {
        let batch: Vec<Masked> = blocks.iter().map(|b| masker.mask(b)).collect();
        if batch.iter().any(|m| !m.positions.is_empty()) {
            return batch;
        }
    }
}

impl Task for Pretrain {
    fn kind(&self) -> &'static str {
        "pretrain"
    }

    fn data_digest(&self) -> String {
        self.digest.clone()
    }

    fn settings(&self) -> Vec<(&'static str, Value)> {
        let t = &self.task;
        vec![
            ("task.steps", json!(t.steps)),
            ("task.batch_size", json!(t.batch_size)),
            ("task.lr", json!(t.lr)),
            ("task.warmup", json!(t.warmup)),
            ("task.weight_decay", json!(t.weight_decay)),
            ("task.mask_probability", json!(t.mask_probability)),
            ("task.whole_word", json!(t.whole_word)),
            ("task.dropout", json!(t.dropout)),
            ("task.attention_dropout", json!(t.attention_dropout)),
            ("task.seed", json!(t.seed)),
            ("data.heldout", json!(self.heldout)),
        ]
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
        state: &Path,
        board: &Board,
        finished: &mut dyn FnMut(Unit, UnitRows) -> Result<()>,
    ) -> Result<()> {
        require_head(bert, name, "pretrain")?;
        let run = |e: candle_core::Error| input(format!("{name}: pretraining: {e}"));
        let tokenizer = bert.tokenizer();
        let texts: Vec<&str> = self.texts.iter().map(String::as_str).collect();
        let pieces = tokenizer.encode_words_whole(&texts)?;
        let pieces: Vec<_> = pieces.into_iter().map(|p| (p.tokens.ids, p.words)).collect();
        let blocks = pack(&pieces, tokenizer.max_length());
        let held = ((blocks.len() as f64 * self.heldout).ceil() as usize).max(1);
        if blocks.len() < held + 1 {
            return Err(input(format!(
                "{name}: the corpus makes {} blocks of {} tokens; at least 2 are needed (one held out)",
                blocks.len(),
                tokenizer.max_length()
            )));
        }
        let (train, heldout) = blocks.split_at(blocks.len() - held);
        let masking = Masking {
            probability: self.task.mask_probability,
            whole_word: self.task.whole_word,
            mask_id: tokenizer
                .token_id("[MASK]")
                .ok_or_else(|| input(format!("{name}: the vocabulary has no [MASK] token")))?,
            vocab_size: bert.model().config().vocab_size,
        };
        // The held-out masks are the same before and after training, and for every checkpoint.
        let mut heldout_masker = Masker::new(masking, self.task.seed ^ 0x4845_4c44);
        let heldout: Vec<Vec<Masked>> = heldout
            .iter()
            .map(|b| masked_batch(&mut heldout_masker, &[b]))
            .collect();
        let mut trainer = Pretrainer::new(bert, &self.settings_of(), self.task.steps)
            .map_err(run)?
            .ok_or_else(|| input(format!("{name}: the checkpoint has no masked-LM head")))?;
        let mut masker = Masker::new(masking, self.task.seed);
        let mut order_rng = ChaCha8Rng::seed_from_u64(self.task.seed);
        order_rng.set_stream(2);
        let saved = SavedState::at(state);
        let fingerprint = self.fingerprint(name);
        let mut progress = match saved.read(&fingerprint, &mut trainer)? {
            Some(progress) => {
                board.log(&format!("{name}: resuming from step {}", progress.step));
                masker.set_position(progress.masker);
                order_rng.set_word_pos(progress.order_rng);
                progress
            }
            None => Progress {
                fingerprint,
                before: heldout
                    .iter()
                    .map(|b| trainer.evaluate(b))
                    .collect::<candle_core::Result<_>>()
                    .map_err(run)?,
                ..Progress::default()
            },
        };
        let counter = board.counter(self.task.steps, "pretraining steps");
        counter.advance()(progress.step);
        for step in progress.step..self.task.steps {
            let mut rows = Vec::with_capacity(self.task.batch_size);
            while rows.len() < self.task.batch_size.min(train.len()) {
                if progress.order.is_empty() {
                    // A new epoch: a permutation of the training blocks (Fisher–Yates).
                    progress.order = (0..train.len()).collect();
                    for i in (1..progress.order.len()).rev() {
                        progress
                            .order
                            .swap(i, uniform_below(&mut order_rng, i as u64 + 1) as usize);
                    }
                }
                rows.push(progress.order.pop().expect("refilled above"));
            }
            let blocks: Vec<_> = rows.iter().map(|&i| &train[i]).collect();
            let batch = masked_batch(&mut masker, &blocks);
            let loss = trainer.step(&batch).map_err(run)?.loss;
            if !loss.is_finite() {
                return Err(input(format!(
                    "{name}: pretraining: the loss became {loss} at step {} (learning rate {}); try a smaller one",
                    step + 1,
                    self.task.lr
                )));
            }
            progress.losses.push(loss);
            counter.advance()(1);
            let done = step + 1;
            if self.task.save_every > 0 && done % self.task.save_every == 0 && done < self.task.steps {
                progress.step = done;
                progress.masker = masker.position();
                progress.order_rng = order_rng.get_word_pos();
                saved
                    .write(&progress, &trainer)
                    .map_err(|e| input(format!("{name}: {e}")))?;
            }
        }
        let (before, losses) = (progress.before, progress.losses);
        board.remove(counter);
        let after: Vec<f64> = heldout
            .iter()
            .map(|b| trainer.evaluate(b))
            .collect::<candle_core::Result<_>>()
            .map_err(run)?;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        board.log(&format!(
            "{name}: {} steps, training loss {:.4} -> {:.4}, held-out loss {:.4} -> {:.4}",
            self.task.steps,
            losses[0],
            losses[losses.len() - 1],
            mean(&before),
            mean(&after)
        ));
        let trained = trainer.named_tensors().map_err(run)?;
        let n = heldout.len();
        let rows = UnitRows {
            example: ExampleIds::Int((0..n as i64).collect()),
            label: Numbers::Float(before.iter().map(|&l| Some(l)).collect()),
            prediction: Numbers::Float(after.iter().map(|&l| Some(l)).collect()),
            score: Some(before.iter().zip(&after).map(|(b, a)| Some(a - b)).collect()),
            subtask: None,
            cluster: None,
            extra: Vec::new(),
            metadata: Vec::new(),
            headline: mean(&after),
            saved: Saved::Checkpoint(trained),
        };
        pending.iter().try_for_each(|&unit| finished(unit, rows.clone()))?;
        saved.remove();
        Ok(())
    }

    fn metrics(&self) -> &'static [Metric] {
        &[Metric::Mean]
    }

    fn summary(&self, headlines: &[f64]) -> String {
        match headlines.first() {
            None => "already finished".to_string(),
            Some(loss) => format!("held-out masked-LM loss {loss:.4} after {} steps", self.task.steps),
        }
    }
}
