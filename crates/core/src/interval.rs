//! Interval methods: the paper's percentile interval and the small-seed corrections.
//!
//! The percentile bootstrap understates seed-level uncertainty when there are few seeds: the
//! seed-level bootstrap variance is (S − 1)/S of the unbiased one, and its normal-like tails
//! ignore that the spread of S seeds is itself estimated from S values (Student's t with S − 1
//! degrees of freedom). With the 5 seeds of the MultiBERTs intermediate checkpoints a nominal
//! 95% percentile interval covers about 83% where seeds matter.
//!
//! [`IntervalMethod::Calibrated`] (the default) splits the bootstrap variance V_B of a quantity
//! into what the seeds contribute and the rest. The seed part is measured directly, from each
//! seed's own estimate: V_k = s²_k / S_k per side k with seed variation (s²_k the unbiased
//! variance of its S_k seed estimates; for a paired delta, of the per-seed deltas), of which the
//! bootstrap sees V_k (S_k − 1)/S_k. The rest, V_E = max(0, V_B − Σ V_k (S_k − 1)/S_k), is the
//! example (or cluster) level, corrected by U/(U − 1) for U resampled units. The seed × unit
//! interaction D belongs in the variance once, but each seed's estimate carries it, so does each
//! unit's seed average, and the product of the two draws adds it again (the pigeonhole
//! bootstrap's known excess, Owen 2007): V_k + V_E·U/(U − 1) holds (3 − 1/S)·D. D = MS_res/(S·U)
//! from the two-way table of seeds × units (per-unit values for per-example metrics, jackknife
//! pseudo-values for the others: [`crate::engine::Residual`]), and the excess (2 − 1/S)·D is
//! removed. A side whose V_k cannot be told from its D (an F test at α = 0.4) is pooled with it
//! (Paull's sometimes-pool rule), so a paired comparison without a seed effect does not take its
//! t quantile from S − 1 degrees of freedom of noise. The corrected
//! variance is V_C = Σ V_k + V_E·U/(U − 1) − (2 − 1/S)·D, never below its largest single term, with Satterthwaite
//! degrees of freedom ν = V_C² / Σ (term² / its degrees of freedom), each seed level taken at its
//! upper 75% confidence bound (ν̂ is itself estimated, and an underestimated seed level would
//! both narrow V_C and raise ν̂), never below the fewest degrees of
//! freedom of a level (each level alone bounds the variance from below, and Satterthwaite's ν of a
//! difference collapses towards 0 when its terms cancel), so ν ≈ S − 1 where seeds dominate and
//! grows without bound where examples do. The interval keeps the percentile interval's shape
//! (its asymmetry) and rescales its distances from the point estimate:
//!
//! ```text
//! B(a) = θ̂ + (Q*(a) − θ̂) · √(V_C / V_B) · t_ν⁻¹(a) / Φ⁻¹(a)
//! ```
//!
//! with Q* the replicates' quantile function; the interval is [B(α/2), B(1 − α/2)] and the
//! one-sided p-value of H0 δ ≤ 0 is the level a at which B(a) = 0 (so the interval and the test
//! agree exactly). With many seeds, or without seed resampling, B(a) ≈ Q*(a): the percentile
//! interval. `tests/simulation.rs` and `examples/coverage.rs` measure its coverage and level.
//!
//! The alternatives, kept for comparison and reproduction: [`IntervalMethod::Percentile`] (the
//! paper's and the original library's), [`IntervalMethod::Expanded`] (Hesterberg's expanded
//! percentile at the seed level: the percentile interval at the level whose normal quantile is
//! √(S/(S−1))·t_{S−1}, S the fewest seeds of a side with seed variation) and
//! [`IntervalMethod::Student`] (the symmetric θ̂ ± t_ν √V_C with the calibrated variance).

use std::fmt;
use std::str::FromStr;

use statrs::distribution::{ChiSquared, ContinuousCDF, FisherSnedecor, Normal, StudentsT};

use super::design::Pairing;
use super::engine::{Residual, SeedEstimates};
use super::resample::Sampling;
use super::summary::{Alternative, Interval, quantile};

