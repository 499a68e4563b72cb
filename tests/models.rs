//! `mb-stats embed` and `mb-stats checkpoints` end to end: checkpoints from a directory and from a
//! Hugging Face cache laid out as Python's huggingface_hub writes it, offline, with the `.bin`
//! conversion cache; the output table checked against transformers' reference hidden states.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device};
use polars::prelude::*;
use support::assert_refused;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bert")
        .join(name)
}

/// Runs the binary with extra environment variables (caches pointed into temporary folders).
fn mb_stats_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mb-stats"));
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args(args);
    command
        .env_remove("HF_HOME")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HUB_OFFLINE");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

/// A Hugging Face cache with `google/multiberts-seed_0` at `main` = COMMIT, holding the
/// pretraining fixture (zip `.bin` with `bert.` names), blobs and snapshot links as the hub makes them.
fn hub_cache(root: &Path, files: &[&str]) {
    let repo = root.join("models--google--multiberts-seed_0");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    let snapshot = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    for (i, file) in files.iter().enumerate() {
        let blob = repo.join("blobs").join(format!("blob{i}"));
        std::fs::copy(fixture("pretraining-bin").join(file), &blob).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/blob{i}"), snapshot.join(file)).unwrap();
    }
}

fn texts_file(dir: &Path) -> PathBuf {
    let texts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("texts.json")).unwrap()).unwrap();
    // JSONL, since one fixture text contains a newline.
    let lines: Vec<String> = texts["single"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| serde_json::json!({ "text": t }).to_string())
        .collect();
    let path = dir.join("texts.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn read(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

fn texts_count() -> usize {
    let texts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("texts.json")).unwrap()).unwrap();
    texts["single"].as_array().unwrap().len()
}

#[test]
fn embed_from_the_hub_cache_offline_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = tmp.path().join("hub");
    let converted = tmp.path().join("mb-cache");
    hub_cache(
        &hub,
        &["config.json", "vocab.txt", "tokenizer_config.json", "pytorch_model.bin"],
    );
    let input = texts_file(tmp.path());
    let out = tmp.path().join("emb.parquet");
    let args = [
        "embed",
        "--model",
        "google/multiberts-seed_0",
        "--input",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--layers",
        "0,2",
        "--pooling",
        "cls",
        "--max-length",
        "24",
        "--offline",
        "--device",
        "cpu",
    ];
    let env = [("HF_HUB_CACHE", hub.as_path()), ("MB_STATS_CACHE", converted.as_path())];
    let first = mb_stats_env(&args, &env);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(
        !converted.exists(),
        "the .bin is read in place: nothing is written beside the Hugging Face cache"
    );

    let frame = read(&out);
    let n_texts = texts_count();
    assert_eq!(frame.height(), n_texts * 2, "one row per text and layer");
    assert_eq!(frame.column("example").unwrap().dtype(), &DataType::Int64);
    assert_eq!(frame.column("layer").unwrap().dtype(), &DataType::Int32);
    assert_eq!(
        frame.column("embedding").unwrap().dtype(),
        &DataType::List(Box::new(DataType::Float32))
    );

    // CLS pooling = position 0 of transformers' hidden states.
    let reference =
        candle_core::safetensors::load(fixture("pretraining-bin").join("reference.safetensors"), &Device::Cpu).unwrap();
    let examples = frame.column("example").unwrap().i64().unwrap().clone();
    let layers = frame.column("layer").unwrap().i32().unwrap().clone();
    let embeddings = frame.column("embedding").unwrap().list().unwrap().clone();
    for row in 0..frame.height() {
        let (example, layer) = (examples.get(row).unwrap() as usize, layers.get(row).unwrap());
        let ours: Vec<f32> = embeddings
            .get_as_series(row)
            .unwrap()
            .f32()
            .unwrap()
            .into_no_null_iter()
            .collect();
        let theirs = reference[&format!("single.hidden_states.{layer}")]
            .to_dtype(DType::F32)
            .unwrap();
        let theirs: Vec<f32> = theirs.get(example).unwrap().get(0).unwrap().to_vec1().unwrap();
        let err = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-4, "example {example} layer {layer}: {err:e}");
    }

    // Second run: served from the conversion, same bytes of output.
    let again = tmp.path().join("again.parquet");
    let mut args2 = args;
    args2[6] = again.to_str().unwrap();
    assert!(mb_stats_env(&args2, &env).status.success());
    assert!(read(&again).equals(&frame));
}

