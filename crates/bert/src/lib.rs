//! mb-stats-bert: the BERT runtime, checkpoint files to hidden states, on candle.
//!
//! It must not import polars (tables are the runner's) nor clap (flags are the binary's); its
//! progress reporting is a plain callback.
//!
//! [`config`] reads `config.json`, [`weights`] the tensors (safetensors, or zip-format PyTorch read in
//! place by [`pytorch`]; legacy names included, CRC-checked), [`model`] is the network, [`tokenizer`] the WordPiece tokenizer, and
//! [`batch`] groups inputs into length-sorted token-budget batches, [`mlm`] scores masked tokens
//! (pseudo-log-likelihoods, cloze), [`finetune`] trains it with a classification or regression
//! head, [`pretrain`] continues its masked-LM pretraining, [`train`] is the training pass every way of training shares (autograd, clipping, AdamW,
//! the schedule). [`Bert`] ties them together:
//! texts in, pooled or per-token features of chosen layers out, in input order. [`fetch`] makes a
//! checkpoint local (a directory, or a Hub repo through the Hugging Face cache of [`hub`]), and
//! [`candle_error`] turns candle's errors into one-line messages.

#![warn(missing_docs)]

pub mod batch;
pub mod candle_error;
pub mod config;
pub mod cpu;
pub mod dropout;
pub mod fetch;
pub mod finetune;
pub mod hub;
#[cfg(target_arch = "x86_64")]
pub mod matmul;
pub mod mlm;
pub mod model;
pub mod pretrain;
pub mod pytorch;
pub mod settings;
pub mod tokenizer;
pub mod train;
pub mod weights;

use std::path::Path;

use candle_core::{DType, Device};
use ndarray::Array2;

use candle_error::candle_message;
use config::BertConfig;
use mb_stats_files::error::{Result, input};
use model::BertModel;
use tokenizer::{BertTokenizer, TextInput, Tokens};
use weights::Weights;

pub use settings::{BatchTokens, DeviceSpec, Layers, MaxLength, Pooling, Precision, Runtime};

/// Features of the requested layers, in input order.
pub enum Features {
    /// Per requested layer, an `inputs × hidden` matrix.
    Pooled(Vec<Array2<f32>>),
    /// Per requested layer, per input, a `tokens × hidden` matrix (padding dropped).
    Tokens(Vec<Vec<Array2<f32>>>),
}

/// A checkpoint ready to run: tokenizer and model on one device.
pub struct Bert {
    tokenizer: BertTokenizer,
    model: BertModel,
    device: Device,
}

impl Bert {
    /// Load the checkpoint directory `dir` (`config.json`, `vocab.txt` or `tokenizer.json`, weights).
    pub fn load(dir: &Path, device: &Device, dtype: DType, max_length: usize) -> Result<Self> {
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        let dtype = cpu::runnable_dtype(dtype, device);
        // The tokenizer is built while the weights are read (the reads wait on memory, not the CPU).
        let (model, tokenizer) = rayon::join(
            || {
                let weights = Weights::load(dir, device, dtype)?;
                let model = BertModel::load(&weights, &config, dtype)?;
                weights.finish()?;
                Ok::<_, mb_stats_files::error::Error>(model)
            },
            || BertTokenizer::load(dir, max_length, config.max_position_embeddings),
        );
        let (model, tokenizer) = (model?, tokenizer?);
        Ok(Bert {
            tokenizer,
            model,
            device: device.clone(),
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &BertTokenizer {
        &self.tokenizer
    }

    /// The network.
    pub fn model(&self) -> &BertModel {
        &self.model
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of hidden states (embeddings output + one per layer).
    pub fn n_hidden_states(&self) -> usize {
        self.model.config().num_hidden_layers + 1
    }

    /// Run `inputs` in token-budget batches and collect the pooled (or per-token) features of
    /// `layers` (0 = embeddings output). `progress` is told how many inputs each finished batch held.
    pub fn features(
        &self,
        inputs: &[TextInput],
        layers: &[usize],
        pooling: Pooling,
        token_budget: usize,
        progress: &dyn Fn(usize),
    ) -> Result<Features> {
        if let Some(&bad) = layers.iter().find(|&&l| l >= self.n_hidden_states()) {
            return Err(input(format!(
                "layer {bad}: this model has layers 0 (embeddings) to {}",
                self.n_hidden_states() - 1
            )));
        }
        let tokens = self.tokenizer.encode_all(inputs)?;
        let lengths: Vec<usize> = tokens.iter().map(|t| t.ids.len()).collect();
        let hidden = self.model.config().hidden_size;
        let mut pooled: Vec<Array2<f32>> = layers.iter().map(|_| Array2::zeros((inputs.len(), hidden))).collect();
        let mut per_token: Vec<Vec<Array2<f32>>> = layers
            .iter()
            .map(|_| vec![Array2::zeros((0, hidden)); inputs.len()])
            .collect();
        for batch in batch::plan_batches(&lengths, token_budget) {
            let members: Vec<&Tokens> = batch.iter().map(|&i| &tokens[i]).collect();
            let run = |e: candle_core::Error| input(format!("running the model: {}", candle_message(&e)));
            let padded = batch::pad_batch(&members, self.tokenizer.pad_id(), &self.device).map_err(run)?;
            let encoded = self.model.forward(&padded).map_err(run)?;
            for (slot, &layer) in layers.iter().enumerate() {
                let states = &encoded.hidden_states[layer];
                match pooling {
                    Pooling::Cls | Pooling::Mean => {
                        let vectors = model::pool(states, &padded.attention_mask, pooling == Pooling::Mean)
                            .and_then(|t| t.to_dtype(DType::F32)?.to_vec2::<f32>())
                            .map_err(run)?;
                        for (&i, vector) in batch.iter().zip(vectors) {
                            pooled[slot].row_mut(i).assign(&ndarray::Array1::from(vector));
                        }
                    }
                    Pooling::None => {
                        let all = states
                            .to_dtype(DType::F32)
                            .and_then(|t| t.to_vec3::<f32>())
                            .map_err(run)?;
                        for ((&i, rows), length) in batch.iter().zip(all).zip(members.iter().map(|t| t.ids.len())) {
                            let flat: Vec<f32> = rows.into_iter().take(length).flatten().collect();
                            per_token[slot][i] = Array2::from_shape_vec((length, hidden), flat).expect("rows × hidden");
                        }
                    }
                }
            }
            progress(batch.len());
        }
        Ok(match pooling {
            Pooling::None => Features::Tokens(per_token),
            _ => Features::Pooled(pooled),
        })
    }
}
