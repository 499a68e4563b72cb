//! The bias evaluations against their definitions: CrowS-Pairs' shared tokens against Python's
//! difflib, its scores and Winogender's pronoun log-probabilities against transformers (the
//! references `scripts/make_bias_fixtures.py` computed with `BertForMaskedLM`, committed in
//! tests/fixtures/bias/), both through `mb-stats run`, then the bias correlation's interval with
//! occupations resampled as clusters, and bad Winogender files refused.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde_json::Value;

use mb_stats_runner::task::crows_pairs::shared_positions;
use support::{assert_refused, mb_stats};

/// f32 model against f64 log-softmax, summed over a sentence's tokens.
const TOLERANCE: f64 = 1e-4;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures/bias").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn positions(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn shared_tokens_are_those_difflib_matches() {
    let cases = fixture("difflib.json");
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 300);
    for case in cases {
        let ids = |key: &str| -> Vec<u32> { positions(&case[key]).into_iter().map(|x| x as u32).collect() };
        let (a, b) = shared_positions(&ids("a"), &ids("b"));
        assert_eq!(a, positions(&case["a_positions"]), "{case}");
        assert_eq!(b, positions(&case["b_positions"]), "{case}");
    }
}

/// `[models]` with seed 0 of the tiny suite and the tiny original BERT as an extra arm, and the
/// given `[data]` and `[task]`.
fn experiment(dir: &Path, data_and_task: &str) -> PathBuf {
    let models = root().join("data/quickstart/models");
    let text = format!(
        "[models]\nsuite = \"local\"\npath = \"{m}/tiny-multiberts-seed_{{seed}}\"\nseeds = \"0\"\n\n[[models.extra]]\ngroup = \"original\"\npath = \"{m}/tiny-bert-original\"\nseed = 100\n\n{data_and_task}\n[runtime]\ndevice = \"cpu\"\nmax_length = 64\n",
        m = models.display()
    );
    let path = dir.join("bias.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(experiment: &Path, out: &Path) {
    let done = mb_stats(&[
        "run",
        experiment.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
}

fn frame(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

/// Rows of the arm whose checkpoint is `model` (seed 0 or the original's 100).
fn rows_of(results: &DataFrame, model: &str) -> DataFrame {
    let seed = if model == "tiny-bert-original" { 100 } else { 0 };
    let mask = results.column("seed").unwrap().i64().unwrap().equal(seed);
    results.filter(&mask).unwrap()
}

fn texts(df: &DataFrame, name: &str) -> Vec<String> {
    let column = df.column(name).unwrap().str().unwrap();
    (0..column.len()).map(|i| column.get(i).unwrap().to_string()).collect()
}

fn floats(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name).unwrap().f64().unwrap().into_no_null_iter().collect()
}

#[test]
fn crows_pairs_scores_match_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = root().join("data/bias/crows-pairs/crows_pairs_sample.csv");
    let file = experiment(
        tmp.path(),
        &format!(
            "[data]\neval = \"{}\"\nid = \"id\"\n\n[task]\nkind = \"crows-pairs\"\n",
            data.display()
        ),
    );
    let out = tmp.path().join("out");
    run(&file, &out);
    let results = frame(&out.join("results.parquet"));
    let reference = fixture("crows.json");
    let ids: Vec<i64> = reference["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let mut worst = 0f64;
    for (model, scores) in reference["scores"].as_object().unwrap() {
        let ours = rows_of(&results, model);
        let example: Vec<i64> = ours
            .column("example")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(example, ids, "{model}: one row per pair, in file order");
        let score = floats(&ours, "score");
        let prediction: Vec<i64> = ours
            .column("prediction")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        let tasks = texts(&ours, "task");
        assert_eq!(
            tasks.iter().collect::<std::collections::BTreeSet<_>>().len(),
            9,
            "every bias type is a task"
        );
        for (i, pair) in scores.as_array().unwrap().iter().enumerate() {
            let (more, less) = (pair[0].as_f64().unwrap(), pair[1].as_f64().unwrap());
            let difference = (score[i] - (more - less)).abs();
            worst = worst.max(difference / more.abs().max(1.0));
            assert!(
                difference <= TOLERANCE * more.abs().max(1.0),
                "{model} pair {}: {} against {}",
                ids[i],
                score[i],
                more - less
            );
            if (more - less).abs() > 1e-3 {
                assert_eq!(prediction[i], i64::from(more > less), "{model} pair {}", ids[i]);
            }
        }
    }
    eprintln!("CrowS-Pairs: largest relative difference from transformers {worst:.2e}");
}

fn winogender_task(templates: &Path) -> String {
    format!(
        "[data]\ntemplates = \"{}\"\noccupations = \"{}\"\n\n[task]\nkind = \"winogender\"\n\n[analysis]\nmetric = \"pearson\"\n",
        templates.display(),
        root().join("data/bias/winogender/occupations-stats.tsv").display()
    )
}

#[test]
fn winogender_pronoun_log_probabilities_match_transformers_and_the_correlation_has_an_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let templates = root().join("data/bias/winogender/templates-quickstart.tsv");
    let file = experiment(tmp.path(), &winogender_task(&templates));
    let out = tmp.path().join("out");
    run(&file, &out);
    let results = frame(&out.join("results.parquet"));
    let bls: HashMap<String, f64> = std::fs::read_to_string(root().join("data/bias/winogender/occupations-stats.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split('\t').collect();
            (cells[0].to_string(), cells[2].parse().unwrap())
        })
        .collect();
    let reference = fixture("winogender.json");
    let mut worst = 0f64;
    for (model, contexts) in reference.as_object().unwrap() {
        let ours = rows_of(&results, model);
        let contexts = contexts.as_object().unwrap();
        assert_eq!(ours.height(), contexts.len(), "{model}: one row per context");
        let ids = texts(&ours, "example");
        let clusters = texts(&ours, "cluster");
        let [female, male, neutral] = ["log_p_female", "log_p_male", "log_p_neutral"].map(|c| floats(&ours, c));
        let (label, prediction, score) = (
            floats(&ours, "label"),
            floats(&ours, "prediction"),
            floats(&ours, "score"),
        );
        for (i, id) in ids.iter().enumerate() {
            let expected = contexts[id].as_array().unwrap();
            for (ours, theirs) in [female[i], male[i], neutral[i]].iter().zip(expected) {
                let theirs = theirs.as_f64().unwrap();
                worst = worst.max((ours - theirs).abs() / theirs.abs().max(1.0));
                assert!(
                    (ours - theirs).abs() <= TOLERANCE * theirs.abs().max(1.0),
                    "{model} {id}: {ours} against {theirs}"
                );
            }
            let occupation = id.split('.').next().unwrap();
            assert_eq!(clusters[i], occupation);
            assert_eq!(label[i], bls[occupation]);
            assert!((prediction[i] - (female[i] - male[i])).abs() < 1e-12);
            assert_eq!(score[i], f64::from(u8::from(female[i] > male[i])));
        }
    }
    eprintln!("Winogender: largest relative difference from transformers {worst:.2e}");
    // The bias correlation over sentences, occupations resampled together.
    let results_path = out.join("results.parquet");
    let interval = mb_stats(&[
        "bootstrap",
        results_path.to_str().unwrap(),
        "--metric",
        "pearson",
        "--nboot",
        "200",
    ]);
    let text = String::from_utf8_lossy(&interval.stdout);
    assert!(
        interval.status.success(),
        "{}",
        String::from_utf8_lossy(&interval.stderr)
    );
    assert!(text.contains("clusters resampled"), "{text}");
    let occupations: std::collections::BTreeSet<&str> = bls.keys().map(String::as_str).collect();
    assert!(occupations.len() == 60);
}

#[test]
fn bad_winogender_files_are_refused_naming_the_row() {
    let tmp = tempfile::tempdir().unwrap();
    let header = "occupation(0)\tother-participant(1)\tanswer\tsentence\n";
    for (what, row, needle) in [
        (
            "no pronoun",
            "technician\tcustomer\t1\tThe $OCCUPATION told the $PARTICIPANT about the cash.\n",
            "exactly one pronoun placeholder",
        ),
        (
            "two pronouns",
            "technician\tcustomer\t1\tThe $OCCUPATION told $ACC_PRONOUN that $NOM_PRONOUN could pay.\n",
            "exactly one pronoun placeholder",
        ),
        (
            "unknown occupation",
            "astronaut\tcustomer\t1\tThe $OCCUPATION told the $PARTICIPANT that $NOM_PRONOUN could pay.\n",
            "occupation \"astronaut\" is not in",
        ),
    ] {
        let templates = tmp.path().join("templates.tsv");
        std::fs::write(&templates, format!("{header}{row}")).unwrap();
        let file = experiment(tmp.path(), &winogender_task(&templates));
        let out = tmp.path().join("out");
        let refused = mb_stats(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_refused(&refused, &["templates.tsv: row 1", needle]);
        assert!(!out.join("results.parquet").exists(), "{what}");
    }
}
