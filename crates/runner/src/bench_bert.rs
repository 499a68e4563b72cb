//! `mb-stats bench-bert`: sentences per second of the BERT runtime at BERT-base sizes (random
//! weights), and of PyTorch + transformers on exactly the same batches when asked, in one run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use mb_stats_bert::Runtime;
use mb_stats_bert::batch::{pad_batch, plan_batches};
use mb_stats_bert::candle_error::candle_message;
use mb_stats_bert::config::{Activation, BertConfig};
use mb_stats_bert::model::BertModel;
use mb_stats_bert::tokenizer::Tokens;
use mb_stats_bert::weights::Weights;
use mb_stats_files::error::{Error, Result};

/// BERT-base: 12 layers of width 768, 12 heads, the uncased vocabulary.
pub fn bert_base() -> BertConfig {
    BertConfig {
        vocab_size: 30522,
        hidden_size: 768,
        num_hidden_layers: 12,
        num_attention_heads: 12,
        intermediate_size: 3072,
        hidden_act: Activation::Gelu,
        max_position_embeddings: 512,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        pad_token_id: 0,
        hidden_dropout_prob: 0.1,
        attention_probs_dropout_prob: 0.1,
        classifier_dropout: None,
        initializer_range: 0.02,
    }
}

/// Token lengths like GLUE SST-2 sentences under the BERT uncased WordPiece vocabulary (mean
/// about 26 with `[CLS]`/`[SEP]`, from 5 to 66): a fixed, seeded mix, the same on every machine.
pub fn sst2_like_lengths(n: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(2022);
    (0..n)
        .map(|_| {
            // Sum of three uniforms on 1..=15 (a rounded bell around 24) plus the two special tokens.
            let words: usize = (0..3).map(|_| 1 + (rng.next_u64() % 15) as usize).sum();
            let tail = if rng.next_u64() % 8 == 0 {
                (rng.next_u64() % 20) as usize
            } else {
                0
            };
            words + tail + 2
        })
        .collect()
}

/// `n` random token sequences with the SST-2-like length mix.
fn synthetic_sentences(n: usize) -> Vec<Tokens> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    sst2_like_lengths(n)
        .into_iter()
        .map(|len| {
            let mut ids: Vec<u32> = (0..len).map(|_| 1000 + (rng.next_u64() % 29000) as u32).collect();
            ids[0] = 101;
            ids[len - 1] = 102;
            Tokens {
                ids,
                type_ids: vec![0; len],
            }
        })
        .collect()
}

/// The first `n` sentences of `file`, tokenized by the checkpoint `dir`'s tokenizer.
fn real_sentences(file: &Path, dir: &Path, n: usize, max_length: usize) -> Result<Vec<Tokens>> {
    let mut table = crate::dataset::TextTable::read(file)?;
    table.truncate(n);
    let inputs = table.inputs(None, None)?;
    mb_stats_bert::tokenizer::BertTokenizer::load(dir, max_length, 512)?.encode_all(&inputs)
}

/// What `bench-bert` times.
#[derive(Debug, Clone)]
pub struct BenchBertOptions {
    /// Sentences to time (a table with a text or sentence column); `None`: a synthetic length mix.
    pub sentences: Option<PathBuf>,
    /// Checkpoint directory whose tokenizer tokenizes `sentences`.
    pub tokenizer: Option<PathBuf>,
    /// How many sentences to time.
    pub n: usize,
    /// Device, dtype and batching (an error opening the device is an [`Error::Named`] of
    /// `{device}`); sentences are cut at its maximum length.
    pub runtime: Runtime,
    /// Timed passes over all sentences per tool; the median pass is reported.
    pub repeat: u32,
    /// Also time PyTorch + transformers with this Python.
    pub compare_torch: Option<PathBuf>,
}

