//! `--interval` end to end: every analysis names its method, the paper's percentile interval is
//! one flag away, the calibrated default is wider where seeds are few, and bad values are refused.

mod support;

use support::{assert_refused, mb_stats};

use mb_stats_analysis::results::parquet;
use mb_stats_analysis::synthetic::{self, Study};
use tempfile::TempDir;

/// The CSV's (low, high, interval) of each row.
fn intervals(path: &std::path::Path) -> Vec<(f64, f64, String)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (low, high, method) = (col("low"), col("high"), col("interval"));
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[low].parse().unwrap(), r[high].parse().unwrap(), r[method].to_string())
        })
        .collect()
}

#[test]
fn five_seeds_get_wider_calibrated_intervals_and_percentile_stays_available() {
    let dir = TempDir::new().unwrap();
    let results = dir.path().join("r.parquet");
    let study = Study {
        seeds: 5,
        runs: 2,
        examples: 300,
        cluster_size: None,
        seed_sd: 0.8,
        ..Study::coref_like()
    };
    parquet::write(&synthetic::classification(&study, 3), &results).unwrap();
    let mut by_method = Vec::new();
    for method in ["calibrated", "percentile", "expanded", "student"] {
        let csv = dir.path().join(format!("{method}.csv"));
        let out = mb_stats(&[
            "bootstrap",
            results.to_str().unwrap(),
            "--base",
            "group=base",
            "--treatment",
            "group=cda",
            "--paired",
            "--interval",
            method,
            "-o",
            csv.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let rows = intervals(&csv);
        assert!(rows.iter().all(|r| r.2 == method), "{rows:?}");
        let text = std::fs::read_to_string(&csv).unwrap();
        let guarded = text.contains("few seeds (5)");
        assert!(guarded, "{method}: no few-seeds note in {text}");
        by_method.push(rows);
    }
    // Every quantity's calibrated interval is wider than the percentile one at 5 seeds.
    for (c, p) in by_method[0].iter().zip(&by_method[1]) {
        assert!(c.1 - c.0 > p.1 - p.0, "calibrated {c:?} vs percentile {p:?}");
    }
    // The terminal method line names the method.
    let out = mb_stats(&["seeds", results.to_str().unwrap(), "--interval", "student"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("95% student intervals"));
}

#[test]
fn a_bad_interval_method_is_refused_naming_the_flag() {
    let dir = TempDir::new().unwrap();
    let results = dir.path().join("r.parquet");
    parquet::write(&synthetic::classification(&Study::demo(), 1), &results).unwrap();
    let out = mb_stats(&["bootstrap", results.to_str().unwrap(), "--interval", "bca"]);
    assert_refused(&out, &["--interval", "bca"]);
}
