//! The BERT encoder, pooler and masked-LM head on candle, numerically matching Hugging Face
//! transformers' `BertModel` / `BertForPreTraining` in eval mode.
//!
//! Plain structs with `load` and `forward`, following candle-transformers' model files. Unlike
//! candle-transformers' `bert.rs` it returns every hidden state, builds the padding mask from a
//! finite per-dtype minimum (so f16/bf16 never see `0 × -inf = NaN`), ties the MLM decoder to the
//! word embeddings when the checkpoint has no decoder weight, and computes nothing for padding:
//! the real tokens of a batch are packed into one `[tokens, hidden]` matrix, every projection is
//! one GEMM over it (query, key and value fused into one), and only attention, which needs
//! sentence boundaries, sees them (padded back for candle's ops, or by sentence in the fused CPU
//! kernel). Hidden states come back padded, zero at padding positions. In f16/bf16 the
//! residual stream stays f32, as under PyTorch autocast: only the matrix products run in half
//! precision. On the CPU the dense layers run as the fused kernel of `cpu` (f32, or bf16 products
//! with f32 sums for bf16 weights, the residual stream f32) and attention as its f32 kernel.
//!
//! A [`Pass::Training`] runs the same network with differentiable candle ops only (the fused
//! kernels, candle-nn's LayerNorm and last-dimension softmax have no backward), dropout where
//! transformers' `BertModel` has it, and the matrix products in the pass's precision (bf16
//! autocast: f32 master weights, half-precision products).

use candle_core::{D, DType, Device, Tensor};

use super::config::{Activation, BertConfig};
use super::cpu;
use super::dropout::Dropout;
use super::weights::Weights;
use mb_stats_files::error::Result;

/// Token ids of a padded batch, all `[batch, length]`, padding on the right.
pub struct BatchInput {
    /// WordPiece ids.
    pub input_ids: Tensor,
    /// Segment ids (0 for the first text, 1 for the second of a pair).
    pub token_type_ids: Tensor,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// Real tokens of each input.
    pub lengths: Vec<usize>,
}

/// Where each real token of a padded batch sits once the padding is squeezed out.
struct Packing {
    /// Padded flat position (`b · length + t`) of each packed token, `[tokens]`.
    padded_position: Tensor,
    /// Position in its input (`t`) of each packed token, `[tokens]`.
    position_in_input: Tensor,
    /// Packed row of each padded slot, `[batch · length]`; padding slots point one past the last
    /// token (a zero row appended when unpacking).
    packed_row: Tensor,
    /// Real tokens of each input.
    lengths: Vec<usize>,
    /// Padded length of the batch.
    length: usize,
}

impl Packing {
    fn new(lengths: &[usize], length: usize, device: &Device) -> candle_core::Result<Self> {
        let tokens: usize = lengths.iter().sum();
        let mut padded_position = Vec::with_capacity(tokens);
        let mut position_in_input = Vec::with_capacity(tokens);
        let mut packed_row = vec![tokens as u32; lengths.len() * length];
        for (b, &n) in lengths.iter().enumerate() {
            for t in 0..n {
                packed_row[b * length + t] = padded_position.len() as u32;
                padded_position.push((b * length + t) as u32);
                position_in_input.push(t as u32);
            }
        }
        Ok(Packing {
            padded_position: Tensor::from_vec(padded_position, tokens, device)?,
            position_in_input: Tensor::from_vec(position_in_input, tokens, device)?,
            packed_row: Tensor::from_vec(packed_row, lengths.len() * length, device)?,
            lengths: lengths.to_vec(),
            length,
        })
    }

    /// The real tokens' rows of `[batch · length, width]`.
    fn pack(&self, padded: &Tensor) -> candle_core::Result<Tensor> {
        padded.index_select(&self.padded_position, 0)
    }

    /// `[batch · length, width]` from `[tokens, width]`, zero at padding.
    fn unpack(&self, packed: &Tensor) -> candle_core::Result<Tensor> {
        let zero = Tensor::zeros((1, packed.dim(1)?), packed.dtype(), packed.device())?;
        Tensor::cat(&[packed, &zero], 0)?.index_select(&self.packed_row, 0)
    }
}

