//! Nothing silently wrong: broken inputs of every kind, generated in a temporary folder, are
//! refused with exit code 2 and one line naming the file, flag or key; no panic, no output file
//! left behind, inputs untouched. And what used to give wrong numbers with exit code 0 (stale
//! results of a changed experiment, an output written over its input, corrupt weights, byte-order
//! marks, impossible numbers) now cannot.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{assert_refused, mb_stats};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn demo() -> String {
    root().join("data/demo-results.parquet").display().to_string()
}

/// Every file under `dir` with its bytes: what "untouched" and "nothing left behind" compare.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    files
}

/// Asserts a refusal (exit 2, one line with every needle, no panic) that changed nothing in `dir`.
fn assert_refused_untouched(out: &Output, needles: &[&str], dir: &Path, before: &BTreeMap<PathBuf, Vec<u8>>) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_refused(out, needles);
    let after = snapshot(dir);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "files appeared or vanished after: {err}"
    );
    assert!(after == *before, "a file changed after: {err}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small experiment over the bundled suite: seeds 0-1 and the one-seed baseline, `layers`,
/// one probe run, 200 training and 100 evaluation sentences; `train` is the training file.
fn experiment(dir: &Path, name: &str, train: &Path, task: &str, more: &str) -> PathBuf {
    let data = root().join("data/quickstart");
    let text = format!(
        r#"[models]
suite = "local"
path = "{data}/models/tiny-multiberts-seed_{{seed}}"
seeds = "0-1"
group = "tiny"

[[models.extra]]
group = "original"
path = "{data}/models/tiny-bert-original"
seed = 100
{more}
[data]
train = "{train}"
eval = "{data}/sentiment/dev.tsv"
train_size = 200
eval_size = 100

[task]
kind = "linear-probe"
pooling = "mean"
{task}

[runtime]
device = "cpu"
max_length = 32

[analysis]
nboot = 50
base = "group=original"
treatment = "group=tiny"
"#,
        data = data.display(),
        train = train.display()
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(experiment: &Path, out: &Path, more: &[&str]) -> Output {
    let mut args = vec!["run", s(experiment), "--out", s(out)];
    args.extend_from_slice(more);
    mb_stats(&args)
}

fn layers_of(results: &Path) -> Vec<i64> {
    let table = mb_stats_analysis::results::parquet::read(results).unwrap();
    let mut layers: Vec<i64> = table.layer.unwrap().into_iter().map(|l| l.unwrap()).collect();
    layers.sort_unstable();
    layers.dedup();
    layers
}

/// Class 1: finished work is keyed by what determines it; a changed experiment never gets the
/// old results with exit code 0.
#[test]
fn a_changed_experiment_is_refused_instead_of_answered_with_stale_results() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.tsv");
    std::fs::copy(root().join("data/quickstart/sentiment/train.tsv"), &train).unwrap();
    let out = tmp.path().join("out");
    let first = experiment(tmp.path(), "e.toml", &train, "layers = [2]", "");
    let done = run(&first, &out, &[]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(layers_of(&out.join("results.parquet")), vec![2]);
    // The same experiment again reuses everything.
    assert!(run(&first, &out, &[]).status.success());

    let changes = [
        ("layers = [0]", "task.layers"),
        ("layers = [2]\nruns = 2", "task.runs"),
        ("layers = [2]\nl2 = 0.5", "task.l2"),
        ("layers = [2]\nmax_iter = 30", "task.max_iter"),
    ];
    for (task, key) in changes {
        let changed = experiment(tmp.path(), "e.toml", &train, task, "");
        let before = snapshot(tmp.path());
        assert_refused_untouched(
            &run(&changed, &out, &[]),
            &[key, "--force", "--out"],
            tmp.path(),
            &before,
        );
    }
    // The data file's content is part of the key (one label flipped).
    let original = std::fs::read_to_string(&train).unwrap();
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    let last = lines.len() - 1;
    lines[last] = match lines[last].strip_suffix("\t1") {
        Some(stem) => format!("{stem}\t0"),
        None => format!("{}\t1", lines[last].rsplit_once('\t').unwrap().0),
    };
    std::fs::write(&train, lines.join("\n") + "\n").unwrap();
    let first = experiment(tmp.path(), "e.toml", &train, "layers = [2]", "");
    let before = snapshot(tmp.path());
    assert_refused_untouched(&run(&first, &out, &[]), &["data", "--force"], tmp.path(), &before);
    std::fs::write(&train, original).unwrap();

    // --force redoes the work, and the folder keeps only what the experiment asks for.
    let changed = experiment(tmp.path(), "e.toml", &train, "layers = [0]", "");
    let forced = run(&changed, &out, &["--force"]);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    assert_eq!(layers_of(&out.join("results.parquet")), vec![0]);
    let names: Vec<String> = std::fs::read_dir(out.join("runs/tiny/seed_0"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with("layer_2")), "{names:?}");
    let footer = mb_stats_analysis::results::parquet::read(&out.join("results.parquet"))
        .unwrap()
        .metadata;
    let text = footer.iter().find(|(k, _)| k == "mb_stats.experiment").unwrap();
    assert!(text.1.contains("layers = [0]"));
}

/// Class 1: impossible plans are refused before any work.
#[test]
fn empty_layer_lists_and_indistinguishable_checkpoints_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let train = root().join("data/quickstart/sentiment/train.tsv");
    let out = tmp.path().join("out");
    let cases = [
        (
            experiment(tmp.path(), "a.toml", &train, "layers = []", ""),
            "task.layers",
        ),
        (
            experiment(tmp.path(), "b.toml", &train, "layers = [1, 1]", ""),
            "task.layers",
        ),
        (
            experiment(
                tmp.path(),
                "c.toml",
                &train,
                "layers = [2]",
                &format!(
                    "\n[[models.extra]]\ngroup = \"tiny\"\nseed = 0\npath = \"{}\"\n",
                    root().join("data/quickstart/models/tiny-bert-original").display()
                ),
            ),
            "group \"tiny\", seed 0",
        ),
    ];
    for (file, needle) in cases {
        let before = snapshot(tmp.path());
        assert_refused_untouched(&run(&file, &out, &[]), &[needle, s(&file)], tmp.path(), &before);
    }
}

/// Class 14 and 1: `run` merges only its own units; `merge` refuses merged tables among run
/// files and outputs that are not Parquet.
#[test]
fn run_merges_only_its_own_work_and_merge_refuses_merged_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let train = root().join("data/quickstart/sentiment/train.tsv");
    let out = tmp.path().join("out");
    let file = experiment(tmp.path(), "e.toml", &train, "layers = [2]", "");
    assert!(run(&file, &out, &[]).status.success());
    let rows = mb_stats_analysis::results::parquet::read(&out.join("results.parquet"))
        .unwrap()
        .len();
    let inside = out.join("runs/all.parquet");
    // Merge refuses to write among the run folders (issue 30, class 10); a table put there
    // by hand is what the rest of this test checks.
    let before = snapshot(tmp.path());
    assert_refused_untouched(
        &mb_stats(&["merge", s(&out), "-o", s(&inside)]),
        &["all.parquet", "inside the run folders"],
        tmp.path(),
        &before,
    );
    std::fs::copy(out.join("results.parquet"), &inside).unwrap();
    let again = run(&file, &out, &[]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(
        mb_stats_analysis::results::parquet::read(&out.join("results.parquet"))
            .unwrap()
            .len(),
        rows
    );
    // The plan of the run names its checkpoints: a merged table among the run folders is no
    // run file of any of them, so merge leaves it out (it used to be refused; before that, counted).
    let elsewhere = tmp.path().join("m.parquet");
    let o = mb_stats(&["merge", s(&out), "-o", s(&elsewhere)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        mb_stats_analysis::results::parquet::read(&elsewhere).unwrap().len(),
        rows
    );
    std::fs::remove_file(&elsewhere).unwrap();
    // Without a plan (a folder of run files from elsewhere) it is still refused.
    std::fs::remove_file(out.join("plan.json")).unwrap();
    let before = snapshot(tmp.path());
    assert_refused_untouched(
        &mb_stats(&["merge", s(&out), "-o", s(&elsewhere)]),
        &["all.parquet", "merged results table"],
        tmp.path(),
        &before,
    );
    std::fs::remove_file(&inside).unwrap();
    let before = snapshot(tmp.path());
    assert_refused_untouched(
        &mb_stats(&["merge", s(&out), "-o", s(&tmp.path().join("m.csv"))]),
        &["m.csv", ".parquet"],
        tmp.path(),
        &before,
    );
    // Onto one of its own inputs.
    let unit = out.join("runs/tiny/seed_0/layer_2-run_0.parquet");
    assert_refused_untouched(
        &mb_stats(&["merge", s(&out), "-o", s(&unit)]),
        &["layer_2-run_0.parquet", "inside the run folders"],
        tmp.path(),
        &before,
    );
}

/// Class 2: an output that is an input (by path, by another spelling, by a hard link) is refused.
#[test]
fn an_output_never_overwrites_an_input() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r.parquet");
    std::fs::copy(root().join("data/demo-results.parquet"), &results).unwrap();
    let as_csv = tmp.path().join("r.csv");
    std::fs::copy(&results, &as_csv).unwrap();
    let linked = tmp.path().join("link.parquet");
    std::fs::hard_link(&results, &linked).unwrap();
    let respelled = tmp.path().join(".").join("r.parquet");
    let before = snapshot(tmp.path());
    let comparison = ["--base", "group=base", "--treatment", "group=cda", "--nboot", "20"];
    let cases: Vec<Vec<&str>> = vec![
        vec!["bootstrap", s(&results), "--samples", s(&results)],
        vec!["bootstrap", s(&results), "--samples", s(&respelled)],
        vec!["bootstrap", s(&results), "--samples", s(&linked)],
        vec!["bootstrap", s(&as_csv), "-o", s(&as_csv)],
        vec!["seeds", s(&as_csv), "-o", s(&as_csv)],
        vec!["variance", s(&as_csv), "-o", s(&as_csv)],
        vec!["curve", s(&as_csv), "-o", s(&as_csv)],
        vec!["power", s(&as_csv), "--effect", "0.01", "-o", s(&as_csv)],
    ];
    for mut args in cases {
        args.extend_from_slice(&comparison);
        assert_refused_untouched(&mb_stats(&args), &["is the input"], tmp.path(), &before);
    }
}

fn embed_in(cache: &Path, model: &Path, input: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mb-stats"))
        .env("MB_STATS_CACHE", cache)
        .args([
            "embed",
            "--model",
            s(model),
            "--input",
            s(input),
            "-o",
            s(out),
            "--device",
            "cpu",
        ])
        .output()
        .unwrap()
}

/// Class 3 and 15: a corrupted or empty `pytorch_model.bin` is refused, naming the file, and
/// nothing is cached.
#[test]
fn corrupt_and_empty_weights_are_refused_and_never_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let source = root().join("data/quickstart/models/tiny-multiberts-seed_0");
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    let bin = model.join("pytorch_model.bin");
    let mut bytes = std::fs::read(&bin).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 2000] {
        *b ^= 0x5a;
    }
    std::fs::write(&bin, &bytes).unwrap();
    let input = tmp.path().join("texts.txt");
    std::fs::write(&input, "a short sentence\nanother one\n").unwrap();
    let cache = tmp.path().join("cache");
    let out = tmp.path().join("emb.parquet");
    let before = snapshot(tmp.path());
    assert_refused_untouched(
        &embed_in(&cache, &model, &input, &out),
        &["pytorch_model.bin", "corrupt"],
        tmp.path(),
        &before,
    );
    std::fs::write(&bin, b"").unwrap();
    let before = snapshot(tmp.path());
    assert_refused_untouched(
        &embed_in(&cache, &model, &input, &out),
        &["pytorch_model.bin", "empty file"],
        tmp.path(),
        &before,
    );
    let err = String::from_utf8_lossy(&embed_in(&cache, &model, &input, &out).stderr).to_string();
    assert!(!err.contains("legacy"), "{err}");
}

