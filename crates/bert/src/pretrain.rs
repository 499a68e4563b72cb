//! Continued masked-LM pretraining: BERT's masked-LM objective on a corpus, from a checkpoint.
//!
//! The data are prepared as transformers' `run_mlm.py` does: each text tokenized with `[CLS]`
//! and `[SEP]`, all of them concatenated and cut into blocks of exactly `max_length` tokens (the
//! remainder dropped, [`pack`]); then each block masked as `DataCollatorForLanguageModeling`
//! does ([`Masker`]): every token but `[CLS]`/`[SEP]`/padding chosen with probability
//! `mask_probability` (with whole-word masking, every word chosen with that probability and all
//! its pieces with it), a chosen token replaced by `[MASK]` 80% of the time, by a random token
//! 10%, kept 10%; the loss is the mean cross-entropy at the chosen tokens. [`Pretrainer`] trains
//! with the training pass fine-tuning uses ([`crate::train`]); the decoder stays tied to the word
//! embeddings, and the next-sentence head is not trained (it is kept as loaded when saved).

use candle_core::{DType, Tensor, Var};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::Bert;
use crate::batch::pad_batch;
use crate::dropout::Dropout;
use crate::model::{BertModel, Pass};
use crate::tokenizer::Tokens;
use crate::train::{Optimisation, StepReport, Trainer};

/// A block of token ids, with each token's word (`None` for `[CLS]` and `[SEP]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The token ids.
    pub ids: Vec<u32>,
    /// Each token's word number (unique over the corpus), `None` for special tokens.
    pub words: Vec<Option<u64>>,
}

/// The texts' tokens (each `[CLS] … [SEP]`, with their word ids) concatenated and cut into blocks
/// of `length` tokens; the tokens after the last whole block are dropped (`run_mlm.py`'s
/// `group_texts`).
pub fn pack(texts: &[(Vec<u32>, Vec<Option<u32>>)], length: usize) -> Vec<Block> {
    let mut ids = Vec::new();
    let mut words = Vec::new();
    let mut offset = 0u64;
    for (text_ids, text_words) in texts {
        ids.extend_from_slice(text_ids);
        words.extend(text_words.iter().map(|w| w.map(|w| offset + u64::from(w))));
        offset += text_words.iter().flatten().max().map_or(0, |&w| u64::from(w) + 1);
    }
    ids.chunks_exact(length)
        .zip(words.chunks_exact(length))
        .map(|(ids, words)| Block {
            ids: ids.to_vec(),
            words: words.to_vec(),
        })
        .collect()
}

/// One block masked: the model's input, and what it must predict where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// The input ids, chosen tokens replaced.
    pub ids: Vec<u32>,
    /// The chosen positions.
    pub positions: Vec<usize>,
    /// The original id at each chosen position.
    pub targets: Vec<u32>,
}

/// How tokens are chosen and replaced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Masking {
    /// The probability of choosing a token (or a word).
    pub probability: f64,
    /// Choose whole words: all pieces of a chosen word.
    pub whole_word: bool,
    /// The `[MASK]` id.
    pub mask_id: u32,
    /// The vocabulary size (random replacements are drawn below it).
    pub vocab_size: usize,
}

/// Masks blocks with its own random stream.
pub struct Masker {
    masking: Masking,
    rng: ChaCha8Rng,
}

