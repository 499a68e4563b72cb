//! `mb-stats report`: tables with intervals, per-seed tables, figures, a notebook that
//! validates against the nbformat 4.5 schema and refers only to files that exist, learning
//! curves, and byte-identical tables on a second run.

mod support;

use support::{assert_refused, mb_stats};

use std::path::{Path, PathBuf};

use mb_stats_analysis::results::{Numbers, ResultsTable, parquet};
use mb_stats_analysis::synthetic::{self, Study};
use tempfile::TempDir;

fn run_report(results: &str, out: &Path, extra: &[&str]) {
    let mut args = vec!["report", results, "--out", out.to_str().unwrap()];
    if !extra.contains(&"--nboot") {
        args.extend(["--nboot", "300"]);
    }
    args.extend_from_slice(extra);
    let o = mb_stats(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Validates the notebook against the official nbformat 4.5 schema and checks that every
/// `figures/...` path it mentions exists.
fn check_notebook(dir: &Path) -> serde_json::Value {
    let notebook: serde_json::Value = serde_json::from_str(&read(&dir.join("report.ipynb"))).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nbformat.v4.5.schema.json"),
    ))
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&notebook).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "notebook does not validate: {errors:?}");
    let text = notebook.to_string();
    let mut referenced = 0;
    for (i, _) in text.match_indices("figures/") {
        let path: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "/-_.=,".contains(*c))
            .collect();
        let path = path.trim_end_matches('.');
        assert!(
            dir.join(path).is_file(),
            "notebook refers to {path}, which does not exist"
        );
        referenced += 1;
    }
    assert!(referenced > 0, "the notebook shows figures");
    let images = text.matches("image/png").count();
    assert!(images > 0, "figures are embedded as PNG");
    notebook
}

#[test]
fn paired_report_has_tables_figures_and_a_valid_notebook_and_is_deterministic() {
    let dir = TempDir::new().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let args = [
        "--base",
        "group=base",
        "--treatment",
        "group=cda",
        "--paired",
        "--metric",
        "accuracy,mcc",
    ];
    run_report("data/demo-results.parquet", &a, &args);
    run_report("data/demo-results.parquet", &b, &args);
    for m in ["accuracy", "mcc"] {
        for file in [
            format!("summary-{m}.csv"),
            format!("summary-{m}.md"),
            format!("summary-{m}.tex"),
            format!("seeds-{m}.csv"),
            format!("seeds-{m}.md"),
            format!("seeds-{m}.tex"),
            format!("figures/distributions-{m}-all.svg"),
            format!("figures/distributions-{m}-all.png"),
            format!("figures/seeds-{m}-all.svg"),
            format!("figures/seeds-{m}-all.png"),
        ] {
            let (x, y) = (
                std::fs::read(a.join(&file)).unwrap(),
                std::fs::read(b.join(&file)).unwrap(),
            );
            assert!(!x.is_empty(), "{file} is empty");
            if !file.ends_with(".svg") && !file.ends_with(".png") {
                assert_eq!(x, y, "{file} differs between two identical runs");
            }
        }
    }
    // Paper format: numbers with their interval, in percent for accuracy.
    let md = read(&a.join("summary-accuracy.md"));
    let pattern = regex::Regex::new(r"\| delta +\| -?\d+\.\d \[-?\d+\.\d, -?\d+\.\d\]").unwrap();
    assert!(pattern.is_match(&md), "{md}");
    assert!(md.contains("(values in %)") && md.contains("paired seeds") && md.contains("rng seed 0"));
    let tex = read(&a.join("summary-accuracy.tex"));
    assert!(tex.contains("\\toprule") && tex.contains("95\\% CI") && tex.contains("nboot 300"));
    let mcc = read(&a.join("summary-mcc.md"));
    assert!(
        regex::Regex::new(r"0\.\d{3} \[").unwrap().is_match(&mcc),
        "correlations with 3 decimals: {mcc}"
    );
    // The per-seed table: 10 seeds for each of the two groups, full-precision CSV.
    let seeds = read(&a.join("seeds-accuracy.csv"));
    assert_eq!(seeds.lines().count(), 1 + 2 * 10);
    assert!(seeds.starts_with("cell,group,seed,n_runs,estimate,boot_mean,low,high"));
    let svg = read(&a.join("figures/distributions-accuracy-all.svg"));
    assert!(
        svg.contains("bootstrap density") && svg.contains("accuracy (%)"),
        "axis labels"
    );
    let notebook = check_notebook(&a);
    let text = notebook.to_string();
    assert!(
        text.contains("mb-stats report data/demo-results.parquet"),
        "the exact report command"
    );
    assert!(text.contains("mb-stats bootstrap data/demo-results.parquet --metric accuracy --base group=base --treatment group=cda --paired"));
}

#[test]
fn per_seed_estimates_are_each_seeds_run_average() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("r");
    run_report("data/demo-results.parquet", &out, &[]);
    let table = parquet::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo-results.parquet")).unwrap();
    let (Some(Numbers::Int(label)), Some(Numbers::Int(pred))) = (&table.label, &table.prediction) else {
        panic!()
    };
    let mut csv = csv::Reader::from_path(out.join("seeds-accuracy.csv")).unwrap();
    for record in csv.records().map(Result::unwrap) {
        let (group, seed, estimate): (&str, i64, f64) =
            (&record[1], record[2].parse().unwrap(), record[4].parse().unwrap());
        // By definition: mean over the seed's runs of that run's accuracy.
        let mut runs: std::collections::BTreeMap<i64, (f64, f64)> = Default::default();
        for i in (0..table.len()).filter(|&i| &table.group[i] == group && table.seed[i] == seed) {
            let e = runs.entry(table.run.as_ref().unwrap()[i].unwrap()).or_default();
            e.0 += f64::from(label[i] == pred[i]);
            e.1 += 1.0;
        }
        let expected = runs.values().map(|(c, n)| c / n).sum::<f64>() / runs.len() as f64;
        assert!(
            (estimate - expected).abs() < 1e-12,
            "{group} seed {seed}: {estimate} vs {expected}"
        );
        let (low, high): (f64, f64) = (record[6].parse().unwrap(), record[7].parse().unwrap());
        assert!(low <= estimate && estimate <= high);
    }
}