/// Class 4: a UTF-8 byte-order mark is not data (GLUE score and label files, filters).
#[test]
fn byte_order_marks_are_stripped_everywhere_text_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("STS-B")).unwrap();
    std::fs::write(
        dir.join("index.tsv"),
        "\u{feff}file\ttask\tpretrain_id\tn_steps\tlr\tft_seed\trelease\nSTS-B/seed=0.tsv\tSTS-B\t0\t2000k\t2e-05\t0\tmultiberts\n",
    )
    .unwrap();
    std::fs::write(dir.join("STS-B/seed=0.tsv"), "\u{feff}0.5\n4.0\n2.5\n").unwrap();
    std::fs::write(dir.join("STS-B_dev_labels"), "\u{feff}0.4\n3.8\n2.0\n").unwrap();
    let out = dir.join("sts.parquet");
    let done = mb_stats(&[
        "import",
        "glue",
        s(&dir.join("index.tsv")),
        "--task",
        "STS-B",
        "-o",
        s(&out),
    ]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(
        mb_stats_analysis::results::parquet::read(&out).unwrap().len(),
        3,
        "no example dropped"
    );
    // A filter copied from a file with a BOM.
    let filtered = mb_stats(&[
        "bootstrap",
        &demo(),
        "--base",
        "\u{feff}group=base",
        "--treatment",
        "group=cda",
        "--nboot",
        "20",
    ]);
    assert!(
        filtered.status.success(),
        "{}",
        String::from_utf8_lossy(&filtered.stderr)
    );
}

