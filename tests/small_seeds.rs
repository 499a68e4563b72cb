//! Intervals and tests with few seeds (seeded simulations with exact truths; release mode, well
//! under a minute). The full grid is `cargo run --release --example coverage` (docs/coverage.md).
//!
//! With 5 seeds where seeds matter (seed sd 0.8 on the logit scale), the paper's percentile
//! interval covers about 83%: these tests fail if the default method fell back to it.

use mb_stats_analysis::simulation::{Analysis, Scenario, standard_error};
use mb_stats_core::interval::IntervalMethod;

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
    assert!(
        default <= 0.05 + 3.0 * standard_error(0.05, DATASETS),
        "default level {default}"
    );
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

/// The seed component of `mb-stats variance` at 5 seeds: Satterthwaite's interval covers the
/// planted value (normal crossed model, seed variance 0.5, 3 runs, 200 examples).
#[test]
fn the_seed_variance_interval_covers_at_five_seeds() {
    use mb_stats_core::variance::seed_level_intervals;
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;
    use rand_distr::{Distribution, Normal};
    let (seeds, runs, examples, sets, seed_var) = (5, 3, 200, 400, 0.5f64);
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut normal = |sd: f64| Normal::new(0.0, sd).unwrap().sample(&mut rng);
    let mut covered = 0;
    for _ in 0..sets {
        let b: Vec<f64> = (0..examples).map(|_| normal(1.0)).collect();
        let y: Vec<Vec<Vec<f64>>> = (0..seeds)
            .map(|_| {
                let a = normal(seed_var.sqrt());
                let w: Vec<f64> = (0..examples).map(|_| normal(0.5)).collect();
                (0..runs)
                    .map(|_| {
                        let r = normal(0.3);
                        (0..examples).map(|e| a + r + b[e] + w[e] + normal(1.0)).collect()
                    })
                    .collect()
            })
            .collect();
        let (lo, hi) = seed_level_intervals(&y, 0.95)[0].unwrap_or((f64::NAN, f64::NAN));
        covered += usize::from(lo <= seed_var && seed_var <= hi);
    }
    let rate = covered as f64 / sets as f64;
    eprintln!("5 seeds: Satterthwaite interval of the seed variance covers {rate:.3}");
    assert!(within(rate, 0.95) || rate > 0.95, "coverage {rate}");
}

/// The joint (pigeonhole) bootstrap counts the seed × example interaction about three times;
/// the calibrated variance counts it once. Pure noise, where the truth is exact: a paired δ of
/// two arms whose every outcome is an independent Bernoulli(p) has Var δ̂ = 2p(1−p)/(S·N).
#[test]
fn the_calibrated_variance_counts_the_interaction_once() {
    use mb_stats_core::design::{Design, Outcomes, Pairing, Seed, Side};
    use mb_stats_core::engine::Engine;
    use mb_stats_core::interval::SeedLevel;
    use mb_stats_core::metric::Metric;
    use mb_stats_core::resample::{Resampler, Sampling};
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{Rng, SeedableRng};
    let (seeds, examples, sets, p) = (25usize, 100usize, 200usize, 0.6);
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut side = || Side {
        seeds: (0..seeds)
            .map(|s| Seed {
                id: s as i64,
                runs: vec![Outcomes {
                    label: Some(vec![1.0; examples]),
                    prediction: Some(
                        (0..examples)
                            .map(|_| f64::from(((rng.next_u64() >> 11) as f64) < p * (1u64 << 53) as f64))
                            .collect(),
                    ),
                    score: None,
                }],
            })
            .collect(),
    };
    let (mut boot, mut corrected) = (0.0, 0.0);
    for k in 0..sets {
        let design = Design::compare(side(), side(), Pairing::Paired, None).unwrap();
        let engine = Engine::new(&design, Metric::Accuracy).unwrap();
        let resampler = Resampler::new(&design, Sampling::Both, k as u64);
        let reps = engine.bootstrap(&resampler, 400);
        let deltas: Vec<f64> = reps
            .treatment
            .unwrap()
            .iter()
            .zip(&reps.base)
            .map(|(t, b)| t - b)
            .collect();
        let mean = deltas.iter().sum::<f64>() / deltas.len() as f64;
        let variance = deltas.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (deltas.len() - 1) as f64;
        let level = SeedLevel::delta(
            Sampling::Both,
            Pairing::Paired,
            &engine.per_seed(&resampler),
            design.n_units(),
        );
        boot += variance / sets as f64;
        corrected += level.corrected(variance).0 / sets as f64;
    }
    let truth = 2.0 * p * (1.0 - p) / (seeds * examples) as f64;
    eprintln!("Var δ̂ {truth:.3e}: bootstrap {boot:.3e}, calibrated {corrected:.3e}");
    assert!(boot > 2.5 * truth, "bootstrap {boot} vs {truth}");
    assert!(
        (corrected / truth - 1.0).abs() < 0.2,
        "calibrated {corrected} vs {truth}"
    );
}