/// How replicates become intervals and p-values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde_with::DeserializeFromStr)]
pub enum IntervalMethod {
    /// The percentile interval, calibrated to Student's t with Satterthwaite degrees of freedom
    /// for the seed level (the default; see the module doc).
    #[default]
    Calibrated,
    /// The paper's percentile interval and share-of-replicates p-value.
    Percentile,
    /// Hesterberg's expanded percentile interval at the seed level.
    Expanded,
    /// The symmetric Student interval θ̂ ± t_ν √V_C.
    Student,
}

impl IntervalMethod {
    /// Every method, in the order of the documentation.
    pub const ALL: [IntervalMethod; 4] = [
        IntervalMethod::Calibrated,
        IntervalMethod::Percentile,
        IntervalMethod::Expanded,
        IntervalMethod::Student,
    ];

    /// The spelling used on the command line and in outputs.
    pub fn name(self) -> &'static str {
        match self {
            IntervalMethod::Calibrated => "calibrated",
            IntervalMethod::Percentile => "percentile",
            IntervalMethod::Expanded => "expanded",
            IntervalMethod::Student => "student",
        }
    }
}

impl fmt::Display for IntervalMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for IntervalMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("expected calibrated, percentile, expanded or student, got '{s}'"))
    }
}

/// The seed-level and example-level facts about one quantity that the replicates alone get
/// wrong with few seeds: the seed variance of each side with seed variation, the number of
/// resampled example units, and the seed × unit interaction that both levels of the joint
/// bootstrap count (known for per-example metrics).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeedLevel {
    /// Per side with seed variation: (s² / S of its seed estimates, S).
    sides: Vec<(f64, usize)>,
    /// Resampled examples or clusters (`None` when examples are not resampled).
    units: Option<usize>,
    /// Interaction variances counted twice by the joint bootstrap (subtracted once).
    residuals: Vec<Residual>,
}

impl SeedLevel {
    /// No seed variation (examples only, or a one-seed side); `units` resampled units, if any.
    pub fn examples_only(units: Option<usize>) -> Self {
        Self {
            units,
            ..Self::default()
        }
    }

