//! Simulated studies with exact truths: how often the intervals cover and how often the tests
//! reject, per interval method and metric. Used by the coverage harness (`cargo run --release
//! --example coverage`) and by the simulation tests.
//!
//! The model is the one the MultiBERTs analyses assume, on the logit scale: example e of run r of
//! pretraining seed s is correct with probability σ(m + u_s + v_e + w_se), with seed effects
//! u ~ N(0, σ_s²), example effects v ~ N(0, σ_e²) (optionally a cluster part shared by the
//! examples of a cluster), and seed × example interactions w ~ N(0, σ_w²); runs of a seed differ
//! by their own draws. Each example has a gold label (positive with probability
//! [`POSITIVE_SHARE`]); a correct prediction is the label, a wrong one the other class, and the
//! positive-class score is σ(±margin) with the margin m + u + v + w − logit(U) whose sign is the
//! correctness draw, so accuracy, precision, recall, F1, macro-F1, MCC and AUC all come from the
//! same runs. For Pearson and Spearman the label is a standard normal target x_e and the
//! prediction exp(m + u_s)·x_e + v_e + w_se + N(0, 1); for `mean` the score is
//! m + u_s + v_e + w_se + N(0, 1).
//!
//! The estimand of a procedure is θ = E_u M(m + u), M(c) the metric of one seed on the whole
//! example population (runs' noise integrated out): exact functions of the accuracy
//! a(c) = E σ(c + τ_w Z) (τ_w² = σ_e² + σ_w²) for the confusion-count metrics, the closed forms
//! ρ = e^c / √(e^{2c} + σ_e² + σ_w² + 1) and (6/π)·asin(ρ/2) of the bivariate normal for Pearson
//! and Spearman, and a double integral for AUC; the outer expectation by quadrature
//! ([`Scenario::truth`]). These are population values, not any sample's mean.

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

