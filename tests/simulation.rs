//! Simulation with known truth (run in release mode; about a few seconds).
//!
//! Data: a crossed random-effects model y[s, r, e] = θ + a[s] + b[e] + ε with seed effects a,
//! example effects b and run noise ε; the estimand is θ. Joint (seeds × examples) intervals must
//! cover θ 93–97% of the time; seeds-only and examples-only intervals must under-cover because
//! each ignores one source of variance. The bootstrap test of a comparison must hold its level
//! under H0 and detect a planted effect.

use mb_stats_core::design::{Design, Outcomes, Pairing, Seed, Side};
use mb_stats_core::engine::Engine;
use mb_stats_core::metric::Metric;
use mb_stats_core::resample::{Resampler, Sampling};
use mb_stats_core::summary::{Alternative, Interval, p_value};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

const THETA: f64 = 0.5;
const SEEDS: usize = 25;
const RUNS: usize = 2;
const EXAMPLES: usize = 50;
const DATASETS: usize = 2000;
const NBOOT: usize = 1000;

struct Model {
    seed_sd: f64,
    example_sd: f64,
    noise_sd: f64,
}

// σ_a² / S = σ_b² / N: seeds and examples contribute equally to the estimator's variance.
const MODEL: Model = Model {
    seed_sd: 1.0,
    example_sd: std::f64::consts::SQRT_2,
    noise_sd: 1.0,
};

fn side(rng: &mut ChaCha8Rng, seed_effects: &[f64], example_effects: &[f64], shift: f64) -> Side {
    let noise = Normal::new(0.0, MODEL.noise_sd).unwrap();
    let seeds = seed_effects
        .iter()
        .enumerate()
        .map(|(s, a)| Seed {
            id: s as i64,
            runs: (0..RUNS)
                .map(|_| Outcomes {
                    score: Some(
                        example_effects
                            .iter()
                            .map(|b| THETA + shift + a + b + noise.sample(rng))
                            .collect(),
                    ),
                    ..Outcomes::default()
                })
                .collect(),
        })
        .collect();
    Side { seeds }
}

fn effects(rng: &mut ChaCha8Rng, n: usize, sd: f64) -> Vec<f64> {
    let d = Normal::new(0.0, sd).unwrap();
    (0..n).map(|_| d.sample(rng)).collect()
}

#[test]
fn joint_intervals_cover_theta_and_single_source_intervals_do_not() {
    let mut rng = ChaCha8Rng::seed_from_u64(2022);
    let modes = [Sampling::Both, Sampling::Seeds, Sampling::Examples];
    let mut covered = [0usize; 3];
    for dataset in 0..DATASETS {
        let a = effects(&mut rng, SEEDS, MODEL.seed_sd);
        let b = effects(&mut rng, EXAMPLES, MODEL.example_sd);
        let design = Design::single(side(&mut rng, &a, &b, 0.0), None).unwrap();
        let engine = Engine::new(&design, Metric::Mean).unwrap();
        for (k, &sampling) in modes.iter().enumerate() {
            let resampler = Resampler::new(&design, sampling, dataset as u64);
            let point = engine.evaluate(&resampler.full()).base;
            let reps = engine.bootstrap(&resampler, NBOOT);
            let ci = Interval::new(point, &reps.base, 0.95);
            covered[k] += usize::from(ci.low <= THETA && THETA <= ci.high);
        }
    }
    let rate = covered.map(|c| c as f64 / DATASETS as f64);
    eprintln!(
        "coverage of 95% intervals over {DATASETS} data sets: both {:.3}, seeds {:.3}, examples {:.3}",
        rate[0], rate[1], rate[2]
    );
    assert!((0.93..=0.97).contains(&rate[0]), "joint coverage {}", rate[0]);
    assert!(rate[1] < 0.90, "seeds-only coverage {}", rate[1]);
    assert!(rate[2] < 0.90, "examples-only coverage {}", rate[2]);
}

#[test]
fn paired_test_holds_its_level_and_detects_a_planted_effect() {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let arm = Normal::new(0.0, 0.3).unwrap();
    let mut rejections = [0usize; 2];
    let effect_sizes = [0.0, 0.5];
    for dataset in 0..DATASETS / 2 {
        for (k, &delta) in effect_sizes.iter().enumerate() {
            // Both arms share the pretraining seeds' effects and the examples, plus an
            // arm-specific deviation per seed: a paired design.
            let a = effects(&mut rng, SEEDS, MODEL.seed_sd);
            let b = effects(&mut rng, EXAMPLES, MODEL.example_sd);
            let a_t: Vec<f64> = a.iter().map(|x| x + arm.sample(&mut rng)).collect();
            let a_b: Vec<f64> = a.iter().map(|x| x + arm.sample(&mut rng)).collect();
            let base = side(&mut rng, &a_b, &b, 0.0);
            let treatment = side(&mut rng, &a_t, &b, delta);
            let design = Design::compare(base, treatment, Pairing::Paired, None).unwrap();
            let engine = Engine::new(&design, Metric::Mean).unwrap();
            let reps = engine.bootstrap(&Resampler::new(&design, Sampling::Both, dataset as u64), NBOOT);
            let deltas: Vec<f64> = reps
                .treatment
                .unwrap()
                .iter()
                .zip(&reps.base)
                .map(|(t, b)| t - b)
                .collect();
            rejections[k] += usize::from(p_value(&deltas, Alternative::Greater) <= 0.05);
        }
    }
    let rate = rejections.map(|r| r as f64 / (DATASETS / 2) as f64);
    eprintln!(
        "paired test at alpha 0.05: rejection rate {:.3} under H0, {:.3} at delta 0.5",
        rate[0], rate[1]
    );
    assert!((0.02..=0.08).contains(&rate[0]), "false-positive rate {}", rate[0]);
    assert!(rate[1] > 0.9, "power {}", rate[1]);
}