/// Run the benchmark and print one line per tool.
pub fn run(args: &BenchBertOptions) -> Result<()> {
    let device = args
        .runtime
        .device
        .open()
        .map_err(|e| Error::named(format!("{{device}} {}: {e}", args.runtime.device)))?;
    let dtype = mb_stats_bert::cpu::runnable_dtype(args.runtime.dtype.dtype(), &device);
    let config = bert_base();
    let tokens = match (&args.sentences, &args.tokenizer) {
        (Some(file), Some(dir)) => real_sentences(file, dir, args.n, args.runtime.max_length.get())?,
        _ => synthetic_sentences(args.n),
    };
    let lengths: Vec<usize> = tokens.iter().map(|t| t.ids.len()).collect();
    let batches = plan_batches(&lengths, args.runtime.batch_tokens.get());
    let model = random_model(&config, &device, dtype)?;
    let real: usize = lengths.iter().sum();
    let padded: usize = batches.iter().map(|b| b.len() * lengths[b[0]]).sum();
    println!(
        "BERT-base forward (all hidden states, random weights), {} sentences (mean {:.1} tokens), {} batches of ≤ {} padded tokens ({real} real tokens, {padded} with padding), {:?} on {}, {} threads, median of {} passes",
        tokens.len(),
        real as f64 / lengths.len().max(1) as f64,
        batches.len(),
        args.runtime.batch_tokens.get(),
        dtype,
        args.runtime.device,
        rayon::current_num_threads(),
        args.repeat
    );
    let ours = time_ours(&model, &tokens, &batches, &device, args.repeat)?;
    print_speed("mb-stats (candle)     ", tokens.len(), "sentences", &ours);
    if dtype != DType::F32 {
        let exact = random_model(&config, &device, DType::F32)?;
        let exact = time_ours(&exact, &tokens, &batches, &device, args.repeat)?;
        print_speed("mb-stats in f32       ", tokens.len(), "sentences", &exact);
        println!(
            "ratio {} / our f32: {:.2}",
            args.runtime.dtype,
            median(&exact) / median(&ours)
        );
    }
    if let Some(python) = &args.compare_torch {
        let torch = time_torch(python, &config, &tokens, &batches, args)?;
        print_speed("PyTorch + transformers", tokens.len(), "sentences", &torch);
        println!("ratio mb-stats / PyTorch: {:.2}", median(&torch) / median(&ours));
    }
    Ok(())
}

/// One line: items (`unit`) per second of the median pass, and of the slowest and fastest.
pub(crate) fn print_speed(tool: &str, items: usize, unit: &str, pass_seconds: &[f64]) {
    let speed = |s: f64| items as f64 / s;
    let (fastest, slowest) = pass_seconds
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), &s| (lo.min(s), hi.max(s)));
    println!(
        "{tool} {:>9.2} {unit}/s (passes {:.2}–{:.2})",
        speed(median(pass_seconds)),
        speed(slowest),
        speed(fastest)
    );
}

pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

fn random_model(config: &BertConfig, device: &Device, dtype: DType) -> Result<BertModel> {
    let tensors = random_tensors(config, false)?;
    let weights = Weights::from_tensors(tensors, Path::new("<random BERT-base>"), device, dtype);
    BertModel::load(&weights, config, dtype)
}

/// Random weights (normal, σ 0.02, seeded by candle's CPU generator) of a BERT with `config`'s
/// shapes under transformers' `BertModel` names, plus the masked-LM head (`cls.predictions.*`,
/// decoder tied to the word embeddings) when `mlm_head`.
pub fn random_tensors(config: &BertConfig, mlm_head: bool) -> Result<HashMap<String, Tensor>> {
    let (h, i, v) = (config.hidden_size, config.intermediate_size, config.vocab_size);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![v, h]),
        (
            "embeddings.position_embeddings.weight".into(),
            vec![config.max_position_embeddings, h],
        ),
        (
            "embeddings.token_type_embeddings.weight".into(),
            vec![config.type_vocab_size, h],
        ),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    for layer in 0..config.num_hidden_layers {
        let p = format!("encoder.layer.{layer}");
        for name in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ] {
            shapes.push((format!("{p}.{name}.weight"), vec![h, h]));
            shapes.push((format!("{p}.{name}.bias"), vec![h]));
        }
        shapes.push((format!("{p}.intermediate.dense.weight"), vec![i, h]));
        shapes.push((format!("{p}.intermediate.dense.bias"), vec![i]));
        shapes.push((format!("{p}.output.dense.weight"), vec![h, i]));
        shapes.push((format!("{p}.output.dense.bias"), vec![h]));
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            shapes.push((format!("{p}.{norm}.weight"), vec![h]));
            shapes.push((format!("{p}.{norm}.bias"), vec![h]));
        }
    }
    if mlm_head {
        shapes.push(("cls.predictions.transform.dense.weight".into(), vec![h, h]));
        for name in [
            "transform.dense.bias",
            "transform.LayerNorm.weight",
            "transform.LayerNorm.bias",
        ] {
            shapes.push((format!("cls.predictions.{name}"), vec![h]));
        }
        shapes.push(("cls.predictions.bias".into(), vec![v]));
    }
    let failed = |e: candle_core::Error| Error::Output(format!("random weights: {}", candle_message(&e)));
    let mut tensors = HashMap::new();
    for (name, shape) in shapes {
        tensors.insert(name, Tensor::randn(0f32, 0.02, shape, &Device::Cpu).map_err(failed)?);
    }
    Ok(tensors)
}

