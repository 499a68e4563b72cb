//! `mb-stats import lm-eval` on the committed PolyPythias-shaped sample
//! (`tests/fixtures/lm-eval`, written by `scripts/make_lm_eval_sample.py` in the harness's exact
//! formats): every layout read, every row checked against the JSON read independently here, every
//! check of the importer refusing a broken suite with one line and exit code 2, and the analyses
//! running on the result unchanged.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mb_stats_analysis::results::{ExampleIds, Numbers, ResultsTable, parquet};
use serde_json::Value;
use support::{assert_refused, mb_stats};
use tempfile::TempDir;

fn fixture(layout: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lm-eval")
        .join(layout)
}

fn import(args: &[&str], out: &Path) -> (ResultsTable, String) {
    let mut all = vec!["import", "lm-eval"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", out.to_str().unwrap()]);
    let o = mb_stats(&all);
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{stderr}");
    (parquet::read(out).unwrap(), stderr)
}

fn refused(args: &[&str], needles: &[&str], out: &Path) {
    let mut all = vec!["import", "lm-eval"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", out.to_str().unwrap()]);
    assert_refused(&mb_stats(&all), needles);
    assert!(!out.exists(), "nothing is written when a check fails");
}

/// Every record of a samples file (JSON Lines), read with serde_json alone.
fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn samples_files(folder: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for model in std::fs::read_dir(folder).unwrap() {
        for file in std::fs::read_dir(model.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with("samples_") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Row key → (label, prediction, score, acc_norm) of an imported table.
type Rows = BTreeMap<(String, i64, Option<i64>, String, i64), (Option<i64>, Option<i64>, Option<f64>, Option<f64>)>;

fn rows(table: &ResultsTable) -> Rows {
    let ExampleIds::Int(examples) = &table.example else {
        panic!("integer doc ids")
    };
    let ints = |n: &Option<Numbers>, i: usize| match n {
        Some(Numbers::Int(v)) => v[i],
        other => panic!("integer classes, got {other:?}"),
    };
    let acc_norm = table
        .extra
        .iter()
        .find(|(n, _)| n == "acc_norm")
        .map(|(_, v)| v)
        .expect("acc_norm column");
    let mut out = Rows::new();
    for i in 0..table.len() {
        let key = (
            table.group[i].to_string(),
            table.seed[i],
            table.step.as_ref().unwrap()[i],
            table.task.as_ref().unwrap().get(i).unwrap().to_string(),
            examples[i],
        );
        let value = (
            ints(&table.label, i),
            ints(&table.prediction, i),
            table.score.as_ref().unwrap()[i],
            acc_norm[i],
        );
        assert!(out.insert(key, value).is_none(), "one row per document");
    }
    out
}

#[test]
fn the_v043_layout_is_imported_row_for_row() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("suite.parquet");
    let (table, stderr) = import(&[fixture("v0.4.3").to_str().unwrap()], &out);
    assert!(stderr.contains("arc_easy: acc: equal in 20 of 20"), "{stderr}");
    assert!(stderr.contains("lambada_openai: acc: equal in 20 of 20"), "{stderr}");
    let rows = rows(&table);
    let mut expected = 0;
    for path in samples_files(&fixture("v0.4.3")) {
        let folder = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let task = if name.starts_with("samples_arc_easy_") {
            "arc_easy"
        } else {
            "lambada_openai"
        };
        let date = name.rsplit('_').next().unwrap().trim_end_matches(".jsonl");
        let results: Value = serde_json::from_str(
            &std::fs::read_to_string(path.with_file_name(format!("results_{date}.json"))).unwrap(),
        )
        .unwrap();
        let args = results["config"]["model_args"].as_str().unwrap();
        let step: i64 = args
            .split("revision=step")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let seed: i64 = folder.rsplit("seed").next().unwrap().parse().unwrap();
        let group = if folder.contains("data-seed") {
            "EleutherAI/pythia-160m-data"
        } else {
            "EleutherAI/pythia-160m"
        };
        for record in records(&path) {
            expected += 1;
            let doc = record["doc_id"].as_i64().unwrap();
            let (label, prediction, score, acc_norm) =
                rows[&(group.to_string(), seed, Some(step), task.to_string(), doc)];
            assert_eq!(
                score,
                record["acc"].as_f64(),
                "score is the task's first averaged metric"
            );
            if task == "arc_easy" {
                let lls: Vec<f64> = record["filtered_resps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c[0].as_str().unwrap().parse().unwrap())
                    .collect();
                let best = (0..lls.len()).fold(0, |b, i| if lls[i] > lls[b] { i } else { b });
                assert_eq!(label, Some(record["target"].as_str().unwrap().parse().unwrap()));
                assert_eq!(prediction, Some(best as i64));
                assert_eq!(
                    score,
                    Some(f64::from(u8::from(label == prediction))),
                    "acc = gold is the argmax"
                );
                assert_eq!(acc_norm, record["acc_norm"].as_f64());
            } else {
                assert_eq!(
                    (label, prediction, acc_norm),
                    (None, None, None),
                    "one log-likelihood is no choice"
                );
            }
        }
    }
    assert_eq!(table.len(), expected);
    assert_eq!(expected, 1800);
    let perplexity = table
        .extra
        .iter()
        .find(|(n, _)| n == "perplexity")
        .expect("every other metric a column");
    assert!(perplexity.1.iter().any(Option::is_some));
}

#[test]
fn the_legacy_and_lm_checkpoints_layouts_and_globs_are_read() {
    let dir = TempDir::new().unwrap();
    let (legacy, _) = import(&[fixture("v0.4.0").to_str().unwrap()], &dir.path().join("a.parquet"));
    assert_eq!(legacy.len(), 80);
    assert_eq!(
        legacy
            .step
            .as_ref()
            .unwrap()
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1
    );
    assert_eq!(
        legacy.step.as_ref().unwrap()[0],
        Some(143000),
        "from revision=step143000"
    );
    let glob = format!("{}/*/*/step_*", fixture("lm-checkpoints").display());
    let (checkpoints, stderr) = import(&[&glob], &dir.path().join("b.parquet"));
    assert!(stderr.contains("equal in 4 of 4"), "{stderr}");
    assert_eq!(checkpoints.len(), 160);
    let steps: std::collections::BTreeSet<_> = checkpoints.step.as_ref().unwrap().iter().copied().collect();
    assert_eq!(
        steps,
        [Some(1000), Some(13000)].into_iter().collect(),
        "from the step_K folders"
    );
    assert!(checkpoints.group.iter().all(|g| g == Some("EleutherAI/pythia-160m")));
}

/// A copy of one seed's v0.4.3 folder with `edit` applied to the records of its arc_easy file
/// at the last step.
fn broken_copy(edit: impl Fn(&mut Vec<Value>)) -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("suite");
    for seed in 1..=2 {
        let name = format!("EleutherAI__pythia-160m-seed{seed}");
        std::fs::create_dir_all(root.join(&name)).unwrap();
        for file in std::fs::read_dir(fixture("v0.4.3").join(&name)).unwrap() {
            let path = file.unwrap().path();
            std::fs::copy(&path, root.join(&name).join(path.file_name().unwrap())).unwrap();
        }
    }
    let target = samples_files(&root)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("arc_easy"))
        .unwrap();
    let mut all = records(&target);
    edit(&mut all);
    let text: String = all.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&target, text).unwrap();
    (dir, root)
}

#[test]
fn a_sample_that_disagrees_with_the_harness_aggregate_is_refused_unless_forced() {
    let (dir, root) = broken_copy(|records| {
        let acc = records[0]["acc"].as_f64().unwrap();
        records[0]["acc"] = Value::from(1.0 - acc);
    });
    let out = dir.path().join("t.parquet");
    refused(
        &[root.to_str().unwrap()],
        &["the mean acc of task arc_easy", "results file"],
        &out,
    );
    let (_, stderr) = import(&[root.to_str().unwrap(), "--force"], &out);
    assert!(
        stderr.contains("warning:") && stderr.contains("the mean acc"),
        "{stderr}"
    );
}

#[test]
fn different_documents_repeated_documents_and_missing_documents_are_refused() {
    let (dir, root) = broken_copy(|records| records[3]["doc_hash"] = Value::from("0000"));
    refused(
        &[root.to_str().unwrap()],
        &["doc_id", "a different document (doc_hash)"],
        &dir.path().join("t.parquet"),
    );
    let (dir, root) = broken_copy(|records| {
        let first = records[0].clone();
        records.push(first);
    });
    refused(
        &[root.to_str().unwrap()],
        &["appears twice"],
        &dir.path().join("t.parquet"),
    );
    let (dir, root) = broken_copy(|records| {
        records.remove(5);
    });
    refused(
        &[root.to_str().unwrap()],
        &["lacks 1 of the 40 documents of task arc_easy"],
        &dir.path().join("t.parquet"),
    );
}

#[test]
fn seeds_come_from_names_patterns_or_flags_and_metrics_are_chosen_by_name() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("t.parquet");
    let v043 = fixture("v0.4.3");
    let path = v043.to_str().unwrap();
    refused(
        &[path, "--seed-pattern", r"size(\d+)"],
        &["has no seed in its name", "--seed"],
        &out,
    );
    refused(
        &[path, "--seed-pattern", "("],
        &["--seed-pattern", "regular expression"],
        &out,
    );
    refused(
        &[path, "--metric", "f1"],
        &["--metric f1", "no task has such a per-sample metric", "acc, acc_norm"],
        &out,
    );
    let model = "EleutherAI/pythia-160m-seed3";
    let seed3 = v043.join("EleutherAI__pythia-160m-seed3");
    let (table, stderr) = import(
        &[
            seed3.to_str().unwrap(),
            "--seed",
            &format!("{model}=30"),
            "--metric",
            "acc_norm",
        ],
        &out,
    );
    assert!(
        stderr.contains("warning: --metric acc_norm: not a per-sample metric of lambada_openai (has perplexity, acc)"),
        "{stderr}"
    );
    assert!(table.seed.iter().all(|&s| s == 30), "--seed names the model's seed");
    assert!(
        table.group.iter().all(|g| g == Some(model)),
        "a model given its seed is its own group"
    );
    let norm = table.extra.iter().find(|(n, _)| n == "acc");
    assert!(norm.is_some(), "acc becomes an extra column when acc_norm is the score");
    // The same folder reached twice is one set of files; two copies of a run are refused.
    let again = seed3.join("..").join("EleutherAI__pythia-160m-seed3");
    let u = dir.path().join("u.parquet");
    let (twice, _) = import(&[seed3.to_str().unwrap(), again.to_str().unwrap()], &u);
    assert_eq!(twice.len(), 270);
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for file in std::fs::read_dir(&seed3).unwrap() {
        let p = file.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().replace("07.", "08.");
        std::fs::copy(&p, copy.join(name)).unwrap();
    }
    let copied = copy.to_str().unwrap();
    refused(
        &[seed3.to_str().unwrap(), copied],
        &["two samples files for model EleutherAI/pythia-160m-seed3"],
        &dir.path().join("v.parquet"),
    );
}

#[test]
fn the_analyses_run_on_an_imported_suite() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("t.parquet");
    import(&[fixture("v0.4.3").to_str().unwrap()], &out);
    let table = out.to_str().unwrap();
    for args in [
        vec!["bootstrap", table, "--by", "task,step", "--metric", "mean"],
        vec!["curve", table, "--by", "task", "--metric", "mean"],
        vec![
            "bootstrap",
            table,
            "--by",
            "task",
            "--metric",
            "mean",
            "--base",
            "group=EleutherAI/pythia-160m,step=143000",
            "--treatment",
            "group=EleutherAI/pythia-160m-data,step=143000",
            "--paired",
        ],
        vec!["seeds", table, "--by", "task,step", "--metric", "mean"],
        vec!["variance", table, "--by", "task,step", "--metric", "mean"],
    ] {
        let o = mb_stats(&args);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(
            stdout.contains("arc_easy") && stdout.contains("lambada_openai"),
            "{stdout}"
        );
    }
    let report = dir.path().join("report");
    let o = mb_stats(&[
        "report",
        table,
        "--by",
        "task,step",
        "--metric",
        "mean",
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(report.join("summary-mean.csv").is_file());
    let o = mb_stats(&["curve", table, "--by", "task", "--metric", "mean"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("No curve for series with one step: EleutherAI/pythia-160m-data (arc_easy) at step 143000"),
        "the second arm, at the final step only, is named: {stdout}"
    );
}

/// A task whose only metric is a (gold, prediction) pair the harness aggregates over the corpus
/// (CoLA's mcc): the pairs become label and prediction, so `--metric mcc` recomputes it.
#[test]
fn pair_metrics_become_label_and_prediction() {
    let dir = TempDir::new().unwrap();
    let folder = dir.path().join("EleutherAI__pythia-160m-seed4");
    std::fs::create_dir_all(&folder).unwrap();
    let pairs = [(1, 1), (0, 1), (1, 0), (0, 0), (1, 1), (0, 0)];
    let lines: String = pairs
        .iter()
        .enumerate()
        .map(|(doc, (gold, prediction))| {
            let record = serde_json::json!({
                "doc_id": doc, "doc": {"sentence": format!("s{doc}")}, "target": gold.to_string(),
                "arguments": {"gen_args_0": {"arg_0": "Q", "arg_1": " no"}, "gen_args_1": {"arg_0": "Q", "arg_1": " yes"}},
                "resps": [], "filtered_resps": [["-1.0", "False"], ["-2.0", "False"]], "filter": "none",
                "metrics": ["mcc"], "doc_hash": format!("{doc}"), "prompt_hash": "p", "target_hash": "t",
                "mcc": [gold, prediction],
            });
            format!("{record}\n")
        })
        .collect();
    let date = "2024-06-01T10-00-00.000001";
    std::fs::write(folder.join(format!("samples_cola_{date}.jsonl")), lines).unwrap();
    let results = serde_json::json!({
        "results": {"cola": {"alias": "cola", "mcc,none": 0.333}},
        "configs": {"cola": {"metric_list": [{"metric": "mcc", "aggregation": "matthews_corrcoef"}]}},
        "config": {"model": "hf", "model_args": "pretrained=EleutherAI/pythia-160m-seed4,revision=step2000"},
        "model_name": "EleutherAI/pythia-160m-seed4",
    });
    std::fs::write(folder.join(format!("results_{date}.json")), results.to_string()).unwrap();
    let (table, stderr) = import(&[dir.path().to_str().unwrap()], &dir.path().join("t.parquet"));
    assert!(
        stderr.contains("cola: no numeric per-sample metric (pairs in label/prediction)"),
        "{stderr}"
    );
    let ints = |n: &Option<Numbers>| match n {
        Some(Numbers::Int(v)) => v.iter().map(|x| x.unwrap()).collect::<Vec<i64>>(),
        other => panic!("{other:?}"),
    };
    // The pairs, not the argmax of the log-likelihoods (always choice 0 here).
    assert_eq!(ints(&table.label), pairs.iter().map(|p| p.0).collect::<Vec<_>>());
    assert_eq!(ints(&table.prediction), pairs.iter().map(|p| p.1).collect::<Vec<_>>());
    assert_eq!(table.step.as_ref().unwrap()[0], Some(2000));
    assert!(table.score.as_ref().unwrap().iter().all(Option::is_none));
}

/// `--output_path NAME.json` makes the harness write `NAME_<date>.json` beside the samples, and
/// Python writes `NaN` for a document's missing float: both are read.
#[test]
fn a_named_results_file_and_python_nan_are_read() {
    let dir = TempDir::new().unwrap();
    let name = "EleutherAI__pythia-160m-seed2";
    let folder = dir.path().join(name);
    std::fs::create_dir_all(&folder).unwrap();
    for file in std::fs::read_dir(fixture("v0.4.3").join(name)).unwrap() {
        let path = file.unwrap().path();
        let file_name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("results_", "myrun_");
        let text = std::fs::read_to_string(&path).unwrap();
        // A document field that Python wrote as NaN.
        let text = text.replace(r#""domain": null"#, r#""domain": NaN"#);
        std::fs::write(folder.join(file_name), text).unwrap();
    }
    let (table, stderr) = import(&[dir.path().to_str().unwrap()], &dir.path().join("t.parquet"));
    assert!(stderr.contains("lambada_openai: acc: equal in 3 of 3"), "{stderr}");
    assert_eq!(table.len(), 270);
    assert!(table.group.iter().all(|g| g == Some("EleutherAI/pythia-160m")));
}