    /// One quantity measured on independently drawn seed sets: each slice holds one side's
    /// per-seed estimates (for a paired delta, the per-seed deltas as one slice; for an unpaired
    /// delta, both sides). Sides with fewer than two seeds contribute no seed variance.
    pub fn new<'a>(seed_estimates: impl IntoIterator<Item = &'a [f64]>, units: Option<usize>) -> Self {
        let sides = seed_estimates
            .into_iter()
            .filter(|v| v.len() >= 2)
            .map(|v| {
                let s = v.len() as f64;
                let mean = v.iter().sum::<f64>() / s;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (s - 1.0);
                (var / s, v.len())
            })
            .collect();
        Self {
            sides,
            units,
            residuals: Vec::new(),
        }
    }

    /// The seed level of one procedure under `sampling`, with its interaction when known.
    pub fn side(sampling: Sampling, seed_estimates: &[f64], residual: Option<Residual>, n_units: usize) -> Self {
        Self::drawn(sampling, &[seed_estimates], n_units).with_residuals(sampling, residual)
    }

    /// The interactions, counted only when seeds and examples are both resampled.
    fn with_residuals(mut self, sampling: Sampling, residuals: impl IntoIterator<Item = Residual>) -> Self {
        if sampling == Sampling::Both {
            self.residuals.extend(residuals);
        }
        self
    }

    /// The seed level of a quantity under `sampling`: `seed_estimates` as in [`SeedLevel::new`]
    /// when seeds are resampled, `n_units` when examples are.
    pub fn drawn(sampling: Sampling, seed_estimates: &[&[f64]], n_units: usize) -> Self {
        let units = (sampling != Sampling::Seeds).then_some(n_units);
        match sampling {
            Sampling::Examples => Self::examples_only(units),
            _ => Self::new(seed_estimates.iter().copied(), units),
        }
    }

    /// The seed level of a comparison's δ = L′ − L: the per-seed deltas when paired, both sides'
    /// seed estimates when unpaired.
    pub fn delta(sampling: Sampling, pairing: Pairing, seeds: &SeedEstimates, n_units: usize) -> Self {
        let treatment = seeds.treatment.as_deref().unwrap_or(&[]);
        match pairing {
            Pairing::Paired => {
                let deltas: Vec<f64> = treatment.iter().zip(&seeds.base).map(|(t, b)| t - b).collect();
                let residual = seeds.interaction.and_then(|i| i.paired_delta);
                Self::drawn(sampling, &[&deltas], n_units).with_residuals(sampling, residual)
            }
            Pairing::Unpaired => {
                let residuals = seeds
                    .interaction
                    .into_iter()
                    .flat_map(|i| i.base.into_iter().chain(i.treatment));
                Self::drawn(sampling, &[&seeds.base, treatment], n_units).with_residuals(sampling, residuals)
            }
        }
    }

    /// The fewest seeds of a side with seed variation (`None` without seed variation).
    pub fn fewest_seeds(&self) -> Option<usize> {
        self.sides.iter().map(|&(_, s)| s).min()
    }

    /// Each side's seed-level term (variance, degrees of freedom), pooled with its seed × unit
    /// interaction when the two cannot be told apart. Without a seed effect a side's V_k
    /// estimates the same D as its interaction, but from only S − 1 degrees of freedom against
    /// (S − 1)(U − 1): with 3–5 seeds the t quantile is then set by the noise of V_k and paired
    /// comparisons of a few hundred examples cover 0.99. Paull's (1950) sometimes-pool rule
    /// (Bozivich, Bancroft & Hartley 1956): when F = V_k / D < F_{0.6}(S − 1, (S − 1)(U − 1))
    /// the two are pooled into one estimate of D with (S − 1)·U degrees of freedom; otherwise
    /// V_k stands with S − 1.
    fn seed_terms(&self) -> Vec<(f64, f64)> {
        self.sides
            .iter()
            .enumerate()
            .map(|(k, &(v, s))| {
                let seed_df = s as f64 - 1.0;
                let interaction = self.residuals.get(k).filter(|r| r.seeds == s && r.variance > 0.0);
                let (Some(r), Some(u)) = (interaction, self.units.filter(|&u| u >= 2)) else {
                    return (v, seed_df);
                };
                let interaction_df = seed_df * (u as f64 - 1.0);
                let pool = FisherSnedecor::new(seed_df, interaction_df)
                    .is_ok_and(|f| v / r.variance < f.inverse_cdf(POOL_LEVEL));
                if pool {
                    (
                        (seed_df * v + interaction_df * r.variance) / (seed_df + interaction_df),
                        seed_df + interaction_df,
                    )
                } else {
                    (v, seed_df)
                }
            })
            .collect()
    }

    /// The corrected variance V_C and its Satterthwaite degrees of freedom ν, given the
    /// replicates' variance (see the module doc). ν is infinite when no component has finite
    /// degrees of freedom.
    pub fn corrected(&self, boot_variance: f64) -> (f64, f64) {
        let seen_by_bootstrap: f64 = self.sides.iter().map(|&(v, s)| v * (s as f64 - 1.0) / s as f64).sum();
        let rest = (boot_variance - seen_by_bootstrap).max(0.0);
        // (variance, degrees of freedom) of each term of V_C.
        let mut parts: Vec<(f64, f64)> = self.seed_terms();
        let seed_level: f64 = parts.iter().map(|p| p.0).sum();
        parts.push(match self.units {
            Some(u) if u >= 2 => (rest * u as f64 / (u as f64 - 1.0), u as f64 - 1.0),
            _ => (rest, f64::INFINITY),
        });
        let unit_level = parts.last().map_or(0.0, |p| p.0);
        // The seed level (Σ V_k) and the unit level (V_E·U/(U − 1)) each carry D; the product
        // of the two draws adds (1 − 1/S)(1 − 1/U)·D to V_B, which the unit level scales to
        // (1 − 1/S)·D: (2 − 1/S)·D too many in all.
        let product = |r: &Residual| r.variance * (1.0 - 1.0 / r.seeds as f64);
        let excess = |r: &Residual| r.variance + product(r);
        let twice_counted: f64 = self.residuals.iter().map(excess).sum();
        // Each level alone, without its excess, is a lower bound on the whole.
        let floor = seed_level.max(unit_level - self.residuals.iter().map(product).sum::<f64>());
        let total = (seed_level + unit_level - twice_counted).max(floor);
        // Satterthwaite's degrees of freedom of the combination, the excess with its own
        // (S − 1)(U − 1) (or unbounded without resampled units), never below the fewest of any
        // level: Satterthwaite's ν of a *difference* collapses towards 0 when the terms nearly
        // cancel (t_ν quantiles in the millions with a handful of examples), though each level
        // alone is a valid lower bound on the variance with that level's degrees of freedom.
        let fewest = parts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let interaction_df = |r: &Residual| match self.units {
            Some(u) => (r.seeds as f64 - 1.0) * (u as f64 - 1.0),
            None => f64::INFINITY,
        };
        parts.extend(self.residuals.iter().map(|r| (excess(r), interaction_df(r))));
        // Each seed level enters ν at its upper 75% confidence bound, v·(S − 1)/χ²_{S−1}(0.25):
        // ν̂ is a ratio of estimated variances, and with 2–4 seed degrees of freedom an
        // underestimated seed level both narrows V_C and raises ν̂ towards the unit level's, so
        // the plug-in Satterthwaite interval undercovers (one-seed baselines at 3–5 seeds:
        // 0.90–0.92). The bound shrinks to v as S grows; V_C itself is unchanged.
        let mut bounded = total;
        for part in parts.iter_mut().take(self.sides.len()) {
            let raised = part.0 * upper_bound_factor(part.1);
            bounded += raised - part.0;
            part.0 = raised;
        }
        let spread: f64 = parts.iter().filter(|p| p.1.is_finite()).map(|(v, df)| v * v / df).sum();
        let df = if spread > 0.0 {
            (bounded * bounded / spread).max(fewest)
        } else {
            f64::INFINITY
        };
        (total, df)
    }
}

