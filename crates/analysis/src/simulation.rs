//! Simulated studies with exact truths: how often the intervals cover and how often the tests
//! reject, per interval method. Used by the coverage harness (`cargo run --release --example
//! coverage`) and by the simulation tests.
//!
//! The model is the one the MultiBERTs analyses assume, on the logit scale: example e of run r of
//! pretraining seed s is correct with probability σ(m + u_s + v_e + w_se), with seed effects
//! u ~ N(0, σ_s²), example effects v ~ N(0, σ_e²) (optionally a cluster part shared by the
//! examples of a cluster), and seed × example interactions w ~ N(0, σ_w²); runs of a seed differ
//! by their Bernoulli draws. The estimand of a procedure is θ(m) = E σ(m + τZ), τ² = σ_s² + σ_e²
//! + σ_w², computed by quadrature ([`theta`]): the population value, not any sample's mean.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rayon::prelude::*;

use crate::synthetic::Normal;
use mb_stats_core::curve::simultaneous_band;
use mb_stats_core::design::{Design, Outcomes, Pairing, Seed, Side};
use mb_stats_core::engine::Engine;
use mb_stats_core::interval::{IntervalMethod, SeedLevel, Summarizer};
use mb_stats_core::metric::Metric;
use mb_stats_core::resample::{Resampler, Sampling};
use mb_stats_core::summary::Alternative;

/// Correlation of a seed's effects (and of its interactions) across the arms of a paired
/// comparison and across the steps of a learning curve.
const CORRELATION: f64 = 0.7;

/// Logit offsets of the steps of a simulated learning curve, added to the base logit.
const CURVE_STEPS: [f64; 4] = [-0.6, -0.2, 0.1, 0.3];

/// The shape of one simulated study.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Pretraining seeds per procedure.
    pub seeds: usize,
    /// Runs per seed.
    pub runs: usize,
    /// Examples.
    pub examples: usize,
    /// Examples per cluster and the share of the example variance that clusters carry.
    pub clusters: Option<(usize, f64)>,
    /// Standard deviation of seed effects (logit scale).
    pub seed_sd: f64,
    /// Standard deviation of example effects.
    pub example_sd: f64,
    /// Standard deviation of seed × example interactions.
    pub interaction_sd: f64,
    /// Logit of the base procedure.
    pub logit: f64,
}

/// What is estimated in each simulated data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Analysis {
    /// θ of one procedure.
    Single,
    /// δ of a paired comparison with a planted effect (probability scale; 0 = the null).
    Paired(f64),
    /// δ of an unpaired comparison.
    Unpaired(f64),
    /// δ of a procedure against a one-seed baseline (δ relative to that checkpoint).
    OneSeedBaseline(f64),
    /// A learning curve over 4 steps (the same seeds and examples at every step).
    Curve,
}

/// Coverage and rejection counts of one method over the simulated data sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    /// Data sets simulated.
    pub datasets: usize,
    /// Intervals (pointwise, for a curve: each step) that covered the truth.
    pub covered: usize,
    /// Intervals counted in `covered`.
    pub intervals: usize,
    /// Two-sided tests at α = 0.05 that rejected δ = 0 (comparisons).
    pub rejected: usize,
    /// Sum of interval widths (pointwise).
    pub width: f64,
    /// Curves whose simultaneous band covered every step.
    pub band_covered: usize,
    /// Sum over curves of the mean band width.
    pub band_width: f64,
}

impl Tally {
    /// Share of intervals covering the truth.
    pub fn coverage(&self) -> f64 {
        self.covered as f64 / self.intervals as f64
    }

    /// Share of data sets whose test rejected.
    pub fn rejection(&self) -> f64 {
        self.rejected as f64 / self.datasets as f64
    }

    /// Share of curves inside their simultaneous band.
    pub fn band_coverage(&self) -> f64 {
        self.band_covered as f64 / self.datasets as f64
    }

    /// Mean interval width.
    pub fn mean_width(&self) -> f64 {
        self.width / self.intervals as f64
    }

    /// Mean band width.
    pub fn mean_band_width(&self) -> f64 {
        self.band_width / self.datasets as f64
    }