/// Seconds of each of `repeat` passes over all batches, after one warm-up batch.
fn time_ours(
    model: &BertModel,
    tokens: &[Tokens],
    batches: &[Vec<usize>],
    device: &Device,
    repeat: u32,
) -> Result<Vec<f64>> {
    let failed = |e: candle_core::Error| Error::Output(format!("running the model: {}", candle_message(&e)));
    let run = |batch: &[usize]| -> Result<()> {
        let members: Vec<&Tokens> = batch.iter().map(|&i| &tokens[i]).collect();
        let input = pad_batch(&members, 0, device).map_err(failed)?;
        let out = model.forward(&input).map_err(failed)?;
        // Reading one value back waits for asynchronous devices to finish.
        out.hidden_states
            .last()
            .expect("states")
            .flatten_all()
            .and_then(|t| t.get(0)?.to_dtype(DType::F32)?.to_scalar::<f32>())
            .map_err(failed)?;
        Ok(())
    };
    if let Some(first) = batches.first() {
        run(first)?;
    }
    (0..repeat)
        .map(|_| {
            let start = Instant::now();
            for batch in batches {
                run(batch)?;
            }
            Ok(start.elapsed().as_secs_f64())
        })
        .collect()
}

/// `bench/bert_torch.py`, the PyTorch side of the benchmark.
const TORCH_SCRIPT: &str = include_str!("../../../bench/bert_torch.py");

/// Write the batches for `bench/bert_torch.py`, run it, and read the seconds of its passes.
fn time_torch(
    python: &Path,
    config: &BertConfig,
    tokens: &[Tokens],
    batches: &[Vec<usize>],
    args: &BenchBertOptions,
) -> Result<Vec<f64>> {
    let ids: Vec<Vec<&Vec<u32>>> = batches
        .iter()
        .map(|b| b.iter().map(|&i| &tokens[i].ids).collect())
        .collect();
    let spec = serde_json::json!({
        "config": {
            "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
            "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": config.num_attention_heads,
            "intermediate_size": config.intermediate_size, "max_position_embeddings": config.max_position_embeddings,
            "type_vocab_size": config.type_vocab_size, "hidden_act": "gelu",
        },
        "batches": ids,
    });
    let file = tempfile::NamedTempFile::new().map_err(|e| Error::Output(format!("temporary file: {e}")))?;
    std::fs::write(file.path(), spec.to_string()).map_err(|e| Error::Output(format!("temporary file: {e}")))?;
    // The script travels inside the binary, so an installed or copied binary (the GPU machine)
    // needs no checkout.
    let script = tempfile::Builder::new()
        .suffix(".py")
        .tempfile()
        .and_then(|mut f| std::io::Write::write_all(&mut f, TORCH_SCRIPT.as_bytes()).map(|_| f))
        .map_err(|e| Error::Output(format!("temporary file: {e}")))?;
    let script = script.path();
    let torch_device = if args.runtime.device.is_cuda() { "cuda" } else { "cpu" };
    let output = std::process::Command::new(python)
        .arg(script)
        .args(["--batches", &file.path().to_string_lossy()])
        .args(["--threads", &rayon::current_num_threads().to_string()])
        .args(["--dtype", &args.runtime.dtype.to_string(), "--device", torch_device])
        .args(["--repeat", &args.repeat.to_string()])
        .output()
        .map_err(|e| Error::named(format!("{{compare_torch}} {}: {e}", python.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let parsed: serde_json::Value = serde_json::from_str(line).map_err(|_| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Error::named(format!(
            "{{compare_torch}}: bench/bert_torch.py failed: {}",
            stderr.lines().last().unwrap_or("no output")
        ))
    })?;
    parsed["pass_seconds"]
        .as_array()
        .and_then(|passes| passes.iter().map(|s| s.as_f64()).collect::<Option<Vec<f64>>>())
        .filter(|passes| !passes.is_empty())
        .ok_or_else(|| Error::named("{compare_torch}: no pass_seconds in the script's output"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
    }
}