/// How a forward pass runs.
#[derive(Clone, Copy)]
pub enum Pass<'a> {
    /// Evaluation: no dropout, fused CPU kernels where they apply, nothing recorded for backward.
    Inference,
    /// Training: differentiable ops, `dropout`, matrix products in `compute` precision.
    Training {
        /// Dropout rates and their random numbers.
        dropout: &'a Dropout,
        /// Precision of the matrix products (f32, or bf16/f16 as under autocast).
        compute: DType,
    },
}

impl Pass<'_> {
    /// Whether the fused f32 CPU attention may run on `x`.
    fn fused(&self, x: &Tensor) -> bool {
        matches!(self, Pass::Inference) && x.device().is_cpu() && x.dtype() == DType::F32
    }

    /// `x` after hidden-state dropout (unchanged for inference).
    fn hidden_dropout(&self, x: Tensor) -> candle_core::Result<Tensor> {
        match self {
            Pass::Inference => Ok(x),
            Pass::Training { dropout, .. } => dropout.hidden(&x),
        }
    }
}

/// What one forward pass returns.
pub struct Encoded {
    /// Embeddings output followed by the output of every layer, each `[batch, length, hidden]`,
    /// in f32 whatever the model's dtype.
    pub hidden_states: Vec<Tensor>,
    /// `tanh(dense(first token))` of the last layer, `[batch, hidden]`, when the checkpoint has a pooler.
    pub pooled: Option<Tensor>,
}

/// A loaded BERT.
pub struct BertModel {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Option<Dense>,
    mlm_head: Option<MlmHead>,
    config: BertConfig,
    dtype: DType,
}

impl BertModel {
    /// Build the model from checkpoint weights; every tensor is checked against `config`.
    pub fn load(weights: &Weights, config: &BertConfig, dtype: DType) -> Result<Self> {
        let embeddings = Embeddings::load(weights, config)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(weights, config, &format!("encoder.layer.{i}")))
            .collect::<Result<Vec<_>>>()?;
        let h = config.hidden_size;
        let pooler = Dense::load_optional(weights, "pooler.dense", h, h)?;
        let mlm_head = MlmHead::load_optional(weights, config, &embeddings.word)?;
        Ok(BertModel {
            embeddings,
            layers,
            pooler,
            mlm_head,
            config: config.clone(),
            dtype,
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The dtype its weights are held in (f32 where bf16 was asked of a CPU that cannot).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Run the encoder. Time: O(layers · real tokens · hidden²) plus O(layers · Σ length² · hidden).
    pub fn forward(&self, input: &BatchInput) -> candle_core::Result<Encoded> {
        let (batch, length) = input.input_ids.dims2()?;
        let mut hidden_states = Vec::with_capacity(self.layers.len() + 1);
        self.encode_packed(input, None, Pass::Inference, &mut |packing, hidden| {
            hidden_states.push(packing.unpack(hidden)?.reshape((batch, length, ()))?);
            Ok(())
        })?;
        let pooled = match &self.pooler {
            Some(dense) => {
                let first = hidden_states
                    .last()
                    .expect("embeddings output")
                    .narrow(1, 0, 1)?
                    .squeeze(1)?;
                Some(dense.forward(&first, None, Pass::Inference)?.tanh()?)
            }
            None => None,
        };
        Ok(Encoded { hidden_states, pooled })
    }

    /// The pooled output `tanh(dense(first token))` `[batch, hidden]` (f32) of a forward pass
    /// run as `pass`; `None` when the model has no pooler.
    pub fn pooled(&self, input: &BatchInput, pass: Pass) -> candle_core::Result<Option<Tensor>> {
        let Some(pooler) = &self.pooler else { return Ok(None) };
        let last = self.encode_packed(input, None, pass, &mut |_, _| Ok(()))?;
        let mut first = Vec::with_capacity(input.lengths.len());
        let mut start = 0u32;
        for &n in &input.lengths {
            first.push(start);
            start += n as u32;
        }
        let first = Tensor::from_vec(first, input.lengths.len(), last.device())?;
        let pooled = pooler.forward(&last.index_select(&first, 0)?, None, pass)?.tanh()?;
        Ok(Some(pooled.to_dtype(DType::F32)?))
    }

    /// Every trainable tensor with its Hugging Face name (query, key and value fused into one
    /// `attention.self.qkv` tensor), for replacing by variables; the masked-LM head is not
    /// among them (a fine-tuned model drops it).
    pub(crate) fn parameters_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        let mut all = Vec::new();
        let e = &mut self.embeddings;
        all.push(("embeddings.word_embeddings.weight".to_string(), &mut e.word));
        all.push(("embeddings.position_embeddings.weight".to_string(), &mut e.position));
        all.push(("embeddings.token_type_embeddings.weight".to_string(), &mut e.token_type));
        e.norm.push_parameters("embeddings.LayerNorm", &mut all);
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let at = |name: &str| format!("encoder.layer.{i}.{name}");
            layer.qkv.push_parameters(&at("attention.self.qkv"), &mut all);
            layer
                .attention_output
                .push_parameters(&at("attention.output.dense"), &mut all);
            layer
                .attention_norm
                .push_parameters(&at("attention.output.LayerNorm"), &mut all);
            layer.intermediate.push_parameters(&at("intermediate.dense"), &mut all);
            layer.output.push_parameters(&at("output.dense"), &mut all);
            layer.output_norm.push_parameters(&at("output.LayerNorm"), &mut all);
        }
        if let Some(pooler) = &mut self.pooler {
            pooler.push_parameters("pooler.dense", &mut all);
        }
        all
    }

