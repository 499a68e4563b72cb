//! Masked-LM scoring against transformers: every sentence's pseudo-log-likelihood (both
//! scorings) and every cloze prompt's scores, from the references `scripts/make_mlm_fixtures.py`
//! computed from the definitions with `BertForMaskedLM` (committed in tests/fixtures/mlm/); then
//! the `minimal-pairs` and `cloze` task kinds end to end through `mb-stats run`.

mod support;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use polars::prelude::*;
use serde_json::Value;

use mb_stats_bert::Bert;
use mb_stats_bert::mlm::{MaskedQuery, PllScoring, pll_queries};
use support::{assert_refused, mb_stats};

const TOLERANCE: f64 = 1e-4;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn reference() -> Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures/mlm/reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn model_dir(name: &str) -> PathBuf {
    match name {
        "tiny-multiberts-seed_0" => root().join("data/quickstart/models").join(name),
        other => root().join("tests/fixtures/bert").join(other),
    }
}

fn load(name: &str) -> Bert {
    Bert::load(&model_dir(name), &Device::Cpu, DType::F32, 512).unwrap()
}

/// PLLs of `sentences` by our runtime, in small token budgets so batches mix sentences.
fn our_plls(bert: &Bert, sentences: &[&str], scoring: PllScoring) -> Vec<f64> {
    let pieces = bert.tokenizer().encode_words(sentences).unwrap();
    let tokens: Vec<_> = pieces.iter().map(|p| p.tokens.clone()).collect();
    let queries: Vec<MaskedQuery> = pieces
        .iter()
        .enumerate()
        .flat_map(|(k, p)| pll_queries(k, p, scoring))
        .collect();
    let scores = bert.score_masked(&tokens, &queries, 700, &|_| {}).unwrap();
    let mut pll = vec![0.0; sentences.len()];
    for (q, s) in queries.iter().zip(scores) {
        pll[q.text] += s.log_probs[0];
    }
    pll
}

#[test]
fn pseudo_log_likelihoods_match_transformers_for_both_scorings() {
    let reference = reference();
    for (model, entry) in reference.as_object().unwrap() {
        let bert = load(model);
        let sentences: Vec<&str> = entry["sentences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(
            sentences.len() > 200,
            "{model}: the sample has {} sentences",
            sentences.len()
        );
        for scoring in [PllScoring::Original, PllScoring::WordL2r] {
            let ours = our_plls(&bert, &sentences, scoring);
            let theirs: Vec<f64> = entry[scoring.to_string()]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            eprintln!(
                "{model} {scoring}: max |PLL difference| {worst:.2e} over {} sentences",
                sentences.len()
            );
            assert!(worst < TOLERANCE, "{model} {scoring}: max |PLL difference| {worst:e}");
            // Identical predictions: the same sentence of every pair wins.
            for (k, pair) in theirs.chunks(2).enumerate() {
                assert_eq!(
                    ours[2 * k] > ours[2 * k + 1],
                    pair[0] > pair[1],
                    "{model} {scoring}: pair {k}"
                );
            }
        }
        // The two scorings differ where words have several pieces, so the test tells them apart.
        let original = our_plls(&bert, &sentences[..20], PllScoring::Original);
        let l2r = our_plls(&bert, &sentences[..20], PllScoring::WordL2r);
        assert!(original.iter().zip(&l2r).any(|(a, b)| (a - b).abs() > 0.1), "{model}");
    }
}