/// Share of positive labels in the simulated classification population.
pub const POSITIVE_SHARE: f64 = 0.4;

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
    /// The metric every data set is summarised by.
    pub metric: Metric,
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
    /// Intervals given (counted in `covered`; an `n/a` interval is not).
    pub intervals: usize,
    /// Intervals that were `n/a` (replicates without variation).
    pub undefined: usize,
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
    /// Share of the intervals given that cover the truth.
    pub fn coverage(&self) -> f64 {
        self.covered as f64 / self.intervals as f64
    }

    /// Share of intervals that were `n/a`.
    pub fn undefined_share(&self) -> f64 {
        self.undefined as f64 / (self.intervals + self.undefined) as f64
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

    /// Counts one interval against `truth`.
    fn count(&mut self, low: f64, high: f64, truth: f64) {
        if low.is_nan() || high.is_nan() {
            self.undefined += 1;
            return;
        }
        self.covered += usize::from(low <= truth && truth <= high);
        self.intervals += 1;
        self.width += high - low;
    }

    fn add(&mut self, other: &Tally) {
        self.datasets += other.datasets;
        self.covered += other.covered;
        self.intervals += other.intervals;
        self.undefined += other.undefined;
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

/// ∫ f over [a, b] by composite Simpson's rule with `n` (even) panels.
fn simpson(a: f64, b: f64, n: usize, f: impl Fn(f64) -> f64) -> f64 {
    let h = (b - a) / n as f64;
    let inner: f64 = (1..n)
        .map(|i| f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 })
        .sum();
    (f(a) + f(b) + inner) * h / 3.0
}

/// E g(Z) for standard normal Z, by Simpson's rule on [−12, 12] with `n` panels.
fn normal_expectation(n: usize, g: impl Fn(f64) -> f64) -> f64 {
    let density = |z: f64| (-0.5 * z * z).exp() / std::f64::consts::TAU.sqrt();
    simpson(-12.0, 12.0, n, |z| g(z) * density(z))
}

/// θ(m) = E σ(m + τZ) for standard normal Z, by composite Simpson's rule on [−12, 12]
/// (4,000 panels; error below 1e-12).
pub fn theta(logit: f64, tau: f64) -> f64 {
    normal_expectation(4000, |z| sigmoid(logit + tau * z))
}

/// P(L + L′ > t) for independent standard logistic L, L′: ∫ f_L(l) σ(l − t) dl.
fn logistic_sum_above(t: f64) -> f64 {
    let density = |l: f64| sigmoid(l) * (1.0 - sigmoid(l));
    simpson(-40.0, 40.0, 800, |l| density(l) * sigmoid(l - t))
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

/// The examples of one data set: effects, gold labels (or targets) and clusters.
struct Population {
    effects: Vec<f64>,
    labels: Vec<f64>,
    clusters: Option<Vec<u32>>,
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

    fn side(&self, d: &mut Draws, runs: usize, population: &Population, metric: Metric) -> Side {
        let seeds = self
            .seed_effects
            .iter()
            .zip(&self.interactions)
            .enumerate()
            .map(|(s, (u, w))| Seed {
                id: s as i64,
                runs: (0..runs)
                    .map(|_| self.run(d, u + self.logit, w, population, metric))
                    .collect(),
            })
            .collect();
        Side { seeds }
    }

    /// One run of a seed whose logit (m + u) is `seed_logit`, with interactions `w`.
    fn run(&self, d: &mut Draws, seed_logit: f64, w: &[f64], population: &Population, metric: Metric) -> Outcomes {
        let examples = population.effects.iter().zip(w).zip(&population.labels);
        match metric {
            Metric::Pearson | Metric::Spearman => Outcomes {
                label: Some(population.labels.clone()),
                prediction: Some(
                    examples
                        .map(|((v, w), x)| seed_logit.exp() * x + v + w + d.normal(1.0))
                        .collect(),
                ),
                score: None,
            },
            Metric::Mean => Outcomes {
                label: None,
                prediction: None,
                score: Some(examples.map(|((v, w), _)| seed_logit + v + w + d.normal(1.0)).collect()),
            },
            _ => {
                let (mut prediction, mut score) = (Vec::new(), Vec::new());
                for ((v, w), &y) in examples {
                    // Correct exactly when U < σ(ℓ): the margin ℓ − logit(U) is then positive.
                    let (l, u) = (seed_logit + v + w, d.uniform());
                    let margin = l - (u / (1.0 - u)).ln();
                    prediction.push(if margin > 0.0 { y } else { 1.0 - y });
                    score.push(sigmoid(if y == 1.0 { margin } else { -margin }));
                }
                Outcomes {
                    label: Some(population.labels.clone()),
                    prediction: Some(prediction),
                    score: Some(score),
                }
            }
        }
    }
}

impl Scenario {
    /// The sd of what a seed's examples add to its logit: example effect and interaction.
    fn within(&self) -> f64 {
        (self.example_sd.powi(2) + self.interaction_sd.powi(2)).sqrt()
    }

    fn population(&self, d: &mut Draws) -> Population {
        let labels = match self.metric {
            Metric::Pearson | Metric::Spearman => d.normals(self.examples, 1.0),
            _ => (0..self.examples)
                .map(|_| f64::from(d.uniform() < POSITIVE_SHARE))
                .collect(),
        };
        let (effects, clusters) = match self.clusters {
            None => (d.normals(self.examples, self.example_sd), None),
            Some((size, share)) => {
                let n_clusters = self.examples.div_ceil(size);
                let shared = d.normals(n_clusters, self.example_sd * share.sqrt());
                let own = (1.0 - share).sqrt() * self.example_sd;
                let effects = (0..self.examples).map(|e| shared[e / size] + d.normal(own)).collect();
                (effects, Some((0..self.examples).map(|e| (e / size) as u32).collect()))
            }
        };
        Population {
            effects,
            labels,
            clusters,
        }
    }

    /// M(c): the metric of one seed with logit c = m + u on the whole example population, its
    /// runs' noise integrated out (see the module doc).
    pub fn seed_truth(&self, seed_logit: f64) -> f64 {
        let within = self.within();
        let pi = POSITIVE_SHARE;
        let accuracy = || theta(seed_logit, within);
        // Population confusion shares: labels are independent of correctness.
        let confusion = || {
            let a = accuracy();
            (pi * a, (1.0 - pi) * (1.0 - a), pi * (1.0 - a), (1.0 - pi) * a)
        };
        let f1 = |tp: f64, fp: f64, fn_: f64| 2.0 * tp / (2.0 * tp + fp + fn_);
        match self.metric {
            Metric::Accuracy | Metric::Recall => accuracy(),
            Metric::Mean => seed_logit,
            Metric::Precision => {
                let (tp, fp, _, _) = confusion();
                tp / (tp + fp)
            }
            Metric::F1 => {
                let (tp, fp, fn_, _) = confusion();
                f1(tp, fp, fn_)
            }
            Metric::MacroF1 => {
                let (tp, fp, fn_, tn) = confusion();
                0.5 * (f1(tp, fp, fn_) + f1(tn, fn_, fp))
            }
            Metric::Mcc => {
                let (tp, fp, fn_, tn) = confusion();
                (tp * tn - fp * fn_) / ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt()
            }
            Metric::Pearson | Metric::Spearman => {
                let a = seed_logit.exp();
                let rho = a / (a * a + within * within + 1.0).sqrt();
                match self.metric {
                    Metric::Pearson => rho,
                    _ => 6.0 / std::f64::consts::PI * (rho / 2.0).asin(),
                }
            }
            // A positive and a negative example are ranked right when their margins sum above
            // 0: 2c + √2·τ_w·Z + L + L′ > 0.
            Metric::Auc => normal_expectation(400, |z| {
                logistic_sum_above(-2.0 * seed_logit - std::f64::consts::SQRT_2 * within * z)
            }),
        }
    }

    /// θ(m) = E_u M(m + u), u ~ N(0, σ_s²): the procedure's estimand.
    pub fn truth(&self, logit: f64) -> f64 {
        match (self.seed_sd > 0.0, self.metric) {
            (false, _) => self.seed_truth(logit),
            // Closed form: every seed's population accuracy averaged over seeds.
            (true, Metric::Accuracy | Metric::Recall) => {
                theta(logit, (self.seed_sd.powi(2) + self.within().powi(2)).sqrt())
            }
            (true, Metric::Mean) => logit,
            (true, _) => normal_expectation(200, |z| self.seed_truth(logit + self.seed_sd * z)),
        }
    }

    /// The logit m whose truth is `target`, by bisection (every simulated metric increases in
    /// m). Cheap for accuracy and `mean`; a quadrature per step for the others.
    fn logit_for(&self, target: f64) -> f64 {
        let (mut lo, mut hi) = (-30.0, 30.0);
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if self.truth(mid) < target { lo = mid } else { hi = mid }
        }
        0.5 * (lo + hi)
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
        // Truths that do not depend on the data set, once.
        let base_truth = self.truth(self.logit);
        let treatment_logit = match analysis {
            Analysis::Paired(e) | Analysis::Unpaired(e) if e != 0.0 => self.logit_for(base_truth + e),
            _ => self.logit,
        };
        let per_dataset: Vec<Vec<Tally>> = (0..datasets)
            .into_par_iter()
            .map(|k| {
                let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
                rng.set_stream(k as u64);
                let mut d = Draws(Normal(rng));
                self.one(
                    &mut d,
                    analysis,
                    (base_truth, treatment_logit),
                    methods,
                    nboot,
                    k as u64,
                )
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
    fn one(
        &self,
        d: &mut Draws,
        analysis: Analysis,
        (base_truth, treatment_logit): (f64, f64),
        methods: &[IntervalMethod],
        nboot: usize,
        k: u64,
    ) -> Vec<Tally> {
        let population = self.population(d);
        let base = Arm::draw(d, self, self.logit, self.seeds);
        let summarizers = methods.iter().map(|&method| Summarizer {
            method,
            confidence: 0.95,
        });
        let metric = self.metric;
        if analysis == Analysis::Curve {
            let steps: Vec<Arm> = CURVE_STEPS
                .iter()
                .map(|offset| base.correlated(d, self, self.logit + offset))
                .collect();
            let truths: Vec<f64> = CURVE_STEPS.iter().map(|o| self.truth(self.logit + o)).collect();
            let sides: Vec<Side> = steps
                .iter()
                .map(|a| a.side(d, self.runs, &population, metric))
                .collect();
            return summarizers
                .map(|s| curve_tally(&sides, &population.clusters, &truths, s, metric, nboot, k))
                .collect();
        }
        let clusters = population.clusters.clone();
        let (design, truth) = match analysis {
            Analysis::Single => (
                Design::single(base.side(d, self.runs, &population, metric), clusters),
                base_truth,
            ),
            Analysis::Paired(effect) | Analysis::Unpaired(effect) => {
                let (treatment, pairing) = match analysis {
                    Analysis::Paired(_) => (base.correlated(d, self, treatment_logit), Pairing::Paired),
                    _ => (Arm::draw(d, self, treatment_logit, self.seeds), Pairing::Unpaired),
                };
                let (b, t) = (
                    base.side(d, self.runs, &population, metric),
                    treatment.side(d, self.runs, &population, metric),
                );
                // A planted effect is exact on the truth scale; the null is exactly 0.
                let truth = if effect == 0.0 {
                    0.0
                } else {
                    self.truth(treatment_logit) - base_truth
                };
                (Design::compare(b, t, pairing, clusters), truth)
            }
            Analysis::OneSeedBaseline(effect) => {
                // The baseline is one checkpoint: its truth is conditional on its seed effect.
                let checkpoint = Arm::draw(d, self, self.logit, 1);
                let checkpoint_truth = self.seed_truth(self.logit + checkpoint.seed_effects[0]);
                let logit = self.logit_for(checkpoint_truth + effect);
                let treatment = Arm::draw(d, self, logit, self.seeds);
                let (b, t) = (
                    checkpoint.side(d, self.runs, &population, metric),
                    treatment.side(d, self.runs, &population, metric),
                );
                let truth = self.truth(logit) - checkpoint_truth;
                (Design::compare(b, t, Pairing::Unpaired, clusters), truth)
            }
            Analysis::Curve => unreachable!("handled above"),
        };
        let design = design.expect("a simulated design is valid");
        let engine = Engine::new(&design, metric).expect("simulated outcomes are valid");
        let resampler = Resampler::new(&design, Sampling::Both, k);
        let point = engine.evaluate(&resampler.full());
        let reps = engine.bootstrap(&resampler, nboot);
        let seeds = engine.per_seed(&resampler);
        let (estimate, values, level, range) = match (&reps.treatment, point.treatment) {
            (Some(t), Some(tp)) => (
                tp - point.base,
                t.iter().zip(&reps.base).map(|(t, b)| t - b).collect::<Vec<f64>>(),
                SeedLevel::delta(Sampling::Both, design.pairing(), &seeds, design.n_units()),
                metric.delta_range(),
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
                metric.range(),
            ),
        };
        summarizers
            .map(|s| {
                // As the analyses report it: cut to the metric's range.
                let interval = s.interval(estimate, &values, &level).within(range);
                let rejected =
                    analysis != Analysis::Single && s.p_value(estimate, &values, &level, Alternative::TwoSided) <= 0.05;
                let mut tally = Tally {
                    datasets: 1,
                    rejected: usize::from(rejected),
                    ..Tally::default()
                };
                tally.count(interval.low, interval.high, truth);
                tally
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
    metric: Metric,
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
        let engine = Engine::new(&design, metric).expect("simulated outcomes are valid");
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
        let interval = summarizer.interval(point, &reps, &level).within(metric.range());
        tally.count(interval.low, interval.high, *truth);
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
        let scenario = Scenario {
            seeds: 5,
            runs: 1,
            examples: 100,
            clusters: None,
            seed_sd: 0.0,
            example_sd: 1.5,
            interaction_sd: 0.5,
            logit: 0.5,
            metric: Metric::Accuracy,
        };
        assert!((scenario.truth(scenario.logit_for(0.62)) - 0.62).abs() < 1e-12);
    }

    /// Every metric's exact truth M(c) against the metric of one large simulated seed (200,000
    /// examples, 2 runs, through the engine): what the harness calls the truth is what the
    /// metric measures on the population.
    #[test]
    fn seed_truths_match_a_large_population() {
        for metric in Metric::ALL {
            let scenario = Scenario {
                seeds: 1,
                runs: 2,
                examples: 200_000,
                clusters: None,
                seed_sd: 0.0,
                example_sd: 1.5,
                interaction_sd: 0.5,
                logit: 0.5,
                metric,
            };
            let mut d = Draws(Normal(ChaCha8Rng::seed_from_u64(2)));
            let population = scenario.population(&mut d);
            let arm = Arm::draw(&mut d, &scenario, scenario.logit, 1);
            let side = arm.side(&mut d, 2, &population, metric);
            let design = Design::single(side, None).unwrap();
            let engine = Engine::new(&design, metric).unwrap();
            let estimate = engine
                .evaluate(&Resampler::new(&design, Sampling::Examples, 0).full())
                .base;
            let truth = scenario.seed_truth(scenario.logit);
            // Sampling error of 200,000 examples is about 1e-3 for these metrics (3e-3 for mean).
            assert!(
                (estimate - truth).abs() < 6e-3,
                "{metric}: population {estimate}, truth {truth}"
            );
        }
    }

    /// The procedure's truth averages seed truths: the quadrature against the closed form.
    #[test]
    fn procedure_truth_is_the_seed_average() {
        let scenario = |metric| Scenario {
            seeds: 5,
            runs: 1,
            examples: 100,
            clusters: None,
            seed_sd: 0.8,
            example_sd: 1.5,
            interaction_sd: 0.5,
            logit: 0.5,
            metric,
        };
        // Recall is accuracy under this model: closed form against the quadrature of seed truths.
        let closed = scenario(Metric::Accuracy).truth(0.5);
        let quadrature = normal_expectation(200, |z| scenario(Metric::Accuracy).seed_truth(0.5 + 0.8 * z));
        assert!((closed - quadrature).abs() < 1e-9, "{closed} vs {quadrature}");
    }
}
