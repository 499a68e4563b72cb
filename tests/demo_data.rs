//! The bundled demo results are what the committed generator makes, and the quickstart command
//! of the README runs on them.

use std::path::Path;

use mb_stats_analysis::results::parquet;
use mb_stats_analysis::synthetic::{self, DEMO_RNG_SEED, Study};

#[test]
fn bundled_demo_matches_its_generator() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo-results.parquet");
    let bundled = parquet::read(&path).unwrap();
    let generated = synthetic::classification(&Study::demo(), DEMO_RNG_SEED);
    assert_eq!(bundled.len(), generated.len());
    assert_eq!(bundled.group, generated.group);
    assert_eq!(bundled.seed, generated.seed);
    assert_eq!(bundled.label, generated.label);
    assert_eq!(bundled.prediction, generated.prediction);
    assert_eq!(bundled.cluster, generated.cluster);
}

#[test]
fn readme_quickstart_runs_on_the_demo() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mb-stats"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "bootstrap",
            "data/demo-results.parquet",
            "--base",
            "group=base",
            "--treatment",
            "group=cda",
            "--paired",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("cda - base") && text.contains("120 (20 clusters)"),
        "{text}"
    );
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(readme.contains("bootstrap data/demo-results.parquet --base group=base --treatment group=cda --paired"));
}