#[test]
fn hf_home_is_respected_and_offline_names_the_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("hf-home");
    hub_cache(&home.join("hub"), &["config.json", "vocab.txt"]);
    let input = texts_file(tmp.path());
    let out = tmp.path().join("emb.parquet");
    let args = [
        "embed",
        "--model",
        "google/multiberts-seed_0",
        "--input",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--offline",
    ];
    let missing = mb_stats_env(&args, &[("HF_HOME", home.as_path())]);
    assert_refused(
        &missing,
        &[
            "google/multiberts-seed_0",
            "model.safetensors or pytorch_model.bin",
            "offline",
        ],
    );
    assert!(!out.exists(), "no output on failure");

    let other = mb_stats_env(
        &[
            "embed",
            "--model",
            "google/multiberts-seed_1",
            "--input",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--offline",
        ],
        &[("HF_HOME", home.as_path())],
    );
    assert_refused(&other, &["google/multiberts-seed_1", "not in the Hugging Face cache"]);
}

#[test]
fn checkpoints_lists_the_catalog_and_marks_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = tmp.path().join("hub");
    hub_cache(&hub, &["config.json", "vocab.txt", "pytorch_model.bin"]);
    let out = mb_stats_env(&["checkpoints", "--seeds", "0-2"], &[("HF_HUB_CACHE", hub.as_path())]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let line = |repo: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(repo))
            .unwrap()
            .to_string()
    };
    assert!(line("google/multiberts-seed_0").ends_with("yes"), "{text}");
    assert!(line("google/multiberts-seed_1").ends_with("no"), "{text}");
    let cached = mb_stats_env(
        &["checkpoints", "--seeds", "0-4", "--steps", "all", "--cached"],
        &[("HF_HUB_CACHE", hub.as_path())],
    );
    assert_eq!(
        String::from_utf8_lossy(&cached.stdout)
            .lines()
            .filter(|l| l.starts_with("google/"))
            .count(),
        0
    );
    let all = mb_stats_env(
        &["checkpoints", "--seeds", "0-4", "--steps", "all"],
        &[("HF_HUB_CACHE", hub.as_path())],
    );
    assert_eq!(
        String::from_utf8_lossy(&all.stdout)
            .lines()
            .filter(|l| l.starts_with("google/"))
            .count(),
        145
    );
    // Seeds and steps are parsed where they are written: a bad one names its flag.
    for (flag, value, needle) in [
        ("--seeds", "0-x", "expected a list like 0-24"),
        ("--steps", "21k", "intermediate checkpoints at"),
    ] {
        let refused = mb_stats_env(&["checkpoints", flag, value], &[("HF_HUB_CACHE", hub.as_path())]);
        assert_refused(&refused, &[&format!("'{value}' for '{flag}"), needle]);
    }
}