#[test]
fn cloze_scores_match_transformers() {
    let reference = reference();
    let prompts = std::fs::read_to_string(root().join("tests/fixtures/mlm/cloze.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = prompts.lines().skip(1).map(|l| l.split('\t').collect()).collect();
    for (model, entry) in reference.as_object().unwrap() {
        let bert = load(model);
        let expected = entry["cloze"].as_array().unwrap();
        assert!(expected.len() >= 20, "{model}");
        let rows: Vec<&Vec<&str>> = expected
            .iter()
            .map(|e| &rows[e["row"].as_u64().unwrap() as usize])
            .collect();
        let texts: Vec<&str> = rows.iter().map(|r| r[0]).collect();
        let pieces = bert.tokenizer().encode_words(&texts).unwrap();
        let mask = bert.tokenizer().token_id("[MASK]").unwrap();
        let id = |t: &str| bert.tokenizer().token_id(t).unwrap();
        let queries: Vec<MaskedQuery> = pieces
            .iter()
            .zip(&rows)
            .enumerate()
            .map(|(k, (p, row))| MaskedQuery {
                text: k,
                masked: Vec::new(),
                read: p.tokens.ids.iter().position(|&i| i == mask).unwrap(),
                wanted: std::iter::once(row[1]).chain(row[2].split('|')).map(id).collect(),
            })
            .collect();
        let tokens: Vec<_> = pieces.into_iter().map(|p| p.tokens).collect();
        let scores = bert.score_masked(&tokens, &queries, 64, &|_| {}).unwrap();
        for (k, (s, e)) in scores.iter().zip(expected).enumerate() {
            assert_eq!(queries[k].wanted[0] as u64, e["gold_id"].as_u64().unwrap());
            assert!(
                (s.log_probs[0] - e["gold_log_prob"].as_f64().unwrap()).abs() < TOLERANCE,
                "{model} prompt {k}"
            );
            assert_eq!(s.top as u64, e["top"].as_u64().unwrap(), "{model} prompt {k}");
            for (ours, theirs) in s.log_probs[1..]
                .iter()
                .zip(e["candidate_log_probs"].as_array().unwrap())
            {
                assert!(
                    (ours - theirs.as_f64().unwrap()).abs() < TOLERANCE,
                    "{model} prompt {k}"
                );
            }
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// An experiment over the tiny seed 0 (and seed 1) with the given `[data]` and `[task]` tables.
fn experiment(dir: &Path, data_and_task: &str) -> PathBuf {
    let models = root().join("data/quickstart/models");
    let text = format!(
        "[models]\nsuite = \"local\"\npath = \"{}/tiny-multiberts-seed_{{seed}}\"\nseeds = \"0-1\"\n\n{data_and_task}\n[runtime]\nmax_length = 64\n",
        models.display()
    );
    let path = dir.join("experiment.toml");
    write(&path, &text);
    path
}

fn frame(path: &Path) -> DataFrame {
    let file = std::fs::File::open(path).unwrap();
    ParquetReader::new(file).finish().unwrap()
}

/// The values of the float column `name`.
fn floats(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name).unwrap().f64().unwrap().into_no_null_iter().collect()
}

/// The values of the integer column `name`.
fn ints(df: &DataFrame, name: &str) -> Vec<i64> {
    df.column(name).unwrap().i64().unwrap().into_no_null_iter().collect()
}

/// The rows of seed 0.
fn seed_zero(results: &DataFrame) -> DataFrame {
    let mask = results.column("seed").unwrap().i64().unwrap().equal(0);
    results.filter(&mask).unwrap()
}

#[test]
fn minimal_pairs_runs_on_the_bundled_blimp_sample() {
    let dir = tempfile::tempdir().unwrap();
    let sample = root().join("data/quickstart/blimp");
    let file = experiment(
        dir.path(),
        &format!(
            "[data]\neval = \"{}\"\n\n[task]\nkind = \"minimal-pairs\"\nscoring = \"pll-word-l2r\"\n",
            sample.display()
        ),
    );
    let out = dir.path().join("out");
    let run = mb_stats(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let results = frame(&out.join("results.parquet"));
    assert_eq!(results.height(), 2 * 201, "67 paradigms × 3 pairs × 2 seeds");
    // Seed 0's scores are PLL(good) − PLL(bad) as transformers computes them.
    let reference = reference();
    let expected: Vec<f64> = reference["tiny-multiberts-seed_0"]["pll-word-l2r"]
        .as_array()
        .unwrap()
        .chunks(2)
        .map(|p| p[0].as_f64().unwrap() - p[1].as_f64().unwrap())
        .collect();
    let seed0 = seed_zero(&results);
    let scores: Vec<f64> = floats(&seed0, "score");
    let predictions: Vec<i64> = ints(&seed0, "prediction");
    assert_eq!(scores.len(), expected.len());
    for (k, (ours, theirs)) in scores.iter().zip(&expected).enumerate() {
        assert!((ours - theirs).abs() < 2.0 * TOLERANCE, "pair {k}: {ours} vs {theirs}");
        assert_eq!(predictions[k], i64::from(*theirs > 0.0), "pair {k}");
    }
    // Paradigms in the task column, ids unique across paradigms, the field map in the footer.
    let tasks = seed0.column("task").unwrap().str().unwrap().n_unique().unwrap();
    assert_eq!(tasks, 67);
    let first = seed0
        .column("example")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_string();
    assert_eq!(first, "adjunct_island/0");
    let footer = std::fs::read(out.join("results.parquet")).unwrap();
    let footer = String::from_utf8_lossy(&footer);
    assert!(footer.contains("mb_stats.fields") && footer.contains("syntax_semantics"));
    // The per-paradigm analysis works on it.
    let by = mb_stats(&[
        "bootstrap",
        out.join("results.parquet").to_str().unwrap(),
        "--by",
        "task",
        "--nboot",
        "50",
    ]);
    assert!(by.status.success(), "{}", String::from_utf8_lossy(&by.stderr));
    assert!(String::from_utf8_lossy(&by.stdout).contains("anaphor_gender_agreement"));
}

#[test]
fn cloze_runs_with_and_without_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = root().join("tests/fixtures/mlm/cloze.tsv");
    for (candidates, over) in [("", "vocabulary"), ("candidates = \"candidates\"\n", "candidates")] {
        let file = experiment(
            dir.path(),
            &format!(
                "[data]\neval = \"{}\"\ntext = \"text\"\n{candidates}\n[task]\nkind = \"cloze\"\n",
                prompts.display()
            ),
        );
        let out = dir.path().join(over);
        let run = mb_stats(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let results = frame(&out.join("results.parquet"));
        assert_eq!(results.height(), 80);
        let reference = reference();
        let expected = reference["tiny-multiberts-seed_0"]["cloze"].as_array().unwrap();
        let seed0 = seed_zero(&results);
        let score: Vec<f64> = floats(&seed0, "score");
        let prediction: Vec<i64> = ints(&seed0, "prediction");
        let rank: Vec<f64> = floats(&seed0, "rank");
        for (k, e) in expected.iter().enumerate() {
            let logs: Vec<f64> = e["candidate_log_probs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let gold = e["gold_log_prob"].as_f64().unwrap();
            let (want_score, want_prediction) = match over {
                "vocabulary" => (gold, e["top"].as_i64().unwrap()),
                _ => {
                    let norm = logs.iter().map(|l| l.exp()).sum::<f64>().ln();
                    let best = (0..logs.len()).fold(0, |b, i| if logs[i] > logs[b] { i } else { b });
                    (gold - norm, best as i64)
                }
            };
            assert!((score[k] - want_score).abs() < TOLERANCE, "{over} prompt {k}");
            assert_eq!(prediction[k], want_prediction, "{over} prompt {k}");
            // Rank 1 exactly when the gold is the prediction; over candidates, 1 + those above it.
            let gold_first = match over {
                "vocabulary" => want_prediction == e["gold_id"].as_i64().unwrap(),
                _ => logs.iter().all(|&l| l <= gold),
            };
            assert_eq!(rank[k] == 1.0, gold_first, "{over} prompt {k}: rank {}", rank[k]);
            if over == "candidates" {
                assert_eq!(
                    rank[k],
                    (1 + logs.iter().filter(|&&l| l > gold).count()) as f64,
                    "{over} prompt {k}"
                );
            }
        }
    }
}

#[test]
fn bad_masked_lm_inputs_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |name: &str, data_and_task: &str| {
        let case = d.join(name);
        let file = experiment(&case, data_and_task);
        let out = case.join("out");
        let output = mb_stats(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
        assert!(!out.join("results.parquet").exists(), "{name}: results written");
        output
    };
    write(
        &d.join("pairs.tsv"),
        "sentence_good\tsentence_bad\nA cat sat.\tA cat sit.\nThe dog ran.\t\n",
    );
    let pairs = format!("[data]\neval = \"{}\"\n", d.join("pairs.tsv").display());
    assert_refused(
        &run("empty", &format!("{pairs}\n[task]\nkind = \"minimal-pairs\"\n")),
        &["pairs.tsv: row 2", "sentence_bad is empty"],
    );
    assert_refused(
        &run(
            "column",
            &format!("{pairs}good = \"ok\"\n\n[task]\nkind = \"minimal-pairs\"\n"),
        ),
        &["pairs.tsv", "no column \"ok\""],
    );
    let long = "the cat sat on the mat ".repeat(12);
    write(
        &d.join("long.tsv"),
        &format!("sentence_good\tsentence_bad\n{long}\tA cat.\n"),
    );
    assert_refused(
        &run(
            "long",
            &format!(
                "[data]\neval = \"{}\"\n\n[task]\nkind = \"minimal-pairs\"\n",
                d.join("long.tsv").display()
            ),
        ),
        &["long.tsv: row 1", "longer than 64 tokens", "runtime.max_length"],
    );
    assert_refused(
        &run(
            "key",
            &format!("{pairs}\n[task]\nkind = \"minimal-pairs\"\nlayers = [1]\n"),
        ),
        &["task.layers", "not a setting of kind = \"minimal-pairs\""],
    );
    assert_refused(
        &run(
            "scoring",
            &format!("{pairs}\n[task]\nkind = \"minimal-pairs\"\nscoring = \"l2r\"\n"),
        ),
        &["task.scoring", "pll-word-l2r"],
    );
    write(
        &d.join("cloze.tsv"),
        "text\ttarget\nthe [MASK] sat.\tcat\nno mask here\tcat\n",
    );
    let cloze = format!(
        "[data]\neval = \"{}\"\ntext = \"text\"\n\n[task]\nkind = \"cloze\"\n",
        d.join("cloze.tsv").display()
    );
    assert_refused(
        &run("no-mask", &cloze),
        &["cloze.tsv: row 2", "exactly one [MASK], found 0"],
    );
    write(&d.join("cloze.tsv"), "text\ttarget\nthe [MASK] [MASK].\tcat\n");
    assert_refused(&run("two-masks", &cloze), &["cloze.tsv: row 1", "found 2"]);
    write(&d.join("cloze.tsv"), "text\ttarget\nthe [MASK] sat.\tzebrafish\n");
    assert_refused(
        &run("pieces", &cloze),
        &["cloze.tsv: row 1", "\"zebrafish\" is", "word-pieces"],
    );
    // Malformed evaluation data (issue 30, class 6): each refused naming file and row.
    write(
        &d.join("numbers.jsonl"),
        "{\"sentence_good\": \"A cat sat.\", \"sentence_bad\": \"A cat sit.\"}\n{\"sentence_good\": 123, \"sentence_bad\": \"A dog.\"}\n",
    );
    assert_refused(
        &run(
            "number",
            &format!(
                "[data]\neval = \"{}\"\n\n[task]\nkind = \"minimal-pairs\"\n",
                d.join("numbers.jsonl").display()
            ),
        ),
        &["numbers.jsonl: row 2", "sentence_good is 123, not text"],
    );
    assert_refused(
        &run(
            "tie-columns",
            &format!("{pairs}bad = \"sentence_good\"\n\n[task]\nkind = \"minimal-pairs\"\n"),
        ),
        &["data.good and data.bad", "tie"],
    );
    write(
        &d.join("same.tsv"),
        "sentence_good\tsentence_bad\nA cat sat.\tA cat sit.\nThe dog ran.\tThe dog ran.\n",
    );
    assert_refused(
        &run(
            "tie-row",
            &format!(
                "[data]\neval = \"{}\"\n\n[task]\nkind = \"minimal-pairs\"\n",
                d.join("same.tsv").display()
            ),
        ),
        &["same.tsv: row 2", "same sentence"],
    );
    for (name, candidates, needle) in [
        ("empty-candidate", "cat||dog", "candidate 2 of \"cat||dog\" is empty"),
        ("twice", "cat|cat|dog", "\"cat\" is listed twice"),
    ] {
        write(
            &d.join(format!("{name}.tsv")),
            &format!("text\ttarget\tcandidates\nthe [MASK] sat.\tcat\t{candidates}\n"),
        );
        let file = format!(
            "[data]\neval = \"{}\"\ntext = \"text\"\ncandidates = \"candidates\"\n\n[task]\nkind = \"cloze\"\n",
            d.join(format!("{name}.tsv")).display()
        );
        assert_refused(&run(name, &file), &[&format!("{name}.tsv: row 1"), needle]);
    }
    // A checkpoint without the masked-LM head (a plain BertModel).
    write(
        &d.join("pairs.tsv"),
        "sentence_good\tsentence_bad\nA cat sat.\tA cat sit.\n",
    );
    let plain = root().join("tests/fixtures/bert/model-safetensors");
    let case = d.join("plain");
    write(
        &case.join("experiment.toml"),
        &format!(
            "[models]\nsuite = \"local\"\npath = \"{}\"\nseeds = \"0\"\n\n{pairs}\n[task]\nkind = \"minimal-pairs\"\n",
            plain.display()
        ),
    );
    let out = case.join("out");
    let output = mb_stats(&[
        "run",
        case.join("experiment.toml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_refused(&output, &["no masked-LM head"]);
    assert!(!out.join("results.parquet").exists());
}

#[test]
fn blimp_from_the_hub_cache_and_its_report() {
    let dir = tempfile::tempdir().unwrap();
    // The Hub copy's layout: one folder per paradigm (JSONL here; the Hub serves Parquet).
    const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";
    let repo = dir.path().join("hub/datasets--nyu-mll--blimp");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    let paradigms = [
        "anaphor_gender_agreement",
        "irregular_plural_subject_verb_agreement_1",
        "wh_island",
        "npi_present_1",
    ];
    for uid in paradigms {
        let text = std::fs::read_to_string(root().join(format!("data/quickstart/blimp/{uid}.jsonl"))).unwrap();
        write(&repo.join(format!("snapshots/{COMMIT}/{uid}/train.jsonl")), &text);
    }
    let file = experiment(
        dir.path(),
        "[data]\neval = \"hf://datasets/nyu-mll/blimp/*/train.jsonl\"\n\n[task]\nkind = \"minimal-pairs\"\n",
    );
    let out = dir.path().join("out");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_mb-stats"))
        .env("HF_HUB_CACHE", dir.path().join("hub"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--offline",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let results = out.join("results.parquet");
    assert_eq!(frame(&results).height(), 2 * 4 * 3, "4 paradigms × 3 pairs × 2 seeds");
    // The report: the overall estimate, a per-task table sorted best first, a figure per field.
    let report = out.join("report");
    let made = mb_stats(&[
        "report",
        results.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
        "--nboot",
        "50",
    ]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert!(report.join("summary-accuracy.csv").is_file());
    let table = std::fs::read_to_string(report.join("tasks-accuracy.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(table.as_bytes());
    let header = reader.headers().unwrap().clone();
    let (task, estimate) = (
        header.iter().position(|h| h == "task").unwrap(),
        header.iter().position(|h| h == "estimate").unwrap(),
    );
    let rows: Vec<(String, f64)> = reader
        .records()
        .map(|r| r.unwrap())
        .map(|r| (r[task].to_string(), r[estimate].parse().unwrap()))
        .collect();
    assert_eq!(rows.len(), 4);
    assert!(rows.windows(2).all(|w| w[0].1 >= w[1].1), "sorted best first: {rows:?}");
    for field in ["morphology", "syntax", "semantics"] {
        assert!(
            report.join(format!("figures/tasks-accuracy-{field}.png")).is_file(),
            "{field}"
        );
    }
}