/// Class 5, 8 and 15: every number is checked where it enters, naming the flag or key; sizes are
/// bounded up front; negative numbers reach the range check.
#[test]
fn impossible_numbers_are_refused_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let before = snapshot(tmp.path());
    let demo = demo();
    let cmp = ["--base", "group=base", "--treatment", "group=cda"];
    let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
        head.iter().chain(&cmp).chain(tail).map(|x| x.to_string()).collect()
    };
    let cases: Vec<(Vec<String>, &[&str])> = vec![
        (with(&["power", &demo], &["--effect", "nan"]), &["--effect", "finite"]),
        (
            with(&["power", &demo], &["--effect", "0.01", "--seeds", "4000000000"]),
            &["--seeds", "at most"],
        ),
        (
            with(&["bootstrap", &demo], &["--threshold-abs", "nan"]),
            &["--threshold-abs"],
        ),
        (
            with(&["bootstrap", &demo], &["--threshold-rel", "inf"]),
            &["--threshold-rel"],
        ),
        (
            with(&["bootstrap", &demo], &["--confidence", "-0.1"]),
            &["--confidence"],
        ),
        (with(&["bootstrap", &demo], &["--confidence", "1"]), &["--confidence"]),
        (with(&["bootstrap", &demo], &["--nboot", "-5"]), &["--nboot"]),
        (
            with(&["bootstrap", &demo], &["--nboot", "99999999999"]),
            &["--nboot", "TB"],
        ),
        (with(&["seeds", &demo], &["--alpha", "nan"]), &["--alpha"]),
        (with(&["curve", &demo], &["--tolerance", "-1"]), &["--tolerance"]),
        (
            with(&["report", &demo], &["--out", "x", "--effect", "inf"]),
            &["--effect"],
        ),
        (
            vec!["run".into(), "e.toml".into(), "--shard".into(), "-1/2".into()],
            &["--shard"],
        ),
        (
            with(&["power", &demo], &["--effect", "0.01", "--examples", "4000000000"]),
            &["--examples", "GB"],
        ),
        (
            with(&["power", &demo], &["--effect", "0.01", "--simulations", "99999999999"]),
            &["--simulations", "at most"],
        ),
        (
            vec![
                "seeds".into(),
                demo.clone(),
                "--permutations".into(),
                "99999999999".into(),
            ],
            &["--permutations", "at most"],
        ),
    ];
    for (args, needles) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_refused_untouched(&mb_stats(&args), needles, tmp.path(), &before);
    }
}

