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
