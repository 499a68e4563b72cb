//! `mb-stats import` on small files written in exactly the layouts of the MultiBERTs release:
//! every field checked, and malformed files rejected with one line and exit code 2.

mod support;

use support::{assert_refused, mb_stats};

use std::path::Path;

use mb_stats_analysis::results::{ExampleIds, Numbers, ResultsTable, parquet};
use tempfile::TempDir;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn import(args: &[&str], out: &Path) -> ResultsTable {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", out.to_str().unwrap()]);
    let o = mb_stats(&all);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    parquet::read(out).unwrap()
}

fn assert_bad(args: &[&str], needles: &[&str], out: &Path) {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", out.to_str().unwrap()]);
    assert_refused(&mb_stats(&all), needles);
    assert!(!out.exists());
}

fn ints(n: &Option<Numbers>) -> Vec<i64> {
    match n {
        Some(Numbers::Int(v)) => v.iter().map(|x| x.unwrap()).collect(),
        other => panic!("expected integers, got {other:?}"),
    }
}

fn floats(n: &Option<Numbers>) -> Vec<f64> {
    match n {
        Some(Numbers::Float(v)) => v.iter().map(|x| x.unwrap()).collect(),
        other => panic!("expected floats, got {other:?}"),
    }
}

/// Two occupations × (female, male, neutral) pronouns; template = occupation index.
const LABEL_INFO: &str = "\tgender\tpronoun_type\tanswer\toccupation\tother_participant\tsomeone\ttemplate_idx
0\tFEMININE\tNOM\t0\tnurse\tpatient\tFalse\t0
1\tMASCULINE\tNOM\t0\tnurse\tpatient\tFalse\t0
2\tUNKNOWN\tNOM\t1\tnurse\tpatient\tFalse\t0
3\tFEMININE\tNOM\t1\tengineer\tclient\tFalse\t1
4\tMASCULINE\tNOM\t0\tengineer\tclient\tFalse\t1
5\tUNKNOWN\tNOM\t0\tengineer\tclient\tFalse\t1
";

fn coref_group(root: &Path, name: &str, preds: &str) {
    write(
        &root.join(name).join("run_info.tsv"),
        "\tpretrain_seed\tfinetune_seed\n0\t0\t0\n1\t0\t1\n2\t3\t0\n",
    );
    write(&root.join(name).join("label_info.tsv"), LABEL_INFO);
    write(&root.join(name).join("preds.tsv"), preds);
}

const PREDS: &str = "0.000000000000000000e+00 0.000000000000000000e+00 1.000000000000000000e+00 1.000000000000000000e+00 0.000000000000000000e+00 0.000000000000000000e+00
0 1 1 0 0 1
1 1 1 1 1 1
";