/// Class 5, 10, 15: experiment-file values are checked before any model loads, naming the key
/// and the file.
#[test]
fn impossible_experiment_values_are_refused_naming_key_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let train = root().join("data/quickstart/sentiment/train.tsv");
    let out = tmp.path().join("out");
    let analysis_base = "[analysis]\nnboot = 50\nbase = \"group=original\"\ntreatment = \"group=tiny\"\n";
    let cases: Vec<(&str, String, &str)> = vec![
        ("max_iter", "layers = [2]\nmax_iter = 0".into(), "task.max_iter"),
        ("runs", "layers = [2]\nruns = 100000000000".into(), "task.runs"),
        ("l2", "layers = [2]\nl2 = nan".into(), "task.l2"),
        ("layers type", "layers = 3".into(), "task.layers"),
        ("nboot", "layers = [2]".into(), "analysis.nboot"),
        ("base", "layers = [2]".into(), "analysis.base"),
        ("paired", "layers = [2]".into(), "analysis.paired"),
        ("device", "layers = [2]".into(), "runtime.device"),
    ];
    for (what, task, key) in cases {
        let file = experiment(tmp.path(), "bad.toml", &train, &task, "");
        let text = std::fs::read_to_string(&file).unwrap();
        let text = match what {
            "nboot" => text.replace("nboot = 50", "nboot = 1"),
            "base" => text.replace(analysis_base, &analysis_base.replace("group=original", "group=nope")),
            "paired" => text.replace("nboot = 50", "nboot = 50\npaired = true"),
            "device" => text.replace("device = \"cpu\"", "device = \"tpu\""),
            _ => text,
        };
        std::fs::write(&file, text).unwrap();
        let before = snapshot(tmp.path());
        assert_refused_untouched(&run(&file, &out, &[]), &[key, "bad.toml"], tmp.path(), &before);
        assert!(!out.exists(), "{what}: nothing is written before the file is checked");
    }
}

/// Class 9 and 7: output paths are checked before any work (exit 2, the user's path named),
/// and written files have the umask's mode, not the temporary file's 0600.
#[test]
fn output_paths_are_checked_first_and_outputs_are_readable_by_others() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = demo();
    let existing_file = tmp.path().join("file.txt");
    std::fs::write(&existing_file, "x").unwrap();
    let missing = tmp.path().join("nodir/x.csv");
    let folder = tmp.path().join("folder.csv");
    std::fs::create_dir(&folder).unwrap();
    let before = snapshot(tmp.path());
    let cmp = ["--base", "group=base", "--treatment", "group=cda", "--nboot", "20"];
    let pw = tmp.path().join("pw.csv");
    let stem = tmp.path().join("nodir/p");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["bootstrap", &demo, "-o", s(&missing)], s(&missing)),
        (vec!["bootstrap", &demo, "-o", s(&folder)], s(&folder)),
        (vec!["seeds", &demo, "-o", s(&missing)], s(&missing)),
        (vec!["report", &demo, "--out", s(&existing_file)], s(&existing_file)),
        (
            vec!["power", &demo, "--effect", "0.01", "-o", s(&pw), "--plot", s(&stem)],
            "--plot",
        ),
    ];
    for (mut args, needle) in cases {
        args.extend_from_slice(&cmp);
        let refused = mb_stats(&args);
        assert!(refused.stdout.is_empty(), "checked before the analysis ran");
        assert_refused_untouched(&refused, &[needle], tmp.path(), &before);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let written = tmp.path().join("r.csv");
        let mut args = vec!["bootstrap", demo.as_str(), "-o", s(&written)];
        args.extend_from_slice(&cmp);
        assert!(mb_stats(&args).status.success());
        let plain = tmp.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&written), mode(&plain), "the umask decides, as for any new file");
    }
}

/// Class 12 and 15: an empty table, missing flags and a bare command get one clear line.
#[test]
fn empty_tables_missing_flags_and_bare_commands_get_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.parquet");
    let mut df = polars::prelude::DataFrame::new(
        0,
        vec![
            polars::prelude::Column::new("group".into(), Vec::<String>::new()),
            polars::prelude::Column::new("seed".into(), Vec::<i64>::new()),
            polars::prelude::Column::new("example".into(), Vec::<i64>::new()),
            polars::prelude::Column::new("label".into(), Vec::<i64>::new()),
            polars::prelude::Column::new("prediction".into(), Vec::<i64>::new()),
        ],
    )
    .unwrap();
    mb_stats_analysis::results::parquet::write_frame(&mut df, Vec::new(), &empty).unwrap();
    let before = snapshot(tmp.path());
    let report = tmp.path().join("report");
    for args in [
        vec!["bootstrap", s(&empty)],
        vec!["seeds", s(&empty)],
        vec!["variance", s(&empty)],
        vec![
            "power",
            s(&empty),
            "--effect",
            "0.01",
            "--base",
            "group=a",
            "--treatment",
            "group=b",
        ],
        vec!["report", s(&empty), "--out", s(&report)],
    ] {
        assert_refused_untouched(&mb_stats(&args), &["empty.parquet", "no rows"], tmp.path(), &before);
    }
    assert_refused(&mb_stats(&["power", &demo()]), &["--effect"]);
    let bare = mb_stats(&[]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("Usage"));
}

