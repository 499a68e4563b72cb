//! The crates are the architecture: each library crate's direct dependencies stay on its side
//! of the boundaries its crate doc draws (transitive ones come through other mb-stats crates,
//! which are checked the same way).

use std::path::Path;

/// (crate folder, dependencies it must not have).
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "crates/core",
        &[
            "polars",
            "candle-core",
            "candle-nn",
            "clap",
            "plotters",
            "tokenizers",
            "hf-hub",
            "mb-stats-files",
            "mb-stats-analysis",
            "mb-stats-bert",
            "mb-stats-runner",
        ],
    ),
    (
        "crates/files",
        &[
            "polars",
            "candle-core",
            "clap",
            "mb-stats-core",
            "mb-stats-analysis",
            "mb-stats-bert",
            "mb-stats-runner",
        ],
    ),
    (
        "crates/analysis",
        &[
            "candle-core",
            "candle-nn",
            "tokenizers",
            "hf-hub",
            "clap",
            "mb-stats-bert",
            "mb-stats-runner",
        ],
    ),
    (
        "crates/bert",
        &[
            "polars",
            "plotters",
            "clap",
            "indicatif",
            "mb-stats-analysis",
            "mb-stats-runner",
        ],
    ),
    ("crates/runner", &["clap"]),
    // The Python package is the analysis half only: building it never compiles candle.
    (
        "python",
        &[
            "candle-core",
            "candle-nn",
            "tokenizers",
            "hf-hub",
            "clap",
            "mb-stats-bert",
            "mb-stats-runner",
        ],
    ),
];

fn dependencies(krate: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(krate).join("Cargo.toml");
    let manifest: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn no_crate_imports_across_its_boundary() {
    for (krate, forbidden) in FORBIDDEN {
        let deps = dependencies(krate);
        assert!(
            !deps.is_empty() || *krate == "crates/files",
            "{krate}: no dependencies read"
        );
        for dep in deps {
            assert!(!forbidden.contains(&dep.as_str()), "{krate} depends on {dep}");
        }
    }
}

#[test]
fn only_the_binary_knows_clap() {
    let crates = ["core", "files", "analysis", "bert", "runner"];
    for krate in crates {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("crates")
            .join(krate)
            .join("src");
        let mut pending = vec![root];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    assert!(!text.contains("clap::"), "{} mentions clap", path.display());
                }
            }
        }
    }
}

/// The module path of each `.rs` file under `src` (`a/b.rs` → a::b, `a/mod.rs` → a, `lib.rs` →
/// the root), with its text up to its tests.
fn modules(src: &Path) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Vec<String> = relative.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_string();
            out.push((module, code));
        }
    }
    out
}

/// The module paths a file at `module` names with `crate::…` or `super::…` outside comments.
fn imports(module: &[String], code: &str, is_folder_root: bool) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in code.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
        for (start, _) in line.match_indices("crate::").chain(line.match_indices("super::")) {
            if line[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut path: Vec<String> = Vec::new();
            let mut rest = &line[start..];
            if let Some(after) = rest.strip_prefix("crate::") {
                rest = after;
            } else {
                // `super` of a file is its folder; of a folder's mod.rs, the folder's parent.
                let mut base = module.to_vec();
                while let Some(after) = rest.strip_prefix("super::") {
                    rest = after;
                    base.pop();
                }
                if is_folder_root {
                    base.pop();
                }
                path = base;
            }
            for segment in rest.split("::") {
                let ident: String = segment
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if ident.is_empty() || ident.len() != segment.len() && !segment.starts_with(&ident) {
                    break;
                }
                path.push(ident.clone());
                if ident.len() != segment.len() {
                    break;
                }
            }
            found.push(path);
        }
    }
    found
}

/// No import circle inside any crate: within every folder of a crate (the binary's `src` too),
/// its files and sub-folders (a sub-folder with everything under it counts as one) name one
/// another's items by `crate::…` or `super::…` paths without a cycle. (It found experiment/ ↔
/// task/ in the runner, model ↔ finetune and hub ↔ fetch in the BERT crate.)
#[test]
fn no_import_circle_inside_any_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![root.join("src")];
    sources.extend(["core", "files", "analysis", "bert", "runner"].map(|k| root.join("crates").join(k).join("src")));
    for src in sources {
        let files = modules(&src);
        let folders: Vec<&Vec<String>> = files.iter().map(|(m, _)| m).collect();
        for (folder, _) in &files {
            // The units of `folder`: its direct child modules.
            let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
            for (module, code) in &files {
                if module.len() <= folder.len() || !module.starts_with(folder) {
                    continue;
                }
                let from = &module[folder.len()];
                let is_folder_root = folders.iter().any(|m| m.len() > module.len() && m.starts_with(module));
                for path in imports(module, code, is_folder_root) {
                    if path.len() > folder.len() && path.starts_with(folder) && &path[folder.len()] != from {
                        edges
                            .entry(from.clone())
                            .or_default()
                            .insert(path[folder.len()].clone());
                    }
                }
            }
            if let Some(cycle) = find_cycle(&edges) {
                let place = if folder.is_empty() {
                    "the crate root".to_string()
                } else {
                    folder.join("/")
                };
                panic!("{}: import circle in {place}: {}", src.display(), cycle.join(" → "));
            }
        }
    }
}

/// A cycle of `edges`, as the units along it, if there is one.
fn find_cycle(edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    edges.keys().find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

/// Flags are spelled in `src/cli.rs` only: a library crate names a setting as `{name}` in an
/// error ([`mb_stats_files::error::Error::Named`]) or in plain words, and the edge spells it as
/// a flag, a key of a file or an argument, whichever the user wrote. Other tools' flags (the
/// harness's `--log_samples`, cargo's `--features`, Slurm's `--array`, the arguments of a child
/// process) are allowed.
#[test]
fn no_library_crate_spells_a_flag() {
    let allowed = ["--log_samples", "--features", "--array"];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for krate in ["core", "files", "analysis", "bert", "runner"] {
        for (module, code) in modules(&root.join("crates").join(krate).join("src")) {
            for line in code
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with("//") && l.contains('"'))
            {
                for (at, _) in line.match_indices("--") {
                    let flag: String = line[at..]
                        .chars()
                        .take_while(|c| *c == '-' || c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    let is_flag = flag.len() > 2 && flag.as_bytes()[2].is_ascii_lowercase();
                    // A whole literal ("--model") is an argument of a child process, not a message.
                    let argument = line[..at].ends_with('"') && line[at + flag.len()..].starts_with('"');
                    assert!(
                        !is_flag || argument || allowed.contains(&flag.as_str()),
                        "crates/{krate} ({}) spells the flag {flag}: {line}",
                        module.join("::")
                    );
                }
            }
        }
    }
}