    /// A copy without the masked-LM head and with a pooler: the checkpoint's, or `pooler`
    /// (`[hidden, hidden]` weight and `[hidden]` bias) when it has none.
    pub(crate) fn for_fine_tuning(
        &self,
        pooler: impl FnOnce() -> candle_core::Result<(Tensor, Tensor)>,
    ) -> candle_core::Result<Self> {
        let pooler = match &self.pooler {
            Some(dense) => dense.clone(),
            None => {
                let (weight, bias) = pooler()?;
                Dense { weight, bias }
            }
        };
        Ok(BertModel {
            embeddings: self.embeddings.clone(),
            layers: self.layers.clone(),
            pooler: Some(pooler),
            mlm_head: None,
            config: self.config.clone(),
            dtype: self.dtype,
        })
    }

    /// The packed hidden states `[tokens, hidden]` of the embeddings output and of each layer in
    /// turn, handed to `each` (with where each token sits); returns the last. With `last_rows`,
    /// the last layer computes (and returns) only those packed rows, and is not handed to `each`.
    fn encode_packed(
        &self,
        input: &BatchInput,
        last_rows: Option<&Tensor>,
        pass: Pass,
        each: &mut dyn FnMut(&Packing, &Tensor) -> candle_core::Result<()>,
    ) -> candle_core::Result<Tensor> {
        let (_, length) = input.input_ids.dims2()?;
        let packing = Packing::new(&input.lengths, length, input.input_ids.device())?;
        let padding = padding_bias(&input.attention_mask, self.dtype)?;
        let mut hidden = self
            .embeddings
            .forward(input, &packing, self.config.layer_norm_eps, pass)?;
        each(&packing, &hidden)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let rows = last_rows.filter(|_| i + 1 == self.layers.len());
            hidden = layer.forward(&hidden, &packing, &padding, &self.config, rows, pass)?;
            if rows.is_none() {
                each(&packing, &hidden)?;
            }
        }
        Ok(hidden)
    }

    /// Whether the checkpoint has a masked-LM head (`cls.predictions`).
    pub fn has_mlm_head(&self) -> bool {
        self.mlm_head.is_some()
    }

    /// Masked-LM logits `[positions, vocab]` (f32) at `positions` (input, token) of a batch. Only
    /// those tokens go through the last layer after its attention (which reads every token) and
    /// through the head; `None` without an MLM head.
    pub fn mlm_logits_at(
        &self,
        input: &BatchInput,
        positions: &[(usize, usize)],
    ) -> candle_core::Result<Option<Tensor>> {
        self.mlm_logits_in(input, positions, Pass::Inference)
    }

    /// As [`BertModel::mlm_logits_at`], run as `pass`.
    pub(crate) fn mlm_logits_in(
        &self,
        input: &BatchInput,
        positions: &[(usize, usize)],
        pass: Pass,
    ) -> candle_core::Result<Option<Tensor>> {
        let Some(head) = &self.mlm_head else { return Ok(None) };
        let mut start = Vec::with_capacity(input.lengths.len());
        let mut total = 0;
        for &n in &input.lengths {
            start.push(total);
            total += n;
        }
        let rows: Vec<u32> = positions.iter().map(|&(b, t)| (start[b] + t) as u32).collect();
        let rows = Tensor::from_vec(rows, positions.len(), input.input_ids.device())?;
        let last = self.encode_packed(input, Some(&rows), pass, &mut |_, _| Ok(()))?;
        let logits = head.forward(&last, &self.config, pass)?;
        logits.to_dtype(DType::F32).map(Some)
    }

    /// A copy for continued masked-LM pretraining whose every trainable tensor (the masked-LM
    /// head's included) is handed to `trainable`, which returns its replacement (a variable), by
    /// its `BertForPreTraining` name; the decoder stays tied to the word embeddings, as BERT's is.
    /// `None` without an MLM head.
    pub(crate) fn for_pretraining(
        &self,
        trainable: &mut dyn FnMut(&str, &Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Option<Self>> {
        let Some(head) = &self.mlm_head else { return Ok(None) };
        let mut model = BertModel {
            mlm_head: Some(head.clone()),
            embeddings: self.embeddings.clone(),
            layers: self.layers.clone(),
            pooler: self.pooler.clone(),
            config: self.config.clone(),
            dtype: self.dtype,
        };
        for (name, tensor) in model.parameters_mut() {
            *tensor = trainable(&format!("bert.{name}"), tensor)?;
        }
        let word = model.embeddings.word.clone();
        let head = model.mlm_head.as_mut().expect("kept above");
        let mut own = Vec::new();
        head.transform
            .push_parameters("cls.predictions.transform.dense", &mut own);
        head.norm
            .push_parameters("cls.predictions.transform.LayerNorm", &mut own);
        own.push(("cls.predictions.bias".to_string(), &mut head.bias));
        for (name, tensor) in own {
            *tensor = trainable(&name, tensor)?;
        }
        head.decoder = word;
        Ok(Some(model))
    }

    /// Masked-LM logits `[batch, length, vocab]` from the last hidden state; `None` without an MLM head.
    pub fn mlm_logits(&self, last_hidden: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let Some(head) = &self.mlm_head else { return Ok(None) };
        let (batch, length, hidden) = last_hidden.dims3()?;
        let flat = last_hidden.reshape((batch * length, hidden))?;
        let logits = head.forward(&flat, &self.config, Pass::Inference)?;
        Ok(Some(logits.reshape((batch, length, ()))?))
    }
}

/// The additive attention mask `[batch, length]`: 0 for tokens, the dtype's most negative finite
/// value for padding (as transformers' `torch.finfo(dtype).min`).
fn padding_bias(attention_mask: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
    let most_negative = match dtype {
        DType::F16 => half::f16::MIN.to_f64(),
        DType::BF16 => half::bf16::MIN.to_f64(),
        DType::F64 => f64::MIN,
        _ => f32::MIN as f64,
    };
    let padding = attention_mask.to_dtype(DType::F32)?.affine(-1.0, 1.0)?;
    padding.affine(most_negative, 0.0)?.to_dtype(dtype)
}

/// A linear layer `x · Wᵀ + b` on a flat `[tokens, in]` input.
#[derive(Clone)]
struct Dense {
    /// `W`, `[out, in]`, contiguous, as checkpoints store it (the GEMM reads it transposed).
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn load(weights: &Weights, prefix: &str, out_dim: usize, in_dim: usize) -> Result<Self> {
        Ok(Dense {
            weight: weights.get(&format!("{prefix}.weight"), &[out_dim, in_dim])?,
            bias: weights.get(&format!("{prefix}.bias"), &[out_dim])?,
        })
    }

    fn load_optional(weights: &Weights, prefix: &str, out_dim: usize, in_dim: usize) -> Result<Option<Self>> {
        match weights.has(&format!("{prefix}.weight")) {
            true => Dense::load(weights, prefix, out_dim, in_dim).map(Some),
            false => Ok(None),
        }
    }

    /// Stack several layers with the same input into one (query, key and value).
    fn fused(parts: &[Dense]) -> candle_core::Result<Self> {
        let weight = Tensor::cat(&parts.iter().map(|d| &d.weight).collect::<Vec<_>>(), 0)?;
        let bias = Tensor::cat(&parts.iter().map(|d| &d.bias).collect::<Vec<_>>(), 0)?;
        Ok(Dense { weight, bias })
    }

    /// `activation(x · Wᵀ + b)`: for inference in the weights' dtype (`x` is cast to it; on the
    /// CPU the fused kernel, f32 out, bf16 products for bf16 weights); for training with the
    /// product in the pass's precision (on the CPU the differentiable `cpu::Affine`) and the
    /// result in f32.
    fn forward(&self, x: &Tensor, activation: Option<Activation>, pass: Pass) -> candle_core::Result<Tensor> {
        if matches!(pass, Pass::Inference) && cpu::Linear::runs(x, &self.weight) {
            return x
                .contiguous()?
                .apply_op3_no_bwd(&self.weight, &self.bias, &cpu::Linear { activation });
        }
        #[cfg(target_arch = "x86_64")]
        if let Pass::Training { compute, .. } = pass
            && let Some(op) = cpu::Affine::new(x, &self.weight, compute)
        {
            let affine = x.contiguous()?.apply_op3(&self.weight, &self.bias, op)?;
            return match activation {
                Some(activation) => affine.apply_op1(cpu::Activate(activation)),
                None => Ok(affine),
            };
        }
        let (x, weight, bias) = match pass {
            Pass::Inference => (x.to_dtype(self.weight.dtype())?, self.weight.clone(), self.bias.clone()),
            Pass::Training { compute, .. } => (
                x.to_dtype(compute)?,
                self.weight.to_dtype(compute)?,
                self.bias.to_dtype(compute)?,
            ),
        };
        let activated = activate(&x.matmul(&weight.t()?)?.broadcast_add(&bias)?, activation)?;
        match pass {
            Pass::Inference => Ok(activated),
            Pass::Training { .. } => activated.to_dtype(DType::F32),
        }
    }

    fn push_parameters<'a>(&'a mut self, prefix: &str, all: &mut Vec<(String, &'a mut Tensor)>) {
        all.push((format!("{prefix}.weight"), &mut self.weight));
        all.push((format!("{prefix}.bias"), &mut self.bias));
    }
}

/// `activation(x)` in candle's differentiable ops.
fn activate(x: &Tensor, activation: Option<Activation>) -> candle_core::Result<Tensor> {
    match activation {
        None => Ok(x.clone()),
        Some(Activation::Gelu) => x.gelu_erf(),
        Some(Activation::GeluTanh) => x.gelu(),
        Some(Activation::Relu) => x.relu(),
    }
}

/// LayerNorm over the last dimension.
#[derive(Clone)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn load(weights: &Weights, prefix: &str, size: usize) -> Result<Self> {
        Ok(Norm {
            weight: weights.get_f32(&format!("{prefix}.weight"), &[size])?,
            bias: weights.get_f32(&format!("{prefix}.bias"), &[size])?,
        })
    }

    /// `LayerNorm(x + residual)` in f32 whatever the dtype (as PyTorch autocast runs LayerNorm),
    /// returned in f32: the residual stream is never rounded to half precision.
    fn forward(&self, x: &Tensor, residual: Option<&Tensor>, eps: f64, pass: Pass) -> candle_core::Result<Tensor> {
        let x = x.to_dtype(DType::F32)?;
        let sum = match residual {
            Some(r) => (x + r)?,
            None => x,
        };
        match pass {
            Pass::Inference => candle_nn::ops::layer_norm(&sum, &self.weight, &self.bias, eps as f32),
            Pass::Training { .. } if sum.device().is_cpu() && self.weight.dtype() == DType::F32 => sum
                .contiguous()?
                .apply_op3(&self.weight, &self.bias, cpu::Norm { eps: eps as f32 }),
            // candle-nn's fused LayerNorm has no backward: the same formula in differentiable ops.
            Pass::Training { .. } => {
                let centred = sum.broadcast_sub(&sum.mean_keepdim(D::Minus1)?)?;
                let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
                centred
                    .broadcast_div(&(variance + eps)?.sqrt()?)?
                    .broadcast_mul(&self.weight)?
                    .broadcast_add(&self.bias)
            }
        }
    }

    fn push_parameters<'a>(&'a mut self, prefix: &str, all: &mut Vec<(String, &'a mut Tensor)>) {
        all.push((format!("{prefix}.weight"), &mut self.weight));
        all.push((format!("{prefix}.bias"), &mut self.bias));
    }
}

