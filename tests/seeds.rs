//! `mb-stats seeds`: per-seed conclusions against their definition, agreement consistent with
//! them, the right no-seed-effect test for the design, outputs and bad input.

mod support;

use support::{assert_refused, mb_stats};

use std::collections::BTreeMap;
use std::path::Path;

use mb_stats_analysis::results::{Numbers, ResultsTable, parquet};
use tempfile::TempDir;

fn demo() -> ResultsTable {
    parquet::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo-results.parquet")).unwrap()
}

/// Mean over a seed's runs of each run's accuracy, by definition.
fn seed_accuracy(t: &ResultsTable, group: &str, seed: i64) -> f64 {
    let (Some(Numbers::Int(label)), Some(Numbers::Int(pred))) = (&t.label, &t.prediction) else {
        panic!()
    };
    let mut runs: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for i in (0..t.len()).filter(|&i| &t.group[i] == group && t.seed[i] == seed) {
        let e = runs.entry(t.run.as_ref().unwrap()[i].unwrap()).or_default();
        e.0 += f64::from(label[i] == pred[i]);
        e.1 += 1.0;
    }
    runs.values().map(|(c, n)| c / n).sum::<f64>() / runs.len() as f64
}

#[test]
fn paired_seeds_match_their_definition_and_agreement_is_consistent() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("seeds.json");
    let o = mb_stats(&[
        "seeds",
        "data/demo-results.parquet",
        "--base",
        "group=base",
        "--treatment",
        "group=cda",
        "--paired",
        "--alternative",
        "two-sided",
        "--nboot",
        "500",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let table = demo();
    let seeds = v["seeds"].as_array().unwrap();
    assert_eq!(seeds.len(), 10);
    for s in seeds {
        let seed = s["seed"].as_i64().unwrap();
        let expected = seed_accuracy(&table, "cda", seed) - seed_accuracy(&table, "base", seed);
        let estimate = s["estimate"].as_f64().unwrap();
        assert!(
            (estimate - expected).abs() < 1e-12,
            "seed {seed}: {estimate} vs {expected}"
        );
        let (low, high, p) = (
            s["low"].as_f64().unwrap(),
            s["high"].as_f64().unwrap(),
            s["p_value"].as_f64().unwrap(),
        );
        assert!(low <= estimate && estimate <= high);
        let expected_conclusion = match (p <= 0.05, estimate > 0.0) {
            (false, _) => "not significant",
            (true, true) => "significant +",
            (true, false) => "significant -",
        };
        assert_eq!(s["conclusion"], expected_conclusion);
    }
    let agreement = &v["agreement"][0];
    let procedure = agreement["procedure"].as_str().unwrap().to_string();
    let ids = |key: &str| {
        agreement[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let total = ids("agree").len() + ids("opposite").len() + ids("missed").len() + ids("spurious").len();
    assert_eq!(total, 10, "every seed in one bucket");
    for s in seeds {
        let seed = s["seed"].as_i64().unwrap();
        let conclusion = s["conclusion"].as_str().unwrap();
        let bucket = if conclusion == procedure {
            "agree"
        } else if procedure == "not significant" {
            "spurious"
        } else if conclusion == "not significant" {
            "missed"
        } else {
            "opposite"
        };
        assert!(
            ids(bucket).contains(&seed),
            "seed {seed} ({conclusion}) should be in {bucket} (procedure {procedure})"
        );
    }
    let tests = v["heterogeneity"].as_array().unwrap();
    assert_eq!(tests.len(), 2, "one test per arm");
    assert!(
        tests.iter().all(|t| t["test"] == "permutation" && t["n_runs"] == 20),
        "two runs per seed: permutation"
    );
}

#[test]
fn one_run_per_seed_uses_the_spread_test_and_all_formats_write() {
    let dir = TempDir::new().unwrap();
    let mut t = demo();
    let keep: Vec<usize> = (0..t.len())
        .filter(|&i| t.run.as_ref().unwrap()[i] == Some(0))
        .collect();
    let pick = |v: &Vec<Option<i64>>| keep.iter().map(|&i| v[i]).collect::<Vec<_>>();
    let numbers = |n: &Option<Numbers>| match n {
        Some(Numbers::Int(v)) => Some(Numbers::Int(pick(v))),
        _ => unreachable!(),
    };
    t = ResultsTable {
        group: t.group.select(&keep),
        seed: keep.iter().map(|&i| t.seed[i]).collect(),
        run: t.run.as_ref().map(pick),
        task: t.task.as_ref().map(|v| v.select(&keep)),
        example: match &t.example {
            mb_stats_analysis::results::ExampleIds::Int(v) => {
                mb_stats_analysis::results::ExampleIds::Int(keep.iter().map(|&i| v[i]).collect())
            }
            _ => unreachable!(),
        },
        label: numbers(&t.label),
        prediction: numbers(&t.prediction),
        score: t.score.as_ref().map(|v| keep.iter().map(|&i| v[i]).collect()),
        cluster: t.cluster.as_ref().map(|v| v.select(&keep)),
        ..t.clone()
    };
    let path = dir.path().join("one-run.parquet");
    parquet::write(&t, &path).unwrap();
    for ext in ["csv", "md", "tex", "json"] {
        let out = dir.path().join(format!("s.{ext}"));
        let o = mb_stats(&[
            "seeds",
            path.to_str().unwrap(),
            "--nboot",
            "200",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("spread"), "{ext}: {text}");
    }
    let csv = std::fs::read_to_string(dir.path().join("s.csv")).unwrap();
    assert!(csv.starts_with("kind,cell,group,seed,estimate,low,high,p_value,conclusion,test,statistic"));
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("seed,")).count(),
        20,
        "10 seeds × 2 groups"
    );
    assert_eq!(csv.lines().filter(|l| l.starts_with("heterogeneity,")).count(), 2);
}

#[test]
fn bad_alpha_is_one_line_exit_2() {
    let o = mb_stats(&["seeds", "data/demo-results.parquet", "--alpha", "2"]);
    assert_refused(&o, &["--alpha"]);
}

#[test]
fn unpaired_seeds_are_each_compared_with_the_whole_baseline() {
    // A one-seed baseline (like the original BERT) against the ten treatment seeds.
    let dir = TempDir::new().unwrap();
    let t = demo();
    let keep: Vec<usize> = (0..t.len())
        .filter(|&i| &t.group[i] == "cda" || t.seed[i] == 0)
        .collect();
    let path = dir.path().join("one-seed-base.parquet");
    parquet::write(&t.select(&keep), &path).unwrap();
    let out = dir.path().join("s.json");
    let o = mb_stats(&[
        "seeds",
        path.to_str().unwrap(),
        "--base",
        "group=base",
        "--treatment",
        "group=cda",
        "--nboot",
        "200",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let seeds = v["seeds"].as_array().unwrap();
    assert_eq!(seeds.len(), 10, "every treatment seed, not only the shared seed 0");
    let baseline = seed_accuracy(&t, "base", 0);
    for s in seeds {
        let seed = s["seed"].as_i64().unwrap();
        let expected = seed_accuracy(&t, "cda", seed) - baseline;
        assert!(
            (s["estimate"].as_f64().unwrap() - expected).abs() < 1e-12,
            "seed {seed}"
        );
    }
}