impl Masker {
    /// A masker drawing from `seed`'s stream.
    pub fn new(masking: Masking, seed: u64) -> Self {
        Masker {
            masking,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// How far its random stream has advanced (for resuming a training run exactly).
    pub fn position(&self) -> u128 {
        self.rng.get_word_pos()
    }

    /// Continue its random stream from `position`.
    pub fn set_position(&mut self, position: u128) {
        self.rng.set_word_pos(position);
    }

    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `block` masked.
    pub fn mask(&mut self, block: &Block) -> Masked {
        let p = self.masking.probability;
        let mut chosen = vec![false; block.ids.len()];
        let mut word_choice: Option<(u64, bool)> = None;
        for (i, word) in block.words.iter().enumerate() {
            let Some(word) = *word else { continue };
            chosen[i] = match (self.masking.whole_word, word_choice) {
                (true, Some((w, choice))) if w == word => choice,
                _ => self.unit() < p,
            };
            word_choice = Some((word, chosen[i]));
        }
        let mut ids = block.ids.clone();
        let (mut positions, mut targets) = (Vec::new(), Vec::new());
        for (i, _) in chosen.iter().enumerate().filter(|(_, c)| **c) {
            positions.push(i);
            targets.push(block.ids[i]);
            let roll = self.unit();
            if roll < 0.8 {
                ids[i] = self.masking.mask_id;
            } else if roll < 0.9 {
                ids[i] = (self.rng.next_u64() % self.masking.vocab_size as u64) as u32;
            }
        }
        Masked {
            ids,
            positions,
            targets,
        }
    }
}

/// How continued pretraining trains: the optimiser, dropout and precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PretrainSettings {
    /// AdamW, schedule and clipping.
    pub optimisation: Optimisation,
    /// Hidden-state dropout (`None`: the checkpoint's rate).
    pub dropout: Option<f64>,
    /// Attention-probability dropout (`None`: the checkpoint's rate).
    pub attention_dropout: Option<f64>,
    /// Seed of the dropout masks.
    pub seed: u64,
    /// Precision of the matrix products (f32, or bf16/f16 with f32 master weights).
    pub compute: DType,
}

/// A BERT under continued masked-LM pretraining: trainable f32 copies of a checkpoint's weights
/// (the masked-LM head's included), AdamW.
pub struct Pretrainer {
    model: BertModel,
    trainer: Trainer,
    dropout: Dropout,
    compute: DType,
    pad_id: u32,
}

impl Pretrainer {
    /// `bert` set to train for `total_steps` steps; `None` when the checkpoint has no masked-LM
    /// head.
    pub fn new(bert: &Bert, settings: &PretrainSettings, total_steps: usize) -> candle_core::Result<Option<Self>> {
        let mut variables = Vec::new();
        let mut trainable = |name: &str, tensor: &Tensor| -> candle_core::Result<Tensor> {
            let var = Var::from_tensor(&tensor.to_dtype(DType::F32)?)?;
            let own = var.as_tensor().clone();
            variables.push((name.to_string(), var));
            Ok(own)
        };
        let Some(model) = bert.model().for_pretraining(&mut trainable)? else {
            return Ok(None);
        };
        let config = model.config();
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        rng.set_stream(1);
        let dropout = Dropout::new(
            settings.dropout.unwrap_or(config.hidden_dropout_prob) as f32,
            settings
                .attention_dropout
                .unwrap_or(config.attention_probs_dropout_prob) as f32,
            rng,
        );
        Ok(Some(Pretrainer {
            trainer: Trainer::new(variables, &settings.optimisation, total_steps)?,
            model,
            dropout,
            compute: crate::cpu::runnable_dtype(settings.compute, bert.device()),
            pad_id: bert.tokenizer().pad_id(),
        }))
    }

    /// The mean cross-entropy at the chosen tokens of `batch`, run as `pass`.
    fn loss(&self, batch: &[Masked], pass: Pass) -> candle_core::Result<Tensor> {
        let device = self.model_device();
        let tokens: Vec<Tokens> = batch
            .iter()
            .map(|m| Tokens {
                type_ids: vec![0; m.ids.len()],
                ids: m.ids.clone(),
            })
            .collect();
        let members: Vec<&Tokens> = tokens.iter().collect();
        let input = pad_batch(&members, self.pad_id, &device)?;
        let positions: Vec<(usize, usize)> = batch
            .iter()
            .enumerate()
            .flat_map(|(b, m)| m.positions.iter().map(move |&t| (b, t)))
            .collect();
        let targets: Vec<u32> = batch.iter().flat_map(|m| m.targets.iter().copied()).collect();
        let targets = Tensor::from_vec(targets, positions.len(), &device)?;
        let logits = self
            .model
            .mlm_logits_in(&input, &positions, pass)?
            .expect("a pretrainer has a masked-LM head");
        candle_nn::loss::cross_entropy(&logits, &targets)
    }

    fn model_device(&self) -> candle_core::Device {
        self.trainer.variables()[0].1.device().clone()
    }

    /// One optimiser step on `batch` (each block with at least one chosen token between them).
    pub fn step(&mut self, batch: &[Masked]) -> candle_core::Result<StepReport> {
        let pass = Pass::Training {
            dropout: &self.dropout,
            compute: self.compute,
        };
        let loss = self.loss(batch, pass)?;
        self.trainer.step(&loss)
    }

    /// The mean masked-LM loss of `batch` without dropout and without training (held-out loss).
    pub fn evaluate(&self, batch: &[Masked]) -> candle_core::Result<f64> {
        self.loss(batch, Pass::Inference)?.to_dtype(DType::F64)?.to_scalar()
    }

    /// Optimiser steps taken.
    pub fn steps_taken(&self) -> usize {
        self.trainer.steps_taken()
    }

    /// Everything a resumed run needs to continue exactly: the trainer's state
    /// ([`Trainer::state`]) and the dropout stream's position (`dropout`).
    pub fn state(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        let mut state = self.trainer.state()?;
        let position = self.dropout.position();
        let words = [(position >> 64) as i64, position as u64 as i64];
        state.push(("dropout".to_string(), Tensor::new(&words, &candle_core::Device::Cpu)?));
        Ok(state)
    }

