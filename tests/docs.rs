//! Every shell block of README.md and docs/*.md is run or checked, so that a changed flag cannot
//! leave a stale example behind. The fence's info string says which:
//!
//! - `sh`: runs offline in seconds. The blocks of one page run in order, with bash `-e`, in one
//!   scratch copy of the repository's inputs (`data/`, `experiments/`, `tests/fixtures/`,
//!   `scripts/`, `bench/`), with the `mb-stats` built here first on `PATH` (`cargo run --release
//!   --` is spelled `mb-stats`) and an empty, offline Hugging Face cache.
//! - `sh TAG`, TAG one of [`NOT_RUN`] (synopsis, network, cluster, torch, slow, tests): not run,
//!   for the reason the tag names.
//! - In every shell block, run or not, each `mb-stats COMMAND … --flag` must use flags that
//!   `mb-stats COMMAND --help` lists.
//! - `text output`: the exact output of the page's last run block: its lines appear in that
//!   block's stdout, in order and contiguous (trailing spaces ignored).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Tags of shell blocks that are checked but not run, and why.
const NOT_RUN: &[(&str, &str)] = &[
    ("synopsis", "usage lines with [optional] parts"),
    (
        "network",
        "needs the Hugging Face Hub, PyPI or data that is not bundled",
    ),
    ("cluster", "needs Slurm or SGE"),
    ("torch", "needs the project's .venv with torch and transformers"),
    ("slow", "takes minutes or more"),
    ("tests", "the test command itself"),
];

/// The inputs a run block may read, copied into its page's scratch folder.
const INPUTS: &[&str] = &["data", "experiments", "tests/fixtures", "scripts", "bench"];

/// A fenced block of a Markdown page.
struct Block {
    /// The info string after the fence, such as `sh synopsis`.
    info: String,
    /// The 1-based line of the opening fence.
    line: usize,
    /// Its text.
    body: String,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page of docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    line: i + 1,
                    body: String::new(),
                })
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => blocks.push(open.take().unwrap()),
            (Some(block), _) => {
                block.body.push_str(line);
                block.body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a fence is not closed");
    blocks
}

/// The block's text as bash runs it: `cargo run --release [--quiet] --` is the binary.
fn as_run(body: &str) -> String {
    body.replace("cargo run --release --quiet -- ", "mb-stats ")
        .replace("cargo run --release -- ", "mb-stats ")
}

/// Every `mb-stats …` command of a block (continuation lines joined, comments included, since
/// they show usage too), as its words up to the end of the command.
fn commands(body: &str) -> Vec<Vec<String>> {
    let joined = as_run(body).replace("\\\n", " ");
    let mut found = Vec::new();
    for line in joined.lines() {
        let line = line.trim_start_matches(['#', ' ']);
        for (start, _) in line.match_indices("mb-stats ") {
            if start > 0 && !line[..start].ends_with([' ', '(', '`', '$', ';', '|', '&']) {
                continue;
            }
            let words: Vec<String> = line[start + "mb-stats ".len()..]
                .split_whitespace()
                .take_while(|w| !["|", ";", "&&", "#", ">", "2>", "done", "`"].contains(w) && !w.starts_with('`'))
                .map(|w| w.trim_end_matches([';', '`', ')']).to_string())
                .collect();
            found.push(words);
        }
    }
    found
}

/// The long flags `mb-stats ARGS --help` lists.
fn flags_of(
    binary: &Path,
    args: &[&str],
    cache: &mut BTreeMap<Vec<String>, Option<Vec<String>>>,
) -> Option<Vec<String>> {
    let key: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    cache
        .entry(key)
        .or_insert_with(|| {
            let out = Command::new(binary).args(args).arg("--help").output().unwrap();
            out.status.success().then(|| {
                let help = String::from_utf8_lossy(&out.stdout);
                let flag = regex::Regex::new(r"--[a-z][a-z0-9-]*").unwrap();
                flag.find_iter(&help).map(|m| m.as_str().to_string()).collect()
            })
        })
        .clone()
}

