//! `config.json` of a BERT checkpoint: the sizes and the activation.

use std::path::Path;

use serde::Deserialize;

use mb_stats_files::error::{Result, input};

/// The hidden activation named by `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Activation {
    /// Exact GELU with erf (`gelu`, the original BERT).
    #[serde(rename = "gelu")]
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    #[serde(alias = "gelu_new", alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluTanh,
    /// `relu`.
    #[serde(rename = "relu")]
    Relu,
}

/// The fields of a Hugging Face `BertConfig` that the runtime uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size (rows of the word embeddings).
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer (must divide `hidden_size`).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer and of the MLM head transform.
    #[serde(default = "default_activation")]
    pub hidden_act: Activation,
    /// Longest input the position embeddings allow.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    /// Epsilon of every LayerNorm.
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Id of the padding token.
    #[serde(default)]
    pub pad_token_id: usize,
    /// Dropout on hidden states when fine-tuning.
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities when fine-tuning.
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Dropout before a classification head (default: `hidden_dropout_prob`).
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    /// Standard deviation of the normal initialisation of new weights (a fine-tuning head).
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
}

fn default_dropout() -> f64 {
    0.1
}
fn default_initializer_range() -> f64 {
    0.02
}

fn default_activation() -> Activation {
    Activation::Gelu
}
fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}

impl BertConfig {
    /// Read and check `config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = mb_stats_files::text::read_to_string(path).map_err(|e| input(format!("{}: {e}", path.display())))?;
        let config: BertConfig = serde_json::from_str(&text).map_err(|e| {
            input(format!(
                "{}: not a BERT config.json ({e}); expected vocab_size, hidden_size, num_hidden_layers, \
                 num_attention_heads, intermediate_size, max_position_embeddings and hidden_act gelu|gelu_new|relu",
                path.display()
            ))
        })?;
        if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            return Err(input(format!(
                "{}: hidden_size {} is not a multiple of num_attention_heads {}",
                path.display(),
                config.hidden_size,
                config.num_attention_heads
            )));
        }
        Ok(config)
    }

    /// Width of one attention head.
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}
