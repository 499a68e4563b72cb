//! Parity of the BERT runtime with Hugging Face transformers, on the small checkpoints and
//! reference outputs that `scripts/make_bert_fixtures.py` made with transformers (committed in
//! tests/fixtures/bert/, so this test needs no Python).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use mb_stats_bert::Bert;
use mb_stats_bert::batch::pad_batch;
use mb_stats_bert::tokenizer::{BertTokenizer, TextInput, Tokens};

const MAX_LENGTH: usize = 24;
/// Checkpoints with reference outputs: BertForPreTraining as a zip `.bin` with the `bert.`
/// prefix and a position_ids buffer (gelu); BertModel as safetensors with a pooler (gelu_new,
/// cased); BertForMaskedLM with LayerNorm gamma/beta and no decoder weight (relu).
const CHECKPOINTS: [&str; 3] = ["pretraining-bin", "model-safetensors", "legacy-gamma-beta"];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bert")
        .join(name)
}

/// The fixture texts: `single` texts and `pairs`.
fn inputs() -> (Vec<TextInput>, Vec<TextInput>) {
    let texts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("texts.json")).unwrap()).unwrap();
    let single = texts["single"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| TextInput {
            text: t.as_str().unwrap().to_string(),
            pair: None,
        })
        .collect();
    let pairs = texts["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| TextInput {
            text: p[0].as_str().unwrap().to_string(),
            pair: Some(p[1].as_str().unwrap().to_string()),
        })
        .collect();
    (single, pairs)
}

fn reference(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name).join("reference.safetensors"), &Device::Cpu).unwrap()
}