#[test]
fn embed_per_token_and_table_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let table = tmp.path().join("texts.jsonl");
    std::fs::write(
        &table,
        "{\"id\": 1, \"body\": \"hello world\"}\n{\"id\": 2, \"body\": \"the cat sat\"}\n",
    )
    .unwrap();
    let out = tmp.path().join("tokens.parquet");
    let model = fixture("model-safetensors");
    let done = mb_stats_env(
        &[
            "embed",
            "--model",
            model.to_str().unwrap(),
            "--input",
            table.to_str().unwrap(),
            "--text-column",
            "body",
            "-o",
            out.to_str().unwrap(),
            "--pooling",
            "none",
            "--layers",
            "2",
            "--dtype",
            "bf16",
            "--device",
            "cpu",
        ],
        &[],
    );
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let frame = read(&out);
    assert_eq!(frame.column("token").unwrap().dtype(), &DataType::Int32);
    let tokenizer = mb_stats_bert::tokenizer::BertTokenizer::load(&model, 512, 512).unwrap();
    let inputs: Vec<_> = ["hello world", "the cat sat"]
        .iter()
        .map(|t| mb_stats_bert::tokenizer::TextInput {
            text: t.to_string(),
            pair: None,
        })
        .collect();
    let n_tokens: usize = tokenizer.encode_all(&inputs).unwrap().iter().map(|t| t.ids.len()).sum();
    assert_eq!(frame.height(), n_tokens, "one row per non-padding token");

    let bad = mb_stats_env(
        &[
            "embed",
            "--model",
            model.to_str().unwrap(),
            "--input",
            table.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_refused(&bad, &["texts.jsonl", "--text-column"]);
    let bad_layer = mb_stats_env(
        &[
            "embed",
            "--model",
            model.to_str().unwrap(),
            "--input",
            table.to_str().unwrap(),
            "--text-column",
            "body",
            "-o",
            out.to_str().unwrap(),
            "--layers",
            "7",
        ],
        &[],
    );
    assert_refused(&bad_layer, &["--layers 7"]);
    let bad_model = mb_stats_env(
        &[
            "embed",
            "--model",
            "not a model",
            "--input",
            table.to_str().unwrap(),
            "--text-column",
            "body",
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_refused(&bad_model, &["not a model"]);
}

#[test]
fn bench_bert_reports_every_pass_and_refuses_a_missing_python() {
    let out = mb_stats_env(&["bench-bert", "--n", "3", "--repeat", "2"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("3 sentences") && stdout.contains("median of 2 passes"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("mb-stats (candle)"))
        .expect("our line");
    let speed: f64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(speed > 0.0, "{line}");

    let out = mb_stats_env(
        &[
            "bench-bert",
            "--n",
            "3",
            "--repeat",
            "1",
            "--compare-torch",
            "/nonexistent/python",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--compare-torch /nonexistent/python"), "{stderr}");

    // CI builds without `--features cuda`: the error says so, on one line, whatever RUST_BACKTRACE.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mb-stats"));
    let out = command
        .args(["bench-bert", "--n", "1", "--device", "cuda:0"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--device cuda:0: this build has no CUDA"), "{stderr}");
}

/// The runtime's flags are one type for every command that runs a model: a bad value is refused
/// where it is parsed, naming the flag, by `embed`, `bench-bert` and `bench-mlm` alike.
#[test]
fn runtime_flags_are_checked_where_they_are_parsed() {
    let tmp = tempfile::tempdir().unwrap();
    let input = texts_file(tmp.path());
    let out = tmp.path().join("emb.parquet");
    let model = fixture("model-safetensors");
    let commands: [Vec<&str>; 3] = [
        vec![
            "embed",
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        vec!["bench-bert", "--n", "1"],
        vec!["bench-mlm", "--pairs", "x", "--tokenizer", "y"],
    ];
    for command in &commands {
        for (flag, value, needle) in [
            ("--max-length", "1", "at least 2, got 1"),
            ("--batch-tokens", "0", "at least 1"),
            ("--batch-tokens", "-5", "expected a whole number of tokens"),
            ("--dtype", "f64", "expected f32, f16 or bf16"),
            ("--device", "gpu", "expected auto, cpu or cuda:N"),
        ] {
            let mut args = command.clone();
            args.extend([flag, value]);
            let refused = mb_stats_env(&args, &[]);
            assert_refused(&refused, &[&format!("'{value}' for '{flag}"), needle]);
        }
    }
    assert!(!out.exists(), "nothing is written when a flag is refused");
}
