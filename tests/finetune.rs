//! Fine-tuning on candle against transformers' `BertForSequenceClassification`, with the
//! reference runs `scripts/make_finetune_fixtures.py` recorded in tests/fixtures/finetune/ (so
//! this test needs no Python): the loss of every step and the final logits with dropout off,
//! gradients reaching every tensor, the accuracy transformers reaches with dropout on, and
//! determinism.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use mb_stats_bert::Bert;
use mb_stats_bert::batch::pad_batch;
use mb_stats_bert::finetune::{FineTuner, Objective, Settings, Targets, fine_tune};
use mb_stats_bert::tokenizer::{TextInput, Tokens};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("finetune/reference.json")).unwrap()).unwrap()
}

fn bert() -> Bert {
    Bert::load(&root().join("bert/pretraining-bin"), &Device::Cpu, DType::F32, 24).unwrap()
}

fn texts(split: &Value) -> Vec<TextInput> {
    split["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| TextInput {
            text: t.as_str().unwrap().to_string(),
            pair: None,
        })
        .collect()
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn tensor(v: &Value) -> Tensor {
    match v.as_array().unwrap()[0].is_array() {
        true => {
            let rows: Vec<Vec<f32>> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|r| numbers(r).into_iter().map(|x| x as f32).collect())
                .collect();
            Tensor::new(rows, &Device::Cpu).unwrap()
        }
        false => Tensor::new(
            numbers(v).into_iter().map(|x| x as f32).collect::<Vec<_>>(),
            &Device::Cpu,
        )
        .unwrap(),
    }
}

