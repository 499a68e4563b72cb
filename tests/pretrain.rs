//! Continued masked-LM pretraining against transformers: 30 optimiser steps on the masked batches
//! `scripts/make_pretrain_fixtures.py` made and trained `BertForMaskedLM` on (committed in
//! tests/fixtures/pretrain/), the loss of every step compared; then `kind = "pretrain"` end to end
//! through `mb-stats run`.

mod support;

use std::path::{Path, PathBuf};

use polars::prelude::*;
use support::{assert_refused, mb_stats};

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

/// A pretraining experiment over seeds 0-1 of the tiny suite with `task`'s settings (and no
/// `[analysis]`: the kind's own metric, the mean change of the held-out loss).
fn write_experiment(dir: &Path, name: &str, task: &str) -> PathBuf {
    let text = format!(
        "[models]\nsuite = \"local\"\npath = \"{m}/tiny-multiberts-seed_{{seed}}\"\nseeds = \"0-1\"\ngroup = \"tiny\"\n\n[data]\ncorpus = \"{c}\"\n\n[task]\nkind = \"pretrain\"\n{task}\n[runtime]\ndevice = \"cpu\"\nmax_length = 64\n",
        m = root().join("data/quickstart/models").display(),
        c = root().join("data/quickstart/sentiment/train.tsv").display(),
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(experiment: &Path, out: &Path) -> std::process::Output {
    let done = mb_stats(&[
        "run",
        experiment.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    done
}

fn column(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name).unwrap().f64().unwrap().into_no_null_iter().collect()
}

/// `mb-stats run` with `kind = "pretrain"`: the held-out masked-LM loss of every seed falls; each
/// seed's result is a checkpoint in the Hugging Face layout, readable by others, that a later
/// experiment reads as its suite; a second run reuses it; CDA trains on other data.
#[test]
fn continued_pretraining_writes_checkpoints_a_later_experiment_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = "steps = 30\nbatch_size = 8\nlr = 1e-3\n";
    let control = write_experiment(tmp.path(), "control.toml", settings);
    let out = tmp.path().join("control");
    run(&control, &out);
    let results = ParquetReader::new(std::fs::File::open(out.join("results.parquet")).unwrap())
        .finish()
        .unwrap();
    for seed in [0i64, 1] {
        let mask = results.column("seed").unwrap().i64().unwrap().equal(seed);
        let rows = results.filter(&mask).unwrap();
        let (before, after) = (column(&rows, "label"), column(&rows, "prediction"));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(!before.is_empty());
        assert!(
            mean(&after) < mean(&before) - 0.5,
            "seed {seed}: held-out loss {} -> {}",
            mean(&before),
            mean(&after)
        );
    }
    let checkpoint = out.join("runs/tiny/seed_0/checkpoint");
    for file in ["config.json", "vocab.txt", "model.safetensors"] {
        assert!(checkpoint.join(file).is_file(), "{file}");
    }
    let tensors = candle_core::safetensors::load(checkpoint.join("model.safetensors"), &Device::Cpu).unwrap();
    for name in [
        "bert.embeddings.word_embeddings.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
        "cls.predictions.transform.dense.weight",
        "cls.predictions.bias",
        "cls.seq_relationship.weight",
    ] {
        assert!(tensors.contains_key(name), "{name} is saved");
    }
    let original = Bert::load(
        &root().join("data/quickstart/models/tiny-multiberts-seed_0"),
        &Device::Cpu,
        DType::F32,
        64,
    )
    .unwrap();
    let trained = Bert::load(&checkpoint, &Device::Cpu, DType::F32, 64).unwrap();
    assert!(trained.has_mlm_head());
    let features = |bert: &Bert| -> Vec<f32> {
        let input = mb_stats_bert::tokenizer::TextInput {
            text: "a fine film".into(),
            pair: None,
        };
        let last = bert.n_hidden_states() - 1;
        match bert
            .features(&[input], &[last], mb_stats_bert::Pooling::Cls, 64, &|_| {})
            .unwrap()
        {
            mb_stats_bert::Features::Pooled(layers) => layers[0].iter().copied().collect(),
            _ => unreachable!(),
        }
    };
    assert_ne!(features(&original), features(&trained), "training moved the weights");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let plain_mode = std::fs::File::create(tmp.path().join("plain"))
            .unwrap()
            .metadata()
            .unwrap()
            .permissions()
            .mode();
        let mode = std::fs::metadata(checkpoint.join("model.safetensors"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, plain_mode & 0o777, "the weights have a plain file's mode");
    }

    // A second run reuses every finished checkpoint.
    let modified = std::fs::metadata(checkpoint.join("model.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    let again = run(&control, &out);
    assert!(String::from_utf8_lossy(&again.stdout).contains("estimate"));
    assert_eq!(
        std::fs::metadata(checkpoint.join("model.safetensors"))
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );

    // The next experiment reads the checkpoints as its suite.
    let next = tmp.path().join("next.toml");
    std::fs::write(
        &next,
        format!(
            "[models]\nsuite = \"local\"\npath = \"{}/runs/tiny/seed_{{seed}}/checkpoint\"\nseeds = \"0-1\"\ngroup = \"control\"\n\n[data]\neval = \"{}\"\nid = \"id\"\neval_size = 20\n\n[task]\nkind = \"crows-pairs\"\n\n[runtime]\ndevice = \"cpu\"\nmax_length = 64\n",
            out.display(),
            root().join("data/bias/crows-pairs/crows_pairs_sample.csv").display()
        ),
    )
    .unwrap();
    run(&next, &tmp.path().join("next"));

    // The dropout intervention (the tiny checkpoints have none): other weights.
    let dropout = write_experiment(
        tmp.path(),
        "dropout.toml",
        &format!("{settings}dropout = 0.2\nattention_dropout = 0.1\n"),
    );
    run(&dropout, &tmp.path().join("dropout"));
    let dropped = candle_core::safetensors::load(
        tmp.path().join("dropout/runs/tiny/seed_0/checkpoint/model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    assert_ne!(
        dropped["cls.predictions.bias"].to_vec1::<f32>().unwrap(),
        tensors["cls.predictions.bias"].to_vec1::<f32>().unwrap()
    );

    // CDA trains on the corpus with swapped copies: other data, other key, other weights.
    let cda = write_experiment(tmp.path(), "cda.toml", &format!("{settings}transform = \"cda\"\n"));
    run(&cda, &tmp.path().join("cda"));
    let cda_tensors = candle_core::safetensors::load(
        tmp.path().join("cda/runs/tiny/seed_0/checkpoint/model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let name = "cls.predictions.bias";
    assert_ne!(
        cda_tensors[name].to_vec1::<f32>().unwrap(),
        tensors[name].to_vec1::<f32>().unwrap()
    );
}

#[test]
fn bad_pretraining_settings_are_refused_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let pairs = tmp.path().join("pairs.txt");
    std::fs::write(&pairs, "he she\nking\n").unwrap();
    for (task, needles) in [
        ("steps = 0\n", vec!["task.steps", "at least 1"]),
        ("steps = 5\nmask_probability = 1.5\n", vec!["task.mask_probability"]),
        (
            "steps = 5\ncda_pairs = \"pairs.txt\"\n",
            vec!["task.cda_pairs", "only with transform"],
        ),
        (
            "steps = 5\ntransform = \"swap\"\n",
            vec!["line", "transform", "unknown variant"],
        ),
        (
            "steps = 5\nepochs = 2\n",
            vec!["task.epochs", "not a setting of kind = \"pretrain\""],
        ),
        (
            "steps = 5\ntransform = \"cda\"\ncda_pairs = \"pairs.txt\"\n",
            vec!["pairs.txt: line 2", "expected two words"],
        ),
    ] {
        let file = write_experiment(tmp.path(), "bad.toml", task);
        let out = tmp.path().join("out");
        let refused = mb_stats(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_refused(&refused, &needles);
        assert!(!out.join("results.parquet").exists(), "{task}");
    }
    // An empty or missing corpus, and a checkpoint without the masked-LM head (a plain
    // BertModel, refused when its weights are read).
    let good = std::fs::read_to_string(write_experiment(
        tmp.path(),
        "good.toml",
        "steps = 5
",
    ))
    .unwrap();
    let corpus = root().join("data/quickstart/sentiment/train.tsv").display().to_string();
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let plain = root().join("tests/fixtures/bert/model-safetensors");
    let models = format!(
        "{}/tiny-multiberts-seed_{{seed}}",
        root().join("data/quickstart/models").display()
    );
    for (text, needles) in [
        (
            good.replace(&corpus, &empty.display().to_string()),
            vec!["data.corpus", "no rows"],
        ),
        (
            good.replace(&corpus, "/no/such/corpus.txt"),
            vec!["/no/such/corpus.txt"],
        ),
        (
            good.replace(&models, &plain.display().to_string())
                .replace("seeds = \"0-1\"", "seeds = \"0\""),
            vec!["no masked-LM head", "pretrain needs"],
        ),
    ] {
        let file = tmp.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let out = tmp.path().join("out");
        let refused = mb_stats(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
        assert_refused(&refused, &needles);
        assert!(!out.join("results.parquet").exists());
    }
}

/// A pretraining run killed after it saved its state continues from there and ends with the same
/// weights, bit for bit, as an uninterrupted run.
#[test]
fn a_killed_pretraining_run_resumes_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = "steps = 60\nbatch_size = 8\nlr = 1e-3\nsave_every = 5\ndropout = 0.1\n";
    let experiment = write_experiment(tmp.path(), "resume.toml", settings);
    let straight = tmp.path().join("straight");
    run(&experiment, &straight);

    let out = tmp.path().join("killed");
    let state = out.join("runs/tiny/seed_0/pretrain-state.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mb-stats"))
        .args([
            "run",
            experiment.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !state.is_file() {
        assert!(started.elapsed().as_secs() < 60, "no state was saved");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before saving its state"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out.join("runs/tiny/seed_0/checkpoint").exists(),
        "killed before the end"
    );

    let resumed = mb_stats(&["run", experiment.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(
        log.contains("resuming from step"),
        "it continued from the saved state: {log}"
    );
    let weights = |dir: &Path| std::fs::read(dir.join("runs/tiny/seed_0/checkpoint/model.safetensors")).unwrap();
    assert!(
        weights(&out) == weights(&straight),
        "the resumed run ends with other weights"
    );
    assert!(!state.exists(), "the state is removed once the checkpoint is saved");
}
