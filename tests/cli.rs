//! The `mb-stats bootstrap` command end to end: outputs, determinism, and bad input (one line
//! naming the file, column or flag; exit code 2; no output file).

mod support;

use support::{assert_refused, mb_stats};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mb_stats_analysis::results::{ExampleIds, Numbers, ResultsTable, Texts, parquet};
use mb_stats_analysis::synthetic::{self, Study};
use tempfile::TempDir;

fn small_study() -> Study {
    Study {
        seeds: 6,
        runs: 2,
        examples: 40,
        cluster_size: None,
        ..Study::coref_like()
    }
}

fn write(dir: &Path, name: &str, table: &ResultsTable) -> PathBuf {
    let path = dir.join(name);
    parquet::write(table, &path).unwrap();
    path
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Asserts exit code 2, a single stderr line containing every `needle`, and no output file.
fn assert_bad_input(args: &[&str], needles: &[&str], output: &Path) {
    assert_refused(&mb_stats(args), needles);
    assert!(!output.exists(), "output written despite the error");
}

fn csv_rows(path: &Path) -> Vec<csv::StringRecord> {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn csv_has_the_documented_columns_and_one_row_per_quantity() {
    let dir = TempDir::new().unwrap();
    let results = write(dir.path(), "r.parquet", &synthetic::classification(&small_study(), 3));
    let csv = dir.path().join("out.csv");
    let out = mb_stats(&[
        "bootstrap",
        results.to_str().unwrap(),
        "--base",
        "group=base",
        "--treatment",
        "group=cda",
        "--paired",
        "--nboot",
        "200",
        "-o",
        csv.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let header = csv::Reader::from_path(&csv).unwrap().headers().unwrap().clone();
    let required = "group,task,layer,step,metric,quantity,estimate,boot_mean,low,high,p_value,p_holm,p_bh,n_seeds,n_runs,n_examples,nboot,confidence,sampling,pairing,alternative,rng_seed";
    let header: Vec<&str> = header.iter().collect();
    assert_eq!(&header[..22], required.split(',').collect::<Vec<_>>().as_slice());
    let rows = csv_rows(&csv);
    let quantities: Vec<&str> = rows.iter().map(|r| &r[5]).collect();
    assert_eq!(quantities, ["base", "treatment", "delta"]);
    assert_eq!(&rows[2][0], "cda - base");
    assert_eq!(&rows[0][13], "6");
    assert_eq!(&rows[0][14], "12");
    assert_eq!(&rows[0][15], "40");
    assert_eq!(&rows[2][19], "paired");
    assert!(
        rows[0][10].is_empty() && !rows[2][10].is_empty(),
        "p-value only on delta"
    );
    let (low, est, high): (f64, f64, f64) = (
        rows[2][8].parse().unwrap(),
        rows[2][6].parse().unwrap(),
        rows[2][9].parse().unwrap(),
    );
    assert!(low <= est && est <= high);
    // The terminal table shows the same rows.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("cda - base") && stdout.contains("Multi-Bootstrap: metric accuracy, nboot 200"));
}

#[test]
fn same_seed_gives_identical_bytes_for_any_thread_count_and_other_seeds_differ() {
    let dir = TempDir::new().unwrap();
    let results = write(dir.path(), "r.parquet", &synthetic::classification(&small_study(), 4));
    let run = |threads: &str, seed: &str, name: &str| {
        let csv = dir.path().join(name);
        let out = Command::new(env!("CARGO_BIN_EXE_mb-stats"))
            .env("RAYON_NUM_THREADS", threads)
            .args([
                "bootstrap",
                results.to_str().unwrap(),
                "--metric",
                "f1",
                "--nboot",
                "300",
                "--rng-seed",
                seed,
                "-o",
                csv.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read(csv).unwrap()
    };
    let one = run("1", "5", "a.csv");
    assert_eq!(one, run("2", "5", "b.csv"));
    assert_eq!(one, run("3", "5", "c.csv"));
    assert_ne!(one, run("2", "6", "d.csv"));
}

#[test]
fn by_cells_are_reproducible_alone_and_get_adjusted_p_values() {
    let dir = TempDir::new().unwrap();
    // Three tasks: the same study with different effects, stacked.
    let mut tables: Vec<ResultsTable> = (0..3)
        .map(|k| {
            let mut study = small_study();
            study.arms[1].1 = 0.4 * k as f64;
            let mut t = synthetic::classification(&study, 10 + k);
            t.task = Some(Texts::repeat(Some(&format!("t{k}")), t.len()));
            t
        })
        .collect();
    let mut all = tables.remove(0);
    for t in tables {
        all.group.extend(t.group.iter());
        all.seed.extend(t.seed);
        all.run.as_mut().unwrap().extend(t.run.unwrap());
        all.task.as_mut().unwrap().extend(t.task.as_ref().unwrap().iter());
        match (&mut all.example, t.example) {
            (ExampleIds::Int(a), ExampleIds::Int(b)) => a.extend(b),
            _ => unreachable!(),
        }
        for (a, b) in [(&mut all.label, t.label), (&mut all.prediction, t.prediction)] {
            match (a.as_mut().unwrap(), b.unwrap()) {
                (Numbers::Int(a), Numbers::Int(b)) => a.extend(b),
                _ => unreachable!(),
            }
        }
        all.score.as_mut().unwrap().extend(t.score.unwrap());
    }
    let results = write(dir.path(), "r.parquet", &all);
    let r = results.to_str().unwrap();
    let by_csv = dir.path().join("by.csv");
    let common = [
        "--base",
        "group=base",
        "--treatment",
        "group=cda",
        "--paired",
        "--nboot",
        "300",
    ];
    let out = mb_stats(
        &[
            &["bootstrap", r, "--by", "task", "-o", by_csv.to_str().unwrap()][..],
            &common,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = csv_rows(&by_csv);
    let deltas: Vec<_> = rows.iter().filter(|r| &r[5] == "delta").collect();
    assert_eq!(deltas.iter().map(|r| &r[1]).collect::<Vec<_>>(), ["t0", "t1", "t2"]);
    let p: Vec<f64> = deltas.iter().map(|r| r[10].parse().unwrap()).collect();
    let holm: Vec<f64> = deltas.iter().map(|r| r[11].parse().unwrap()).collect();
    let bh: Vec<f64> = deltas.iter().map(|r| r[12].parse().unwrap()).collect();
    for i in 0..3 {
        assert!(
            holm[i] >= p[i] && bh[i] >= p[i] && holm[i] >= bh[i] - 1e-15,
            "{deltas:?}"
        );
    }
    // Cell t1 analysed alone (filters) gives the same numbers as in the --by run.
    let alone = dir.path().join("alone.csv");
    let out = mb_stats(&[
        "bootstrap",
        r,
        "--base",
        "group=base,task=t1",
        "--treatment",
        "group=cda,task=t1",
        "--paired",
        "--nboot",
        "300",
        "-o",
        alone.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let alone = csv_rows(&alone);
    for (a, b) in alone.iter().zip(rows.iter().filter(|r| &r[1] == "t1")) {
        for j in 6..11 {
            assert_eq!(&a[j], &b[j], "estimate, boot_mean, low, high, p_value");
        }
    }
    // Without --by the tasks collide: one clear error.
    let out_csv = dir.path().join("none.csv");
    assert_bad_input(
        &[&["bootstrap", r, "-o", out_csv.to_str().unwrap()][..], &common].concat(),
        &["duplicate rows", "differ in task", "--by"],
        &out_csv,
    );
}

#[test]
fn one_procedure_per_group_and_every_format_and_samples() {
    let dir = TempDir::new().unwrap();
    let mut study = small_study();
    study.cluster_size = Some(4);
    let results = write(dir.path(), "r.parquet", &synthetic::classification(&study, 5));
    let r = results.to_str().unwrap();
    for ext in ["csv", "json", "md", "tex"] {
        let path = dir.path().join(format!("out.{ext}"));
        let out = mb_stats(&[
            "bootstrap",
            r,
            "--metric",
            "mcc",
            "--nboot",
            "100",
            "-o",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("base") && text.contains("cda"), "{ext}: {text}");
        match ext {
            "json" => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["rows"].as_array().unwrap().len(), 2);
                assert_eq!(v["rows"][0]["quantity"], "estimate");
                assert_eq!(v["rows"][0]["resample_unit"], "clusters");
                assert_eq!(v["rows"][0]["n_clusters"], 10);
                assert_eq!(v["method"]["rng_seed"], 0);
            }
            "tex" => {
                assert!(text.contains("\\toprule") && text.contains("\\bottomrule") && text.contains("rng seed 0"))
            }
            "md" => assert!(text.contains("| group") && text.contains("clusters resampled")),
            _ => assert_eq!(csv_rows(&path).len(), 2),
        }
    }
    // --ignore-clusters resamples examples, as the original library does.
    let plain = dir.path().join("plain.json");
    let out = mb_stats(&[
        "bootstrap",
        r,
        "--nboot",
        "100",
        "--ignore-clusters",
        "-o",
        plain.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&plain).unwrap()).unwrap();
    assert_eq!(v["rows"][0]["resample_unit"], "examples");
    assert!(v["rows"][0]["n_clusters"].is_null());
    let samples = dir.path().join("samples.parquet");
    let out = mb_stats(&["bootstrap", r, "--nboot", "50", "--samples", samples.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    use polars::prelude::SerReader;
    let df = polars::prelude::ParquetReader::new(std::fs::File::open(&samples).unwrap())
        .finish()
        .unwrap();
    assert_eq!(df.height(), 100, "50 replicates for each of the two groups");
}

#[test]
fn paired_comparison_drops_and_reports_seeds_on_one_side_only() {
    let dir = TempDir::new().unwrap();
    let mut t = synthetic::classification(&small_study(), 6);
    // Remove seed 5 from the treatment arm.
    let keep: Vec<usize> = (0..t.len())
        .filter(|&i| !(&t.group[i] == "cda" && t.seed[i] == 5))
        .collect();
    t = select(&t, &keep);
    let results = write(dir.path(), "r.parquet", &t);
    let csv = dir.path().join("out.csv");
    let out = mb_stats(&[
        "bootstrap",
        results.to_str().unwrap(),
        "--base",
        "group=base",
        "--treatment",
        "group=cda",
        "--paired",
        "--nboot",
        "100",
        "-o",
        csv.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = csv_rows(&csv);
    assert_eq!(&rows[0][13], "5", "seed 5 dropped from the base side");
    assert!(rows[2][28].contains("dropped base-only seeds: 5"), "{:?}", &rows[2]);
}

#[test]
fn a_one_seed_side_contributes_no_seed_variance() {
    let dir = TempDir::new().unwrap();
    let mut t = synthetic::classification(&small_study(), 8);
    let keep: Vec<usize> = (0..t.len())
        .filter(|&i| !(&t.group[i] == "base" && t.seed[i] != 0))
        .collect();
    t = select(&t, &keep);
    let results = write(dir.path(), "r.parquet", &t);
    let csv = dir.path().join("out.csv");
    let out = mb_stats(&[
        "bootstrap",
        results.to_str().unwrap(),
        "--base",
        "group=base",
        "--treatment",
        "group=cda",
        "--sample",
        "seeds",
        "--nboot",
        "100",
        "-o",
        csv.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = csv_rows(&csv);
    assert_eq!(&rows[0][13], "1");
    assert_eq!(
        rows[0][8], rows[0][9],
        "seeds-only interval of a one-seed side has zero width"
    );
    assert_ne!(rows[1][8], rows[1][9]);
}

fn select(t: &ResultsTable, rows: &[usize]) -> ResultsTable {
    let pick = |v: &Vec<Option<i64>>| rows.iter().map(|&i| v[i]).collect::<Vec<_>>();
    let numbers = |n: &Option<Numbers>| match n {
        Some(Numbers::Int(v)) => Some(Numbers::Int(pick(v))),
        _ => unreachable!(),
    };
    ResultsTable {
        group: t.group.select(rows),
        seed: rows.iter().map(|&i| t.seed[i]).collect(),
        run: t.run.as_ref().map(pick),
        example: match &t.example {
            ExampleIds::Int(v) => ExampleIds::Int(rows.iter().map(|&i| v[i]).collect()),
            ExampleIds::Text(_) => unreachable!(),
        },
        label: numbers(&t.label),
        prediction: numbers(&t.prediction),
        score: t.score.as_ref().map(|s| rows.iter().map(|&i| s[i]).collect()),
        cluster: t.cluster.as_ref().map(|c| c.select(rows)),
        ..t.clone()
    }
}

#[test]
fn bad_input_is_one_line_exit_2_and_no_output() {
    let dir = TempDir::new().unwrap();
    let good = synthetic::classification(&small_study(), 9);
    let out = dir.path().join("out.csv");
    let o = out.to_str().unwrap();
    let path = write(dir.path(), "good.parquet", &good);
    let g = path.to_str().unwrap();

    // A file that is not Parquet, and one that does not exist.
    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"not parquet").unwrap();
    assert_bad_input(
        &["bootstrap", junk.to_str().unwrap(), "-o", o],
        &["junk.parquet", "not a readable Parquet file"],
        &out,
    );
    assert_bad_input(
        &["bootstrap", "missing.parquet", "-o", o],
        &["missing.parquet", "cannot open"],
        &out,
    );

    // Missing required column.
    let mut df = parquet::to_frame(&good).unwrap();
    let _ = df.drop_in_place("seed").unwrap();
    let no_seed = dir.path().join("no_seed.parquet");
    parquet::write_frame(&mut df, vec![], &no_seed).unwrap();
    assert_bad_input(
        &["bootstrap", no_seed.to_str().unwrap(), "-o", o],
        &["no_seed.parquet", "missing required column(s) seed"],
        &out,
    );

    // Null example.
    let mut df = parquet::to_frame(&good).unwrap();
    let mut examples: Vec<Option<i64>> = (0..df.height() as i64).map(Some).collect();
    examples[3] = None;
    df.with_column(polars::prelude::Column::new("example".into(), examples))
        .unwrap();
    let null_example = dir.path().join("null_example.parquet");
    parquet::write_frame(&mut df, vec![], &null_example).unwrap();
    assert_bad_input(
        &["bootstrap", null_example.to_str().unwrap(), "-o", o],
        &["null_example.parquet", "column example has a null in row 3"],
        &out,
    );

    // Duplicate (run, example) rows.
    let mut dup = good.clone();
    if let Some(r) = dup.run.as_mut() {
        r[1] = r[0];
    }
    if let ExampleIds::Int(e) = &mut dup.example {
        e[1] = e[0];
    }
    let dup_path = write(dir.path(), "dup.parquet", &dup);
    assert_bad_input(
        &["bootstrap", dup_path.to_str().unwrap(), "-o", o],
        &["duplicate rows for seed 0, run 0, example '0'"],
        &out,
    );

    // A run that does not cover every example.
    let keep: Vec<usize> = (1..good.len()).collect();
    let ragged = write(dir.path(), "ragged.parquet", &select(&good, &keep));
    assert_bad_input(
        &["bootstrap", ragged.to_str().unwrap(), "-o", o],
        &["seed 0, run 0", "39 of the 40 examples", "missing example '0'"],
        &out,
    );

    // Filters, metrics and flags.
    assert_bad_input(
        &[
            "bootstrap",
            g,
            "--base",
            "group=nope",
            "--treatment",
            "group=cda",
            "-o",
            o,
        ],
        &["--base group=nope selects no rows"],
        &out,
    );
    assert_bad_input(
        &[
            "bootstrap",
            g,
            "--base",
            "colour=red",
            "--treatment",
            "group=cda",
            "-o",
            o,
        ],
        &["--base colour=red", "unknown column 'colour'"],
        &out,
    );
    assert_bad_input(
        &[
            "bootstrap",
            g,
            "--base",
            "seed=abc",
            "--treatment",
            "group=cda",
            "-o",
            o,
        ],
        &["seed is an integer column"],
        &out,
    );
    assert_bad_input(
        &["bootstrap", g, "--metric", "bleu", "-o", o],
        &["--metric", "unknown metric 'bleu'"],
        &out,
    );
    assert_bad_input(
        &["bootstrap", g, "--confidence", "1.5", "-o", o],
        &["--confidence", "1.5"],
        &out,
    );
    assert_bad_input(
        &["bootstrap", g, "--by", "group", "-o", o],
        &["--by group", "expected task, layer or step"],
        &out,
    );
    assert_bad_input(
        &["bootstrap", g, "--by", "layer", "-o", o],
        &["--by layer", "no layer column"],
        &out,
    );
    assert_bad_input(
        &["bootstrap", g, "--sample", "all", "-o", o],
        &["--sample", "all"],
        &out,
    );
    assert_bad_input(
        &["bootstrap", g, "-o", dir.path().join("out.xlsx").to_str().unwrap()],
        &["out.xlsx", ".csv, .json, .md or .tex"],
        &dir.path().join("out.xlsx"),
    );
    assert_bad_input(
        &[
            "bootstrap",
            g,
            "--samples",
            dir.path().join("s.csv").to_str().unwrap(),
            "-o",
            o,
        ],
        &["--samples", ".parquet"],
        &out,
    );

    // A metric that needs a column the table lacks, and a binary metric on several classes.
    let mut no_label = good.clone();
    no_label.label = None;
    let no_label = write(dir.path(), "no_label.parquet", &no_label);
    assert_bad_input(
        &["bootstrap", no_label.to_str().unwrap(), "-o", o],
        &["--metric accuracy needs column label"],
        &out,
    );
    let mut three = good.clone();
    if let Some(Numbers::Int(l)) = three.label.as_mut() {
        l[0] = Some(2);
    }
    let three = write(dir.path(), "three.parquet", &three);
    assert_bad_input(
        &["bootstrap", three.to_str().unwrap(), "--metric", "f1", "-o", o],
        &["column label has value 2", "binary"],
        &out,
    );
    // A null label where the metric needs labels.
    let mut null_label = good.clone();
    if let Some(Numbers::Int(l)) = null_label.label.as_mut() {
        l[5] = None;
    }
    let null_label = write(dir.path(), "null_label.parquet", &null_label);
    assert_bad_input(
        &["bootstrap", null_label.to_str().unwrap(), "-o", o],
        &["column label has a null"],
        &out,
    );
}

#[test]
fn results_round_trip_with_footer_metadata_and_any_integer_width() {
    let dir = TempDir::new().unwrap();
    let mut t = synthetic::classification(&small_study(), 2);
    t.metadata = vec![("experiment".into(), "x = 1".into())];
    let path = write(dir.path(), "r.parquet", &t);
    let back = parquet::read(&path).unwrap();
    assert_eq!(back.group, t.group);
    assert_eq!(back.label, t.label);
    assert_eq!(back.example, t.example);
    assert!(back.metadata.contains(&("experiment".into(), "x = 1".into())));
    assert!(back.metadata.contains(&("mb_stats.schema".into(), "1".into())));
    // int32 seeds and float labels read back (cast), non-integral seeds do not.
    use polars::prelude::*;
    let mut df = parquet::to_frame(&t).unwrap();
    let seeds = df.column("seed").unwrap().cast(&DataType::Int32).unwrap();
    df.with_column(seeds).unwrap();
    let narrow = dir.path().join("narrow.parquet");
    parquet::write_frame(&mut df, vec![], &narrow).unwrap();
    assert_eq!(parquet::read(&narrow).unwrap().seed, t.seed);
    let mut seeds: Vec<f64> = t.seed.iter().map(|&s| s as f64).collect();
    seeds[0] = 0.5;
    df.with_column(Column::new("seed".into(), seeds)).unwrap();
    let fractional = dir.path().join("fractional.parquet");
    parquet::write_frame(&mut df, vec![], &fractional).unwrap();
    let err = parquet::read(&fractional).unwrap_err().to_string();
    assert!(
        err.contains("fractional.parquet") && err.contains("column seed has value 0.5; expected integers"),
        "{err}"
    );
}
