//! `mb-stats run` / `merge` end to end on the bundled tiny seed suite: results, restarts after a
//! kill at any moment, shards, and refusals of bad experiment files.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use polars::prelude::*;
use support::{assert_refused, mb_stats};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A small experiment over the bundled suite (seeds 0-2 and the one-seed baseline), written into `dir`.
fn small_experiment(dir: &Path, extra: &str) -> PathBuf {
    let data = root().join("data/quickstart");
    let text = format!(
        r#"
[models]
suite = "local"
path = "{data}/models/tiny-multiberts-seed_{{seed}}"
seeds = "0-2"
group = "tiny"

[[models.extra]]
group = "original"
path = "{data}/models/tiny-bert-original"
seed = 100

[data]
train = "{data}/sentiment/train.tsv"
eval = "{data}/sentiment/dev.tsv"
train_size = 300
eval_size = 200

[task]
kind = "linear-probe"
layers = [1, 2]
pooling = "mean"
runs = 2

[runtime]
device = "cpu"
max_length = 32
batch_tokens = 512

[analysis]
nboot = 200
base = "group=original"
treatment = "group=tiny"
{extra}"#,
        data = data.display()
    );
    let path = dir.join("small.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn frame(path: &Path) -> DataFrame {
    let df = ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap();
    df.sort(["group", "seed", "layer", "run", "example"], Default::default())
        .unwrap()
}

/// `mb-stats merge` of the shard outputs `parts` gives exactly the results of the whole run.
fn assert_merge_is_whole(parts: &[&Path], whole: &Path) {
    let merged = whole.with_file_name("merged.parquet");
    let mut args = vec!["merge"];
    args.extend(parts.iter().map(|p| p.to_str().unwrap()));
    args.extend(["-o", merged.to_str().unwrap()]);
    let done = mb_stats(&args);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert!(frame(&merged).equals_missing(&frame(&whole.join("results.parquet"))));
}

/// `mb-stats run` with stderr to the file `log` (not a terminal, as in a batch job); its text.
fn run_logged(experiment: &Path, out: &Path, more: &[&str], log: &Path) -> String {
    let mut args = vec!["run", experiment.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(more);
    let status = Command::new(env!("CARGO_BIN_EXE_mb-stats"))
        .args(&args)
        .stderr(std::fs::File::create(log).unwrap())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(log).unwrap()
}

fn run(experiment: &Path, out: &Path, more: &[&str]) -> std::process::Output {
    let mut args = vec!["run", experiment.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(more);
    mb_stats(&args)
}

#[test]
fn a_run_writes_every_unit_and_prints_the_comparison() {
    let tmp = tempfile::tempdir().unwrap();
    let experiment = small_experiment(tmp.path(), "");
    let out = tmp.path().join("out");
    let done = run(&experiment, &out, &[]);
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let results = frame(&out.join("results.parquet"));
    // 4 checkpoints × 2 layers × 2 runs × 200 examples.
    assert_eq!(results.height(), 4 * 2 * 2 * 200);
    let files = std::fs::read_dir(out.join("runs/tiny/seed_1")).unwrap().count();
    assert_eq!(files, 2 * 2 + 1, "one file per (layer, run) plus the done marker");
    for column in [
        "group",
        "seed",
        "step",
        "run",
        "task",
        "layer",
        "example",
        "label",
        "prediction",
        "score",
    ] {
        assert!(results.column(column).is_ok(), "{column}");
    }
    assert!(stdout.contains("tiny") && stdout.contains("original"), "{stdout}");
    // The footer records the experiment file.
    let metadata = mb_stats_analysis::results::parquet::read(&out.join("results.parquet"))
        .unwrap()
        .metadata;
    let experiment_text = metadata.iter().find(|(k, _)| k == "mb_stats.experiment").unwrap();
    assert_eq!(experiment_text.1, std::fs::read_to_string(&experiment).unwrap());
    // The summary is the bootstrap command's, on the merged table.
    let again = mb_stats(&[
        "bootstrap",
        out.join("results.parquet").to_str().unwrap(),
        "--base",
        "group=original",
        "--treatment",
        "group=tiny",
        "--by",
        "layer",
        "--nboot",
        "200",
    ]);
    assert_eq!(String::from_utf8_lossy(&again.stdout), stdout);

    // A restart finds everything done and changes nothing.
    let before = frame(&out.join("results.parquet"));
    assert!(run(&experiment, &out, &[]).status.success());
    assert!(frame(&out.join("results.parquet")).equals_missing(&before));
}

#[test]
fn killing_the_run_at_any_moment_loses_no_finished_work() {
    let tmp = tempfile::tempdir().unwrap();
    let experiment = small_experiment(tmp.path(), "");
    let reference_out = tmp.path().join("reference");
    assert!(run(&experiment, &reference_out, &[]).status.success());
    let reference = frame(&reference_out.join("results.parquet"));

    let out = tmp.path().join("killed");
    let mut finished_before = 0;
    for delay_ms in [150u64, 400, 700, 1000, 1500, 2500] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mb-stats"))
            .args(["run", experiment.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Every run file present is complete and readable; finished work only grows.
        let files = mb_stats_runner::experiment::merge::run_files(&out);
        for file in &files {
            mb_stats_analysis::results::parquet::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
        assert!(files.len() >= finished_before);
        finished_before = files.len();
    }
    assert!(run(&experiment, &out, &[]).status.success());
    assert!(
        frame(&out.join("results.parquet")).equals_missing(&reference),
        "restarted run differs"
    );
}

#[test]
fn shards_merge_into_the_whole_run() {
    let tmp = tempfile::tempdir().unwrap();
    let experiment = small_experiment(tmp.path(), "");
    let whole = tmp.path().join("whole");
    assert!(run(&experiment, &whole, &[]).status.success());
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert!(run(&experiment, &a, &["--shard", "0/2"]).status.success());
    assert!(run(&experiment, &b, &["--shard", "1/2"]).status.success());
    assert!(!a.join("results.parquet").exists(), "a shard does not merge");
    assert_merge_is_whole(&[&a, &b], &whole);
    assert_refused(
        &run(&experiment, &a, &["--shard", "2/2"]),
        &["'2/2' for '--shard", "0 <= I < N"],
    );
}

#[test]
fn bad_experiment_files_are_refused_with_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let base = std::fs::read_to_string(small_experiment(tmp.path(), "")).unwrap();
    let cases: [(&str, String, &[&str]); 10] = [
        (
            "unknown key",
            base.replace("runs = 2", "runs = 2\nrun = 3"),
            &[
                "line 24 (run = 3)",
                "task.run: not a setting of kind = \"linear-probe\"",
                "runs, l2",
            ],
        ),
        (
            "wrong type",
            base.replace("runs = 2", "runs = \"two\""),
            &["line", "runs = \"two\""],
        ),
        (
            "impossible value",
            base.replace("runs = 2", "runs = 0"),
            &["task.runs", "at least 1"],
        ),
        (
            "bad pooling",
            base.replace("pooling = \"mean\"", "pooling = \"max\""),
            &["task.pooling"],
        ),
        (
            "unknown kind",
            base.replace("kind = \"linear-probe\"", "kind = \"probe\""),
            &[
                "line 20 (kind = \"probe\")",
                "task.kind",
                "unknown kind \"probe\"",
                "linear-probe, minimal-pairs, cloze, crows-pairs, winogender, pretrain, fine-tune",
            ],
        ),
        (
            "a length without room for [CLS] and [SEP]",
            base.replace("max_length = 32", "max_length = 1"),
            &["line", "runtime.max_length", "at least 2, got 1"],
        ),
        (
            "empty batches",
            base.replace("batch_tokens = 512", "batch_tokens = 0"),
            &["line", "runtime.batch_tokens", "at least 1"],
        ),
        (
            "an unknown runtime key",
            base.replace("batch_tokens = 512", "batch_size = 512"),
            &["line", "runtime.batch_size", "unknown field"],
        ),
        (
            "a probe without training data",
            base.lines()
                .filter(|l| !l.starts_with("train ="))
                .collect::<Vec<_>>()
                .join("\n"),
            &["line", "data: missing field `train`"],
        ),
        (
            "missing checkpoint",
            base.replace("seeds = \"0-2\"", "seeds = \"0-9\""),
            &["models.path", "no config.json"],
        ),
    ];
    for (what, text, needles) in cases {
        let path = tmp.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let refused = run(&path, &out, &[]);
        assert_refused(&refused, needles);
        assert!(String::from_utf8_lossy(&refused.stderr).contains("bad.toml"), "{what}");
        assert!(!out.join("results.parquet").exists(), "{what}");
    }
}

/// Without a terminal (stderr to a file, as in a batch job), `run` logs plain lines: each
/// checkpoint's start with where it comes from, the progress of its sentences and of the grid
/// with rate and ETA, a summary per finished checkpoint and a line per skipped one; `--quiet`
/// silences them.
#[test]
fn a_run_without_a_terminal_logs_plain_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let experiment = small_experiment(tmp.path(), "");
    let out = tmp.path().join("out");
    let log = tmp.path().join("job.log");
    let text = run_logged(&experiment, &out, &["--log-interval", "0.001"], &log);
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(": starting, from the directory "))
        .collect();
    assert_eq!(starts.len(), 4, "{text}");
    assert!(starts[0].starts_with("[1/4] "), "{text}");
    // 200 evaluation sentences plus the union of two runs' 300 training sentences, every batch.
    let sentences = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("sentences: "))
        .count();
    assert!(sentences >= 4, "{text}");
    for line in lines
        .iter()
        .filter(|l| l.trim_start().starts_with("sentences: ") || l.trim_start().starts_with("checkpoints: "))
    {
        assert!(line.contains("/s, ETA "), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with("checkpoints: 4/4 (100%), ")),
        "{text}"
    );
    let finished = lines
        .iter()
        .filter(|l| l.contains("4 probes, mean eval accuracy") && l.contains(" (loaded in "))
        .count();
    assert_eq!(finished, 4, "{text}");

    // A rerun skips every checkpoint, one line each.
    let text = run_logged(&experiment, &out, &[], &log);
    assert_eq!(text.matches(": already finished, skipped").count(), 4, "{text}");

    // --quiet: no progress at all, the closing lines only.
    let quiet = run(&experiment, &out, &["--quiet"]);
    assert!(quiet.status.success());
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(
        !stderr.contains("skipped") && !stderr.contains("checkpoints:"),
        "{stderr}"
    );
}

/// `--shard auto` in a Slurm array (`--array=1-2`) runs this task's part: merged, the tasks give
/// the whole run; outside an array it is refused.
#[test]
fn array_tasks_find_their_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let experiment = small_experiment(tmp.path(), "");
    let whole = tmp.path().join("whole");
    assert!(run(&experiment, &whole, &[]).status.success());
    let scheduler = std::env::vars().filter(|(k, _)| k.starts_with("SLURM_") || k.starts_with("SGE_"));
    let clean: Vec<String> = scheduler.map(|(k, _)| k).collect();
    let task = |id: &str, out: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mb-stats"));
        for k in &clean {
            command.env_remove(k);
        }
        command.args([
            "run",
            experiment.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--shard",
            "auto",
        ]);
        if !id.is_empty() {
            command.envs([
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_MAX", "2"),
            ]);
        }
        command.output().unwrap()
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (id, out) in [("1", &a), ("2", &b)] {
        let done = task(id, out);
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    }
    assert_merge_is_whole(&[&a, &b], &whole);
    assert_refused(
        &task("", &tmp.path().join("c")),
        &["--shard auto", "not in a job array"],
    );
}