/// The F quantile below which a seed level is pooled with its interaction: a preliminary test
/// at α = 0.4. Paull's α = 0.25 pools a real seed effect of a paired comparison too often with
/// 3 seeds (coverage 0.924 at seed sd 0.8 × 3 runs × 20 clusters, against 0.936 at α = 0.4);
/// a larger α leaves more of the conservatism that pooling removes.
const POOL_LEVEL: f64 = 0.6;

/// df / χ²_df(0.25): the factor from a variance estimate with `df` degrees of freedom to its
/// upper 75% confidence bound.
fn upper_bound_factor(df: f64) -> f64 {
    ChiSquared::new(df).map_or(1.0, |c| df / c.inverse_cdf(0.25))
}

/// Turns replicates into intervals and p-values by one [`IntervalMethod`].
#[derive(Clone, Copy, Debug)]
pub struct Summarizer {
    /// The method.
    pub method: IntervalMethod,
    /// Two-sided confidence level of intervals.
    pub confidence: f64,
}

impl Summarizer {
    /// The interval of a quantity with full-data estimate `estimate` and bootstrap `replicates`.
    /// Time: O(nboot log nboot).
    pub fn interval(&self, estimate: f64, replicates: &[f64], level: &SeedLevel) -> Interval {
        let percentile = Interval::new(estimate, replicates, self.confidence);
        let tail = (1.0 - self.confidence) / 2.0;
        match Bounds::new(self.method, estimate, replicates, level) {
            None => percentile,
            Some(bounds) => Interval {
                low: bounds.at(tail),
                high: bounds.at(1.0 - tail),
                ..percentile
            },
        }
    }

    /// The p-value of `alternative` for a delta with estimate `estimate` and replicates
    /// `deltas`, by the same method as its interval (the two-sided interval at level 1 − p has
    /// an end at 0), floored at 1 / nboot.
    pub fn p_value(&self, estimate: f64, deltas: &[f64], level: &SeedLevel, alternative: Alternative) -> f64 {
        let Some(bounds) = Bounds::new(self.method, estimate, deltas, level) else {
            return super::summary::p_value(deltas, alternative);
        };
        // B is increasing in a: P(δ ≤ 0)-like tail = the level where the bound crosses 0.
        let greater = bounds.crossing();
        let p = match alternative {
            Alternative::Greater => greater,
            Alternative::Less => 1.0 - greater,
            Alternative::TwoSided => (2.0 * greater.min(1.0 - greater)).min(1.0),
        };
        p.max(1.0 / deltas.len() as f64)
    }
}