/// The flags `words` (after `mb-stats`) use that their command does not have.
fn unknown_flags(
    binary: &Path,
    words: &[String],
    cache: &mut BTreeMap<Vec<String>, Option<Vec<String>>>,
) -> Vec<String> {
    let Some(command) = words.first().filter(|w| !w.starts_with('-')) else {
        return Vec::new();
    };
    // A nested command (`import lm-eval`) when the second word is one; for a plain word that is
    // an argument, `--help` after it still prints the command's own help.
    let nested = words
        .get(1)
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-'))
        .and_then(|sub| flags_of(binary, &[command, sub], cache));
    let known = match nested.or_else(|| flags_of(binary, &[command], cache)) {
        Some(flags) => flags,
        None => return vec![format!("(no command {command:?})")],
    };
    let flag = regex::Regex::new(r"^--[a-z][a-z0-9-]*").unwrap();
    words
        .iter()
        .filter_map(|w| flag.find(w.trim_start_matches('[')).map(|m| m.as_str().to_string()))
        .filter(|f| !known.contains(f))
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Trailing spaces off each line, and the lines.
fn lines(text: &str) -> Vec<&str> {
    text.lines().map(str::trim_end).collect()
}

fn contains_run(haystack: &[&str], needle: &[&str]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn every_shell_block_of_the_docs_runs_or_says_why_not() {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_mb-stats"));
    let bin_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&binary, bin_dir.path().join("mb-stats")).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut help = BTreeMap::new();
    let mut problems = Vec::new();
    let mut ran = 0;
    for page in pages() {
        let name = page.strip_prefix(root()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&page).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let mut inputs_copied = false;
        let mut last_stdout: Option<(usize, String)> = None;
        for block in blocks(&text) {
            let at = format!("{name}:{}", block.line);
            let mut info = block.info.split_whitespace();
            let language = info.next().unwrap_or("");
            let tag = info.next();
            if language == "text" && tag == Some("output") {
                match &last_stdout {
                    Some((line, stdout)) if !contains_run(&lines(stdout), &lines(&block.body)) => {
                        problems.push(format!(
                            "{at}: this output is not what the block at line {line} prints now; it printed:\n{stdout}"
                        ))
                    }
                    Some(_) => {}
                    None => problems.push(format!("{at}: `text output` follows no block that ran")),
                }
                continue;
            }
            if !matches!(language, "sh" | "bash" | "shell") {
                continue;
            }
            for words in commands(&block.body) {
                let unknown = unknown_flags(&binary, &words, &mut help);
                if !unknown.is_empty() {
                    problems.push(format!(
                        "{at}: `mb-stats {}`: unknown {}",
                        words.join(" "),
                        unknown.join(", ")
                    ));
                }
            }
            match tag {
                None => {
                    if !inputs_copied {
                        for input in INPUTS {
                            copy_tree(&root().join(input), &scratch.path().join(input));
                        }
                        inputs_copied = true;
                    }
                    let out = Command::new("bash")
                        .args(["-e", "-o", "pipefail", "-c", &as_run(&block.body)])
                        .current_dir(scratch.path())
                        .env("PATH", &path)
                        .env("HF_HUB_OFFLINE", "1")
                        .env("HF_HUB_CACHE", scratch.path().join(".hf-cache"))
                        .env("MB_STATS_CACHE", scratch.path().join(".mb-stats-cache"))
                        .output()
                        .unwrap();
                    ran += 1;
                    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                    if !out.status.success() {
                        problems.push(format!(
                            "{at}: failed ({}):\n{}\n{}",
                            out.status,
                            block.body,
                            String::from_utf8_lossy(&out.stderr)
                        ));
                    }
                    last_stdout = Some((block.line, stdout));
                }
                Some(tag) if NOT_RUN.iter().any(|(t, _)| *t == tag) => last_stdout = None,
                Some(tag) => problems.push(format!(
                    "{at}: unknown tag {tag:?}; a shell block runs offline (no tag) or says why not: {}",
                    NOT_RUN
                        .iter()
                        .map(|(t, why)| format!("{t} ({why})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(ran >= 5, "only {ran} blocks ran: the docs lost their runnable examples");
}

/// The checker itself: it finds commands, their flags, and unknown tags.
#[test]
fn the_checker_finds_commands_and_flags() {
    let body = "cargo run --release -- bootstrap x.parquet --base a \\\n    --nboot 10 | head\n# mb-stats bench [--nboot 1000] [--repeats 5]\n";
    let found = commands(body);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0], ["bootstrap", "x.parquet", "--base", "a", "--nboot", "10"]);
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_mb-stats"));
    let mut help = BTreeMap::new();
    let stale: Vec<String> = ["bootstrap", "x", "--nboot", "3", "--no-such-flag"]
        .map(String::from)
        .to_vec();
    assert_eq!(unknown_flags(&binary, &stale, &mut help), ["--no-such-flag"]);
    let nested: Vec<String> = ["import", "lm-eval", "dir", "-o", "x", "--no-such-flag"]
        .map(String::from)
        .to_vec();
    assert_eq!(unknown_flags(&binary, &nested, &mut help), ["--no-such-flag"]);
    let blocks = blocks("text\n```sh synopsis\nmb-stats x\n```\n\n```text output\na\n```\n");
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].info, "sh synopsis");
    assert_eq!(blocks[0].line, 2);
    assert!(contains_run(&lines("x\na  \nb\n"), &lines("a\nb")));
    assert!(!contains_run(&lines("a\nx\nb\n"), &lines("a\nb")));
}