/// Class 13: importers refuse what the analysis would reject later, naming file and line.
#[test]
fn importers_validate_what_they_import() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("MNLI")).unwrap();
    let header = "file\ttask\tpretrain_id\tn_steps\tlr\tft_seed\trelease\n";
    let row =
        |file: &str, steps: &str, lr: &str, ft: &str| format!("{file}\tMNLI\t0\t{steps}\t{lr}\t{ft}\tmultiberts\n");
    for f in ["a", "b"] {
        std::fs::write(dir.join(format!("MNLI/{f}.tsv")), "0.8 0.1 0.1\n0.1 0.8 0.1\n").unwrap();
    }
    std::fs::write(dir.join("MNLI_dev_labels"), "0\n1\n").unwrap();
    let index = dir.join("index.tsv");
    let out = dir.join("out.parquet");
    let cases = [
        (
            header.to_string() + &row("MNLI/a.tsv", "2M", "2e-05", "0") + &row("MNLI/b.tsv", "2M", "2e-05", "0"),
            "line 3",
        ),
        (
            header.to_string() + &row("MNLI/a.tsv", "2M", "2e-05", "0") + &row("MNLI/a.tsv", "2M", "2e-05", "1"),
            "line 3",
        ),
        (header.to_string() + &row("MNLI/a.tsv", "2M", "nan", "0"), "lr"),
        (
            header.to_string() + &row("MNLI/a.tsv", "1e30M", "2e-05", "0"),
            "n_steps",
        ),
    ];
    for (text, needle) in cases {
        std::fs::write(&index, text).unwrap();
        let before = snapshot(dir);
        let args = ["import", "glue", s(&index), "--task", "MNLI", "-o", s(&out)];
        assert_refused_untouched(&mb_stats(&args), &["index.tsv", needle], dir, &before);
    }
    std::fs::write(&index, header.to_string() + &row("MNLI/a.tsv", "2M", "2e-05", "0")).unwrap();
    std::fs::write(dir.join("MNLI_dev_labels"), "0\n3\n").unwrap();
    let before = snapshot(dir);
    let args = ["import", "glue", s(&index), "--task", "MNLI", "-o", s(&out)];
    assert_refused_untouched(
        &mb_stats(&args),
        &["MNLI_dev_labels", "line 2", "out of range"],
        dir,
        &before,
    );
}

/// Class 6: a report that fails part-way (the second metric needs a column the table lacks)
/// leaves nothing: no folder, no temporary folder, an existing folder untouched.
#[test]
fn a_failing_report_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let mut table = mb_stats_analysis::results::parquet::read(&root().join("data/demo-results.parquet")).unwrap();
    table.score = None;
    let results = tmp.path().join("no-score.parquet");
    mb_stats_analysis::results::parquet::write(&table, &results).unwrap();
    let existing = tmp.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("notes.md"), "mine").unwrap();
    for out in [tmp.path().join("new"), existing] {
        let before = snapshot(tmp.path());
        let args = [
            "report",
            s(&results),
            "--out",
            s(&out),
            "--metric",
            "accuracy,auc",
            "--base",
            "group=base",
            "--treatment",
            "group=cda",
            "--nboot",
            "20",
        ];
        assert_refused_untouched(&mb_stats(&args), &["score"], tmp.path(), &before);
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".mb-stats")), "{names:?}");
        assert_eq!(out.exists(), out.ends_with("existing"), "no folder appears");
    }
}