/// Why a quantity has no interval ([`Interval::within`]).
pub const NO_VARIATION: &str =
    "n/a: too few examples or seeds for an interval (every bootstrap replicate sits at the metric's bound)";

/// `note` extended with [`NO_VARIATION`] when `interval` has no ends; unchanged otherwise.
pub fn note_undefined(interval: &Interval, note: &str) -> String {
    match interval.low.is_nan() {
        true => join_note(note, NO_VARIATION),
        false => note.to_string(),
    }
}

/// `note` and `more`, joined by "; ".
pub fn join_note(note: &str, more: &str) -> String {
    match note.is_empty() {
        true => more.to_string(),
        false => format!("{note}; {more}"),
    }
}

/// Seeds below which a side counts as few: the percentile interval's undercoverage is then
/// visible (about 92% at 10 seeds, 83% at 5 where seeds matter).
pub const FEW_SEEDS: usize = 10;

impl Summarizer {
    /// `note` extended with what guards a quantity whose sides have `side_seeds` seeds (more
    /// than one and fewer than [`FEW_SEEDS`] on some side, seeds resampled): how many, and the
    /// method. Unchanged otherwise.
    pub fn guard(&self, side_seeds: &[usize], sampling: Sampling, note: &str) -> String {
        let few: Vec<String> = side_seeds
            .iter()
            .filter(|&&s| s > 1 && s < FEW_SEEDS)
            .map(usize::to_string)
            .collect();
        if few.is_empty() || sampling == Sampling::Examples {
            return note.to_string();
        }
        let guard = match self.method {
            IntervalMethod::Percentile => {
                "the percentile interval is too narrow with so few (the calibrated interval, the default, is not)"
                    .to_string()
            }
            m => format!("guarded by the {m} interval (Student t on the seed level)"),
        };
        join_note(note, &format!("few seeds ({}): {guard}", few.join(" and ")))
    }
}

/// The bound function B(a) of one quantity under a non-percentile method.
struct Bounds {
    method: IntervalMethod,
    estimate: f64,
    sorted: Vec<f64>,
    /// √(V_C / V_B).
    scale: f64,
    /// Standard error √V_C (Student).
    se: f64,
    t: StudentsT,
    /// For the expanded method: √(S/(S−1)) (the seed-level variance correction).
    expansion: f64,
}

