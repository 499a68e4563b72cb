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

/// Small cells, as BLiMP paradigms of 3 pairs gave them (`53.3 [-2356923492.4, 1885538889.9]`
/// before): 5 seeds × 3 examples and a one-seed arm with every example right. Every interval of
/// accuracy stays in [0, 1] (its delta in [−1, 1]) in every output, and an interval that would
/// claim exactness at the bound (`100.0 [100.0, 100.0]` from 3 examples) is `n/a` with the
/// reason, its p-value with it.
#[test]
fn small_cells_stay_in_range_and_say_n_a_at_the_bound() {
    use mb_stats_analysis::results::{ExampleIds, Numbers, ResultsTable};
    let (mut group, mut seed, mut example, mut label, mut prediction) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut add = |g: &str, s: i64, e: i64, right: bool| {
        group.push(g.to_string());
        seed.push(s);
        example.push(e);
        label.push(Some(1.0));
        prediction.push(Some(if right { 1.0 } else { 0.0 }));
    };
    for s in 0..5 {
        for e in 0..3 {
            add("multiberts", s, e, (s + e) % 3 != 0);
        }
    }
    for e in 0..3 {
        add("original", 100, e, true);
    }
    let table = ResultsTable {
        group: group.into(),
        seed,
        step: None,
        run: None,
        task: None,
        layer: None,
        example: ExampleIds::Int(example),
        label: Some(Numbers::Float(label)),
        prediction: Some(Numbers::Float(prediction)),
        score: None,
        cluster: None,
        extra: Vec::new(),
        metadata: Vec::new(),
    };
    let dir = TempDir::new().unwrap();
    let results = dir.path().join("r.parquet");
    parquet::write(&table, &results).unwrap();
    let csv = dir.path().join("b.csv");
    let o = mb_stats(&[
        "bootstrap",
        results.to_str().unwrap(),
        "--base",
        "group=original",
        "--treatment",
        "group=multiberts",
        "-o",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut reader = csv::Reader::from_path(&csv).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let by_quantity = |q: &str| rows.iter().find(|r| &r[col("quantity")] == q).unwrap().clone();
    // The one-seed arm: 3 of 3 right, no interval, and the reason.
    let base = by_quantity("base");
    assert_eq!((&base[col("low")], &base[col("high")]), ("", ""), "{base:?}");
    assert!(base[col("note")].contains("n/a: too few examples"), "{base:?}");
    // The five seeds: a real interval, inside [0, 1].
    let treatment = by_quantity("treatment");
    let (low, high): (f64, f64) = (
        treatment[col("low")].parse().unwrap(),
        treatment[col("high")].parse().unwrap(),
    );
    assert!(
        (0.0..=1.0).contains(&low) && (0.0..=1.0).contains(&high) && low < high,
        "{treatment:?}"
    );
    let delta = by_quantity("delta");
    let (low, high): (f64, f64) = (delta[col("low")].parse().unwrap(), delta[col("high")].parse().unwrap());
    assert!(-1.0 <= low && high <= 1.0 && low < high, "{delta:?}");
    // The terminal table says n/a where the CSV is empty, never a number outside [0, 100].
    let o = mb_stats(&["bootstrap", results.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("100.0 [n/a]"), "{text}");
    let cells = text.lines().filter(|l| l.starts_with('|')).flat_map(|l| l.split('|'));
    for cell in cells.filter(|c| c.contains('[')) {
        for number in cell.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')) {
            if let Ok(x) = number.parse::<f64>() {
                assert!((-100.0..=100.0).contains(&x), "{x} in {text}");
            }
        }
    }
}
