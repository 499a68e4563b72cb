//! Continued masked-LM pretraining against transformers: 30 optimiser steps on the masked batches
//! `scripts/make_pretrain_fixtures.py` made and trained `BertForMaskedLM` on (committed in
//! tests/fixtures/pretrain/), the loss of every step compared.

use std::path::PathBuf;

use candle_core::{DType, Device};
use serde_json::Value;

use mb_stats_bert::Bert;
use mb_stats_bert::pretrain::{Masked, PretrainSettings, Pretrainer};
use mb_stats_bert::train::Optimisation;

/// Relative difference allowed per step (f32 on both sides, 30 steps of AdamW).
const TOLERANCE: f64 = 1e-4;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_loss_curve_matches_transformers_step_by_step() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/pretrain/parity.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let s = &reference["settings"];
    let bert = Bert::load(
        &root().join("data/quickstart/models/tiny-multiberts-seed_0"),
        &Device::Cpu,
        DType::F32,
        64,
    )
    .unwrap();
    let settings = PretrainSettings {
        optimisation: Optimisation {
            lr: s["lr"].as_f64().unwrap(),
            warmup: s["warmup"].as_f64().unwrap(),
            weight_decay: s["weight_decay"].as_f64().unwrap(),
            max_grad_norm: s["max_grad_norm"].as_f64().unwrap(),
        },
        dropout: Some(0.0),
        attention_dropout: Some(0.0),
        seed: 0,
        compute: DType::F32,
    };
    let steps = reference["steps"].as_array().unwrap();
    let mut trainer = Pretrainer::new(&bert, &settings, steps.len())
        .unwrap()
        .expect("an MLM head");
    let mut worst = 0f64;
    for (k, step) in steps.iter().enumerate() {
        let batch: Vec<Masked> = step["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .zip(step["labels"].as_array().unwrap())
            .map(|(ids, labels)| {
                let ids: Vec<u32> = ids
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect();
                let labels: Vec<i64> = labels.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
                let positions: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] >= 0).collect();
                Masked {
                    targets: positions.iter().map(|&i| labels[i] as u32).collect(),
                    positions,
                    ids,
                }
            })
            .collect();
        let ours = trainer.step(&batch).unwrap().loss;
        let theirs = step["loss"].as_f64().unwrap();
        let relative = (ours - theirs).abs() / theirs.abs();
        worst = worst.max(relative);
        assert!(
            relative <= TOLERANCE,
            "step {}: {ours} against transformers' {theirs}",
            k + 1
        );
    }
    let (first, last) = (
        steps[0]["loss"].as_f64().unwrap(),
        steps[steps.len() - 1]["loss"].as_f64().unwrap(),
    );
    assert!(last < first, "the loss fell in the reference: {first} -> {last}");
    eprintln!(
        "largest relative loss difference over {} steps: {worst:.2e}",
        steps.len()
    );
}