impl Bounds {
    /// `None` when the method is the percentile, or the replicates do not vary, or the quantity
    /// has no seed or unit correction to make.
    fn new(method: IntervalMethod, estimate: f64, replicates: &[f64], level: &SeedLevel) -> Option<Self> {
        let n = replicates.len() as f64;
        let mean = replicates.iter().sum::<f64>() / n;
        let boot_variance = replicates.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        if method == IntervalMethod::Percentile || boot_variance.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        {
            return None;
        }
        let (corrected, mut df, expansion) = match method {
            IntervalMethod::Expanded => {
                let s = level.fewest_seeds()? as f64;
                (boot_variance, s - 1.0, (s / (s - 1.0)).sqrt())
            }
            _ => {
                let (v, df) = level.corrected(boot_variance);
                (v, df, 1.0)
            }
        };
        // Beyond a million degrees of freedom t is the normal to 1e-6.
        df = df.min(1e6);
        let mut sorted = replicates.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            method,
            estimate,
            sorted,
            scale: (corrected / boot_variance).sqrt(),
            se: corrected.sqrt(),
            t: StudentsT::new(0.0, 1.0, df).ok()?,
            expansion,
        })
    }

    /// The bound at level a ∈ (0, 1): the lower end of a one-sided 1 − a interval for a < 1/2.
    fn at(&self, a: f64) -> f64 {
        let normal = Normal::standard();
        match self.method {
            IntervalMethod::Student => self.estimate + self.se * self.t.inverse_cdf(a),
            IntervalMethod::Expanded => {
                let z = self.expansion * self.t.inverse_cdf(a);
                quantile(&self.sorted, normal.cdf(z))
            }
            _ => {
                let ratio = if (a - 0.5).abs() < 1e-9 {
                    // The limit of t⁻¹(a)/Φ⁻¹(a) at the median: the ratio of the densities at 0.
                    use statrs::distribution::Continuous;
                    normal.pdf(0.0) / self.t.pdf(0.0)
                } else {
                    self.t.inverse_cdf(a) / normal.inverse_cdf(a)
                };
                self.estimate + (quantile(&self.sorted, a) - self.estimate) * self.scale * ratio
            }
        }
    }

    /// The level a at which B(a) = 0, by bisection (B is non-decreasing in a): 0 when B is
    /// positive everywhere, 1 when it is never positive.
    fn crossing(&self) -> f64 {
        let (mut lo, mut hi) = (1e-12, 1.0 - 1e-12);
        if self.at(lo) > 0.0 {
            return 0.0;
        }
        if self.at(hi) <= 0.0 {
            return 1.0;
        }
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if self.at(mid) <= 0.0 { lo = mid } else { hi = mid }
        }
        0.5 * (lo + hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal_sample(n: usize, mean: f64, sd: f64) -> Vec<f64> {
        let normal = Normal::standard();
        (1..=n)
            .map(|i| mean + sd * normal.inverse_cdf(i as f64 / (n as f64 + 1.0)))
            .collect()
    }

    #[test]
    fn methods_parse_from_their_names() {
        for m in IntervalMethod::ALL {
            assert_eq!(m.name().parse::<IntervalMethod>(), Ok(m));
        }
        assert!("bca".parse::<IntervalMethod>().is_err());
    }

    #[test]
    fn a_seed_level_like_its_interaction_is_pooled_with_it() {
        // 3 seeds, 100 units: V_k = s²/S against D. F = V_k / D far below F_0.6(2, 198) ≈ 0.92:
        // pooled, (2·V_k + 198·D)/200 with 200 degrees of freedom.
        let residual = |variance| Residual { variance, seeds: 3 };
        let level = |seeds: &[f64], d| SeedLevel {
            residuals: vec![residual(d)],
            ..SeedLevel::new([seeds], Some(100))
        };
        let quiet = level(&[0.50, 0.51, 0.52], 1e-3);
        let v = 1e-4 / 3.0;
        let [(pooled, df)] = quiet.seed_terms()[..] else {
            panic!()
        };
        assert!((pooled - (2.0 * v + 198.0 * 1e-3) / 200.0).abs() < 1e-15 && df == 200.0);
        // A seed effect well above its interaction (F = 33) stands with S − 1.
        let [(alone, df)] = level(&[0.40, 0.50, 0.60], 1e-4).seed_terms()[..] else {
            panic!()
        };
        assert!((alone - 1e-2 / 3.0).abs() < 1e-15 && df == 2.0);
        // Without an interaction estimate there is nothing to pool with.
        let [(alone, df)] = SeedLevel::new([&[0.50, 0.51, 0.52][..]], Some(100)).seed_terms()[..] else {
            panic!()
        };
        assert!((alone - v).abs() < 1e-15 && df == 2.0);
    }

    #[test]
    fn seed_levels_enter_the_degrees_of_freedom_at_their_upper_bound() {
        // One seed side (S = 3) and the unit level in equal parts: plug-in Satterthwaite gives
        // (2v)²/(v²/2 + v²/99) ≈ 7.8; with the seed level at 2/χ²₂(0.25) = 3.48·v it is
        // (4.48v)²/((3.48v)²/2 + v²/99) ≈ 3.3.
        let seeds = [0.4, 0.5, 0.6];
        let v = 1e-2 / 3.0;
        let level = SeedLevel::new([&seeds[..]], Some(100));
        let boot = v * 2.0 / 3.0 + v * 99.0 / 100.0;
        let (total, df) = level.corrected(boot);
        assert!((total - 2.0 * v).abs() < 1e-12, "{total}");
        let factor = 2.0 / ChiSquared::new(2.0).unwrap().inverse_cdf(0.25);
        let expected = (1.0 + factor).powi(2) / (factor * factor / 2.0 + 1.0 / 99.0);
        assert!(
            (df - expected).abs() < 1e-9 && (3.0..3.6).contains(&df),
            "{df} vs {expected}"
        );
    }

    #[test]
    fn corrected_variance_restores_the_seed_share_and_its_degrees_of_freedom() {
        // Five seeds whose spread is the whole bootstrap variance: V_B = V_S·4/5.
        let seeds = [0.1, 0.2, 0.3, 0.4, 0.5];
        let level = SeedLevel::new([&seeds[..]], Some(1_000_000));
        let v_s: f64 = 0.025 / 5.0; // s² = 0.025
        let (v, df) = level.corrected(v_s * 0.8);
        assert!((v - v_s).abs() < 1e-12, "{v}");
        assert!((df - 4.0).abs() < 1e-9, "{df}");
        // Without seed variation only the unit correction remains: U/(U−1), df U−1.
        let (v, df) = SeedLevel::examples_only(Some(20)).corrected(1.9);
        assert!((v - 2.0).abs() < 1e-12 && df == 19.0, "{v} {df}");
    }

    #[test]
    fn calibrated_interval_is_the_t_interval_for_normal_seed_dominated_replicates() {
        // Replicates ~ N(0.7, V_B) with V_B = (S−1)/S·V_S: the calibrated interval is θ̂ ± t_{S−1} √V_S.
        let seeds = [0.60, 0.65, 0.70, 0.75, 0.80];
        let v_s: f64 = 0.00625 / 5.0;
        let reps = normal_sample(20_001, 0.7, (v_s * 0.8).sqrt());
        let level = SeedLevel::new([&seeds[..]], None);
        let t4 = StudentsT::new(0.0, 1.0, 4.0).unwrap().inverse_cdf(0.975);
        for method in [IntervalMethod::Calibrated, IntervalMethod::Student] {
            let i = Summarizer {
                method,
                confidence: 0.95,
            }
            .interval(0.7, &reps, &level);
            assert!((i.high - 0.7 - t4 * v_s.sqrt()).abs() < 1e-4, "{method}: {i:?}");
            assert!((0.7 - i.low - t4 * v_s.sqrt()).abs() < 1e-4, "{method}: {i:?}");
        }
        let percentile = Summarizer {
            method: IntervalMethod::Percentile,
            confidence: 0.95,
        }
        .interval(0.7, &reps, &level);
        // The percentile interval is z·√(4/5) / t₄ ≈ 0.63 of it.
        assert!(percentile.high - percentile.low < 0.65 * (2.0 * t4 * v_s.sqrt()));
    }

    #[test]
    fn p_values_match_the_interval_ends() {
        // The two-sided interval at level 1 − p has its lower end at 0.
        let seeds = [0.01, 0.03, 0.02, 0.05, 0.04];
        let reps = normal_sample(4001, 0.03, 0.01);
        let level = SeedLevel::new([&seeds[..]], Some(300));
        for method in [
            IntervalMethod::Calibrated,
            IntervalMethod::Student,
            IntervalMethod::Expanded,
        ] {
            let s = Summarizer {
                method,
                confidence: 0.95,
            };
            let p = s.p_value(0.03, &reps, &level, Alternative::TwoSided);
            assert!(p > 1.0 / 4001.0 && p < 1.0, "{method}: {p}");
            let at = Summarizer {
                method,
                confidence: 1.0 - p,
            }
            .interval(0.03, &reps, &level);
            assert!(at.low.abs() < 1e-6, "{method}: p {p}, interval {at:?}");
            let greater = s.p_value(0.03, &reps, &level, Alternative::Greater);
            let less = s.p_value(0.03, &reps, &level, Alternative::Less);
            assert!((greater - p / 2.0).abs() < 1e-9 && (less - (1.0 - p / 2.0)).abs() < 1e-9);
        }
    }

    #[test]
    fn many_seeds_and_units_give_the_percentile_interval() {
        let seeds: Vec<f64> = normal_sample(2000, 0.5, 0.1);
        let reps = normal_sample(999, 0.5, 0.1 / (2000f64).sqrt());
        let level = SeedLevel::new([&seeds[..]], Some(1_000_000));
        let c = Summarizer {
            method: IntervalMethod::Calibrated,
            confidence: 0.9,
        }
        .interval(0.5, &reps, &level);
        let p = Interval::new(0.5, &reps, 0.9);
        // Within half a percent: t with 1,999 degrees of freedom and a 2,000/1,999 variance factor.
        let ratio = (c.high - c.low) / (p.high - p.low);
        assert!((ratio - 1.0).abs() < 0.005, "{c:?} {p:?}");
    }
}