/// The no-seed-effect tests hold their level (within 2 points of α = 0.05 over 1000 data sets)
/// and detect a planted seed effect.
#[test]
fn heterogeneity_tests_hold_their_level_and_detect_seed_effects() {
    use mb_stats_core::heterogeneity::{permutation_test, spread_test};
    let sets = 1000;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let noise = Normal::new(0.0, 1.0).unwrap();
    // Several runs per seed: 10 seeds × 3 runs, run values with or without seed effects.
    let mut rejections = [0usize; 2];
    for set in 0..sets {
        for (k, seed_sd) in [0.0f64, 1.5].into_iter().enumerate() {
            let seed_effects = effects(&mut rng, 10, 1.0);
            let (mut values, mut seed_of_run) = (Vec::new(), Vec::new());
            for (s, a) in seed_effects.iter().enumerate() {
                for _ in 0..3 {
                    values.push(seed_sd * a + noise.sample(&mut rng));
                    seed_of_run.push(s);
                }
            }
            rejections[k] += usize::from(permutation_test(&values, &seed_of_run, 499, set as u64).p_value <= 0.05);
        }
    }
    let permutation = rejections.map(|r| r as f64 / sets as f64);
    // One run per seed: 10 seeds × 100 examples with example difficulty shared by all seeds.
    let mut rejections = [0usize; 2];
    for set in 0..sets {
        for (k, seed_sd) in [0.0f64, 0.3].into_iter().enumerate() {
            let difficulty = effects(&mut rng, 100, 1.0);
            let seed_effects = effects(&mut rng, 10, 1.0);
            let (mut estimates, mut replicates) = (Vec::new(), Vec::new());
            for a in seed_effects {
                let score: Vec<f64> = difficulty
                    .iter()
                    .map(|b| b + seed_sd * a + noise.sample(&mut rng))
                    .collect();
                let side = Side {
                    seeds: vec![Seed {
                        id: 0,
                        runs: vec![Outcomes {
                            score: Some(score),
                            ..Outcomes::default()
                        }],
                    }],
                };
                let design = Design::single(side, None).unwrap();
                let engine = Engine::new(&design, Metric::Mean).unwrap();
                let resampler = Resampler::new(&design, Sampling::Examples, set as u64);
                estimates.push(engine.evaluate(&resampler.full()).base);
                replicates.push(engine.bootstrap(&resampler, 499).base);
            }
            rejections[k] += usize::from(spread_test(&estimates, &replicates).p_value <= 0.05);
        }
    }
    let spread = rejections.map(|r| r as f64 / sets as f64);
    eprintln!(
        "no-seed-effect tests at alpha 0.05 over {sets} sets: permutation level {:.3}, power {:.3}; spread level {:.3}, power {:.3}",
        permutation[0], permutation[1], spread[0], spread[1]
    );
    assert!(
        (0.03..=0.07).contains(&permutation[0]),
        "permutation level {}",
        permutation[0]
    );
    assert!(permutation[1] > 0.8, "permutation power {}", permutation[1]);
    assert!((0.03..=0.07).contains(&spread[0]), "spread level {}", spread[0]);
    assert!(spread[1] > 0.8, "spread power {}", spread[1]);
}

/// Simultaneous max-|t| bands over a learning curve cover the whole true curve at their nominal
/// rate (95% ± 3 points over 1000 simulated curves).
#[test]
fn simultaneous_bands_cover_the_whole_true_curve() {
    use mb_stats_core::curve::simultaneous_band;
    use mb_stats_core::interval::{IntervalMethod, SeedLevel};
    let (sets, steps, seeds, examples) = (1000, 5, 40, 60);
    let truth: Vec<f64> = (0..steps).map(|k| 0.5 + 0.1 * k as f64).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let noise = Normal::new(0.0, 1.0).unwrap();
    let mut covered = 0;
    for set in 0..sets {
        let a = effects(&mut rng, seeds, 1.0);
        let b = effects(&mut rng, examples, 1.0);
        let (mut estimates, mut replicates) = (Vec::new(), Vec::new());
        for &mu in &truth {
            // Seed and example effects persist across steps, plus step-specific deviations.
            let step_seed = effects(&mut rng, seeds, 0.5);
            let step_example = effects(&mut rng, examples, 0.5);
            let side = Side {
                seeds: (0..seeds)
                    .map(|s| Seed {
                        id: s as i64,
                        runs: vec![Outcomes {
                            score: Some(
                                (0..examples)
                                    .map(|e| mu + a[s] + step_seed[s] + b[e] + step_example[e] + noise.sample(&mut rng))
                                    .collect(),
                            ),
                            ..Outcomes::default()
                        }],
                    })
                    .collect(),
            };
            let design = Design::single(side, None).unwrap();
            let engine = Engine::new(&design, Metric::Mean).unwrap();
            let resampler = Resampler::new(&design, Sampling::Both, set as u64);
            estimates.push(engine.evaluate(&resampler.full()).base);
            replicates.push(engine.bootstrap(&resampler, 1000).base);
        }
        let levels = vec![SeedLevel::default(); steps];
        let (_, band) = simultaneous_band(&estimates, &replicates, 0.95, IntervalMethod::Percentile, &levels);
        covered += usize::from(truth.iter().zip(&band).all(|(t, (lo, hi))| lo <= t && t <= hi));
    }
    let rate = covered as f64 / sets as f64;
    eprintln!("simultaneous 95% bands over {steps} steps cover the whole true curve in {rate:.3} of {sets} sets");
    assert!((0.92..=0.98).contains(&rate), "coverage {rate}");
}