fn expected_ids(dir: &str, which: &str) -> Vec<Vec<u32>> {
    let tokens: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(dir).join("tokens.json")).unwrap()).unwrap();
    tokens[which]
        .as_array()
        .unwrap()
        .iter()
        .map(|ids| {
            ids.as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

/// Largest |a − b| over the positions where `mask` is 1 (`a`, `b`: [batch, length, …]).
fn max_abs_diff_where(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    let a = a.to_dtype(DType::F32).unwrap();
    let b = b.to_dtype(DType::F32).unwrap();
    let diff = (a - b).unwrap().abs().unwrap();
    let mut mask = mask.to_dtype(DType::F32).unwrap();
    while mask.rank() < diff.rank() {
        mask = mask.unsqueeze(mask.rank()).unwrap();
    }
    diff.broadcast_mul(&mask)
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Frobenius norm over the positions where `mask` is 1.
fn norm_where(t: &Tensor, mask: &Tensor) -> f32 {
    let t = t.to_dtype(DType::F32).unwrap();
    let mask = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
    t.sqr()
        .unwrap()
        .broadcast_mul(&mask)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        .sqrt()
}

fn max_abs(t: &Tensor) -> f32 {
    t.to_dtype(DType::F32)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn token_ids_are_those_of_bert_tokenizer() {
    let (single, pairs) = inputs();
    for dir in CHECKPOINTS.iter().chain(&["fast-tokenizer"]) {
        let tokenizer = BertTokenizer::load(&fixture(dir), MAX_LENGTH, 40).unwrap();
        for (which, texts) in [("single", &single), ("pairs", &pairs)] {
            let ours: Vec<Vec<u32>> = tokenizer
                .encode_all(texts)
                .unwrap()
                .into_iter()
                .map(|t| t.ids)
                .collect();
            let theirs = expected_ids(dir, which);
            for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
                assert_eq!(o, t, "{dir} {which} text {i}: {:?}", texts[i]);
            }
            assert_eq!(ours.len(), theirs.len());
        }
    }
}

#[test]
fn truncation_and_special_tokens() {
    let tokenizer = BertTokenizer::load(&fixture("pretraining-bin"), MAX_LENGTH, 40).unwrap();
    let (single, _) = inputs();
    let tokens = tokenizer.encode_all(&single).unwrap();
    assert!(tokens.iter().all(|t| t.ids.len() <= MAX_LENGTH));
    assert!(
        tokens.iter().any(|t| t.ids.len() == MAX_LENGTH),
        "the long text is truncated to max_length"
    );
    let mask = tokenizer.token_id("[MASK]").unwrap();
    let with_mask = single.iter().position(|t| t.text.contains("[MASK]")).unwrap();
    assert!(tokens[with_mask].ids.contains(&mask), "literal [MASK] stays one token");
    let capped = BertTokenizer::load(&fixture("pretraining-bin"), 512, 40).unwrap();
    assert_eq!(capped.max_length(), 40, "capped by max_position_embeddings");
}

/// Run the model on all texts of one kind in one padded batch (as the reference did).
fn run(bert: &Bert, texts: &[TextInput]) -> (Tensor, Vec<Tensor>, Option<Tensor>, Option<Tensor>) {
    let tokens = bert.tokenizer().encode_all(texts).unwrap();
    let members: Vec<&Tokens> = tokens.iter().collect();
    let input = pad_batch(&members, bert.tokenizer().pad_id(), bert.device()).unwrap();
    let encoded = bert.model().forward(&input).unwrap();
    let logits = bert.model().mlm_logits(encoded.hidden_states.last().unwrap()).unwrap();
    (input.attention_mask, encoded.hidden_states, encoded.pooled, logits)
}

#[test]
fn every_hidden_state_matches_transformers_in_f32() {
    let (single, pairs) = inputs();
    for dir in CHECKPOINTS {
        let bert = Bert::load(&fixture(dir), &Device::Cpu, DType::F32, MAX_LENGTH).unwrap();
        let reference = reference(dir);
        for (which, texts) in [("single", &single), ("pairs", &pairs)] {
            let (mask, states, pooled, logits) = run(&bert, texts);
            let ids = bert.tokenizer().encode_all(texts).unwrap();
            let members: Vec<&Tokens> = ids.iter().collect();
            let ours_ids = pad_batch(&members, 0, &Device::Cpu)
                .unwrap()
                .input_ids
                .to_dtype(DType::I64)
                .unwrap();
            let theirs_ids = &reference[&format!("{which}.input_ids")];
            assert_eq!(
                ours_ids.to_vec2::<i64>().unwrap(),
                theirs_ids.to_vec2::<i64>().unwrap(),
                "{dir} {which} ids"
            );
            assert_eq!(states.len(), 3, "embeddings + 2 layers");
            for (i, state) in states.iter().enumerate() {
                let theirs = &reference[&format!("{which}.hidden_states.{i}")];
                let err = max_abs_diff_where(state, theirs, &mask);
                assert!(err < 1e-4, "{dir} {which} hidden state {i}: max |diff| {err:e}");
                // Padding is never computed: its rows come back zero.
                let padding = mask.to_dtype(DType::F32).unwrap().affine(-1.0, 1.0).unwrap();
                assert!(
                    padding.sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0,
                    "{which}: a padded batch"
                );
                let at_padding = norm_where(state, &padding);
                assert_eq!(at_padding, 0.0, "{dir} {which} hidden state {i}: non-zero at padding");
                println!("{dir} {which} f32 state {i}: max |diff| {err:.2e}");
            }
            match (pooled, reference.get(&format!("{which}.pooler"))) {
                (Some(ours), Some(theirs)) => {
                    let err = max_abs(&(ours - theirs).unwrap());
                    assert!(err < 1e-4, "{dir} {which} pooler: {err:e}");
                }
                (None, None) => {}
                (ours, theirs) => panic!("{dir}: pooler ours {} reference {}", ours.is_some(), theirs.is_some()),
            }
            match (logits, reference.get(&format!("{which}.mlm_logits"))) {
                (Some(ours), Some(theirs)) => {
                    let err = max_abs_diff_where(&ours, theirs, &mask);
                    assert!(err < 1e-3, "{dir} {which} MLM logits: {err:e}");
                    println!("{dir} {which} MLM logits: max |diff| {err:.2e}");
                }
                (None, None) => {}
                (ours, theirs) => panic!("{dir}: MLM head ours {} reference {}", ours.is_some(), theirs.is_some()),
            }
        }
    }
}

#[test]
fn half_precision_is_finite_and_close_to_f32() {
    let (single, _) = inputs();
    for dir in CHECKPOINTS {
        let full = Bert::load(&fixture(dir), &Device::Cpu, DType::F32, MAX_LENGTH).unwrap();
        let (mask, reference_states, _, _) = run(&full, &single);
        let half_errors: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture(dir).join("half_precision.json")).unwrap()).unwrap();
        for dtype in [DType::F16, DType::BF16] {
            let half = Bert::load(&fixture(dir), &Device::Cpu, dtype, MAX_LENGTH).unwrap();
            let (_, states, _, _) = run(&half, &single);
            for (i, (ours, theirs)) in states.iter().zip(&reference_states).enumerate() {
                let all = ours
                    .to_dtype(DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                assert!(
                    all.iter().all(|x| x.is_finite()),
                    "{dir} {dtype:?} state {i}: not finite (padding too)"
                );
                // Relative error in norm over the real tokens: within the 1e-2, and no
                // worse than transformers' own run of the same checkpoint in that dtype
                // (`half_precision.json`, by scripts/make_bert_fixtures.py).
                let relative = norm_where(&(ours.to_dtype(DType::F32).unwrap() - theirs).unwrap(), &mask)
                    / norm_where(theirs, &mask);
                let transformers = half_errors[if dtype == DType::F16 { "f16" } else { "bf16" }][i]
                    .as_f64()
                    .unwrap() as f32;
                println!("{dir} {dtype:?} state {i}: relative error {relative:.2e} (transformers {transformers:.2e})");
                assert!(
                    relative < 1e-2 && relative <= transformers,
                    "{dir} {dtype:?} hidden state {i}: relative error {relative:e}, transformers {transformers:e}"
                );
                let worst = max_abs_diff_where(ours, theirs, &mask) / max_abs(theirs);
                assert!(
                    worst < 2e-2,
                    "{dir} {dtype:?} hidden state {i}: worst element {worst:e}"
                );
            }
        }
    }
}

#[test]
fn a_legacy_pickle_is_refused_with_the_way_out() {
    let err = Bert::load(&fixture("legacy-pickle"), &Device::Cpu, DType::F32, MAX_LENGTH)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("legacy (non-zip) PyTorch pickle"), "{err}");
    assert!(err.contains("pytorch_model.bin") && err.contains("torch.save"), "{err}");
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn missing_and_misshaped_tensors_name_the_tensor_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["config.json", "vocab.txt", "tokenizer_config.json"] {
        std::fs::copy(fixture("model-safetensors").join(file), dir.path().join(file)).unwrap();
    }
    let mut tensors =
        candle_core::safetensors::load(fixture("model-safetensors").join("model.safetensors"), &Device::Cpu).unwrap();
    tensors.remove("encoder.layer.1.output.dense.weight").unwrap();
    let weights = dir.path().join("model.safetensors");
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let err = Bert::load(dir.path(), &Device::Cpu, DType::F32, MAX_LENGTH)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("missing tensor encoder.layer.1.output.dense.weight") && err.contains("model.safetensors"),
        "{err}"
    );

    let word = tensors["embeddings.word_embeddings.weight"].narrow(1, 0, 10).unwrap();
    tensors.insert("embeddings.word_embeddings.weight".into(), word);
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let err = Bert::load(dir.path(), &Device::Cpu, DType::F32, MAX_LENGTH)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("embeddings.word_embeddings.weight has shape"), "{err}");
}