    /// Continue from `state` (as [`Pretrainer::state`] made it for the same checkpoint and
    /// settings).
    pub fn restore(&mut self, state: &std::collections::HashMap<String, Tensor>) -> candle_core::Result<()> {
        self.trainer.restore(state)?;
        let words = state
            .get("dropout")
            .ok_or_else(|| candle_core::Error::Msg("the saved state has no dropout".into()))?
            .to_vec1::<i64>()?;
        self.dropout
            .set_position((u128::from(words[0] as u64) << 64) | u128::from(words[1] as u64));
        Ok(())
    }

    /// Every trained tensor under its `BertForPreTraining` name (query, key and value split
    /// again; the tied decoder not repeated), for saving.
    pub fn named_tensors(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        crate::train::split_qkv(self.trainer.variables())
    }
}

/// The next-sentence head of the checkpoint in `dir` as loaded (`cls.seq_relationship.*`), for
/// saving beside the trained tensors; empty when it has none.
pub fn next_sentence_head(
    dir: &std::path::Path,
    hidden_size: usize,
) -> mb_stats_files::error::Result<Vec<(String, Tensor)>> {
    let weights = crate::weights::Weights::load(dir, &candle_core::Device::Cpu, DType::F32)?;
    let mut head = Vec::new();
    for (name, shape) in [
        ("cls.seq_relationship.weight", vec![2, hidden_size]),
        ("cls.seq_relationship.bias", vec![2]),
    ] {
        if let Some(tensor) = weights.get_optional(name, &shape)? {
            head.push((name.to_string(), tensor));
        }
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(words: usize) -> Block {
        let mut ids = vec![101];
        let mut word_ids = vec![None];
        for w in 0..words {
            // Every other word has two pieces.
            for _ in 0..(1 + w % 2) {
                ids.push(1000 + w as u32);
                word_ids.push(Some(w as u64));
            }
        }
        ids.push(102);
        word_ids.push(None);
        Block { ids, words: word_ids }
    }

    #[test]
    fn packing_concatenates_texts_and_drops_the_remainder() {
        let texts = vec![
            (vec![101, 5, 6, 102], vec![None, Some(0), Some(1), None]),
            (vec![101, 7, 102], vec![None, Some(0), None]),
        ];
        let blocks = pack(&texts, 3);
        assert_eq!(blocks.len(), 2, "7 tokens make 2 blocks of 3");
        assert_eq!(blocks[0].ids, [101, 5, 6]);
        assert_eq!(blocks[1].ids, [102, 101, 7]);
        assert_eq!(
            blocks[1].words,
            [None, None, Some(2)],
            "word ids stay unique across texts"
        );
    }

    /// By simulation: 15% of the tokens chosen, never a special one; of the chosen, 80% [MASK],
    /// 10% random, 10% kept; with whole words, a word's pieces go together.
    #[test]
    fn masking_chooses_and_replaces_at_bert_rates() {
        let masking = Masking {
            probability: 0.15,
            whole_word: false,
            mask_id: 103,
            vocab_size: 30522,
        };
        let mut masker = Masker::new(masking, 0);
        let b = block(200);
        let (mut tokens, mut chosen, mut masked, mut kept) = (0, 0, 0, 0);
        for _ in 0..200 {
            let m = masker.mask(&b);
            tokens += b.ids.len() - 2;
            chosen += m.positions.len();
            for (&p, &t) in m.positions.iter().zip(&m.targets) {
                assert!(b.words[p].is_some(), "a special token was chosen");
                assert_eq!(t, b.ids[p]);
                masked += usize::from(m.ids[p] == 103);
                kept += usize::from(m.ids[p] == t);
            }
        }
        let rate = chosen as f64 / tokens as f64;
        // 60,000 tokens: sd of the rate ≈ 0.0015; of the 80% share ≈ 0.004.
        assert!((rate - 0.15).abs() < 0.006, "chosen {rate}");
        assert!((masked as f64 / chosen as f64 - 0.8).abs() < 0.02);
        assert!((kept as f64 / chosen as f64 - 0.1).abs() < 0.015);

        let mut whole = Masker::new(
            Masking {
                whole_word: true,
                ..masking
            },
            1,
        );
        for _ in 0..50 {
            let m = whole.mask(&b);
            for w in 0..200u64 {
                let pieces: Vec<usize> = (0..b.ids.len()).filter(|&i| b.words[i] == Some(w)).collect();
                let taken = pieces.iter().filter(|p| m.positions.contains(p)).count();
                assert!(taken == 0 || taken == pieces.len(), "word {w} split");
            }
        }
    }
}