/// Class 11: a null step is "final or unknown". An experiment with intermediate steps and a
/// one-seed baseline without a step summarises (per step, the baseline in every step's cell),
/// reports and draws curves (the baseline has none) from its own output.
#[test]
fn intermediate_steps_beside_a_stepless_baseline_summarise_report_and_curve() {
    let tmp = tempfile::tempdir().unwrap();
    let data = root().join("data/quickstart");
    let file = tmp.path().join("dynamics.toml");
    std::fs::write(
        &file,
        format!(
            r#"[models]
suite = "local"
path = "{data}/models/tiny-multiberts-seed_{{seed}}-step_{{step}}"
seeds = "0-1"
steps = [100, 200]
group = "tiny"

[[models.extra]]
group = "original"
path = "{data}/models/tiny-bert-original"
seed = 100

[data]
train = "{data}/sentiment/train.tsv"
eval = "{data}/sentiment/dev.tsv"
train_size = 200
eval_size = 100

[task]
kind = "linear-probe"
layers = [2]

[runtime]
device = "cpu"
max_length = 32

[analysis]
nboot = 50
base = "group=original"
treatment = "group=tiny"
"#,
            data = data.display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let done = run(&file, &out, &[]);
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert!(stdout.contains("step=100") && stdout.contains("step=200"), "{stdout}");
    assert_eq!(stdout.matches("| tiny - original").count(), 2, "{stdout}");
    let results = out.join("results.parquet");
    let report = tmp.path().join("report");
    let args = [
        "report",
        s(&results),
        "--out",
        s(&report),
        "--base",
        "group=original",
        "--treatment",
        "group=tiny",
        "--nboot",
        "50",
    ];
    let reported = mb_stats(&args);
    assert!(
        reported.status.success(),
        "{}",
        String::from_utf8_lossy(&reported.stderr)
    );
    assert!(report.join("report.ipynb").is_file());
    let curve = mb_stats(&["curve", s(&results), "--nboot", "50"]);
    assert!(curve.status.success(), "{}", String::from_utf8_lossy(&curve.stderr));
}

/// Second campaign, first fixes (issue 30, classes 3 and 10): a folder named twice (or with a
/// link to it) is merged once; `report --effect` without a comparison is refused instead of
/// silently dropping the power section; a uint64 seed beyond i64 is named, not called a null.
#[test]
fn merge_counts_a_folder_once_report_effect_needs_a_comparison_and_huge_seeds_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let train = root().join("data/quickstart/sentiment/train.tsv");
    let out = tmp.path().join("out");
    let file = experiment(tmp.path(), "e.toml", &train, "layers = [2]", "");
    assert!(run(&file, &out, &[]).status.success());
    let rows = mb_stats_analysis::results::parquet::read(&out.join("results.parquet"))
        .unwrap()
        .len();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&out, &link).unwrap();
    for (i, twice) in [[s(&out), s(&out)], [s(&out), s(&link)]].iter().enumerate() {
        let merged = tmp.path().join(format!("m{i}.parquet"));
        let o = mb_stats(&["merge", twice[0], twice[1], "-o", s(&merged)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let n = mb_stats_analysis::results::parquet::read(&merged).unwrap().len();
        assert_eq!(n, rows, "merge {twice:?}");
    }

    let before = snapshot(tmp.path());
    assert_refused_untouched(
        &mb_stats(&["report", &demo(), "--effect", "0.03", "--out", s(&tmp.path().join("r"))]),
        &["--effect", "--base", "--treatment"],
        tmp.path(),
        &before,
    );

    let huge = tmp.path().join("huge.parquet");
    let mut df = polars::prelude::df!(
        "group" => ["a", "a"],
        "seed" => [1u64, u64::MAX],
        "example" => [0i64, 0],
        "label" => [1i64, 1],
        "prediction" => [1i64, 0]
    )
    .unwrap();
    mb_stats_analysis::results::parquet::write_frame(&mut df, Vec::new(), &huge).unwrap();
    let before = snapshot(tmp.path());
    assert_refused_untouched(
        &mb_stats(&["bootstrap", s(&huge)]),
        &["huge.parquet", "seed", "18446744073709551615"],
        tmp.path(),
        &before,
    );
}

/// Second campaign, class 5: a metric that cannot be defined on a task's rows is refused before
/// any model loads, naming the file, the key and what the task's rows allow (AUC of minimal
/// pairs, whose label is always 1, printed `50.0 [50.0, 50.0]`, p 1.000).
#[test]
fn a_metric_undefined_on_the_task_rows_is_refused_before_any_model_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(root().join("experiments/quickstart-blimp.toml")).unwrap();
    let data = root().join("data");
    let pairs = shipped
        .replace("../data", &data.display().to_string())
        .replace("metric = \"accuracy\"", "metric = \"auc\"");
    let file = tmp.path().join("pairs.toml");
    std::fs::write(&file, pairs).unwrap();
    let out = tmp.path().join("out");
    let refused = run(&file, &out, &[]);
    assert_refused(
        &refused,
        &[
            "pairs.toml",
            "analysis.metric",
            "auc",
            "minimal-pairs",
            "accuracy, mean",
        ],
    );
    assert!(!out.join("runs").exists(), "no checkpoint was evaluated");

    let train = root().join("data/quickstart/sentiment/train.tsv");
    let probe = experiment(tmp.path(), "probe.toml", &train, "layers = [2]", "");
    let text = std::fs::read_to_string(&probe)
        .unwrap()
        .replace("nboot = 50", "nboot = 50\nmetric = \"pearson\"");
    std::fs::write(&probe, text).unwrap();
    assert_refused(
        &run(&probe, &out, &[]),
        &["probe.toml", "analysis.metric", "pearson", "linear-probe"],
    );
    assert!(!out.join("runs").exists(), "no checkpoint was evaluated");
}

/// Second campaign, class 1: a checkpoint with one NaN weight is refused by every task before
/// anything is scored, naming the checkpoint and the tensor (minimal pairs scored it: score NaN,
/// prediction 0, summary `0.0 [0.0, 0.0]`).
#[test]
fn a_checkpoint_with_a_nan_weight_is_refused_naming_the_tensor() {
    use candle_core::{Device, Tensor};
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    for seed in ["tiny-multiberts-seed_0", "tiny-bert-original"] {
        let source = root().join("data/quickstart/models").join(seed);
        let model = models.join(seed);
        std::fs::create_dir_all(&model).unwrap();
        for entry in std::fs::read_dir(&source).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != "pytorch_model.bin" {
                std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
            }
        }
        // The same weights as safetensors, with one NaN in the original's embedding LayerNorm.
        let bin = mb_stats_bert::pytorch::PthFile::open(&source.join("pytorch_model.bin")).unwrap();
        let names: Vec<String> = bin.names().map(str::to_string).collect();
        let mut tensors = std::collections::HashMap::new();
        for name in names {
            let mut tensor = bin.read(&name).unwrap().unwrap();
            if seed == "tiny-bert-original" && name.ends_with("embeddings.LayerNorm.weight") {
                let mut values = tensor.to_vec1::<f32>().unwrap();
                values[1] = f32::NAN;
                tensor = Tensor::from_vec(values, tensor.dims(), &Device::Cpu).unwrap();
            }
            tensors.insert(name, tensor);
        }
        candle_core::safetensors::save(&tensors, model.join("model.safetensors")).unwrap();
    }
    let shipped = std::fs::read_to_string(root().join("experiments/quickstart-blimp.toml")).unwrap();
    let text = shipped
        .replace("../data/quickstart/models", &models.display().to_string())
        .replace("../data", &root().join("data").display().to_string())
        .replace("seeds = \"0-4\"", "seeds = \"0\"");
    let file = tmp.path().join("pairs.toml");
    std::fs::write(&file, text).unwrap();
    let out = tmp.path().join("out");
    let refused = run(&file, &out, &["--quiet"]);
    assert_refused(
        &refused,
        &[
            "tiny-bert-original",
            "embeddings.LayerNorm.weight",
            "non-finite",
            "index 1",
        ],
    );
    assert!(!out.join("results.parquet").exists());
}