/// A Hugging Face cache at `root` holding the bundled tiny seeds 0-3 as `google/multiberts-seed_N`
/// (refs, snapshots linking to blobs, as hf-hub lays them out).
fn tiny_hub_cache(root: &Path) {
    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    for seed in 0..4 {
        let repo = root.join(format!("models--google--multiberts-seed_{seed}"));
        let snapshot = repo.join("snapshots").join(COMMIT);
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
        let source = root_models().join(format!("tiny-multiberts-seed_{seed}"));
        for (i, entry) in std::fs::read_dir(&source).unwrap().enumerate() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), repo.join("blobs").join(format!("blob{i}"))).unwrap();
            std::os::unix::fs::symlink(format!("../../blobs/blob{i}"), snapshot.join(entry.file_name())).unwrap();
        }
    }
}

fn root_models() -> PathBuf {
    root().join("data/quickstart/models")
}

#[test]
fn concurrent_shards_share_one_cache_and_one_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    tiny_hub_cache(&cache);
    let data = root().join("data/quickstart");
    let experiment = tmp.path().join("hub.toml");
    std::fs::write(
        &experiment,
        format!(
            "[models]\nsuite = \"multiberts\"\nseeds = \"0-3\"\n\n[data]\ntrain = \"{d}/sentiment/train.tsv\"\neval = \"{d}/sentiment/dev.tsv\"\ntrain_size = 200\neval_size = 100\n\n[task]\nkind = \"linear-probe\"\nlayers = [2]\npooling = \"mean\"\nruns = 2\n\n[runtime]\ndevice = \"cpu\"\nmax_length = 32\n",
            d = data.display()
        ),
    )
    .unwrap();
    let command = |out: &Path, shard: Option<String>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mb-stats"));
        c.env("HF_HUB_CACHE", &cache).args([
            "run",
            experiment.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--offline",
            "--quiet",
        ]);
        if let Some(shard) = shard {
            c.args(["--shard", &shard]);
        }
        c
    };
    let whole = tmp.path().join("whole");
    assert!(command(&whole, None).output().unwrap().status.success());
    // Four shard processes at once, one cache, one output folder.
    let shared = tmp.path().join("shared");
    let children: Vec<_> = (0..4)
        .map(|i| command(&shared, Some(format!("{i}/4"))).spawn().unwrap())
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_merge_is_whole(&[&shared], &whole);
    // The cache is as it was: read in place, nothing converted or written beside it.
    let blobs = std::fs::read_dir(cache.join("models--google--multiberts-seed_0/blobs"))
        .unwrap()
        .count();
    assert_eq!(
        blobs,
        std::fs::read_dir(root_models().join("tiny-multiberts-seed_0"))
            .unwrap()
            .count()
    );
}