    fn add(&mut self, other: &Tally) {
        self.datasets += other.datasets;
        self.covered += other.covered;
        self.intervals += other.intervals;
        self.rejected += other.rejected;
        self.width += other.width;
        self.band_covered += other.band_covered;
        self.band_width += other.band_width;
    }
}

/// The Monte-Carlo standard error of a share p over n trials.
pub fn standard_error(p: f64, n: usize) -> f64 {
    (p * (1.0 - p) / n as f64).sqrt()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// θ(m) = E σ(m + τZ) for standard normal Z, by composite Simpson's rule on [−12, 12]
/// (4,000 panels; error below 1e-12).
pub fn theta(logit: f64, tau: f64) -> f64 {
    let (a, b, n) = (-12.0f64, 12.0f64, 4000usize);
    let h = (b - a) / n as f64;
    let f = |z: f64| sigmoid(logit + tau * z) * (-0.5 * z * z).exp() / (std::f64::consts::TAU).sqrt();
    let inner: f64 = (1..n)
        .map(|i| f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 })
        .sum();
    (f(a) + f(b) + inner) * h / 3.0
}

/// The logit m with θ(m) = target, by bisection.
fn logit_for(target: f64, tau: f64) -> f64 {
    let (mut lo, mut hi) = (-30.0, 30.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if theta(mid, tau) < target { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

/// Uniform and normal variates from ChaCha8 (the synthetic data's Box–Muller).
struct Draws(Normal);

impl Draws {
    fn uniform(&mut self) -> f64 {
        self.0.uniform()
    }

    fn normal(&mut self, sd: f64) -> f64 {
        self.0.sample(sd)
    }

    fn normals(&mut self, n: usize, sd: f64) -> Vec<f64> {
        (0..n).map(|_| self.normal(sd)).collect()
    }

    /// `n` effects correlated `CORRELATION` with `with` (same marginal sd).
    fn correlated(&mut self, with: &[f64], sd: f64) -> Vec<f64> {
        let rest = (1.0 - CORRELATION * CORRELATION).sqrt();
        with.iter().map(|x| CORRELATION * x + rest * self.normal(sd)).collect()
    }
}

/// One procedure's seeds: effects per seed and per (seed, example) interaction.
struct Arm {
    logit: f64,
    seed_effects: Vec<f64>,
    interactions: Vec<Vec<f64>>,
}

impl Arm {
    fn draw(d: &mut Draws, scenario: &Scenario, logit: f64, seeds: usize) -> Self {
        Self {
            logit,
            seed_effects: d.normals(seeds, scenario.seed_sd),
            interactions: (0..seeds)
                .map(|_| d.normals(scenario.examples, scenario.interaction_sd))
                .collect(),
        }
    }

    /// The same seeds under another procedure or step: correlated effects.
    fn correlated(&self, d: &mut Draws, scenario: &Scenario, logit: f64) -> Self {
        Self {
            logit,
            seed_effects: d.correlated(&self.seed_effects, scenario.seed_sd),
            interactions: self
                .interactions
                .iter()
                .map(|w| d.correlated(w, scenario.interaction_sd))
                .collect(),
        }
    }

    fn side(&self, d: &mut Draws, runs: usize, example_effects: &[f64]) -> Side {
        let seeds = self
            .seed_effects
            .iter()
            .zip(&self.interactions)
            .enumerate()
            .map(|(s, (u, w))| Seed {
                id: s as i64,
                runs: (0..runs)
                    .map(|_| {
                        let prediction = example_effects
                            .iter()
                            .zip(w)
                            .map(|(v, w)| f64::from(d.uniform() < sigmoid(self.logit + u + v + w)))
                            .collect();
                        Outcomes {
                            label: Some(vec![1.0; example_effects.len()]),
                            prediction: Some(prediction),
                            score: None,
                        }
                    })
                    .collect(),
            })
            .collect();
        Side { seeds }
    }
}

impl Scenario {
    fn tau(&self) -> f64 {
        (self.seed_sd.powi(2) + self.example_sd.powi(2) + self.interaction_sd.powi(2)).sqrt()
    }

    fn example_effects(&self, d: &mut Draws) -> (Vec<f64>, Option<Vec<u32>>) {
        match self.clusters {
            None => (d.normals(self.examples, self.example_sd), None),
            Some((size, share)) => {
                let n_clusters = self.examples.div_ceil(size);
                let shared = d.normals(n_clusters, self.example_sd * share.sqrt());
                let own = (1.0 - share).sqrt() * self.example_sd;
                let effects = (0..self.examples).map(|e| shared[e / size] + d.normal(own)).collect();
                (effects, Some((0..self.examples).map(|e| (e / size) as u32).collect()))
            }
        }
    }

    /// Simulates `datasets` data sets of `analysis` and summarises each by every method in
    /// `methods` (the same replicates for all), at 95% and α = 0.05 two-sided. Data set k reads
    /// its own random stream of `rng_seed`, so results do not depend on the thread count.
    pub fn run(
        &self,
        analysis: Analysis,
        methods: &[IntervalMethod],
        datasets: usize,
        nboot: usize,
        rng_seed: u64,
    ) -> Vec<Tally> {
        let per_dataset: Vec<Vec<Tally>> = (0..datasets)
            .into_par_iter()
            .map(|k| {
                let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
                rng.set_stream(k as u64);
                self.one(&mut Draws(Normal(rng)), analysis, methods, nboot, k as u64)
            })
            .collect();
        let mut total = vec![Tally::default(); methods.len()];
        for tallies in &per_dataset {
            total.iter_mut().zip(tallies).for_each(|(t, one)| t.add(one));
        }
        total
    }

    /// One simulated data set `k` through `analysis`, tallied per method. (Long: draw the data,
    /// build the design, run the bootstrap, tally — one pass sharing the draws, kept in one
    /// place so the simulated study reads like the model in the module doc.)
    fn one(&self, d: &mut Draws, analysis: Analysis, methods: &[IntervalMethod], nboot: usize, k: u64) -> Vec<Tally> {
        let tau = self.tau();
        let (examples, clusters) = self.example_effects(d);
        let base = Arm::draw(d, self, self.logit, self.seeds);
        let summarizers = methods.iter().map(|&method| Summarizer {
            method,
            confidence: 0.95,
        });
        if analysis == Analysis::Curve {
            let steps: Vec<Arm> = CURVE_STEPS
                .iter()
                .map(|offset| base.correlated(d, self, self.logit + offset))
                .collect();
            let truths: Vec<f64> = CURVE_STEPS.iter().map(|o| theta(self.logit + o, tau)).collect();
            let sides: Vec<Side> = steps.iter().map(|a| a.side(d, self.runs, &examples)).collect();
            return summarizers
                .map(|s| curve_tally(&sides, &clusters, &truths, s, nboot, k))
                .collect();
        }
        let target = |effect: f64, baseline: f64| logit_for(baseline + effect, tau);
        let (design, truth) = match analysis {
            Analysis::Single => (
                Design::single(base.side(d, self.runs, &examples), clusters),
                theta(self.logit, tau),
            ),
            Analysis::Paired(effect) | Analysis::Unpaired(effect) => {
                let base_theta = theta(self.logit, tau);
                let logit = target(effect, base_theta);
                let (treatment, pairing) = match analysis {
                    Analysis::Paired(_) => (base.correlated(d, self, logit), Pairing::Paired),
                    _ => (Arm::draw(d, self, logit, self.seeds), Pairing::Unpaired),
                };
                let (b, t) = (
                    base.side(d, self.runs, &examples),
                    treatment.side(d, self.runs, &examples),
                );
                (Design::compare(b, t, pairing, clusters), effect)
            }
            Analysis::OneSeedBaseline(effect) => {
                // The baseline is one checkpoint: its truth is conditional on its seed effect.
                let checkpoint = Arm::draw(d, self, self.logit, 1);
                let within = (self.example_sd.powi(2) + self.interaction_sd.powi(2)).sqrt();
                let base_theta = theta(self.logit + checkpoint.seed_effects[0], within);
                let treatment = Arm::draw(d, self, target(effect, base_theta), self.seeds);
                let (b, t) = (
                    checkpoint.side(d, self.runs, &examples),
                    treatment.side(d, self.runs, &examples),
                );
                (Design::compare(b, t, Pairing::Unpaired, clusters), effect)
            }
            Analysis::Curve => unreachable!("handled above"),
        };
        let design = design.expect("a simulated design is valid");
        let engine = Engine::new(&design, Metric::Accuracy).expect("simulated outcomes are valid");
        let resampler = Resampler::new(&design, Sampling::Both, k);
        let point = engine.evaluate(&resampler.full());
        let reps = engine.bootstrap(&resampler, nboot);
        let seeds = engine.per_seed(&resampler);
        let (estimate, values, level) = match (&reps.treatment, point.treatment) {
            (Some(t), Some(tp)) => (
                tp - point.base,
                t.iter().zip(&reps.base).map(|(t, b)| t - b).collect::<Vec<f64>>(),
                SeedLevel::delta(Sampling::Both, design.pairing(), &seeds, design.n_units()),
            ),
            _ => (
                point.base,
                reps.base.clone(),
                SeedLevel::side(
                    Sampling::Both,
                    &seeds.base,
                    seeds.interaction.and_then(|i| i.base),
                    design.n_units(),
                ),
            ),
        };
        summarizers
            .map(|s| {
                let interval = s.interval(estimate, &values, &level);
                let rejected =
                    analysis != Analysis::Single && s.p_value(estimate, &values, &level, Alternative::TwoSided) <= 0.05;
                Tally {
                    datasets: 1,
                    covered: usize::from(interval.low <= truth && truth <= interval.high),
                    intervals: 1,
                    rejected: usize::from(rejected),
                    width: interval.high - interval.low,
                    ..Tally::default()
                }
            })
            .collect()
    }
}

/// One simulated curve: pointwise intervals and the simultaneous band of one method.
fn curve_tally(
    sides: &[Side],
    clusters: &Option<Vec<u32>>,
    truths: &[f64],
    summarizer: Summarizer,
    nboot: usize,
    k: u64,
) -> Tally {
    let mut tally = Tally {
        datasets: 1,
        ..Tally::default()
    };
    let (mut estimates, mut replicates, mut levels) = (Vec::new(), Vec::new(), Vec::new());
    for (side, truth) in sides.iter().zip(truths) {
        let design = Design::single(side.clone(), clusters.clone()).expect("a simulated design is valid");
        let engine = Engine::new(&design, Metric::Accuracy).expect("simulated outcomes are valid");
        // The same RNG seed at every step: the same seeds and examples are drawn (paired).
        let resampler = Resampler::new(&design, Sampling::Both, k);
        let point = engine.evaluate(&resampler.full()).base;
        let reps = engine.bootstrap(&resampler, nboot).base;
        let seeds = engine.per_seed(&resampler);
        let level = SeedLevel::side(
            Sampling::Both,
            &seeds.base,
            seeds.interaction.and_then(|i| i.base),
            design.n_units(),
        );
        let interval = summarizer.interval(point, &reps, &level);
        tally.covered += usize::from(interval.low <= *truth && *truth <= interval.high);
        tally.intervals += 1;
        tally.width += interval.high - interval.low;
        estimates.push(point);
        replicates.push(reps);
        levels.push(level);
    }
    let (_, band) = simultaneous_band(&estimates, &replicates, 0.95, summarizer.method, &levels);
    tally.band_covered = usize::from(band.iter().zip(truths).all(|((lo, hi), t)| lo <= t && t <= hi));
    tally.band_width = band.iter().map(|(lo, hi)| hi - lo).sum::<f64>() / band.len() as f64;
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn theta_matches_its_closed_forms() {
        // τ = 0: the sigmoid itself; m = 0: 1/2 by symmetry for any τ.
        assert!((theta(0.7, 0.0) - sigmoid(0.7)).abs() < 1e-12);
        assert!((theta(0.0, 2.0) - 0.5).abs() < 1e-12);
        // Against a plain Monte-Carlo mean of 10^6 draws (standard error ≈ 2.5e-4).
        let mut d = Draws(Normal(ChaCha8Rng::seed_from_u64(1)));
        let mc = (0..1_000_000).map(|_| sigmoid(0.5 + 1.6 * d.normal(1.0))).sum::<f64>() / 1e6;
        assert!((theta(0.5, 1.6) - mc).abs() < 1.5e-3, "{} vs {mc}", theta(0.5, 1.6));
        assert!((theta(logit_for(0.62, 1.6), 1.6) - 0.62).abs() < 1e-12);
    }
}