/// Second campaign, classes 2 and 3: `run` writes its plan (every checkpoint of every shard, with
/// its key) and `merge` follows it: an incomplete shard set is refused naming what is missing
/// (or merged with `--allow-partial`, which the footer records), and after a rerun that asks
/// for fewer seeds, merging the folder gives what `run` gave, not the folders it no longer asks for.
#[test]
fn merge_follows_the_plan_refusing_missing_shards_and_leaving_out_what_is_no_longer_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let train = root().join("data/quickstart/sentiment/train.tsv");
    let out = tmp.path().join("out");
    let file = experiment(tmp.path(), "e.toml", &train, "layers = [2]", "");
    // One shard of three: the merge names the two planned checkpoints it lacks.
    let shard = run(&file, &out, &["--shard", "0/3"]);
    assert!(shard.status.success(), "{}", String::from_utf8_lossy(&shard.stderr));
    let merged = tmp.path().join("m.parquet");
    let before = snapshot(tmp.path());
    assert_refused_untouched(
        &mb_stats(&["merge", s(&out), "-o", s(&merged)]),
        &["2 of 3 planned checkpoints", "runs/", "--allow-partial"],
        tmp.path(),
        &before,
    );
    let o = mb_stats(&["merge", s(&out), "--allow-partial", "-o", s(&merged)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let partial = mb_stats_analysis::results::parquet::read(&merged).unwrap();
    assert!(
        partial
            .metadata
            .iter()
            .any(|(k, v)| k == "mb_stats.partial" && !v.is_empty()),
        "{:?}",
        partial.metadata
    );
    // The other shards, into the same folder: now complete.
    for i in ["1/3", "2/3"] {
        assert!(run(&file, &out, &["--shard", i]).status.success());
    }
    let o = mb_stats(&["merge", s(&out), "-o", s(&merged)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all = mb_stats_analysis::results::parquet::read(&merged).unwrap().len();

    // A rerun of the same --out asking for seed 0 only (and the baseline): merge agrees with run.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("seeds = \"0-1\"", "seeds = \"0\"");
    std::fs::write(&file, text).unwrap();
    let again = run(&file, &out, &[]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let by_run = mb_stats_analysis::results::parquet::read(&out.join("results.parquet"))
        .unwrap()
        .len();
    assert!(by_run < all, "{by_run} of {all}");
    let o = mb_stats(&["merge", s(&out), "-o", s(&merged)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        mb_stats_analysis::results::parquet::read(&merged).unwrap().len(),
        by_run
    );
}

/// Second campaign, class 10: `data.id` naming a column with repeated values (the label) is
/// refused before any checkpoint runs, and a killed write's temporary file in a checkpoint's
/// folder is removed when that checkpoint is run again.
#[test]
fn repeated_ids_are_refused_first_and_killed_writes_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let train = root().join("data/quickstart/sentiment/train.tsv");
    let out = tmp.path().join("out");
    let file = experiment(tmp.path(), "e.toml", &train, "layers = [2]", "");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("eval_size = 100", "eval_size = 100\nid = \"label\"");
    std::fs::write(&file, text).unwrap();
    let refused = run(&file, &out, &[]);
    assert_refused(&refused, &["dev.tsv", "row 2", "again", "data.id"]);
    assert!(!out.join("runs").exists(), "no checkpoint ran");

    let file = experiment(tmp.path(), "e.toml", &train, "layers = [2]", "");
    let folder = out.join("runs/tiny/seed_0");
    std::fs::create_dir_all(&folder).unwrap();
    let leftover = folder.join(".mb-stats-killed.tmp");
    std::fs::write(&leftover, b"").unwrap();
    let o = run(&file, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!leftover.exists(), "the killed write's temporary file is gone");
}

/// Second campaign, class 8: an output that cannot be written (a folder nothing may be created
/// in, a file name longer than file systems allow) is refused before any work, not found after
/// it (`cannot write … .mb-stats-….tmp`, exit 1).
#[test]
fn unwritable_outputs_are_refused_before_the_work() {
    let tmp = tempfile::tempdir().unwrap();
    let long = tmp.path().join(format!("{}.csv", "x".repeat(256)));
    for (args, needles) in [
        (
            vec!["bootstrap", &demo(), "-o", "/proc/mb-stats-out.csv"],
            vec!["-o", "cannot write in /proc"],
        ),
        (
            vec!["variance", &demo(), "-o", long.to_str().unwrap()],
            vec!["-o", "file name is 260 bytes"],
        ),
        (
            vec!["report", &demo(), "--out", "/proc/mb-stats-report"],
            vec!["--out", "cannot write in /proc"],
        ),
    ] {
        let before = snapshot(tmp.path());
        assert_refused_untouched(&mb_stats(&args), &needles, tmp.path(), &before);
    }
}

/// Second campaign, class 4: a run file swapped in from another configuration, with the
/// checkpoint's `done.json` kept, is refused by `run` (from the file's own footer) instead of
/// being reused (19 predictions differed).
#[test]
fn a_swapped_run_file_is_refused_not_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let train = root().join("data/quickstart/sentiment/train.tsv");
    let (out, other) = (tmp.path().join("out"), tmp.path().join("other"));
    let file = experiment(tmp.path(), "e.toml", &train, "layers = [2]", "");
    assert!(run(&file, &out, &[]).status.success());
    let second = tmp.path().join("second");
    std::fs::create_dir(&second).unwrap();
    let changed = experiment(&second, "e.toml", &train, "layers = [2]\nl2 = 0.5", "");
    assert!(run(&changed, &other, &[]).status.success());
    let unit = "runs/tiny/seed_0/layer_2-run_0.parquet";
    std::fs::copy(other.join(unit), out.join(unit)).unwrap();
    let before = snapshot(tmp.path());
    assert_refused_untouched(
        &run(&file, &out, &[]),
        &["layer_2-run_0.parquet", "made by a different experiment"],
        tmp.path(),
        &before,
    );
}

/// Second campaign, class 10: `checkpoints --download` with `HF_HUB_OFFLINE=1` is refused in
/// one line instead of trying the network.
#[test]
fn download_under_hf_hub_offline_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_mb-stats"))
        .args(["checkpoints", "--seeds", "0", "--steps", "final", "--download"])
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", tmp.path())
        .output()
        .unwrap();
    assert_refused(&o, &["--download", "HF_HUB_OFFLINE"]);
}

/// Second campaign, class 4: a checkpoint's weights replaced by another seed's, with the
/// modification time restored, are told apart by their content (the key held size and mtime, so
/// the stale results were reused).
#[test]
fn swapped_weights_with_their_mtime_restored_are_not_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let shipped = root().join("data/quickstart/models");
    for name in ["tiny-multiberts-seed_0", "tiny-multiberts-seed_1", "tiny-bert-original"] {
        std::fs::create_dir_all(models.join(name)).unwrap();
        for entry in std::fs::read_dir(shipped.join(name)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), models.join(name).join(entry.file_name())).unwrap();
        }
    }
    let train = root().join("data/quickstart/sentiment/train.tsv");
    let out = tmp.path().join("out");
    let file = experiment(tmp.path(), "e.toml", &train, "layers = [2]", "");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(&shipped.display().to_string(), &models.display().to_string());
    std::fs::write(&file, text).unwrap();
    assert!(run(&file, &out, &[]).status.success());
    let weights = models.join("tiny-multiberts-seed_0/pytorch_model.bin");
    let modified = std::fs::metadata(&weights).unwrap().modified().unwrap();
    std::fs::copy(models.join("tiny-multiberts-seed_1/pytorch_model.bin"), &weights).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    assert_eq!(std::fs::metadata(&weights).unwrap().modified().unwrap(), modified);
    let before = snapshot(&out);
    assert_refused_untouched(
        &run(&file, &out, &[]),
        &["seed_0", "made by a different experiment"],
        &out,
        &before,
    );
}