/// Our tokenizer gives the ids transformers trained on.
fn tokens(bert: &Bert, split: &Value) -> Vec<Tokens> {
    let tokens = bert.tokenizer().encode_all(&texts(split)).unwrap();
    let expected: Vec<Vec<u32>> = split["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ids| numbers(ids).into_iter().map(|x| x as u32).collect())
        .collect();
    assert_eq!(tokens.iter().map(|t| t.ids.clone()).collect::<Vec<_>>(), expected);
    tokens
}

fn parity_settings(objective: Objective, reference: &Value) -> Settings {
    let s = &reference["parity"]["settings"];
    Settings {
        epochs: 1,
        batch_size: s["batch"].as_u64().unwrap() as usize,
        warmup: s["warmup"].as_f64().unwrap(),
        weight_decay: s["weight_decay"].as_f64().unwrap(),
        max_grad_norm: s["max_grad_norm"].as_f64().unwrap(),
        dropout: false,
        ..Settings::glue(objective, s["lr"].as_f64().unwrap(), 0)
    }
}

/// 30 steps in transformers' batch order from transformers' initial head: the loss of every
/// step within 1e-4 relative, the final eval logits within 1e-3.
fn check_parity(case: &str, objective: Objective) {
    let reference = reference();
    let bert = bert();
    let run = &reference["parity"][case];
    let train = tokens(&bert, &reference["train"]);
    let eval = tokens(&bert, &reference["eval"]);
    let batches: Vec<Vec<usize>> = run["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| numbers(b).into_iter().map(|x| x as usize).collect())
        .collect();
    let mut tuner = FineTuner::new(&bert, &parity_settings(objective, &reference), batches.len()).unwrap();
    tuner
        .set_head(&tensor(&run["head"]["weight"]), &tensor(&run["head"]["bias"]))
        .unwrap();
    let pad = bert.tokenizer().pad_id();
    let expected = numbers(&run["losses"]);
    let mut worst_loss: f64 = 0.0;
    for (k, rows) in batches.iter().enumerate() {
        let batch = pad_batch(&rows.iter().map(|&i| &train[i]).collect::<Vec<_>>(), pad, &Device::Cpu).unwrap();
        let targets = match objective {
            Objective::Classification(_) => Tensor::new(
                rows.iter()
                    .map(|&i| reference["train"]["labels"][i].as_u64().unwrap() as u32)
                    .collect::<Vec<_>>(),
                &Device::Cpu,
            ),
            Objective::Regression => Tensor::new(
                rows.iter()
                    .map(|&i| reference["train"]["targets"][i].as_f64().unwrap() as f32)
                    .collect::<Vec<_>>(),
                &Device::Cpu,
            ),
        }
        .unwrap();
        let loss = tuner.step(&batch, &targets).unwrap().loss;
        let relative = (loss - expected[k]).abs() / expected[k].abs();
        assert!(
            relative < 1e-4,
            "{case} step {k}: loss {loss} vs transformers {}",
            expected[k]
        );
        worst_loss = worst_loss.max(relative);
    }
    let batch = pad_batch(&eval.iter().collect::<Vec<_>>(), pad, &Device::Cpu).unwrap();
    let logits: Vec<Vec<f32>> = tuner.predict(&batch).unwrap().to_vec2().unwrap();
    let worst = logits
        .iter()
        .flatten()
        .zip(run["eval_logits"].as_array().unwrap().iter().flat_map(numbers))
        .map(|(&a, b)| (a as f64 - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-3, "{case}: eval logits differ by up to {worst}");
    eprintln!("{case}: losses within {worst_loss:.1e} relative, eval logits within {worst:.1e}");
}

#[test]
fn classification_matches_transformers_step_by_step() {
    check_parity("classification", Objective::Classification(2));
}

#[test]
fn regression_matches_transformers_step_by_step() {
    check_parity("regression", Objective::Regression);
}

#[test]
fn one_step_reaches_and_moves_every_trainable_tensor() {
    let reference = reference();
    let bert = bert();
    let train = tokens(&bert, &reference["train"]);
    let settings = Settings {
        warmup: 0.0,
        ..Settings::glue(Objective::Classification(2), 1e-3, 3)
    };
    let mut tuner = FineTuner::new(&bert, &settings, 10).unwrap();
    let before = tuner.parameters();
    let batch = pad_batch(
        &train[..8].iter().collect::<Vec<_>>(),
        bert.tokenizer().pad_id(),
        &Device::Cpu,
    )
    .unwrap();
    let labels: Vec<u32> = (0..8)
        .map(|i| reference["train"]["labels"][i].as_u64().unwrap() as u32)
        .collect();
    let report = tuner.step(&batch, &Tensor::new(labels, &Device::Cpu).unwrap()).unwrap();
    // 2 layers × 16 tensors (qkv fused) + 5 embedding + 2 pooler + 2 head tensors.
    assert_eq!(report.gradient_norms.len(), 2 * 12 + 5 + 2 + 2);
    for (name, norm) in &report.gradient_norms {
        let norm = norm.unwrap_or_else(|| panic!("{name}: no gradient"));
        assert!(norm.is_finite() && norm > 0.0, "{name}: gradient norm {norm}");
    }
    for ((name, old), (_, new)) in before.iter().zip(tuner.parameters()) {
        let moved = (old - &new)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(moved > 0.0, "{name} did not move");
    }
}

/// With dropout on (the checkpoint's 0.1), the loss falls and the eval accuracy reaches what
/// transformers reaches with the same recipe (means over five fine-tuning seeds each).
#[test]
fn with_dropout_it_learns_as_well_as_transformers() {
    let reference = reference();
    let bert = bert();
    let setup = &reference["dropout"]["settings"];
    let labels: Vec<u32> = numbers(&reference["train"]["labels"])
        .into_iter()
        .map(|x| x as u32)
        .collect();
    let gold = numbers(&reference["eval"]["labels"]);
    let mean = |l: &[f64]| l.iter().sum::<f64>() / l.len() as f64;
    let (mut accuracies, mut falls) = (Vec::new(), Vec::new());
    for seed in 0..5 {
        let settings = Settings {
            epochs: setup["epochs"].as_u64().unwrap() as usize,
            batch_size: setup["batch"].as_u64().unwrap() as usize,
            ..Settings::glue(Objective::Classification(2), setup["lr"].as_f64().unwrap(), seed)
        };
        let tuned = fine_tune(
            &bert,
            &texts(&reference["train"]),
            &Targets::Classes(labels.clone()),
            &texts(&reference["eval"]),
            &settings,
            4096,
            &|_| {},
        )
        .unwrap();
        let losses = &tuned.losses;
        falls.push(mean(&losses[losses.len() - 16..]) / mean(&losses[..16]));
        let correct = tuned
            .outputs
            .iter()
            .zip(&gold)
            .filter(|(o, g)| (o[1] > o[0]) == (**g == 1.0))
            .count();
        accuracies.push(correct as f64 / gold.len() as f64);
    }
    let runs = reference["dropout"]["runs"].as_array().unwrap();
    let theirs = |field: &str| mean(&runs.iter().map(|r| r[field].as_f64().unwrap()).collect::<Vec<_>>());
    let their_fall = theirs("last_losses") / theirs("first_losses");
    // transformers: the last 16 steps' loss is about a fifth of the first 16's, accuracy ≈ 0.99.
    assert!(
        mean(&falls) < their_fall + 0.15,
        "loss ratios last/first {falls:?} vs transformers {their_fall}"
    );
    let (ours, theirs) = (mean(&accuracies), theirs("accuracy"));
    assert!(
        ours > theirs - 0.05,
        "accuracy {accuracies:?} (mean {ours}) vs transformers {theirs}"
    );
}

#[test]
fn the_same_seed_gives_the_same_predictions_and_another_seed_others() {
    let reference = reference();
    let bert = bert();
    let labels: Vec<u32> = numbers(&reference["train"]["labels"])
        .into_iter()
        .map(|x| x as u32)
        .collect();
    let run = |seed: u64| {
        let settings = Settings {
            epochs: 1,
            batch_size: 16,
            ..Settings::glue(Objective::Classification(2), 1e-3, seed)
        };
        fine_tune(
            &bert,
            &texts(&reference["train"])[..64],
            &Targets::Classes(labels[..64].to_vec()),
            &texts(&reference["eval"]),
            &settings,
            4096,
            &|_| {},
        )
        .unwrap()
        .outputs
    };
    let first = run(1);
    assert_eq!(first, run(1));
    assert_ne!(first, run(2));
}