fn with_steps(steps: &[i64]) -> ResultsTable {
    let study = Study {
        seeds: 4,
        runs: 1,
        examples: 60,
        cluster_size: None,
        ..Study::coref_like()
    };
    let mut all: Option<ResultsTable> = None;
    for (k, &step) in steps.iter().enumerate() {
        let mut t = synthetic::classification(&study, 100 + k as u64);
        t.step = Some(vec![Some(step); t.len()]);
        all = Some(match all {
            None => t,
            Some(mut a) => {
                a.group.extend(t.group.iter());
                a.seed.extend(t.seed);
                a.step.as_mut().unwrap().extend(t.step.unwrap());
                a.run.as_mut().unwrap().extend(t.run.unwrap());
                if let (
                    mb_stats_analysis::results::ExampleIds::Int(x),
                    mb_stats_analysis::results::ExampleIds::Int(y),
                ) = (&mut a.example, t.example)
                {
                    x.extend(y);
                }
                for (x, y) in [(&mut a.label, t.label), (&mut a.prediction, t.prediction)] {
                    if let (Some(Numbers::Int(x)), Some(Numbers::Int(y))) = (x, y) {
                        x.extend(y);
                    }
                }
                a.score.as_mut().unwrap().extend(t.score.unwrap());
                a
            }
        });
    }
    all.unwrap()
}

#[test]
fn learning_curve_over_steps_with_log_axis_and_by_cells() {
    let dir = TempDir::new().unwrap();
    let results: PathBuf = dir.path().join("steps.parquet");
    parquet::write(&with_steps(&[0, 20_000, 200_000, 2_000_000]), &results).unwrap();
    let out = dir.path().join("curve");
    run_report(results.to_str().unwrap(), &out, &["--log-steps"]);
    let curve = read(&out.join("curve-accuracy.csv"));
    assert_eq!(curve.lines().count(), 1 + 2 * 4, "2 groups × 4 steps: {curve}");
    assert!(out.join("figures/curve-accuracy.png").is_file() && out.join("figures/curve-accuracy.svg").is_file());
    assert!(read(&out.join("figures/curve-accuracy.svg")).contains("pretraining step (log scale)"));
    assert_eq!(
        read(&out.join("summary-accuracy.md")).matches("### step=").count(),
        4,
        "summarised per step"
    );
    check_notebook(&out);
    // With --by step: one table per cell.
    let by = dir.path().join("by");
    run_report(
        results.to_str().unwrap(),
        &by,
        &[
            "--by",
            "step",
            "--base",
            "group=base",
            "--treatment",
            "group=cda",
            "--paired",
        ],
    );
    let md = read(&by.join("summary-accuracy.md"));
    assert_eq!(md.matches("### step=").count(), 4, "{md}");
    assert!(md.contains("p (Holm)"));
    assert!(by.join("figures/distributions-accuracy-step-2000000.png").is_file());
    check_notebook(&by);
}

#[test]
fn bad_report_flags_are_one_line_exit_2() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("r");
    let o = mb_stats(&[
        "report",
        "data/demo-results.parquet",
        "--out",
        out.to_str().unwrap(),
        "--metric",
        "accuracy,bleu",
    ]);
    assert_refused(&o, &["--metric", "unknown metric 'bleu'"]);
    assert!(!out.exists(), "nothing written");
}

#[test]
fn formats_choose_the_human_readable_tables() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("r");
    run_report("data/demo-results.parquet", &out, &["--formats", "tex"]);
    assert!(
        out.join("summary-accuracy.csv").is_file() && out.join("seeds-accuracy.csv").is_file(),
        "CSV always"
    );
    assert!(out.join("summary-accuracy.tex").is_file() && out.join("seeds-accuracy.tex").is_file());
    assert!(!out.join("summary-accuracy.md").exists() && !out.join("seeds-accuracy.md").exists());
}

#[test]
fn committed_quickstart_export_is_what_the_report_command_makes() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("quickstart");
    let args = [
        "--base",
        "group=base",
        "--treatment",
        "group=cda",
        "--paired",
        "--metric",
        "accuracy,f1",
        "--nboot",
        "1000",
        "--effect",
        "0.03",
    ];
    run_report("data/demo-results.parquet", &out, &args);
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks-export/quickstart");
    for m in ["accuracy", "f1"] {
        let mut files: Vec<String> = ["summary", "seeds"]
            .iter()
            .flat_map(|kind| ["csv", "md", "tex"].map(|ext| format!("{kind}-{m}.{ext}")))
            .collect();
        files.extend([format!("seeds-{m}-tests.csv"), format!("power-{m}.csv")]);
        for file in files {
            assert_eq!(
                read(&committed.join(&file)),
                read(&out.join(&file)),
                "{file} is stale: rerun the README command"
            );
        }
    }
    check_notebook(&committed);
}
