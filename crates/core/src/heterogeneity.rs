//! Tests of "no pretraining-seed effect": do seeds differ more than their runs (or example
//! sampling) explain?
//!
//! - With several runs per seed, a permutation test: under no seed effect the runs of an arm are
//!   exchangeable across seeds, so shuffling which seed each run belongs to (keeping each seed's
//!   number of runs) gives the null distribution of the between-seed sum of squares (as the
//!   MultiBERTs paper's Appendix D does by shuffling).
//! - With one run per seed, a recentred bootstrap test: the examples-only replicates of every
//!   seed share their example draws, and their deviations from the seeds' estimates show how much
//!   the spread of seed estimates moves under example sampling alone.
//!
//! Both p-values are (1 + #{T* ≥ T}) / (1 + draws), never 0.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use super::resample::uniform_below;

/// A test statistic and its p-value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestResult {
    /// The observed statistic.
    pub statistic: f64,
    /// The p-value.
    pub p_value: f64,
}

/// Σ_s n_s (mean_s − grand mean)² of run values grouped by seed. Time: O(runs).
pub fn between_seed_ss(values: &[f64], seed_of_run: &[usize], n_seeds: usize) -> f64 {
    let (mut sum, mut count) = (vec![0.0; n_seeds], vec![0.0; n_seeds]);
    for (&v, &s) in values.iter().zip(seed_of_run) {
        sum[s] += v;
        count[s] += 1.0;
    }
    let grand = values.iter().sum::<f64>() / values.len() as f64;
    sum.iter()
        .zip(&count)
        .filter(|(_, c)| **c > 0.0)
        .map(|(s, c)| c * (s / c - grand).powi(2))
        .sum()
}

/// Permutation test of the between-seed sum of squares of `values` (one per run): `permutations`
/// shuffles of the run → seed labels (Fisher–Yates on a ChaCha8 stream seeded with `rng_seed`).
/// Time: O(permutations × runs).
pub fn permutation_test(values: &[f64], seed_of_run: &[usize], permutations: usize, rng_seed: u64) -> TestResult {
    let n_seeds = seed_of_run.iter().max().map_or(0, |&s| s + 1);
    let observed = between_seed_ss(values, seed_of_run, n_seeds);
    let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
    let mut labels = seed_of_run.to_vec();
    let tolerance = 1e-12 * observed.abs().max(1e-300);
    let mut at_least = 0usize;
    for _ in 0..permutations {
        if crate::interrupt::requested() {
            break;
        }
        for i in (1..labels.len()).rev() {
            labels.swap(i, uniform_below(&mut rng, i as u64 + 1) as usize);
        }
        // Ties within rounding count as at least as extreme.
        at_least += usize::from(between_seed_ss(values, &labels, n_seeds) >= observed - tolerance);
    }
    TestResult {
        statistic: observed,
        p_value: (1 + at_least) as f64 / (1 + permutations) as f64,
    }
}

/// Recentred bootstrap test of the spread Σ_s (θ_s − θ̄)² of seed `estimates`, given each seed's
/// examples-only `replicates` (replicate b of every seed uses the same example draw).
/// Time: O(seeds × replicates).
pub fn spread_test(estimates: &[f64], replicates: &[Vec<f64>]) -> TestResult {
    let spread = |v: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = v.collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>()
    };
    let observed = spread(&mut estimates.iter().copied());
    let nboot = replicates.first().map_or(0, Vec::len);
    let at_least = (0..nboot)
        .filter(|&b| spread(&mut replicates.iter().zip(estimates).map(|(r, e)| r[b] - e)) >= observed)
        .count();
    TestResult {
        statistic: observed,
        p_value: (1 + at_least) as f64 / (1 + nboot) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_seed_ss_by_hand() {
        // Seeds {1, 3} and {5}: means 2 and 5, grand 3: 2·1 + 1·4 = 6.
        assert!((between_seed_ss(&[1.0, 3.0, 5.0], &[0, 0, 1], 2) - 6.0).abs() < 1e-12);
    }

    #[test]
    fn permutation_test_on_separated_and_identical_seeds() {
        // Perfectly separated seeds: only the identity-like labellings are as extreme.
        let values = [0.0, 0.1, 0.05, 10.0, 10.1, 10.05, 20.0, 20.1, 20.05];
        let seeds = [0, 0, 0, 1, 1, 1, 2, 2, 2];
        let separated = permutation_test(&values, &seeds, 999, 1);
        assert!(separated.p_value < 0.01, "{separated:?}");
        // Identical seeds: every labelling ties, p = 1.
        let same = permutation_test(&[1.0; 6], &[0, 0, 1, 1, 2, 2], 99, 1);
        assert_eq!(same.p_value, 1.0);
    }

    #[test]
    fn spread_test_counts_recentred_replicates() {
        let estimates = [0.0, 1.0];
        // Replicate deviations of spread 0.5·(0.2)² … smaller than observed 0.5 except one.
        let replicates = vec![vec![0.1, -0.1, 0.0, 2.0], vec![1.0, 1.1, 1.0, 0.0]];
        let r = spread_test(&estimates, &replicates);
        assert_eq!(r.statistic, 0.5);
        // Deviations per b: (0.1, 0.0), (−0.1, 0.1), (0, 0), (2, −1): spreads 0.005, 0.02, 0, 4.5.
        assert_eq!(r.p_value, (1.0 + 1.0) / 5.0);
    }
}