#[test]
fn a_grid_larger_than_the_disk_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    // 3,000 BERT-base-sized Hub arms not in the (empty) cache: ≈ 1.3 TB to download.
    let arms: String = (0..3000)
        .map(|i| format!("\n[[models.extra]]\ngroup = \"arm{i}\"\nrepo = \"example/bert-{i}\"\n"))
        .collect();
    let experiment = small_experiment(tmp.path(), "");
    let text = std::fs::read_to_string(&experiment)
        .unwrap()
        .replacen("[data]", &format!("{arms}\n[data]"), 1);
    std::fs::write(&experiment, text).unwrap();
    let out = tmp.path().join("out");
    let run_with = |more: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mb-stats"))
            .env("HF_HUB_CACHE", tmp.path().join("empty-cache"))
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .args([
                "run",
                experiment.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--quiet",
            ])
            .args(more)
            .output()
            .unwrap()
    };
    let refused = run_with(&[]);
    assert_refused(
        &refused,
        &["3000 checkpoints to download need ≈ 1326.0 GB", "GB is free", "--evict"],
    );
    assert!(!out.join("runs").exists(), "nothing evaluated");
    // With --evict one checkpoint at a time fits: the run goes on (and fails later, offline here).
    let evicting = run_with(&["--evict"]);
    let err = String::from_utf8_lossy(&evicting.stderr);
    assert!(!err.contains("GB is free"), "{err}");
}