/// In f32 a sentence's hidden states are the same bits whatever batch it is in and however many
/// threads compute it (every product sums in one fixed order), so a result never depends on how
/// a run was batched or on the machine's core count.
#[test]
fn a_sentence_gets_the_same_bits_in_any_batch_and_thread_count() {
    let (single, _) = inputs();
    for dir in CHECKPOINTS {
        let bert = Bert::load(&fixture(dir), &Device::Cpu, DType::F32, MAX_LENGTH).unwrap();
        let (mask, together, _, _) = run(&bert, &single);
        let lengths: Vec<f32> = mask.sum(1).unwrap().to_dtype(DType::F32).unwrap().to_vec1().unwrap();
        let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        for (i, text) in single.iter().enumerate() {
            let (_, alone, _, _) = one_thread.install(|| run(&bert, std::slice::from_ref(text)));
            for (layer, (batch, own)) in together.iter().zip(&alone).enumerate() {
                let n = lengths[i] as usize;
                let in_batch: Vec<Vec<f32>> = batch.get(i).unwrap().narrow(0, 0, n).unwrap().to_vec2().unwrap();
                let by_itself: Vec<Vec<f32>> = own.get(0).unwrap().narrow(0, 0, n).unwrap().to_vec2().unwrap();
                assert!(in_batch == by_itself, "{dir}: text {i}, hidden state {layer} differs");
            }
        }
    }
}