#[derive(Clone)]
struct Embeddings {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    norm: Norm,
}

impl Embeddings {
    fn load(weights: &Weights, config: &BertConfig) -> Result<Self> {
        let h = config.hidden_size;
        Ok(Embeddings {
            word: weights.get_f32("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            position: weights.get_f32(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, h],
            )?,
            token_type: weights.get_f32("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h])?,
            norm: Norm::load(weights, "embeddings.LayerNorm", h)?,
        })
    }

    /// `[tokens, hidden]`, real tokens only.
    fn forward(&self, input: &BatchInput, packing: &Packing, eps: f64, pass: Pass) -> candle_core::Result<Tensor> {
        let real = |ids: &Tensor| ids.flatten_all()?.index_select(&packing.padded_position, 0);
        let words = self.word.index_select(&real(&input.input_ids)?, 0)?;
        let types = self.token_type.index_select(&real(&input.token_type_ids)?, 0)?;
        let positions = self.position.index_select(&packing.position_in_input, 0)?;
        pass.hidden_dropout(self.norm.forward(&((words + types)? + positions)?, None, eps, pass)?)
    }
}

#[derive(Clone)]
struct Layer {
    qkv: Dense,
    attention_output: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
}

impl Layer {
    fn load(weights: &Weights, config: &BertConfig, prefix: &str) -> Result<Self> {
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let part = |name: &str| Dense::load(weights, &format!("{prefix}.attention.self.{name}"), h, h);
        let qkv = Dense::fused(&[part("query")?, part("key")?, part("value")?])
            .map_err(|e| candle_input(weights, prefix, &e))?;
        Ok(Layer {
            qkv,
            attention_output: Dense::load(weights, &format!("{prefix}.attention.output.dense"), h, h)?,
            attention_norm: Norm::load(weights, &format!("{prefix}.attention.output.LayerNorm"), h)?,
            intermediate: Dense::load(weights, &format!("{prefix}.intermediate.dense"), i, h)?,
            output: Dense::load(weights, &format!("{prefix}.output.dense"), h, i)?,
            output_norm: Norm::load(weights, &format!("{prefix}.output.LayerNorm"), h)?,
        })
    }