/// Second campaign, class 10: a disk that fills during a write says so ("the disk is full")
/// instead of the Parquet writer's `Invalid thrift: transport error`. Needs a small tmpfs, which
/// only root can mount: elsewhere the test says it could not run and checks nothing.
#[test]
fn a_full_disk_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let tiny = tmp.path().join("tiny");
    std::fs::create_dir(&tiny).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=128k", "tmpfs", s(&tiny)])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    }
    let o = mb_stats(&[
        "bootstrap",
        &demo(),
        "--nboot",
        "20000",
        "--samples",
        s(&tiny.join("samples.parquet")),
    ]);
    let _ = Command::new("umount").arg(&tiny).status();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("samples.parquet") && err.contains("the disk is full"),
        "{err}"
    );
}

/// Second campaign, class 7: tables as pandas and pyarrow write them (`tests/fixtures/parquet`,
/// made by `scripts/make_parquet_fixtures.py`). A column the analyses never read (timestamp,
/// date, decimal, float16, struct, map) is ignored instead of refusing the table (decimal and map
/// panicked), a dictionary-encoded `group` is read as text, and a schema column of a type it
/// cannot read (a decimal `label`) is refused by name, never a panic.
#[test]
fn parquet_written_by_other_tools_is_read_or_refused_by_name() {
    let fixtures = root().join("tests/fixtures/parquet");
    let reference = mb_stats(&["bootstrap", s(&fixtures.join("extra-date.parquet")), "--nboot", "50"]);
    assert!(
        reference.status.success(),
        "{}",
        String::from_utf8_lossy(&reference.stderr)
    );
    for name in [
        "extra-timestamp",
        "extra-decimal",
        "extra-float16",
        "extra-struct",
        "extra-map",
        "categorical-group",
    ] {
        let o = mb_stats(&[
            "bootstrap",
            s(&fixtures.join(format!("{name}.parquet"))),
            "--nboot",
            "50",
        ]);
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout, reference.stdout, "{name}: the same rows, the same numbers");
    }
    assert_refused(
        &mb_stats(&["bootstrap", s(&fixtures.join("decimal-label.parquet"))]),
        &["decimal-label.parquet", "column label", "Decimal"],
    );
}
