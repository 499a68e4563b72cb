//! `mb-stats variance`: components and implied standard errors per group, and its input checks.

mod support;

use support::{assert_refused, mb_stats};

use mb_stats_analysis::results::parquet;
use mb_stats_analysis::synthetic::{self, Study};
use tempfile::TempDir;

#[test]
fn components_and_standard_errors_per_group() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("v.json");
    let o = mb_stats(&[
        "variance",
        "data/demo-results.parquet",
        "--nboot",
        "200",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "base and cda");
    for r in rows {
        let names: Vec<&str> = r["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["seed", "run", "example", "seed_x_example", "residual"]);
        let se: Vec<f64> = r["implied_standard_errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["se"].as_f64().unwrap())
            .collect();
        assert!(
            se[1] <= se[0] && se[2] <= se[0] && se[3] <= se[0],
            "more seeds, runs or examples never hurt: {se:?}"
        );
        let residual = &r["components"][4];
        assert!(residual["low"].as_f64().unwrap() <= residual["estimate"].as_f64().unwrap());
    }
    assert!(
        !v["method"].as_str().unwrap().contains("values in %"),
        "variances are not percentages"
    );
}

#[test]
fn one_run_per_seed_folds_run_into_seed_and_bad_input_is_refused() {
    let dir = TempDir::new().unwrap();
    let one = dir.path().join("one.parquet");
    parquet::write(
        &synthetic::classification(
            &Study {
                runs: 1,
                ..Study::demo()
            },
            3,
        ),
        &one,
    )
    .unwrap();
    let csv = dir.path().join("v.csv");
    let o = mb_stats(&[
        "variance",
        one.to_str().unwrap(),
        "--nboot",
        "100",
        "-o",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    let run_row = text.lines().find(|l| l.starts_with("component,all,base,run,")).unwrap();
    assert_eq!(
        run_row, "component,all,base,run,,,,10,1,120",
        "run is not identifiable with one run"
    );
    for (args, needle) in [
        (
            vec!["variance", "data/demo-results.parquet", "--metric", "f1"],
            "per-example metric",
        ),
        (
            vec![
                "variance",
                "data/demo-results.parquet",
                "--base",
                "group=base",
                "--treatment",
                "group=cda",
            ],
            "do not apply",
        ),
    ] {
        let o = mb_stats(&args);
        assert_refused(&o, &[needle]);
    }
}
