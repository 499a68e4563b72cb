//! `mb-stats bench-mlm`: minimal pairs per second scored by pseudo-log-likelihood at BERT-base
//! sizes (random weights, MLM head) on real BLiMP pairs, and of transformers computing the same
//! scores on the same pairs and threads when asked (`bench/mlm_torch.py`), in one run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Tensor};

use crate::bench_bert::{bert_base, median, print_speed, random_tensors};
use crate::dataset::TextTable;
use mb_stats_bert::mlm::{PllScoring, pll_queries};
use mb_stats_bert::{Bert, Runtime};
use mb_stats_files::error::{Error, Result, input};

/// What `bench-mlm` times.
#[derive(Debug, Clone)]
pub struct BenchMlmOptions {
    /// BLiMP: a folder of paradigm files or one file with `sentence_good`/`sentence_bad`.
    pub pairs: PathBuf,
    /// A checkpoint directory whose vocabulary (`vocab.txt`, uncased BERT) tokenizes the pairs.
    pub tokenizer: PathBuf,
    /// How many pairs, taken from the paradigms in turn.
    pub n: usize,
    /// The scoring.
    pub scoring: PllScoring,
    /// Device, dtype, maximum length and batching (an error opening the device is an
    /// [`Error::Named`] of `{device}`).
    pub runtime: Runtime,
    /// Timed passes per tool; the median is reported.
    pub repeat: u32,
    /// Also time transformers with this Python.
    pub compare_torch: Option<PathBuf>,
}

/// Run the benchmark and print one line per tool, their ratio and their agreement.
pub fn run(args: &BenchMlmOptions) -> Result<()> {
    let device = args
        .runtime
        .device
        .open()
        .map_err(|e| Error::named(format!("{{device}} {}: {e}", args.runtime.device)))?;
    let sentences = pairs(&args.pairs, args.n)?;
    let checkpoint = tempfile::tempdir().map_err(|e| Error::Output(format!("temporary folder: {e}")))?;
    write_checkpoint(checkpoint.path(), &args.tokenizer)?;
    let bert = Bert::load(
        checkpoint.path(),
        &device,
        args.runtime.dtype.dtype(),
        args.runtime.max_length.get(),
    )?;
    println!(
        "BERT-base masked LM (random weights), {} BLiMP pairs ({} sentences), {}, batches of ≤ {} padded tokens, {} on {}, {} threads, median of {} passes",
        sentences.len() / 2,
        sentences.len(),
        args.scoring,
        args.runtime.batch_tokens.get(),
        args.runtime.dtype,
        args.runtime.device,
        rayon::current_num_threads(),
        args.repeat
    );
    let score = |bert: &Bert| -> Result<(Vec<f64>, usize)> {
        let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
        let pieces = bert.tokenizer().encode_words(&texts)?;
        let tokens: Vec<_> = pieces.iter().map(|p| p.tokens.clone()).collect();
        let queries: Vec<_> = pieces
            .iter()
            .enumerate()
            .flat_map(|(k, p)| pll_queries(k, p, args.scoring))
            .collect();
        let scores = bert.score_masked(&tokens, &queries, args.runtime.batch_tokens.get(), &|_| {})?;
        let mut pll = vec![0.0; texts.len()];
        for (q, s) in queries.iter().zip(scores) {
            pll[q.text] += s.log_probs[0];
        }
        Ok((pll, queries.len()))
    };
    score(&bert)?; // warm-up
    let mut passes = Vec::new();
    let mut ours = (Vec::new(), 0);
    for _ in 0..args.repeat {
        let start = Instant::now();
        ours = score(&bert)?;
        passes.push(start.elapsed().as_secs_f64());
    }
    let pairs_n = sentences.len() / 2;
    println!("{} masked copies per pass", ours.1);
    print_speed("mb-stats (candle)     ", pairs_n, "pairs", &passes);
    if bert.model().dtype() != DType::F32 {
        let exact = Bert::load(checkpoint.path(), &device, DType::F32, args.runtime.max_length.get())?;
        print_agreement(
            &format!("{} against our f32", args.runtime.dtype),
            &ours.0,
            &score(&exact)?.0,
        );
        let mut exact_passes = Vec::new();
        for _ in 0..args.repeat {
            let start = Instant::now();
            score(&exact)?;
            exact_passes.push(start.elapsed().as_secs_f64());
        }
        print_speed("mb-stats in f32       ", pairs_n, "pairs", &exact_passes);
        println!(
            "ratio {} / our f32: {:.2}",
            args.runtime.dtype,
            median(&exact_passes) / median(&passes)
        );
    }
    if let Some(python) = &args.compare_torch {
        let (torch_passes, torch_pll) = time_torch(python, checkpoint.path(), &sentences, args)?;
        print_speed("transformers (PyTorch)", pairs_n, "pairs", &torch_passes);
        println!(
            "ratio mb-stats / transformers: {:.2}",
            median(&torch_passes) / median(&passes)
        );
        print_agreement("agreement", &ours.0, &torch_pll);
    }
    Ok(())
}