    /// `hidden`: `[tokens, hidden]` f32, packed; `padding`: `[batch, length]`. With `rows`, only
    /// those packed rows are computed after the attention (and returned).
    fn forward(
        &self,
        hidden: &Tensor,
        packing: &Packing,
        padding: &Tensor,
        config: &BertConfig,
        rows: Option<&Tensor>,
        pass: Pass,
    ) -> candle_core::Result<Tensor> {
        let context = attention(&self.qkv.forward(hidden, None, pass)?, packing, padding, config, pass)?;
        let selected;
        let (context, hidden) = match rows {
            Some(rows) => {
                selected = hidden.index_select(rows, 0)?;
                (context.index_select(rows, 0)?, &selected)
            }
            None => (context, hidden),
        };
        let attended = self.attention_norm.forward(
            &pass.hidden_dropout(self.attention_output.forward(&context, None, pass)?)?,
            Some(hidden),
            config.layer_norm_eps,
            pass,
        )?;
        let inner = self.intermediate.forward(&attended, Some(config.hidden_act), pass)?;
        self.output_norm.forward(
            &pass.hidden_dropout(self.output.forward(&inner, None, pass)?)?,
            Some(&attended),
            config.layer_norm_eps,
            pass,
        )
    }
}

/// The attention context `[tokens, hidden]` from the packed fused projection `qkv`
/// `[tokens, 3 · hidden]`; `padding` `[batch, length]` masks the padded layout of candle's ops.
fn attention(
    qkv: &Tensor,
    packing: &Packing,
    padding: &Tensor,
    config: &BertConfig,
    pass: Pass,
) -> candle_core::Result<Tensor> {
    let (heads, head_size) = (config.num_attention_heads, config.head_size());
    if pass.fused(qkv) {
        let op = cpu::Attention {
            lengths: packing.lengths.clone(),
            heads,
            head_size,
        };
        return qkv.apply_op1_no_bwd(&op);
    }
    let (batch, length) = (packing.lengths.len(), packing.length);
    let qkv = packing.unpack(qkv)?.reshape((batch, length, 3, heads, head_size))?;
    let compute = match pass {
        Pass::Inference => qkv.dtype(),
        Pass::Training { compute, .. } => compute,
    };
    let split = |i: usize| {
        qkv.narrow(2, i, 1)?
            .squeeze(2)?
            .transpose(1, 2)?
            .contiguous()?
            .to_dtype(compute)
    };
    let (query, key, value) = (split(0)?, split(1)?, split(2)?);
    // The mask is added in the model's dtype (f32 when training under autocast).
    let scores = (query.matmul(&key.t()?)? / (head_size as f64).sqrt())?
        .to_dtype(padding.dtype())?
        .broadcast_add(&padding.reshape((batch, 1, 1, length))?)?
        .to_dtype(DType::F32)?;
    // Softmax in f32 (as PyTorch autocast) so half precision keeps small attention weights.
    let probabilities = match pass {
        Pass::Inference => candle_nn::ops::softmax_last_dim(&scores)?,
        Pass::Training { dropout, .. } => dropout.attention(&candle_nn::ops::softmax(&scores, D::Minus1)?)?,
    };
    let context = probabilities
        .to_dtype(compute)?
        .matmul(&value)?
        .transpose(1, 2)?
        .reshape((batch * length, ()))?
        .to_dtype(qkv.dtype())?;
    packing.pack(&context)
}

/// `cls.predictions`: transform (dense, activation, LayerNorm) then the decoder.
#[derive(Clone)]
struct MlmHead {
    transform: Dense,
    norm: Norm,
    decoder: Tensor,
    bias: Tensor,
}

impl MlmHead {
    fn load_optional(weights: &Weights, config: &BertConfig, word_embeddings: &Tensor) -> Result<Option<Self>> {
        let (h, v) = (config.hidden_size, config.vocab_size);
        let Some(transform) = Dense::load_optional(weights, "cls.predictions.transform.dense", h, h)? else {
            return Ok(None);
        };
        let decoder = match weights.get_optional("cls.predictions.decoder.weight", &[v, h])? {
            Some(decoder) => decoder,
            None => word_embeddings
                .to_dtype(transform.weight.dtype())
                .map_err(|e| candle_input(weights, "tied decoder", &e))?,
        };
        let bias = match weights.get_optional("cls.predictions.bias", &[v])? {
            Some(bias) => bias,
            None => weights.get("cls.predictions.decoder.bias", &[v])?,
        };
        let norm = Norm::load(weights, "cls.predictions.transform.LayerNorm", h)?;
        Ok(Some(MlmHead {
            transform,
            norm,
            decoder,
            bias,
        }))
    }

