//! `mb-stats power`: power grows with the effect and the study size, holds about α at no
//! effect, and the command checks its input.

mod support;

use support::{assert_refused, mb_stats};

fn power(effect: &str) -> Vec<f64> {
    let dir = tempfile::TempDir::new().unwrap();
    let out = dir.path().join("p.csv");
    let o = mb_stats(&[
        "power",
        "data/demo-results.parquet",
        "--base",
        "group=base",
        "--treatment",
        "group=cda",
        "--paired",
        "--effect",
        effect,
        "--seeds",
        "2,10",
        "--examples",
        "20",
        "--simulations",
        "200",
        "--nboot",
        "200",
        "-o",
        out.to_str().unwrap(),
        "--plot",
        dir.path().join("p").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.path().join("p.svg").is_file() && dir.path().join("p.png").is_file());
    let mut reader = csv::Reader::from_path(out).unwrap();
    reader.records().map(|r| r.unwrap()[3].parse().unwrap()).collect()
}

#[test]
fn power_grows_with_effect_and_seeds_and_holds_the_level_at_no_effect() {
    let none = power("0");
    assert!(
        none.iter().all(|&p| p <= 0.12),
        "rejections at no effect should be near alpha: {none:?}"
    );
    let large = power("0.15");
    assert!(large[1] >= 0.9, "a 15-point effect is found with 10 seeds: {large:?}");
    assert!(large[1] >= large[0], "more seeds, more power: {large:?}");
}

#[test]
fn power_needs_a_comparison() {
    let o = mb_stats(&["power", "data/demo-results.parquet", "--effect", "0.01"]);
    assert_refused(&o, &["needs a comparison"]);
}