#[test]
fn coref_per_example_rows_and_bias_table() {
    let dir = TempDir::new().unwrap();
    let root = dir.path();
    coref_group(root, "base", PREDS);
    coref_group(root, "cda_intervention-50k", "0 0 1 1 0 0\n0 0 1 0 0 1\n0 1 1 1 1 1\n");
    let groups = [root.join("base"), root.join("cda_intervention-50k")];
    let g: Vec<&str> = groups.iter().map(|p| p.to_str().unwrap()).collect();
    let t = import(&["coref", g[0], g[1]], &root.join("coref.parquet"));
    assert_eq!(t.len(), 2 * 3 * 6);
    assert_eq!(&t.group[0], "base");
    assert_eq!(&t.group[18], "cda_intervention-50k");
    assert_eq!(&t.seed[..18], &[[0; 6], [0; 6], [3; 6]].concat()[..]);
    assert_eq!(t.run.as_ref().unwrap()[6..12], vec![Some(1); 6]);
    assert_eq!(t.example, ExampleIds::Int((0..6).cycle().take(36).collect()));
    assert_eq!(ints(&t.label)[..6], [0, 0, 1, 1, 0, 0]);
    assert_eq!(
        ints(&t.prediction)[..18],
        [0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    );
    assert_eq!(t.cluster.as_ref().unwrap().get(3), Some("1"));
    assert_eq!(t.task.as_ref().unwrap().get(0), Some("winogender"));

    write(
        &root.join("occupations-stats.tsv"),
        "occupation\tbergsma_pct_female\tbls_pct_female\tbls_year\nnurse\t89.0\t90.0\t2015\nengineer\t10.0\t12.5\t2015\n",
    );
    let occ = root.join("occupations-stats.tsv");
    let b = import(
        &["coref", g[0], g[1], "--bias", occ.to_str().unwrap()],
        &root.join("bias.parquet"),
    );
    // Per group: 3 runs × 2 occupations, occupations in sorted order (engineer, nurse).
    assert_eq!(b.len(), 12);
    assert_eq!(
        b.example,
        ExampleIds::Text(
            ["engineer", "nurse"]
                .iter()
                .cycle()
                .take(12)
                .map(|s| s.to_string())
                .collect()
        )
    );
    assert_eq!(floats(&b.label)[..2], [12.5, 90.0]);
    // base run 0 predicts [0 0 1 1 0 0]: engineer female (ex 3) → 1 (not occupation), male (ex 4) → 0
    // (occupation): bias = 0 − 1 = −1; nurse female (0) → 0, male (1) → 0: bias 0.
    // Run 1 predicts [0 1 1 0 0 1]: engineer 1 − 1 = 0; nurse 1 − 0 = 1. Run 2 predicts all 1: 0, 0.
    let bias = floats(&b.prediction);
    assert_eq!(bias[..6], [-1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    assert_eq!(b.seed[..6], [0, 0, 0, 0, 3, 3]);
    // The paper's bias correlation is then a Pearson bootstrap.
    let o = mb_stats(&[
        "bootstrap",
        root.join("bias.parquet").to_str().unwrap(),
        "--metric",
        "pearson",
        "--nboot",
        "50",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn coref_malformed_files() {
    let dir = TempDir::new().unwrap();
    let root = dir.path();
    let out = root.join("out.parquet");
    coref_group(root, "ragged", "0 0 1 1 0 0\n0 1 1 0 0\n1 1 1 1 1 1\n");
    assert_bad(
        &["coref", root.join("ragged").to_str().unwrap()],
        &["preds.tsv", "line 2", "5 values, expected 6"],
        &out,
    );
    coref_group(root, "short", "0 0 1 1 0 0\n0 1 1 0 0 1\n");
    assert_bad(
        &["coref", root.join("short").to_str().unwrap()],
        &["2 rows of predictions", "lists 3 runs"],
        &out,
    );
    coref_group(root, "wide", "0 0 1 1 0 0 1\n0 1 1 0 0 1 1\n1 1 1 1 1 1 1\n");
    assert_bad(
        &["coref", root.join("wide").to_str().unwrap()],
        &["7 examples per run", "label_info.tsv has 6 rows"],
        &out,
    );
    coref_group(root, "text", "0 0 x 1 0 0\n0 1 1 0 0 1\n1 1 1 1 1 1\n");
    assert_bad(
        &["coref", root.join("text").to_str().unwrap()],
        &["preds.tsv", "line 1", "'x' is not a number"],
        &out,
    );
    coref_group(root, "three", "0 0 2 1 0 0\n0 1 1 0 0 1\n1 1 1 1 1 1\n");
    assert_bad(
        &["coref", root.join("three").to_str().unwrap()],
        &["run 0, example 2", "not 0 or 1"],
        &out,
    );
    // An answer outside 0/1 in label_info.tsv (issue 30, class 10).
    coref_group(root, "answer", PREDS);
    write(
        &root.join("answer/label_info.tsv"),
        &LABEL_INFO.replace("0\tFEMININE\tNOM\t0\t", "0\tFEMININE\tNOM\t2\t"),
    );
    assert_bad(
        &["coref", root.join("answer").to_str().unwrap()],
        &["label_info.tsv", "line 2", "column answer is '2', expected 0 or 1"],
        &out,
    );
    coref_group(root, "seedless", PREDS);
    write(
        &root.join("seedless/run_info.tsv"),
        "\tseed\tfinetune_seed\n0\t0\t0\n1\t0\t1\n2\t3\t0\n",
    );
    assert_bad(
        &["coref", root.join("seedless").to_str().unwrap()],
        &["run_info.tsv", "no column 'pretrain_seed'"],
        &out,
    );
    coref_group(root, "ok", PREDS);
    write(&root.join("occ.tsv"), "occupation\tbls_pct_female\nnurse\t90\n");
    assert_bad(
        &[
            "coref",
            root.join("ok").to_str().unwrap(),
            "--bias",
            root.join("occ.tsv").to_str().unwrap(),
        ],
        &["occ.tsv", "no row for occupation 'engineer'"],
        &out,
    );
    assert_bad(
        &["coref", root.join("missing").to_str().unwrap()],
        &["missing/run_info.tsv", "cannot read"],
        &out,
    );
}

/// An index over 2 seeds × 2 steps × 2 learning rates × 2 fine-tuning seeds; lr 3e-05 is better.
fn glue_release(root: &Path) {
    let mut index = String::from("file\ttask\tpretrain_id\tn_steps\tlr\tft_seed\trelease\n");
    let labels = [0, 1, 2, 1];
    for seed in 0..2 {
        for steps in ["1M", "2M"] {
            for lr in ["2e-05", "3e-05"] {
                for ft in 0..2 {
                    let file =
                        format!("MNLI/release=multiberts,pretrain_id={seed},n_steps={steps},lr={lr},ft_seed={ft}.tsv");
                    index += &format!("{file}\tMNLI\t{seed}\t{steps}\t{lr}\t{ft}\tmultiberts\n");
                    // lr 3e-05 predicts every label; 2e-05 predicts class 0 everywhere.
                    let rows: Vec<String> = labels
                        .iter()
                        .map(|&y| {
                            let mut p = [0.1, 0.1, 0.1];
                            p[if lr == "3e-05" { y } else { 0 }] = 0.8;
                            format!("{} {} {}", p[0], p[1], p[2])
                        })
                        .collect();
                    write(&root.join(&file), &(rows.join("\n") + "\n"));
                }
            }
        }
        let file = format!("STS-B/seed={seed}.tsv");
        index += &format!("{file}\tSTS-B\t{seed}\t2000k\t2e-05\t0\tmultiberts\n");
        write(&root.join(file), &format!("{}\n{}\n{}\n", 0.5 + seed as f64, 4.0, 2.5));
    }
    write(&root.join("index.tsv"), &index);
    write(&root.join("MNLI_dev_labels"), "0\n1\n2\n1\n");
    write(&root.join("STS-B_dev_labels"), "0.4\n3.8\n2.0\n");
}

#[test]
fn glue_tasks_steps_learning_rates_and_regression() {
    let dir = TempDir::new().unwrap();
    let root = dir.path();
    glue_release(root);
    let index = root.join("index.tsv");
    let i = index.to_str().unwrap();
    let all = import(&["glue", i, "--task", "MNLI"], &root.join("all.parquet"));
    assert_eq!(all.len(), 2 * 2 * 2 * 2 * 4);
    assert_eq!(&all.group[0], "multiberts");
    assert_eq!(all.step.as_ref().unwrap()[0], Some(1_000_000));
    // Without --best-lr, runs are (lr rank × 1000 + ft_seed).
    let runs: std::collections::BTreeSet<i64> = all.run.as_ref().unwrap().iter().map(|r| r.unwrap()).collect();
    assert_eq!(runs.into_iter().collect::<Vec<_>>(), vec![0, 1, 1000, 1001]);
    let best = import(&["glue", i, "--task", "MNLI", "--best-lr"], &root.join("best.parquet"));
    assert_eq!(best.len(), 2 * 2 * 2 * 4);
    assert_eq!(
        ints(&best.prediction),
        ints(&best.label),
        "the kept lr predicts every label"
    );
    assert_eq!(ints(&best.label)[..4], [0, 1, 2, 1]);
    assert_eq!(best.task.as_ref().unwrap().get(0), Some("MNLI"));
    // Numeric columns outside schema v1 (the learning rate here) are read back as extra columns.
    let (_, read_lr) = best.extra.iter().find(|(name, _)| name == "lr").expect("lr read back");
    assert!(read_lr.iter().all(|v| v.is_some_and(|lr| (lr - 3e-05).abs() < 1e-12)));
    use polars::prelude::SerReader;
    let raw = polars::prelude::ParquetReader::new(std::fs::File::open(root.join("best.parquet")).unwrap())
        .finish()
        .unwrap();
    let lr = raw.column("lr").unwrap().f64().unwrap().get(0).unwrap();
    assert!((lr - 3e-05).abs() < 1e-12);
    let sts = import(&["glue", i, "--task", "STS-B"], &root.join("sts.parquet"));
    assert_eq!(floats(&sts.prediction), vec![0.5, 4.0, 2.5, 1.5, 4.0, 2.5]);
    assert_eq!(floats(&sts.label)[..3], [0.4, 3.8, 2.0]);
    assert_eq!(sts.step.as_ref().unwrap()[0], Some(2_000_000));
}

#[test]
fn glue_malformed_files() {
    let dir = TempDir::new().unwrap();
    let root = dir.path();
    glue_release(root);
    let out = root.join("out.parquet");
    let i = root.join("index.tsv");
    let i = i.to_str().unwrap();
    assert_bad(
        &["glue", i, "--task", "QQP"],
        &["--task QQP", "tasks: MNLI, STS-B"],
        &out,
    );
    write(&root.join("MNLI_dev_labels"), "0\n1\n2\n");
    assert_bad(&["glue", i, "--task", "MNLI"], &["4 rows", "has 3 labels"], &out);
    write(&root.join("MNLI_dev_labels"), "0\n1\n2\n1\n");
    std::fs::remove_file(root.join("MNLI/release=multiberts,pretrain_id=1,n_steps=2M,lr=3e-05,ft_seed=1.tsv")).unwrap();
    assert_bad(
        &["glue", i, "--task", "MNLI"],
        &[
            "index.tsv",
            "pretrain_id=1,n_steps=2M,lr=3e-05,ft_seed=1.tsv",
            "does not exist",
        ],
        &out,
    );
    let mut index = std::fs::read_to_string(root.join("index.tsv")).unwrap();
    index = index.replace("\t1M\t", "\tsoon\t");
    write(&root.join("index.tsv"), &index);
    assert_bad(
        &["glue", i, "--task", "MNLI"],
        &["index.tsv", "line 2", "n_steps is 'soon'"],
        &out,
    );
    write(
        &root.join("index.tsv"),
        "file\ttask\tpretrain_id\tn_steps\tlr\tft_seed\trelease\nx.tsv\tMNLI\tzero\t1M\t2e-05\t0\tmultiberts\n",
    );
    assert_bad(
        &["glue", i, "--task", "MNLI"],
        &["index.tsv", "line 2", "pretrain_id is 'zero'"],
        &out,
    );
    write(&root.join("index.tsv"), "file\ttask\tpretrain_id\n");
    assert_bad(&["glue", i, "--task", "MNLI"], &["no column 'n_steps'"], &out);
}

#[test]
fn squad_exact_match_f1_and_paragraph_clusters() {
    let dir = TempDir::new().unwrap();
    let root = dir.path();
    let dev = r#"{"version": "v2.0", "data": [
        {"title": "Denver", "paragraphs": [
            {"context": "...", "qas": [
                {"id": "q1", "question": "Who won?", "answers": [{"text": "Denver Broncos", "answer_start": 0}, {"text": "the Broncos", "answer_start": 7}], "is_impossible": false},
                {"id": "q2", "question": "Who lost?", "answers": [], "is_impossible": true}]},
            {"context": "...", "qas": [
                {"id": "q3", "question": "Where?", "answers": [{"text": "Levi's Stadium", "answer_start": 3}], "is_impossible": false}]}]}]}"#;
    write(&root.join("dev-v2.0.json"), dev);
    write(
        &root.join("index.tsv"),
        "file\ttask\tpretrain_id\tn_steps\tlr\tft_seed\trelease\nSQuAD/a.json\tSQuAD\t0\t2M\t3e-05\t0\tmultiberts\nSQuAD/b.json\tSQuAD\t0\t1M\t3e-05\t0\tbert-base-uncased\n",
    );
    write(
        &root.join("SQuAD/a.json"),
        r#"{"q1": "Broncos", "q2": "", "q3": "levis stadium"}"#,
    );
    write(
        &root.join("SQuAD/b.json"),
        r#"{"q1": "The Denver Broncos!", "q2": "Panthers", "q3": "Santa Clara"}"#,
    );
    let (i, d) = (root.join("index.tsv"), root.join("dev-v2.0.json"));
    let f1 = import(
        &["squad", i.to_str().unwrap(), "--dev", d.to_str().unwrap()],
        &root.join("f1.parquet"),
    );
    assert_eq!(
        f1.example,
        ExampleIds::Text(["q1", "q2", "q3", "q1", "q2", "q3"].map(String::from).to_vec())
    );
    let scores: Vec<f64> = f1.score.as_ref().unwrap().iter().map(|s| s.unwrap()).collect();
    // q1 "Broncos" vs "the Broncos" → F1 1; q2 empty vs no answer → 1; q3 "levis stadium" vs
    // "Levi's Stadium" → "levis stadium" → 1. Run b: q1 exact 1, q2 0, q3 0.
    assert_eq!(scores, vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    assert_eq!(
        f1.cluster.as_ref().unwrap().iter().take(3).collect::<Vec<_>>(),
        [Some("Denver#0"), Some("Denver#0"), Some("Denver#1")]
    );
    assert_eq!(&f1.group[3], "bert-base-uncased");
    assert_eq!(
        f1.step.as_ref().unwrap()[..4],
        [Some(2_000_000), Some(2_000_000), Some(2_000_000), Some(1_000_000)]
    );
    write(
        &root.join("SQuAD/a.json"),
        r#"{"q1": "Denver", "q2": "", "q3": "Levi"}"#,
    );
    let em = import(
        &[
            "squad",
            i.to_str().unwrap(),
            "--dev",
            d.to_str().unwrap(),
            "--score",
            "em",
        ],
        &root.join("em.parquet"),
    );
    assert_eq!(em.score.as_ref().unwrap()[..3], [Some(0.0), Some(1.0), Some(0.0)]);
    // Malformed: a run's file misses a question; a file that is not JSON.
    let out = root.join("bad.parquet");
    write(&root.join("SQuAD/a.json"), r#"{"q1": "Denver", "q3": "Levi"}"#);
    assert_bad(
        &["squad", i.to_str().unwrap(), "--dev", d.to_str().unwrap()],
        &["a.json", "no prediction for question q2"],
        &out,
    );
    // Predictions for questions the dev set lacks (issue 30, class 10).
    write(
        &root.join("SQuAD/a.json"),
        r#"{"q1": "Denver", "q2": "", "q3": "Levi", "q9": "elsewhere"}"#,
    );
    assert_bad(
        &["squad", i.to_str().unwrap(), "--dev", d.to_str().unwrap()],
        &["a.json", "1 prediction(s) for questions not in", "q9"],
        &out,
    );
    write(&root.join("SQuAD/a.json"), "[1, 2");
    assert_bad(
        &["squad", i.to_str().unwrap(), "--dev", d.to_str().unwrap()],
        &["a.json", "expected a JSON object"],
        &out,
    );
}

#[test]
fn glue_binary_tasks_keep_the_positive_class_probability() {
    let dir = TempDir::new().unwrap();
    let root = dir.path();
    let index = "file\ttask\tpretrain_id\tn_steps\tlr\tft_seed\trelease\nSST-2/p.tsv\tSST-2\t0\t2M\t2e-05\t0\tmultiberts\nQQP/l.tsv\tQQP\t0\t2M\t2e-05\t0\tmultiberts\n";
    write(&root.join("index.tsv"), index);
    // Probabilities are kept as given; logits go through a softmax.
    write(&root.join("SST-2/p.tsv"), "0.9 0.1\n0.25 0.75\n");
    write(&root.join("QQP/l.tsv"), "2.0 0.0\n0.0 1.0\n");
    write(&root.join("SST-2_dev_labels"), "0\n1\n");
    write(&root.join("QQP_dev_labels"), "0\n0\n");
    let i = root.join("index.tsv");
    let sst = import(
        &["glue", i.to_str().unwrap(), "--task", "SST-2"],
        &root.join("sst.parquet"),
    );
    assert_eq!(ints(&sst.prediction), [0, 1]);
    assert_eq!(sst.score.as_ref().unwrap(), &[Some(0.1), Some(0.75)]);
    let qqp = import(
        &["glue", i.to_str().unwrap(), "--task", "QQP"],
        &root.join("qqp.parquet"),
    );
    let s: Vec<f64> = qqp.score.as_ref().unwrap().iter().map(|x| x.unwrap()).collect();
    assert!(
        (s[0] - 1.0 / (1.0 + 2f64.exp())).abs() < 1e-12 && (s[1] - 1.0 / (1.0 + (-1f64).exp())).abs() < 1e-12,
        "{s:?}"
    );
    assert_eq!(ints(&qqp.prediction), [0, 1]);
}