    fn forward(&self, hidden: &Tensor, config: &BertConfig, pass: Pass) -> candle_core::Result<Tensor> {
        let transformed = self.transform.forward(hidden, Some(config.hidden_act), pass)?;
        let normed = self.norm.forward(&transformed, None, config.layer_norm_eps, pass)?;
        if matches!(pass, Pass::Inference) && cpu::Linear::runs(&normed, &self.decoder) {
            return normed.apply_op3_no_bwd(&self.decoder, &self.bias, &cpu::Linear { activation: None });
        }
        #[cfg(target_arch = "x86_64")]
        if let Pass::Training { compute, .. } = pass
            && let Some(op) = cpu::Affine::new(&normed, &self.decoder, compute)
        {
            return normed.contiguous()?.apply_op3(&self.decoder, &self.bias, op);
        }
        normed
            .to_dtype(self.decoder.dtype())?
            .matmul(&self.decoder.t()?)?
            .broadcast_add(&self.bias)
    }
}

/// An input error about the tensors under `what` in the checkpoint of `weights`.
fn candle_input(weights: &Weights, what: &str, e: &candle_core::Error) -> mb_stats_files::error::Error {
    mb_stats_files::error::input(format!(
        "{}: {what}: {}",
        weights.source().display(),
        crate::candle_error::candle_message(e)
    ))
}

/// Reduce `[batch, length, hidden]` to `[batch, hidden]`: the first token or the mask-weighted mean.
pub fn pool(hidden: &Tensor, attention_mask: &Tensor, mean: bool) -> candle_core::Result<Tensor> {
    if !mean {
        return hidden.narrow(1, 0, 1)?.squeeze(1);
    }
    let mask = attention_mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
    let summed = hidden.to_dtype(DType::F32)?.broadcast_mul(&mask)?.sum(1)?;
    summed.broadcast_div(&mask.sum(1)?)
}