/// The largest PLL difference between two scorings of the same sentences (good, bad, …) and the
/// pairs on which both prefer the same sentence.
fn print_agreement(what: &str, ours: &[f64], theirs: &[f64]) {
    let worst = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let agree = ours
        .chunks(2)
        .zip(theirs.chunks(2))
        .filter(|(a, b)| (a[0] > a[1]) == (b[0] > b[1]))
        .count();
    println!(
        "{what}: max |PLL difference| {worst:.2e}, same prediction on {agree}/{} pairs",
        ours.len() / 2
    );
}

/// `n` pairs' sentences (good, bad, good, …), taken from the files of `path` in turn.
fn pairs(path: &Path, n: usize) -> Result<Vec<String>> {
    let files: Vec<PathBuf> = match path.is_dir() {
        true => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| input(format!("{}: {e}", path.display())))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                .collect();
            files.sort();
            files
        }
        false => vec![path.to_path_buf()],
    };
    let tables = files.iter().map(|f| TextTable::read(f)).collect::<Result<Vec<_>>>()?;
    let mut columns = Vec::new();
    for table in &tables {
        columns.push((table.column("sentence_good")?, table.column("sentence_bad")?));
    }
    let mut sentences = Vec::with_capacity(2 * n);
    for row in 0.. {
        if sentences.len() == 2 * n || columns.iter().all(|(g, _)| row >= g.len()) {
            break;
        }
        for (good, bad) in &columns {
            if row < good.len() && sentences.len() < 2 * n {
                sentences.push(good[row].clone());
                sentences.push(bad[row].clone());
            }
        }
    }
    if sentences.is_empty() {
        return Err(input(format!("{}: no pairs", path.display())));
    }
    Ok(sentences)
}

/// A BERT-base checkpoint with random weights and an MLM head in `dir` (`model.safetensors`
/// under `bert.` names, `config.json`), with the vocabulary of `tokenizer`.
fn write_checkpoint(dir: &Path, tokenizer: &Path) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| Error::Output(format!("{}: {e}", dir.display()));
    let vocab = tokenizer.join("vocab.txt");
    std::fs::copy(&vocab, dir.join("vocab.txt")).map_err(|e| input(format!("{}: {e}", vocab.display())))?;
    let config = bert_base();
    let tensors: std::collections::HashMap<String, Tensor> = random_tensors(&config, true)?
        .into_iter()
        .map(|(name, t)| match name.starts_with("cls.") {
            true => (name, t),
            false => (format!("bert.{name}"), t),
        })
        .collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).map_err(|e| fail(&e))?;
    let json = serde_json::json!({
        "architectures": ["BertForMaskedLM"], "model_type": "bert",
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size, "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "pad_token_id": 0,
        "tie_word_embeddings": true,
    });
    std::fs::write(dir.join("config.json"), json.to_string()).map_err(|e| fail(&e))?;
    std::fs::write(dir.join("tokenizer_config.json"), r#"{"do_lower_case": true}"#).map_err(|e| fail(&e))
}

/// `bench/mlm_torch.py`, carried inside the binary.
const TORCH_SCRIPT: &str = include_str!("../../../bench/mlm_torch.py");

/// Run `bench/mlm_torch.py` on the same checkpoint and sentences: its pass seconds and PLLs.
fn time_torch(
    python: &Path,
    checkpoint: &Path,
    sentences: &[String],
    args: &BenchMlmOptions,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let temp = |e: std::io::Error| Error::Output(format!("temporary file: {e}"));
    let list = checkpoint.join("sentences.json");
    std::fs::write(&list, serde_json::to_string(sentences).expect("strings")).map_err(temp)?;
    let script = checkpoint.join("mlm_torch.py");
    std::fs::write(&script, TORCH_SCRIPT).map_err(temp)?;
    let output = std::process::Command::new(python)
        .arg(&script)
        .args([
            "--model",
            &checkpoint.to_string_lossy(),
            "--sentences",
            &list.to_string_lossy(),
        ])
        .args(["--scoring", &args.scoring.to_string()])
        .args(["--dtype", &args.runtime.dtype.to_string()])
        .args(["--threads", &rayon::current_num_threads().to_string()])
        .args(["--device", if args.runtime.device.is_cuda() { "cuda" } else { "cpu" }])
        .args(["--repeat", &args.repeat.to_string()])
        .output()
        .map_err(|e| Error::named(format!("{{compare_torch}} {}: {e}", python.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let parsed: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).map_err(|_| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Error::named(format!(
            "{{compare_torch}}: bench/mlm_torch.py failed: {}",
            stderr.lines().last().unwrap_or("no output")
        ))
    })?;
    let numbers = |key: &str| -> Option<Vec<f64>> { parsed[key].as_array()?.iter().map(|v| v.as_f64()).collect() };
    match (numbers("pass_seconds"), numbers("pll")) {
        (Some(passes), Some(pll)) if !passes.is_empty() && pll.len() == sentences.len() => Ok((passes, pll)),
        _ => Err(Error::named(
            "{compare_torch}: no pass_seconds or pll in the script's output",
        )),
    }
}
