//! `mb-stats curve`: paired steps, deltas, bands, the convergence step, gaps, outputs.

mod support;

use support::{assert_refused, mb_stats};

use mb_stats_analysis::results::{ResultsTable, parquet};
use mb_stats_analysis::synthetic::{self, Study};
use tempfile::TempDir;

/// The same study at several steps; `same_data` repeats one step's rows at every step.
fn stepped(steps: &[i64], same_data: bool) -> ResultsTable {
    let study = Study {
        arms: vec![("multiberts".into(), 0.0)],
        seeds: 6,
        runs: 1,
        examples: 50,
        cluster_size: None,
        ..Study::coref_like()
    };
    let tables: Vec<ResultsTable> = steps
        .iter()
        .enumerate()
        .map(|(k, &step)| {
            let mut t = synthetic::classification(&study, if same_data { 1 } else { 10 + k as u64 });
            t.step = Some(vec![Some(step); t.len()]);
            t
        })
        .collect();
    let mut all = tables[0].clone();
    for t in &tables[1..] {
        all.group.extend(t.group.iter());
        all.seed.extend(&t.seed);
        all.step.as_mut().unwrap().extend(t.step.as_ref().unwrap());
        all.run.as_mut().unwrap().extend(t.run.as_ref().unwrap());
        if let (mb_stats_analysis::results::ExampleIds::Int(a), mb_stats_analysis::results::ExampleIds::Int(b)) =
            (&mut all.example, &t.example)
        {
            a.extend(b);
        }
        for (a, b) in [(&mut all.label, &t.label), (&mut all.prediction, &t.prediction)] {
            if let (
                Some(mb_stats_analysis::results::Numbers::Int(a)),
                Some(mb_stats_analysis::results::Numbers::Int(b)),
            ) = (a, b)
            {
                a.extend(b);
            }
        }
        all.score.as_mut().unwrap().extend(t.score.as_ref().unwrap());
    }
    all
}

fn run(table: &ResultsTable, extra: &[&str]) -> serde_json::Value {
    let dir = TempDir::new().unwrap();
    let (input, out) = (dir.path().join("r.parquet"), dir.path().join("curve.json"));
    parquet::write(table, &input).unwrap();
    let mut args = vec![
        "curve",
        input.to_str().unwrap(),
        "--nboot",
        "400",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = mb_stats(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

#[test]
fn identical_steps_give_zero_paired_deltas() {
    // If steps were resampled independently, δ between identical steps would spread; paired, it
    // is exactly 0 in every replicate.
    let v = run(&stepped(&[1000, 2000, 3000], true), &[]);
    for p in v["series"][0]["points"].as_array().unwrap() {
        assert_eq!(p["delta_last"]["low"], 0.0);
        assert_eq!(p["delta_last"]["high"], 0.0);
    }
    assert_eq!(
        v["series"][0]["converged"]["step"], 1000,
        "identical values converge at once"
    );
}

#[test]
fn deltas_bands_and_convergence_are_consistent() {
    let v = run(
        &stepped(&[0, 20_000, 200_000, 2_000_000], false),
        &["--tolerance", "0.05"],
    );
    let s = &v["series"][0];
    assert_eq!(s["n_seeds"], 6);
    let points = s["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    let est: Vec<f64> = points.iter().map(|p| p["estimate"].as_f64().unwrap()).collect();
    for (k, p) in points.iter().enumerate() {
        let (lo, hi) = (p["band_low"].as_f64().unwrap(), p["band_high"].as_f64().unwrap());
        assert!(lo <= est[k] && est[k] <= hi);
        assert!((p["delta_last"]["estimate"].as_f64().unwrap() - (est[k] - est[3])).abs() < 1e-12);
        if k > 0 {
            assert!((p["delta_previous"]["estimate"].as_f64().unwrap() - (est[k] - est[k - 1])).abs() < 1e-12);
        } else {
            assert!(p["delta_previous"].is_null());
        }
    }
    assert!(s["critical"].as_f64().unwrap() > 0.0);
    let steps = [0, 20_000, 200_000, 2_000_000];
    let converged = s["converged"]["step"].as_i64().unwrap();
    let k = steps.iter().position(|&x| x == converged).unwrap();
    assert!(
        est[k..].iter().all(|e| (e - est[3]).abs() <= 0.05),
        "all later estimates within tolerance"
    );
    assert!(
        k == 0 || (est[k - 1] - est[3]).abs() > 0.05,
        "and the step before is not"
    );
}

#[test]
fn seeds_missing_a_step_are_dropped_and_reported() {
    let table = stepped(&[100, 200, 300], false);
    let keep: Vec<usize> = (0..table.len())
        .filter(|&i| !(table.seed[i] == 2 && table.step.as_ref().unwrap()[i] == Some(200)))
        .collect();
    let v = run(&table.select(&keep), &[]);
    let s = &v["series"][0];
    assert_eq!(s["n_seeds"], 5);
    assert_eq!(s["dropped"][0]["seed"], 2);
    assert_eq!(s["dropped"][0]["missing_steps"][0], 200);
}

#[test]
fn curve_needs_steps() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("r.parquet");
    parquet::write(&synthetic::classification(&Study::demo(), 1), &input).unwrap();
    let o = mb_stats(&["curve", input.to_str().unwrap()]);
    assert_refused(&o, &["no step column"]);
}
