//! Intervals and tests with few seeds (seeded simulations with exact truths; release mode, well
//! under a minute). The full grid is `cargo run --release --example coverage` (docs/coverage.md).
//!
//! With 5 seeds where seeds matter (seed sd 0.8 on the logit scale), the paper's percentile
//! interval covers about 83%: these tests fail if the default method fell back to it.

use mb_stats::simulation::{Analysis, Scenario, standard_error};
use mb_stats::stats::interval::IntervalMethod;

const DATASETS: usize = 300;
const NBOOT: usize = 400;

fn five_seeds(seed_sd: f64) -> Scenario {
    Scenario {
        seeds: 5,
        runs: 3,
        examples: 500,
        clusters: None,
        seed_sd,
        example_sd: 1.5,
        interaction_sd: 0.5,
        logit: 0.5,
    }
}

/// Three Monte-Carlo standard errors around `target`.
fn within(rate: f64, target: f64) -> bool {
    (rate - target).abs() <= 3.0 * standard_error(target, DATASETS)
}

#[test]
fn the_default_interval_covers_at_five_seeds_and_the_percentile_does_not() {
    let methods = [IntervalMethod::default(), IntervalMethod::Percentile];
    let tallies = five_seeds(0.8).run(Analysis::Single, &methods, DATASETS, NBOOT, 7);
    let (default, percentile) = (tallies[0].coverage(), tallies[1].coverage());
    eprintln!("5 seeds, seed sd 0.8: coverage default {default:.3}, percentile {percentile:.3}");
    assert!(within(default, 0.95), "default coverage {default}");
    assert!(percentile < 0.90, "percentile coverage {percentile}");
}

#[test]
fn the_default_test_holds_its_level_at_five_paired_seeds() {
    let methods = [IntervalMethod::default(), IntervalMethod::Percentile];
    let tallies = five_seeds(0.8).run(Analysis::Paired(0.0), &methods, DATASETS, NBOOT, 8);
    let (default, percentile) = (tallies[0].rejection(), tallies[1].rejection());
    eprintln!("5 paired seeds at δ = 0: rejection default {default:.3}, percentile {percentile:.3}");
    assert!(default <= 0.05 + 3.0 * standard_error(0.05, DATASETS), "default level {default}");
    assert!(percentile > default, "percentile {percentile}, default {default}");
}

#[test]
fn the_default_band_covers_a_five_seed_learning_curve() {
    let tallies = five_seeds(0.8).run(Analysis::Curve, &[IntervalMethod::default()], DATASETS, NBOOT, 9);
    let (pointwise, band) = (tallies[0].coverage(), tallies[0].band_coverage());
    eprintln!("5-seed curve: pointwise {pointwise:.3}, simultaneous band {band:.3}");
    assert!(within(band, 0.95), "band coverage {band}");
    assert!(pointwise >= 0.93, "pointwise coverage {pointwise}");
}

#[test]
fn with_many_seeds_the_default_is_no_wider_than_needed() {
    let scenario = Scenario {
        seeds: 25,
        seed_sd: 0.3,
        ..five_seeds(0.3)
    };
    let methods = [IntervalMethod::default(), IntervalMethod::Percentile];
    let tallies = scenario.run(Analysis::Single, &methods, 150, NBOOT, 10);
    let ratio = tallies[0].mean_width() / tallies[1].mean_width();
    eprintln!("25 seeds: width calibrated / percentile = {ratio:.3}");
    assert!(ratio < 1.06, "width ratio {ratio}");
}