/// Every shipped experiment file (and the Slurm example's) reads and validates: keys, values,
/// kinds; what they need from the network or a virtual environment is not checked here.
#[test]
fn every_shipped_experiment_file_reads() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("experiments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "{files:?}");
    for file in files {
        mb_stats_runner::experiment::config::ExperimentFile::read(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

/// Several experiment files run one after the other, each into out/<its stem>, every file checked
/// before the first starts; `--out` and `--shard` name one folder and so take one file only.
#[test]
fn several_experiment_files_run_in_turn_after_all_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let first = small_experiment(tmp.path(), "");
    let second = tmp.path().join("second.toml");
    std::fs::copy(&first, &second).unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&first).unwrap().replace("runs = 2", "runs = 0"),
    )
    .unwrap();
    let run_in = |files: &[&Path], extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mb-stats"))
            .current_dir(tmp.path())
            .arg("run")
            .args(files)
            .args(extra)
            .arg("--quiet")
            .output()
            .unwrap()
    };
    let refused = run_in(&[&first, &bad], &[]);
    assert_refused(&refused, &["bad.toml", "task.runs"]);
    assert!(
        !tmp.path().join("out").exists(),
        "nothing ran before every file was checked"
    );
    for flag in [["--out", "x"], ["--shard", "0/2"]] {
        assert_refused(
            &run_in(&[&first, &second], &flag),
            &[flag[0], "only with one experiment file"],
        );
    }
    let both = run_in(&[&first, &second], &[]);
    assert!(both.status.success(), "{}", String::from_utf8_lossy(&both.stderr));
    for stem in ["small", "second"] {
        assert!(
            tmp.path().join("out").join(stem).join("results.parquet").is_file(),
            "{stem}"
        );
    }
    assert_eq!(
        String::from_utf8_lossy(&both.stdout)
            .matches("Multi-Bootstrap:")
            .count(),
        2
    );
}
